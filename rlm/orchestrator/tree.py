"""What the runs of one completion share: settings, budget, statistics, events, sandboxes.

A completion is a tree of runs (the root, and a child run per recursive sub-call). They
all reach the model through `RunTree.call_model`, the single place where budgets are
checked and usage is counted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from rlm.backends import Backend, Completion, Message
from rlm.orchestrator.budget import Budget
from rlm.orchestrator.events import Event, EventSink
from rlm.orchestrator.sandboxes import Sandboxes
from rlm.orchestrator.stats import CostLedger, RLMStats


@dataclass(frozen=True)
class Settings:
    """The RLM's configuration, as the runs of a completion read it."""

    model: str
    recursive_model: str
    max_iterations: int
    max_depth: int
    compact_prompt: bool
    max_output_chars: int
    max_concurrent_children: int
    # Models code may name in llm_query(prompt, model=...). The code is untrusted: an
    # open choice would let it pick an expensive or unpriced model past the cost budget.
    allowed_models: frozenset[str] = frozenset()


@dataclass
class RunTree:
    backend: Backend
    settings: Settings
    budget: Budget
    sandboxes: Sandboxes
    ledger: CostLedger
    sinks: list[EventSink]
    stats: RLMStats = field(default_factory=RLMStats)
    started: float = field(default_factory=time.monotonic)
    # One semaphore per depth: a child holding a slot at depth d waits only on slots at
    # depth d + 1, so nested children can never deadlock on each other.
    _child_slots: dict[int, asyncio.Semaphore] = field(default_factory=dict)

    def child_slot(self, depth: int) -> asyncio.Semaphore:
        """Bounds how many child runs (each with a sandbox) run at once at `depth`."""
        if depth not in self._child_slots:
            self._child_slots[depth] = asyncio.Semaphore(self.settings.max_concurrent_children)
        return self._child_slots[depth]

    async def call_model(
        self, messages: list[Message], model: str, *, system: str | None, root: bool
    ) -> Completion:
        """Ask `model`, within the budget; `root` marks calls of the root loop."""
        self.budget.check()
        completion = await self.backend.acomplete(messages, model, system=system)
        self.stats.add_model_call(completion.usage, completion.latency_s, root=root)
        self.ledger.add(model, completion.usage)
        self.budget.charge(completion.usage)
        return completion

    def emit(
        self, event_type: str, /, *, run_id: str, parent_id: str | None, depth: int, **fields: Any
    ) -> None:
        event = Event(
            type=event_type,
            run_id=run_id,
            parent_id=parent_id,
            depth=depth,
            time=time.time(),
            elapsed_s=time.monotonic() - self.started,
            fields=fields,
        )
        for sink in self.sinks:
            sink.emit(event)
