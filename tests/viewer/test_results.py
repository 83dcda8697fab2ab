"""`rlm view` on an eval results file: a table of tasks linked to their traces' pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlm.viewer.results import link_traces, looks_like_results, read_results
from tests.cli.conftest import invoke
from tests.viewer.conftest import Recorded, css, wait
from tests.viewer.helpers import HOSTILE


def record(task_id: str, score: float, **extra: Any) -> str:
    fields = {"type": "sniah", "length": 1000, "model": "m", "answer": "a", "gold": "a"}
    fields |= {"cost_usd": 0.01, "tokens": 10, "iterations": 2, "wall_time_s": 1.5}
    return json.dumps({"id": task_id, "score": score, "error": None, **fields, **extra}) + "\n"


@pytest.fixture
def results(recorded: Recorded, tmp_path: Path) -> Path:
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t1.jsonl").write_bytes(recorded.trace.read_bytes())
    (tmp_path / "traces" / "t3.jsonl").write_text("not a trace\n")
    path = tmp_path / "results.jsonl"
    path.write_text(
        record("t1", 0.0, trace="traces/t1.jsonl")
        + record("t2", 0.0, error="the model failed " + HOSTILE, type="oolong")
        + record("t3", 1.0, trace="traces/t3.jsonl")
        + record("t1", 1.0, trace="traces/t1.jsonl")  # a retry replaces the first record
    )
    return path


def test_results_are_read_by_task_and_linked_to_trace_pages(results: Path) -> None:
    assert looks_like_results(results)
    page = read_results(results)
    assert [(t["id"], t["score"]) for t in page.tasks] == [("t1", 1.0), ("t2", 0.0), ("t3", 1.0)]
    assert link_traces(page, results, results.with_suffix(".html")) == 1
    assert page.tasks[0]["trace_href"] == "./traces/t1.html"
    assert (results.parent / "traces" / "t1.html").exists()
    assert "not an rlm trace" in page.tasks[2]["trace_problem"]


def test_a_damaged_results_file_keeps_the_records_before_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(record("t1", 1.0) + '{"id": "t2", "sco')
    page = read_results(path)
    assert [t["id"] for t in page.tasks] == ["t1"] and page.damage is not None
    assert page.damage["line"] == 2


def test_a_results_file_cannot_be_served_live(results: Path) -> None:
    result = invoke(["view", "--serve", str(results)])
    assert result.exit_code == 2 and "holds eval results" in result.stderr


def test_the_results_page_sorts_filters_and_links_to_a_trace(browser: Any, results: Path) -> None:
    result = invoke(["view", str(results)])
    assert result.exit_code == 0, result.stderr
    assert "3 task(s), 1 trace page(s)" in result.stderr
    browser.get(results.with_suffix(".html").as_uri())
    wait(browser, lambda d: css(d, "#tasks tbody tr"))
    ids = lambda: [r.get_attribute("id") for r in css(browser, "#tasks tbody tr")]  # noqa: E731
    assert ids() == ["task-t1", "task-t2", "task-t3"]
    score = next(th for th in css(browser, "#tasks th") if th.text == "score")
    score.click()
    score.click()  # descending
    assert ids()[-1] == "task-t2"
    assert "mean score" in css(browser, "#summary")[0].text
    css(browser, "#errors-only")[0].click()
    wait(browser, lambda d: ids() == ["task-t2"])
    assert HOSTILE in css(browser, "#task-t2")[0].text
    assert browser.execute_script("return window.pwned") is None and css(browser, "img") == []
    css(browser, "#errors-only")[0].click()
    css(browser, "#search")[0].send_keys("oolong")
    wait(browser, lambda d: ids() == ["task-t2"])
    css(browser, "#search")[0].clear()
    browser.get(results.with_suffix(".html").as_uri())
    wait(browser, lambda d: css(d, "a.trace-link"))[0].click()
    wait(browser, lambda d: css(d, "#tree .node"))
    assert browser.current_url.endswith("/traces/t1.html")
