"""`rlm view` on the command line, and the child runs in `rlm --json`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import LOCAL, invoke, openai_server  # noqa: F401
from tests.fakes.fixtures import model_server  # noqa: F401
from tests.fakes.model_server import FakeModelServer
from tests.viewer.conftest import Recorded


def test_view_writes_one_page_beside_the_trace(recorded: Recorded, tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    trace.write_bytes(recorded.trace.read_bytes())
    result = invoke(["view", str(trace)])
    assert result.exit_code == 0, result.stderr
    assert "wrote" in result.stderr and "2 run(s)" in result.stderr
    page = (tmp_path / "run.html").read_text()
    assert page.startswith("<!doctype html>") and "root-model" in page
    # Self-contained: nothing is loaded from anywhere.
    assert re.search(r"https?://|<link|<script src", page) is None

    again = invoke(["view", str(trace), "-o", str(trace)])
    assert again.exit_code == 2 and "is the file to read" in again.stderr
    assert trace.read_bytes() == recorded.trace.read_bytes()


def test_view_says_where_a_damaged_trace_stopped(recorded: Recorded, tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    trace.write_bytes(recorded.trace.read_bytes()[:-20])
    out = tmp_path / "page.html"
    result = invoke(["view", str(trace), "-o", str(out)])
    assert result.exit_code == 0 and out.exists()
    lines = len(recorded.trace.read_text().splitlines())
    assert f"damaged: stopped at line {lines}" in result.stderr


def test_a_file_that_is_not_a_trace_gets_one_line_and_exit_2(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    for args in (
        [str(notes)],
        [str(tmp_path / "missing.jsonl")],
        ["--serve", str(notes)],
        ["--serve", "-o", "x.html", str(notes)],
    ):
        result = invoke(["view", *args])
        assert result.exit_code == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "notes.html").exists()


def test_json_holds_the_child_runs_nested(
    openai_server: FakeModelServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    cats = tmp_path / "cats.txt"
    cats.write_text("cat dog cat")
    args = [*LOCAL[:-1], "2", "--context-file", str(cats), "--query", "Cats?", "--json"]
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    [child] = data["child_runs"]
    assert (child["depth"], child["status"], child["children"]) == (1, "answered", [])
    sub_call = data["history"][0]["sub_calls"][0]
    assert sub_call["child_run_id"] == child["run_id"]
    assert child["iterations"][0]["sub_calls"][0]["kind"] == "model"
