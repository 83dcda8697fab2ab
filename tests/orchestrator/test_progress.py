"""verbose=True renders the run on stderr."""

from __future__ import annotations

import pytest

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator.progress import Tally
from tests.orchestrator.helpers import is_child, is_sub_prompt, repl


async def test_verbose_prints_iterations_code_outputs_and_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            return "[sub] answer"
        if len(messages) == 1:
            return repl("print('x' * 5000)\nnote = llm_query('hi')")
        return repl("FINAL(note)")

    rlm = RLM(ScriptedBackend(model, cost_per_call=0.5), runtime="local", max_depth=1, verbose=True)
    result = await rlm.acompletion("ctx", "What now?")
    assert result.success
    err = capsys.readouterr().err
    for expected in (
        "RLM run",
        "What now?",
        "iteration 1",
        "print('x' * 5000)",
        "(5,000 chars)",  # a long output is shortened
        "1 sub-calls so far",
        "total cost $1.0000",  # running cost, sub-call included
        "final answer: [sub] answer",
        "done in",
    ):
        assert expected in err


async def test_the_tally_follows_sandboxes_and_sub_calls_in_flight() -> None:
    tally = Tally()
    seen_during_sub_call: list[tuple[int, int, int]] = []

    def model(messages: list[Message], model: str) -> str:
        if is_sub_prompt(messages):
            # Asked while the sub-call is served: the root's sandbox is open and the
            # sub-call is running, not yet done.
            seen_during_sub_call.append(
                (tally.sandboxes, tally.sub_calls_running, tally.sub_calls_done)
            )
            return "sub answer"
        if len(messages) == 1:
            return repl("note = llm_query('hi')")
        return repl("FINAL(note)")

    rlm = RLM(ScriptedBackend(model), runtime="local", max_depth=1, event_sinks=[tally])
    result = await rlm.acompletion("ctx", "q")
    assert result.success
    assert seen_during_sub_call == [(1, 1, 0)]
    assert (tally.sandboxes, tally.sub_calls_running, tally.sub_calls_done) == (0, 0, 1)


async def test_child_runs_waiting_for_a_slot_are_not_counted_as_running() -> None:
    """Three child runs and one slot: at most one runs at a time, so at most one is
    counted running; the others wait (queued) until the slot is free."""
    tally = Tally()
    most_running: list[int] = []

    def model(messages: list[Message], model: str) -> str:
        most_running.append(tally.sub_calls_running)
        if is_child(messages):
            return repl("FINAL('child answer')")
        if len(messages) == 1:
            return repl("answers = llm_query_batched(['a', 'b', 'c'])")
        return repl("FINAL(str(len(answers)))")

    rlm = RLM(
        ScriptedBackend(model),
        runtime="local",
        max_depth=2,
        max_concurrent_children=1,
        event_sinks=[tally],
    )
    result = await rlm.acompletion("ctx", "q")
    assert (result.success, result.answer) == (True, "3"), result.error
    assert max(most_running) == 1
    assert (tally.sub_calls_running, tally.sub_calls_done) == (0, 3)
