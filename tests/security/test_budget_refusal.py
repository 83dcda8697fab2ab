"""A batch the budget cannot cover is refused as a whole, not one record per prompt."""

from __future__ import annotations

import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator.events import Event
from tests.orchestrator.helpers import is_sub_prompt, repl

pytestmark = [pytest.mark.security, pytest.mark.rootless]


async def test_refused_batch_costs_no_record_per_prompt() -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return "ok"
        return repl(
            "answers = llm_query_batched(['q'] * 4000)\n"
            "FINAL(f\"{sum(a == 'ok' for a in answers)} {len(answers)}\")"
        )

    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    rlm = RLM(
        ScriptedBackend(model),
        runtime="local",
        max_depth=1,
        max_sub_calls=2,
        event_sinks=[Sink()],
    )
    result = await rlm.acompletion("x", "q")
    assert result.answer == "2 4000"
    records = [call for entry in result.history for call in entry["sub_calls"]]
    # The two served, and at most one refusal per concurrent slot: not 3,998 refusals.
    assert 2 < len(records) <= 2 + 32
    assert len([e for e in events if e.type == "sub_call"]) == len(records)
