"""RLM: the public entry point. Each completion builds a run tree and drives its root.

    rlm = RLM(backend, model="claude-sonnet-4-20250514", max_cost_usd=1.0)
    result = rlm.completion(context=document, query="Who signed the contract?")

`acompletion` is the implementation; `completion` is a thin synchronous layer over it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rlm.backends import Backend
from rlm.backends.base import run_in_fresh_loop
from rlm.orchestrator.budget import Budget, BudgetLimits
from rlm.orchestrator.events import EventSink
from rlm.orchestrator.result import RLMResult
from rlm.orchestrator.run import Run
from rlm.orchestrator.sandboxes import Sandboxes, SandboxFactory, WarmPoolFactory
from rlm.orchestrator.stats import CostLedger
from rlm.orchestrator.trace import TraceWriter
from rlm.orchestrator.tree import RunTree, Settings
from rlm.sandbox import ContextFile, SandboxLimits

# A ContextFile (ContextFile.check or .unchecked) is a str CONTEXT the sandbox reads where it lies.
Context = str | list[Any] | dict[str, Any] | ContextFile


class RLM:
    """A recursive language model over `backend`.

    The root model (`model`) writes code against CONTEXT in a sandbox for at most
    `max_iterations` replies. llm_query calls go to `recursive_model` (default: `model`)
    and recurse up to `max_depth` (see rlm.orchestrator.run). Optional budgets shared by
    the whole run tree: `max_sub_calls`, `max_tokens`, `max_cost_usd`, `max_time_s`.

    Sandboxes come from `sandbox_factory`, by default fresh ones built from `runtime`
    ("container" or, without isolation, "local"), `image` and `sandbox_limits`; a
    `WarmPoolFactory` adds a warm pool to a factory.
    `trace` names a JSONL file receiving every event; `verbose` renders progress on
    stderr. `max_output_chars` caps the code output the model reads back per reply;
    `max_concurrent_children` caps child runs (each with a sandbox) running at once
    per depth. `event_sinks` receive every event too (a progress display, a viewer).
    `warm_pool=N` keeps N sandboxes starting in the background during each completion,
    so child runs (max_depth >= 2) start from a ready kernel: the factory is composed
    into a `WarmPoolFactory` of that size. Code may pick the model of an llm_query among
    `model`, `recursive_model` and `sub_models`, no other.
    """

    def __init__(
        self,
        backend: Backend,
        model: str = "claude-sonnet-4-20250514",
        recursive_model: str | None = None,
        max_iterations: int = 10,
        max_depth: int = 3,
        verbose: bool = False,
        compact_prompt: bool = False,
        *,
        max_sub_calls: int | None = None,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_time_s: float | None = None,
        runtime: str = "container",
        image: str | None = None,
        sandbox_limits: SandboxLimits | None = None,
        sandbox_factory: SandboxFactory | WarmPoolFactory | None = None,
        trace: str | os.PathLike[str] | None = None,
        max_output_chars: int = 20_000,
        max_concurrent_children: int = 4,
        event_sinks: Sequence[EventSink] = (),
        warm_pool: int = 0,
        sub_models: Sequence[str] = (),
    ) -> None:
        if max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        if max_depth < 0:
            raise ValueError("max_depth must be 0 or more")
        if warm_pool < 0:
            raise ValueError("warm_pool must be 0 or more")
        self.backend = backend
        self.model = model
        self.recursive_model = recursive_model or model
        self.verbose = verbose
        self.settings = Settings(
            model=model,
            recursive_model=self.recursive_model,
            max_iterations=max_iterations,
            max_depth=max_depth,
            compact_prompt=compact_prompt,
            max_output_chars=max_output_chars,
            max_concurrent_children=max_concurrent_children,
            allowed_models=frozenset({model, self.recursive_model, *sub_models}),
        )
        self.limits = BudgetLimits(max_sub_calls, max_tokens, max_cost_usd, max_time_s)
        factory = sandbox_factory or SandboxFactory(
            runtime=runtime, image=image, limits=sandbox_limits
        )
        if warm_pool and max_depth >= 2:  # only child runs use a pool
            if isinstance(factory, WarmPoolFactory):
                raise ValueError("give warm_pool or a WarmPoolFactory, not both")
            factory = WarmPoolFactory(factory, warm_pool)
        self.sandbox_factory: SandboxFactory | WarmPoolFactory = factory
        self.trace = TraceWriter(trace) if trace is not None else None
        self._ledger = CostLedger()
        self._extra_sinks = list(event_sinks)

    async def acompletion(
        self, context: Context, query: str, *, trace: str | os.PathLike[str] | None = None
    ) -> RLMResult:
        """Answer `query` about `context`. Failures come back as success=False, never
        raised (a context of the wrong type raises TypeError: a caller's bug, and an
        unchecked ContextFile that is not UTF-8 raises NotUtf8Error); cancelling
        the task releases every sandbox it started. `trace` names a JSONL file receiving
        the events of this completion alone (as well as the RLM's own `trace`)."""
        sinks = self._sinks()
        if trace is not None:
            sinks.append(TraceWriter(trace))
        async with self.sandbox_factory.completion() as sandboxes:
            return await self._complete(context, query, sandboxes, sinks)

    async def _complete(
        self, context: Context, query: str, sandboxes: Sandboxes, sinks: list[EventSink]
    ) -> RLMResult:
        tree = RunTree(
            backend=self.backend,
            settings=self.settings,
            budget=Budget(self.limits),
            sandboxes=sandboxes,
            ledger=self._ledger,
            sinks=sinks,
        )
        root = Run(tree, depth=0, model=self.model)
        try:
            # The wall-time budget is enforced here as a hard deadline, so a long
            # execute or a slow model call cannot overrun it.
            async with asyncio.timeout(self.limits.max_time_s):
                outcome = await root.solve(context, query)
        except TimeoutError:
            exceeded = tree.budget.expire()
            outcome = root.fail(str(exceeded), "budget", exceeded.budget)
        stats = tree.stats
        stats.wall_time_s = time.monotonic() - tree.started
        root_ids = {"run_id": root.id, "parent_id": None, "depth": 0}
        tree.emit(
            "end",
            **root_ids,
            success=outcome.success,
            error=outcome.error,
            answer=outcome.answer,
            finish=outcome.finish,
            stats=asdict(stats),
        )
        return RLMResult(
            outcome.answer, stats, outcome.history, outcome.success, outcome.error, outcome.finish
        )

    def completion(self, context: Context, query: str) -> RLMResult:
        """Blocking variant of `acompletion`. Inside a running event loop (a notebook,
        an async app) it runs on a worker thread with its own loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acompletion(context, query))
        return run_in_fresh_loop(self.acompletion(context, query))

    def cost_summary(self) -> dict[str, Any]:
        """Calls, tokens and USD cost over every completion of this RLM: totals, and
        per model under "by_model". A cost of None means unknown (an unpriced model)."""
        return self._ledger.summary()

    def _sinks(self) -> list[EventSink]:
        sinks: list[EventSink] = []
        if self.trace is not None:
            sinks.append(self.trace)
        if self.verbose:
            # Imported on demand: rich is only needed to print progress.
            from rlm.orchestrator.progress import ProgressPrinter

            sinks.append(ProgressPrinter())
        return [*sinks, *self._extra_sinks]
