"""SIGINT and SIGTERM during a run on containers: a clean stop, no container left."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from rlm.sandbox.engine import get_engine
from rlm.sandbox.rundir import OWNER_LABEL
from tests.cli.conftest import repl
from tests.fakes.model_server import FakeModelServer
from tests.processes import reaper_of

pytestmark = pytest.mark.container


def containers_of(pid: int) -> list[str]:
    prefix = f"{socket.gethostname()}:{pid}:"
    listed = get_engine().client.containers.list(
        all=True, sparse=True, filters={"label": OWNER_LABEL}
    )
    return [
        c.id
        for c in listed
        if (c.attrs.get("Labels") or {}).get(OWNER_LABEL, "").startswith(prefix)
    ]


def start_waiting_run(
    model_server: FakeModelServer, tmp_path: Path, run_base: Path | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """A run whose code block sleeps in its container; its process and its stderr lines
    (read on a thread), returned once the block runs."""
    model_server.handler = lambda request: repl("import time\ntime.sleep(120)")
    (tmp_path / "ctx.txt").write_text("some text")
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    if run_base is not None:
        env["RLM_RUN_BASE"] = str(run_base)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "rlm", "--backend", "openai",
            "--base-url", model_server.openai_url, "--context-file", str(tmp_path / "ctx.txt"),
            "--query", "Wait", "--max-depth", "1",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    stderr: list[str] = []
    started = threading.Event()

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            if "iteration 1:" in line:
                started.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert started.wait(60), "".join(stderr)
        time.sleep(0.5)  # the block is now sleeping in the kernel
        assert containers_of(process.pid), "the run should have a container"
    except BaseException:
        process.kill()
        raise
    return process, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_and_removes_its_sandboxes(
    model_server: FakeModelServer, tmp_path: Path, signum: int
) -> None:
    process, stderr = start_waiting_run(model_server, tmp_path)
    try:
        process.send_signal(signum)
        code = process.wait(30)
    finally:
        process.kill()
    time.sleep(0.2)  # the reader's last lines
    report = "".join(stderr)
    assert code == 128 + signum, report
    name = signal.Signals(signum).name
    assert f"rlm: {name}: stopping, removing sandboxes" in report
    assert f"stopped by {name}" in report
    assert "all sandboxes removed; spent 1 model calls" in report
    assert "Traceback" not in report
    assert containers_of(process.pid) == []


def test_an_impatient_second_ctrl_c_still_removes_everything(
    model_server: FakeModelServer, tmp_path: Path
) -> None:
    """Its own run base: only this process (not its reaper, nor another's sweep) can
    have removed the run directory with the copy of the context by the time it exits."""
    run_base = Path(tempfile.mkdtemp(prefix="rlm-"))
    try:
        process, stderr = start_waiting_run(model_server, tmp_path, run_base)
        try:
            os.kill(reaper_of(process.pid), signal.SIGKILL)
            for _ in range(2):
                process.send_signal(signal.SIGINT)
                time.sleep(0.05)
            code = process.wait(30)
            left = sorted(path.name for path in run_base.glob("r*"))
        finally:
            process.kill()
    finally:
        shutil.rmtree(run_base, ignore_errors=True)
    time.sleep(0.2)
    report = "".join(stderr)
    assert code == 130, report
    assert "still removing sandboxes, please wait" in report
    assert "stopped by SIGINT" in report and "all sandboxes removed" in report
    assert left == []
    assert containers_of(process.pid) == []
