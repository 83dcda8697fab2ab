"""SIGINT and SIGTERM during a run on containers: a clean stop, no container left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rlm.sandbox.engine import get_engine
from rlm.sandbox.rundir import OWNER_LABEL
from tests.cli.conftest import repl
from tests.fakes.model_server import FakeModelServer

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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_and_removes_its_sandboxes(
    model_server: FakeModelServer, tmp_path: Path, signum: int
) -> None:
    model_server.handler = lambda request: repl("import time\ntime.sleep(120)")
    (tmp_path / "ctx.txt").write_text("some text")
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "rlm.cli", "--backend", "openai",
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

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(stderr)
        time.sleep(0.5)  # the block is now sleeping in the kernel
        assert containers_of(process.pid), "the run should have a container"
        process.send_signal(signum)
        code = process.wait(30)
    finally:
        process.kill()
    reader.join(5)
    report = "".join(stderr)
    assert code == 128 + signum, report
    name = signal.Signals(signum).name
    assert f"rlm: {name}: stopping, removing sandboxes" in report
    assert f"stopped by {name}" in report
    assert "all sandboxes removed; spent 1 model calls" in report
    assert "Traceback" not in report
    assert containers_of(process.pid) == []
