"""cost_summary() adds up exactly what the backend reported, per model."""

from __future__ import annotations

from rlm import RLM
from rlm.backends import Message, ScriptedBackend, Usage
from tests.orchestrator.helpers import RecordingBackend, is_sub_prompt, repl


def model(messages: list[Message], model: str) -> str:
    if is_sub_prompt(messages):
        return "x" * 40
    if len(messages) == 1:
        return repl("print(llm_query_batched(['one', 'two', 'three']))")
    return repl("FINAL('done')")


async def test_cost_summary_matches_the_backend_usage() -> None:
    backend = RecordingBackend(ScriptedBackend(model, cost_per_call=0.25))
    rlm = RLM(backend, model="big", recursive_model="small", max_depth=1, runtime="local")
    first = await rlm.acompletion("ctx", "q")
    second = await rlm.acompletion("ctx", "q")

    summary = rlm.cost_summary()
    for name in ("big", "small"):
        usages = [c.usage for m, c in backend.completions if m == name]
        total = sum(usages, Usage())
        row = summary["by_model"][name]
        assert row["calls"] == len(usages)
        assert (row["input_tokens"], row["output_tokens"]) == (
            total.input_tokens,
            total.output_tokens,
        )
        assert row["cost_usd"] == total.cost_usd
    assert summary["by_model"]["small"]["calls"] == 6
    assert summary["calls"] == len(backend.completions) == 10
    assert summary["cost_usd"] == 2.5
    # Each result's stats cover its own completion only.
    assert first.stats.cost_usd == second.stats.cost_usd == 1.25
    assert first.stats.root_calls == 2 and first.stats.model_calls == 5


async def test_unknown_cost_is_reported_as_unknown() -> None:
    backend = ScriptedBackend([repl("FINAL('x')")], cost_per_call=None)
    rlm = RLM(backend, model="unpriced", runtime="local")
    result = await rlm.acompletion("ctx", "q")
    assert result.stats.cost_usd is None and result.stats.unpriced_calls == 1
    assert rlm.cost_summary()["by_model"]["unpriced"]["cost_usd"] is None
    assert rlm.cost_summary()["cost_usd"] is None
