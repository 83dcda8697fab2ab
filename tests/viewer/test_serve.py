"""The live server without a browser: whole lines only, the routes, a clean stop."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rlm.viewer.serve import LiveTrace, TraceServer
from tests.viewer.helpers import event, start


def test_a_line_being_written_is_read_once_it_ends(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    live = LiveTrace(trace)
    assert live.refresh() == 0  # no file yet: nothing to show, nothing wrong
    line = event("final", iteration=1, answer="42", time=1_001.0)
    trace.write_text(start() + line[:20])
    first = live.refresh()
    assert live.builder.events == 1 and live.builder.damage is None
    with trace.open("a") as f:
        f.write(line[20:])
    assert live.refresh() > first
    assert live.builder.page().runs["root"].answer == "42"
    assert live.refresh() == live.refresh()  # unchanged file, unchanged version


def test_a_file_that_is_no_trace_is_reported_as_such(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("just text\n")
    live = LiveTrace(trace)
    live.refresh()
    assert live.not_a_trace is not None and "not an rlm trace" in live.not_a_trace


def test_the_server_answers_on_loopback_and_stops(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(start())
    server = TraceServer(LiveTrace(trace))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "model.json", timeout=10) as response:
            data = json.loads(response.read())
        assert data["live"] is True and list(data["runs"]) == ["root"]
        with urllib.request.urlopen(server.url + "events", timeout=10) as stream:
            assert stream.readline() == b"event: update\n"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url + "etc/passwd", timeout=10)
    finally:
        server.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
