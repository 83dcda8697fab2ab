"""The events a run emits, and their schema: the one place trace readers look.

Every step of a run (and of its child runs) becomes one `Event`. Sinks receive them in
order: the JSONL trace writes them, the verbose printer renders them. A trace line is

    {"v": 2, "type": "execute", "time": 1718000000.0, "elapsed_s": 1.25,
     "run_id": "a1b2c3d4", "parent_id": null, "depth": 0, ...fields of the type}

`run_id` names one RLM loop (the root or a child); `parent_id` is the run whose
llm_query started it. Fields are JSON values; long texts are kept whole except where
the schema says "preview" (at most PREVIEW_CHARS, with the full length beside it).

Version 2 added the sandbox_open, sandbox_close and sub_call_start events; the events of
version 1 are unchanged, so a reader of version 1 keeps working if it skips unknown types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

SCHEMA_VERSION = 2
PREVIEW_CHARS = 1000

EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    # A run began: its query (full), the model of its loop, what CONTEXT is.
    "start": ("query", "model", "context_type", "context_chars", "max_iterations", "max_depth"),
    # The run has its sandbox (container_id: null for the local runtime).
    "sandbox_open": ("container_id",),
    # The run's sandbox is closed and, in a container, removed. A run's last events are
    # this one and then its final or error.
    "sandbox_close": ("container_id",),
    # The run's model answered: full text, the code blocks it will run, tokens and cost.
    "model_response": (
        "iteration",
        "text",
        "code_blocks",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "latency_s",
    ),
    # One code block ran. stdout/stderr/results are as the sandbox capped them; error is
    # {"name", "value", "traceback"} or null; final is the answer FINAL recorded, if any.
    "execute": (
        "iteration",
        "block",
        "code",
        "stdout",
        "stderr",
        "results",
        "error",
        "final",
        "duration_s",
        "dropped_chars",
        "timed_out",
        "restarted",
    ),
    # An llm_query from this run's kernel began; its sub_call event follows when it ends.
    "sub_call_start": ("iteration", "kind", "model", "sub_depth", "batch_index"),
    # An llm_query served for this run's kernel. kind: "model" (a plain call) or "rlm" (a
    # child run: child_run_id; its own events carry parent_id = this run). sub_depth is
    # the depth the sub-call ran at; prompt and answer are previews. usage (a plain call's
    # tokens and cost_usd, as in rlm.backends.Usage) is null for "rlm": the child's own
    # model_response events carry its usage.
    "sub_call": (
        "iteration",
        "kind",
        "model",
        "sub_depth",
        "batch_index",
        "prompt_preview",
        "prompt_chars",
        "answer_preview",
        "answer_chars",
        "error",
        "duration_s",
        "child_run_id",
        "usage",
    ),
    # The run ended with an answer. finish says how it was given (rlm.orchestrator.finish:
    # "final", "final_var", "answer_dict" or "unmarked", a prose answer with no marker).
    "final": ("iteration", "answer", "finish"),
    # The run ended without an answer it could stand by. kind: "budget" (a limit of
    # BudgetLimits), "max_iterations", "model" (the backend failed), "internal" (the
    # sandbox or anything else). partial_answer is the best answer it had, maybe "".
    "error": ("iteration", "error", "kind", "budget", "partial_answer"),
    # A completion ended (root runs only): its result, how the answer was given (as in
    # "final"; null without an answer) and statistics (RLMStats fields).
    "end": ("success", "error", "answer", "finish", "stats"),
}
# The same as sets, built once: every event is checked against them (two per sub-call).
_FIELD_SETS = {name: frozenset(fields) for name, fields in EVENT_FIELDS.items()}


@dataclass(frozen=True)
class Event:
    type: str
    run_id: str
    parent_id: str | None
    depth: int
    time: float
    elapsed_s: float
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked at emit time so the schema above can never drift from what is written.
        expected = _FIELD_SETS.get(self.type)
        if expected is None:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.fields.keys() != expected:
            raise ValueError(
                f"event {self.type!r} needs fields {sorted(expected)}, got {sorted(self.fields)}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "type": self.type,
            "time": self.time,
            "elapsed_s": round(self.elapsed_s, 4),
            "run_id": self.run_id,
            "parent_id": self.parent_id,
            "depth": self.depth,
            **self.fields,
        }


class EventSink(Protocol):
    """Receives every event of a completion, in order, on the completion's event loop."""

    def emit(self, event: Event) -> None: ...


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
