"""Traces for the viewer's tests: a real run (scripted model, real local kernel) and
synthetic lines made with the event constructor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlm import RLM
from rlm.backends import Message, ScriptedBackend
from rlm.orchestrator import Event
from tests.orchestrator.helpers import is_child, is_sub_prompt, repl

# Markup a model might write; it must show as text and never run.
HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


def _model(messages: list[Message], model: str) -> str:
    if is_sub_prompt(messages):
        return "a plain answer"
    if is_child(messages):
        return repl("FINAL('child says ' + CONTEXT[:5] + ' ' + llm_query('leaf'))")
    turn = len(messages)
    if turn == 1:
        return repl("print(len(CONTEXT))\nundefined_name", f"Let me look. {HOSTILE}")
    if turn == 3:
        return repl(f"print({HOSTILE!r})\nanswer = llm_query('hello child')\nprint(answer)")
    return repl("FINAL(answer)", "Done.")


async def record_run(trace: Path) -> Any:
    """A root run of three iterations (an error, a child run, FINAL) and one child run
    whose code makes a plain sub-call; returns the RLMResult."""
    rlm = RLM(
        ScriptedBackend(_model, cost_per_call=0.25),
        model="root-model",
        recursive_model="sub-model",
        runtime="local",
        max_depth=2,
        trace=trace,
    )
    return await rlm.acompletion("alpha beta gamma", "What does the child say?")


def event(kind: str, run_id: str = "root", parent_id: str | None = None, **fields: Any) -> str:
    """One trace line of `kind`, every field of the schema null unless given."""
    from rlm.orchestrator.events import EVENT_FIELDS

    values = {name: fields.pop(name, None) for name in EVENT_FIELDS[kind]}
    time = fields.pop("time", 1_000.0)
    assert not fields, fields
    depth = 0 if parent_id is None else 1
    made = Event(kind, run_id, parent_id, depth, time, time - 1_000.0, values)
    return json.dumps(made.to_json()) + "\n"


def start(run_id: str = "root", parent_id: str | None = None, time: float = 1_000.0) -> str:
    return event(
        "start",
        run_id,
        parent_id,
        query="q",
        model="m",
        context_type="str",
        context_chars=5,
        max_iterations=3,
        max_depth=2,
        time=time,
    )
