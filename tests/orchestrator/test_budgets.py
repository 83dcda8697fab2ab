"""Each budget stops the run cleanly, names itself and keeps the best partial answer."""

from __future__ import annotations

import asyncio

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from tests.orchestrator.helpers import RecordingFactory, is_sub_prompt, repl


def chatty(messages: list[Message], model: str) -> str:
    """Never finishes; prints what step it is at."""
    return repl(f"print('step {len(messages) // 2 + 1}')")


async def test_max_sub_calls_keeps_the_final_it_reached_as_partial() -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return "ok"
        return repl(
            "answers = llm_query_batched(['a', 'b', 'c', 'd'])\n"
            "FINAL(str(sum(a == 'ok' for a in answers)) + ' of 4')"
        )

    backend = ScriptedBackend(model)
    rlm = RLM(backend, runtime="local", max_depth=1, max_sub_calls=2)
    result = await rlm.acompletion("x", "q")
    assert result.success is False
    assert result.error is not None and result.error.startswith("budget exhausted: max_sub_calls=2")
    assert result.answer == "2 of 4"
    assert len(backend.calls) == 3  # one root call and the two sub-calls allowed
    refused = [c for c in result.history[0]["sub_calls"] if c["error"]]
    # The first refusal is recorded; the rest of the batch is refused without asking.
    assert len(refused) == 1 and "max_sub_calls" in refused[0]["error"]


async def test_max_tokens() -> None:
    backend = ScriptedBackend(chatty)
    result = await RLM(backend, runtime="local", max_tokens=1).acompletion("x", "q")
    assert result.success is False
    assert result.error is not None and "max_tokens=1" in result.error
    assert result.answer == "step 1"
    assert result.stats.root_calls == 1


async def test_max_cost_usd() -> None:
    backend = ScriptedBackend(chatty, cost_per_call=0.01)
    result = await RLM(backend, runtime="local", max_cost_usd=0.015).acompletion("x", "q")
    assert result.success is False
    assert result.error is not None and "max_cost_usd=0.015" in result.error
    # The check comes before each call: $0.01 spent still allows a second call.
    assert result.stats.root_calls == 2 and result.stats.cost_usd == 0.02
    assert result.answer == "step 2"


async def test_max_time_s_interrupts_a_long_execute_and_releases_the_sandbox() -> None:
    backend = ScriptedBackend([repl("print('started', flush=True)\nimport time\ntime.sleep(60)")])
    factory = RecordingFactory(runtime="local")
    result = await RLM(backend, sandbox_factory=factory, max_time_s=5).acompletion("x", "q")
    assert result.success is False
    assert result.error is not None and result.error.startswith("budget exhausted: max_time_s=5")
    # The execute was cut off: had it run its minute out, its output would be recorded.
    assert [entry["outputs"] for entry in result.history] == [[]]
    assert len(factory.released) == 1 and factory.released[0][1].closed


async def test_budget_stop_reaches_child_runs() -> None:
    """A budget hit inside a child run stops the root at its next check."""

    def model(messages: list[Message], model: str) -> str:
        if len(messages) == 1 and "another model sent you" in messages[0]["content"]:
            return repl("print(llm_query('deeper'))")
        if is_sub_prompt(messages):
            return "deep answer"
        return repl("print(llm_query('go'))")

    backend = ScriptedBackend(model)
    rlm = RLM(backend, runtime="local", max_depth=3, max_sub_calls=1)
    result = await asyncio.wait_for(rlm.acompletion("x", "q"), 60)
    assert result.success is False and "max_sub_calls=1" in (result.error or "")
    assert result.stats.child_runs == 1 and result.stats.sub_calls == {1: 1}
