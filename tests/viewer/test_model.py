"""The page model: a trace read into a tree of runs, its totals, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm.orchestrator import SCHEMA_VERSION
from rlm.viewer import NotATrace, PageBuilder, read_trace
from rlm.viewer.render import page_json, render_html
from tests.viewer.conftest import Recorded
from tests.viewer.helpers import HOSTILE, event, start


def test_a_recorded_run_becomes_a_tree_of_runs(recorded: Recorded) -> None:
    page = read_trace(recorded.trace)
    [root_id] = page.roots
    root = page.runs[root_id]
    [child_id] = root.children
    child = page.runs[child_id]

    assert (root.model, root.depth, root.status) == ("root-model", 0, "answered")
    assert root.answer == recorded.result.answer == "child says hello a plain answer"
    assert root.query == "What does the child say?"
    assert (root.context_type, root.context_chars) == ("str", len("alpha beta gamma"))
    assert [step.iteration for step in root.iterations] == [1, 2, 3]
    first, second, _ = root.iterations
    assert first.executes[0]["error"]["name"] == "NameError"
    assert [e["error"] for e in second.executes] == [None]
    [sub_call] = second.sub_calls
    assert (sub_call["kind"], sub_call["child_run_id"]) == ("rlm", child_id)
    assert sub_call["span"][0] <= sub_call["span"][1]

    assert (child.parent_id, child.depth, child.model, child.status) == (
        root_id,
        1,
        "sub-model",
        "answered",
    )
    [plain] = child.iterations[0].sub_calls
    assert (plain["kind"], plain["answer_preview"]) == ("model", "a plain answer")
    # The child's own reply and its plain sub-call are the child's spending.
    assert (child.usage.calls, child.usage.cost_usd) == (2, 0.5)
    assert root.completion is not None and root.completion["success"] is True
    assert page.damage is None


def test_totals_agree_with_the_runs_statistics(recorded: Recorded) -> None:
    page = read_trace(recorded.trace)
    stats = recorded.result.stats
    assert page.totals.calls == stats.model_calls == 5
    assert page.totals.input_tokens == stats.input_tokens
    assert page.totals.output_tokens == stats.output_tokens
    assert page.totals.cost_usd == stats.cost_usd == 1.25
    assert {name: totals.calls for name, totals in page.by_model.items()} == {
        "root-model": 3,
        "sub-model": 2,
    }
    assert page.duration_s == pytest.approx(stats.wall_time_s, abs=0.5)


def test_a_truncated_trace_keeps_what_came_before_and_says_where_it_stopped(
    recorded: Recorded, tmp_path: Path
) -> None:
    lines = recorded.trace.read_text().splitlines(keepends=True)
    cut = tmp_path / "killed.jsonl"
    cut.write_text("".join(lines[:6]) + lines[6][:25])
    page = read_trace(cut)
    assert page.events == 6
    assert page.damage is not None and page.damage["line"] == 7
    assert "not JSON" in page.damage["reason"]


def test_a_corrupt_line_in_the_middle_stops_reading_there(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(start() + '{"v": 1, "type": "bogus"}\n' + event("final", answer="a"))
    page = read_trace(trace)
    assert page.events == 1 and page.runs["root"].status == "running"
    assert page.damage == {"line": 2, "reason": "unknown event type 'bogus'"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (event("final", answer=["not", "text"]), "final event: answer is list"),
        (event("model_response", iteration="2"), "model_response event: iteration is str"),
        (event("sub_call", usage={"input_tokens": "9"}), "sub_call event: input_tokens is str"),
    ],
)
def test_a_line_of_the_wrong_types_is_damage(tmp_path: Path, line: str, reason: str) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(start() + line)
    assert read_trace(trace).damage == {"line": 2, "reason": reason}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello world\n", "not JSON"),
        ('{"name": "x"}\n', "no schema version"),
        ('{"v": "1", "type": "start"}\n', "unknown schema version '1'"),
        ('{"v": 1, "type": "start", "time": 1.0}\n', "start event lacks elapsed_s"),
        (
            start().replace(f'"v": {SCHEMA_VERSION}', '"v": 9'),
            "schema version 9 is newer than this rlm reads",
        ),
        ("", "no events"),
    ],
)
def test_a_file_that_is_not_a_trace_is_refused_with_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    with pytest.raises(NotATrace, match=reason):
        read_trace(path)


def test_how_a_run_finished_is_shown_when_the_trace_says_so(tmp_path: Path) -> None:
    builder = PageBuilder("t")
    final = json.loads(event("final", iteration=1, answer="42"))
    builder.add_line(start())
    builder.add_line(json.dumps({**final, "finish": "final_var"}))
    run = builder.page().runs["root"]
    assert (run.status, run.answer, run.finish) == ("answered", "42", "final_var")


def test_a_child_whose_parent_is_missing_shows_at_the_top() -> None:
    builder = PageBuilder("t")
    builder.add_line(start("orphan", parent_id="gone"))
    assert builder.page().roots == ["orphan"]


def test_costs_stay_unknown_once_a_call_is_unpriced() -> None:
    builder = PageBuilder("t")
    builder.add_line(start())
    for cost in (0.5, None):
        builder.add_line(
            event("model_response", iteration=1, text="", code_blocks=[], model="m", cost_usd=cost)
        )
    page = builder.page()
    assert page.totals.calls == 2 and page.totals.cost_usd is None
    assert page.runs["root"].usage.cost_usd is None


def test_markup_in_the_trace_cannot_leave_the_data_element(recorded: Recorded) -> None:
    data = page_json(read_trace(recorded.trace).to_json())
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data)["runs"]  # still the same JSON
    html = render_html(read_trace(recorded.trace).to_json())
    assert HOSTILE not in html and "window.pwned" in html


def test_completions_sharing_a_trace_are_roots_on_one_time_axis() -> None:
    builder = PageBuilder("t")
    builder.add_line(start("first", time=1_000.0))
    builder.add_line(start("second", time=1_030.0))
    page = builder.page()
    assert page.roots == ["first", "second"]
    assert (page.runs["second"].start, page.duration_s) == (30.0, 30.0)
