"""`rlm --view`: the run's live view served on 127.0.0.1 while it runs, stopped after."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.cli.conftest import LOCAL, invoke, openai_server, repl  # noqa: F401
from tests.fakes.fixtures import model_server  # noqa: F401
from tests.fakes.model_server import FakeModelServer

ROOT = Path(__file__).resolve().parents[2]


def test_the_live_view_is_served_while_the_run_goes_on(
    openai_server: FakeModelServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The model answers only once the test has seen the page: the run is surely going on.
    asked, seen = threading.Event(), threading.Event()

    def answer_when_seen(request: dict[str, Any]) -> str:
        asked.set()
        seen.wait(timeout=60)
        return repl("FINAL('three cats')")

    openai_server.handler = answer_when_seen
    (tmp_path / "cats.txt").write_text("cat cat cat")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlm.cli",
            *LOCAL,
            "--view",
            "--context-file=cats.txt",
            "--query=n?",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stderr is not None
        # The run prints progress too; the URL comes before the first model call ends.
        announced = re.compile(r"live view of (\S+) at (http://127\.0\.0\.1:\d+/)$")
        for line in run.stderr:
            if url := announced.search(line.strip()):
                break
        else:
            raise AssertionError("no URL on stderr")
        trace, page_url = Path(url[1]), url[2]
        assert asked.wait(timeout=60), "the run never called the model"
        with urllib.request.urlopen(page_url, timeout=10) as page:
            assert page.read().startswith(b"<!doctype html>")
        with urllib.request.urlopen(page_url + "events", timeout=10) as stream:
            assert stream.readline() == b"event: update\n"
        with urllib.request.urlopen(page_url + "model.json", timeout=10) as model:
            runs = json.loads(model.read())["runs"]
        assert [r["query"] for r in runs.values()] == ["n?"]
    finally:
        seen.set()
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert stdout == "three cats\n"
    assert f"the trace is kept in {trace}" in stderr
    assert '"type": "end"' in trace.read_text()
    trace.unlink()
    try:
        urllib.request.urlopen(page_url, timeout=10)
        raise AssertionError("the server outlived the run")
    except urllib.error.URLError as exc:
        assert isinstance(exc.reason, ConnectionRefusedError)


def test_view_refuses_a_trace_file_that_is_no_trace(
    openai_server: FakeModelServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    args = [*LOCAL, "--context-file", "-", "--query", "q", "--view", "--trace", str(other)]
    result = invoke(args, stdin="cat")
    assert result.exit_code == 2, result.output
    assert "--trace" in result.stderr and "not an rlm trace" in result.stderr
    assert other.read_text() == "my notes\n"
