"""The JSONL trace: every step, in the schema, written as it happens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator import EVENT_FIELDS, SCHEMA_VERSION
from tests.orchestrator.helpers import is_sub_prompt, read_trace, repl

COMMON = {"v", "type", "time", "elapsed_s", "run_id", "parent_id", "depth"}


async def test_events_of_a_run_follow_the_schema(trace_path: Path) -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return "sub answer"
        if len(messages) == 1:
            return repl("undefined_name")
        return repl("FINAL(llm_query('help'))")

    rlm = RLM(
        ScriptedBackend(model, cost_per_call=0.5), runtime="local", max_depth=1, trace=trace_path
    )
    result = await rlm.acompletion("ctx", "q")
    events = read_trace(trace_path)

    assert [e["type"] for e in events] == [
        "start",
        "sandbox_open",
        "model_response",
        "execute",
        "model_response",
        "sub_call_start",
        "sub_call",
        "execute",
        "sandbox_close",
        "final",
        "end",
    ]
    for event in events:
        assert event["v"] == SCHEMA_VERSION
        assert set(event) == COMMON | set(EVENT_FIELDS[event["type"]])
    assert len({e["run_id"] for e in events}) == 1
    assert events[1]["container_id"] is None and events[8]["container_id"] is None  # local
    assert events[3]["error"]["name"] == "NameError"
    assert (events[5]["kind"], events[5]["iteration"]) == ("model", 2)
    assert events[6]["answer_preview"] == "sub answer" and events[6]["usage"]["cost_usd"] == 0.5
    assert events[9]["answer"] == "sub answer" and events[9]["iteration"] == 2
    assert events[10]["success"] is True and events[10]["stats"]["model_calls"] == 3
    assert events[10]["stats"]["cost_usd"] == result.stats.cost_usd == 1.5
    times = [e["elapsed_s"] for e in events]
    assert times == sorted(times)


async def test_failure_is_traced_and_finished_steps_are_on_disk_during_the_run(
    trace_path: Path,
) -> None:
    rlm = RLM(
        ScriptedBackend([repl("import time\ntime.sleep(60)")]), runtime="local", trace=trace_path
    )
    task = asyncio.create_task(rlm.acompletion("x", "q"))
    for _ in range(400):
        if trace_path.exists() and "model_response" in trace_path.read_text():
            break
        await asyncio.sleep(0.05)
    # The run is blocked in the sandbox, yet its finished steps are already readable.
    assert [e["type"] for e in read_trace(trace_path)] == [
        "start",
        "sandbox_open",
        "model_response",
    ]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_error_event_names_the_budget(trace_path: Path) -> None:
    backend = ScriptedBackend(lambda messages, model: repl("print('partial')"))
    rlm = RLM(backend, runtime="local", trace=trace_path, max_tokens=1)
    await rlm.acompletion("x", "q")
    error = next(e for e in read_trace(trace_path) if e["type"] == "error")
    assert (error["kind"], error["budget"], error["partial_answer"]) == (
        "budget",
        "max_tokens",
        "partial",
    )
