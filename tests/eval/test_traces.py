"""`rlm eval --traces DIR`: one trace per task, named in its record, linked by `rlm view`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from rlm.cli import cli
from tests.eval.helpers import FAST, records, run_eval
from tests.eval.policies import needle_search
from tests.fakes.model_server import FakeModelServer

SNIAH = ("--task", "sniah", "--lengths", "2^13")


def test_each_task_keeps_its_trace_and_a_resumed_run_keeps_them(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out, traces = tmp_path / "results.jsonl", tmp_path / "traces"
    first = run_eval(*FAST, *SNIAH, "-n", "2", "--out", str(out), "--traces", str(traces))
    assert first.exit_code == 0, first.output
    # Records come in the order tasks end.
    assert sorted(r["trace"] for r in records(out)) == [
        "traces/sniah-8192-0.jsonl",
        "traces/sniah-8192-1.jsonl",
    ]
    kept = {path.name: path.read_bytes() for path in traces.iterdir()}
    # What a killed run left of the task it was answering: rerun, it starts afresh.
    (traces / "sniah-8192-2.jsonl").write_text('{"torn": ')
    for content in kept.values():
        events = [json.loads(line) for line in content.decode().splitlines()]
        # One completion per file: its own root run, ending once.
        assert len({e["run_id"] for e in events if e["parent_id"] is None}) == 1
        assert [e["type"] for e in events].count("end") == 1

    resumed = run_eval(*FAST, *SNIAH, "-n", "3", "--out", str(out), "--traces", str(traces))
    assert resumed.exit_code == 0, resumed.output
    assert "2 already in" in resumed.stderr
    assert {path.name: path.read_bytes() for path in traces.iterdir() if path.name in kept} == kept
    assert records(out)[-1]["trace"] == "traces/sniah-8192-2.jsonl"
    rerun = (traces / "sniah-8192-2.jsonl").read_text().splitlines()
    assert json.loads(rerun[0])["type"] != "torn" and rerun[-1].startswith('{"v"')
    assert [json.loads(line)["type"] for line in rerun].count("end") == 1

    # The results page links every task to its trace's page, written beside the trace.
    view = CliRunner().invoke(cli, ["view", str(out)])
    assert view.exit_code == 0, view.stderr
    assert "3 task(s), 3 trace page(s)" in view.stderr
    page = (tmp_path / "results.html").read_text()
    hrefs = sorted(re.findall(r'"trace_href":"([^"]+)"', page))
    assert hrefs == [f"./traces/sniah-8192-{index}.html" for index in range(3)]
    assert all((tmp_path / href).read_text().startswith("<!doctype html>") for href in hrefs)


def test_without_traces_no_record_names_one(openai_server: FakeModelServer, tmp_path: Path) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "results.jsonl"
    result = run_eval(*FAST, *SNIAH, "-n", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "trace" not in records(out)[0]
    assert not any(path.is_dir() for path in tmp_path.iterdir())


def test_traces_with_the_baseline_or_under_a_file_are_refused(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    baseline = run_eval("--baseline", "--traces", str(tmp_path / "t"))
    assert baseline.exit_code == 2 and "--traces has no use with --baseline" in baseline.stderr
    (tmp_path / "file").write_text("")
    under_file = run_eval(*FAST, "--traces", str(tmp_path / "file" / "traces"))
    assert under_file.exit_code == 2, under_file.output
    assert "--traces" in under_file.stderr and "Not a directory" in under_file.stderr
    assert len(under_file.stderr.splitlines()) == 1
