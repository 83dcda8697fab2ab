"""`rlm eval` end to end against the fake endpoint, with scripted models writing real code."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm.eval.generators import build
from rlm.eval.tasks import CHARS_PER_TOKEN, Task, TaskSpec
from tests.eval.helpers import FAST, records, run_eval
from tests.eval.policies import LABEL_PROMPT, aggregator, needle_search
from tests.fakes.model_server import FakeModelServer, Reply, last_user_text

ROOT = Path(__file__).resolve().parents[2]

RECORD_FIELDS = {
    "id", "type", "length", "answer", "gold", "score", "cost_usd", "tokens", "iterations",
    "wall_time_s", "error",
}  # fmt: skip


def test_sniah_scores_100_percent_at_every_length_to_2_to_the_22(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "sniah.jsonl"
    args = ("--task", "sniah", "--lengths", "2^13..2^22", "-n", "3")
    result = run_eval(*FAST, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    done = records(out)
    assert len(done) == 30
    assert {r["length"] for r in done} == {1 << power for power in range(13, 23)}
    assert all(set(r) >= RECORD_FIELDS for r in done)
    assert [r["score"] for r in done] == [1.0] * 30, [r for r in done if r["score"] < 1]
    assert all(r["iterations"] == 1 and r["tokens"] > 0 and r["cost_usd"] > 0 for r in done)
    # The table goes to stdout and next to the results, with the plot.
    assert "| sniah | 4M | 3 | 100.0% |" in result.stdout
    assert (tmp_path / "sniah.summary.md").read_text() in result.stdout
    assert (tmp_path / "sniah.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.container
def test_sniah_in_container_sandboxes(openai_server: FakeModelServer, tmp_path: Path) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "sniah.jsonl"
    args = ("--runtime", "container", "--task", "sniah", "--lengths", "2^13,2^20", "-n", "2")
    result = run_eval("--backend", "openai", *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [r["score"] for r in records(out)] == [1.0] * 4


def test_oolong_and_pairs_exact_with_sub_calls_labeling(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = aggregator
    out = tmp_path / "agg.jsonl"
    args = ("--task", "oolong", "--task", "pairs", "--lengths", "2^13,2^15", "-n", "6")
    result = run_eval(*FAST, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    done = records(out)
    assert len(done) == 24
    assert [r["score"] for r in done] == [1.0] * 24, [r for r in done if r["score"] < 1]
    questions = {r["info"]["question"] for r in done if r["type"] == "oolong"}
    assert len(questions) == 6
    # The labels came from the sub-model, many records per llm_query.
    sub_calls = [
        r for r in openai_server.requests if last_user_text(r.json).startswith(LABEL_PROMPT)
    ]
    assert len(sub_calls) > len(done)


def test_baseline_reads_only_its_window(openai_server: FakeModelServer, tmp_path: Path) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "base.jsonl"
    args = ("--baseline", "--window-tokens", "4096", "--task", "sniah", "--lengths", "2^13")
    result = run_eval("--backend", "openai", *args, "-n", "11", "--out", str(out))
    assert result.exit_code == 0, result.output
    prompts = [r.json["messages"][-1]["content"] for r in openai_server.requests]
    assert len(prompts) == 11
    assert all(len(prompt) <= 4096 * CHARS_PER_TOKEN for prompt in prompts)
    for record in records(out):
        task = _task(record["id"])
        (prompt,) = [prompt for prompt in prompts if prompt.endswith(task.query)]
        # The model sees the head of the context and the question, nothing more.
        head = prompt[: prompt.index("\n\nAnswer the question about the text above.")]
        assert task.context.startswith(head) and len(head) > 4000 * CHARS_PER_TOKEN
        # Needles from the first half of a context twice the window are found, later ones not.
        assert record["score"] == float(record["info"]["depth"] < 0.5), record


def test_a_run_resumes_after_a_kill_tore_its_last_line(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "r.jsonl"
    args = (*FAST, "--task", "sniah", "--lengths", "2^13", "-n", "5", "--out", str(out))
    assert run_eval(*args).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    # As if killed while writing the fourth record: three whole lines and a torn one.
    out.write_text("".join(lines[:3]) + lines[3][:40])
    kept = {json.loads(line)["id"] for line in lines[:3]}
    openai_server.requests.clear()

    result = run_eval(*args)
    assert result.exit_code == 0, result.output
    assert "5 task(s), 3 already in" in result.output and "running 2" in result.output
    done = records(out)
    assert len(done) == 5 and [r["score"] for r in done] == [1.0] * 5
    rerun = {r["id"] for r in done} - kept
    assert len(rerun) == 2
    # Only the missing tasks reached the model: one root call each.
    asked = sorted(
        r.json["messages"][-1]["content"].split("\n\n")[0] for r in openai_server.requests
    )
    assert asked == sorted(f"Query: {_task(task_id).query}" for task_id in rerun)

    openai_server.requests.clear()
    assert "running 0" in run_eval(*args).output
    assert openai_server.requests == []


def test_a_results_file_of_another_configuration_is_refused(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = needle_search
    out = tmp_path / "r.jsonl"
    base = (*FAST, "--task", "sniah", "--lengths", "2^13", "-n", "1", "--out", str(out))
    assert run_eval(*base).exit_code == 0
    result = run_eval(*base, "--seed", "5")
    assert result.exit_code == 2
    assert "holds results of another configuration (seed=0)" in result.stderr
    assert "choose another --out" in result.stderr


def test_a_rejected_key_stops_the_run_with_nothing_recorded(
    openai_server: FakeModelServer, tmp_path: Path
) -> None:
    openai_server.handler = lambda request: Reply(status=401, text="invalid api key")
    out = tmp_path / "r.jsonl"
    result = run_eval(*FAST, "--task", "sniah", "--lengths", "2^13", "-n", "4", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "AuthenticationError" in result.stderr
    assert not out.exists()


def _task(task_id: str) -> Task:
    kind, length, index = task_id.split("-")
    return build(TaskSpec(kind, int(length), int(index), 0))


@pytest.mark.container
def test_make_eval_takes_a_base_url(model_server: FakeModelServer, tmp_path: Path) -> None:
    """`make eval-*` reaches a local server (vLLM here) through BASE_URL."""
    model_server.handler = needle_search
    out = tmp_path / "sniah.jsonl"
    variables = {
        "PYTHON": sys.executable,
        "BACKEND": "vllm",
        "MODEL": "served-model",
        "BASE_URL": model_server.openai_url,
        "N": "1",
        "LENGTHS": "2^13",
        "OUT": str(out),
    }
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "eval-sniah"]
        + [f"{name}={value}" for name, value in variables.items()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [r["score"] for r in records(out)] == [1.0]
    assert model_server.requests[0].json["model"] == "served-model"


def test_the_install_hint_keeps_its_brackets(
    openai_server: FakeModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich must not read [eval] in pip install 'rlm[eval]' as markup."""
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    openai_server.handler = needle_search
    out = tmp_path / "[run].jsonl"
    result = run_eval(*FAST, "--task", "sniah", "--lengths", "2^13", "-n", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "matplotlib is not installed (pip install 'rlm[eval]')" in result.stderr
    assert f"wrote {out}" in result.stderr
