"""Counters of one completion (RLMStats) and the per-model cost ledger behind cost_summary.

Costs follow rlm.backends.Usage: an unknown cost stays unknown (None) rather than being
counted as 0, so a total that includes an unpriced call is None, and `unpriced_calls`
says how many calls had no price.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from rlm.backends import Usage


@dataclass
class RLMStats:
    """What one completion did, over the root run and all its child runs.

    `iterations` and `root_calls` are the root loop's; `sub_calls` counts llm_query calls
    by the depth they ran at (1 = asked by the root's code); `child_runs` is how many of
    them were answered by a child RLM with its own sandbox rather than a plain model call.
    `model_calls` counts every model call in the tree. Times are seconds: `sandbox_time_s`
    sums code execution (all runs), `model_time_s` sums model latency (all calls, so
    concurrent calls can make it exceed `wall_time_s`).
    """

    iterations: int = 0
    root_calls: int = 0
    sub_calls: dict[int, int] = field(default_factory=dict)
    child_runs: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0
    unpriced_calls: int = 0
    wall_time_s: float = 0.0
    sandbox_time_s: float = 0.0
    model_time_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    @property
    def total_sub_calls(self) -> int:
        return sum(self.sub_calls.values())

    def add_model_call(self, usage: Usage, latency_s: float, *, root: bool) -> None:
        self.model_calls += 1
        self.root_calls += root
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.model_time_s += latency_s
        if usage.cost_usd is None:
            self.unpriced_calls += 1
            self.cost_usd = None
        elif self.cost_usd is not None:
            self.cost_usd += usage.cost_usd

    def add_sub_call(self, depth: int, *, child_run: bool) -> None:
        self.sub_calls[depth] = self.sub_calls.get(depth, 0) + 1
        self.child_runs += child_run


@dataclass
class ModelUsage:
    calls: int = 0
    usage: Usage = field(default_factory=Usage)


class CostLedger:
    """Usage per model over every completion of one RLM; shared by concurrent runs."""

    def __init__(self) -> None:
        self._models: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()

    def add(self, model: str, usage: Usage) -> None:
        with self._lock:
            entry = self._models.get(model)
            if entry is None:
                entry = self._models[model] = ModelUsage()
            entry.calls += 1
            _accumulate(entry.usage, usage)

    def summary(self) -> dict[str, Any]:
        """Totals and a breakdown by model, as plain JSON-ready values."""
        with self._lock:
            models = {name: _row(entry.calls, entry.usage) for name, entry in self._models.items()}
            calls = sum(entry.calls for entry in self._models.values())
            total = Usage()
            for entry in self._models.values():
                _accumulate(total, entry.usage)
        return {**_row(calls, total), "by_model": models}


def _accumulate(total: Usage, usage: Usage) -> None:
    """Add `usage` into `total` in place (a new Usage per call cost a zero-latency sub-call
    a tenth of its time). Usage's own sum treats an empty usage as neutral, which would
    turn a call that reported no tokens and no cost into a known cost; a call with unknown
    cost must stay unknown, so the total's cost is known only while every part's is (an
    empty total has none yet)."""
    if usage.cost_usd is None or (total.cost_usd is None and not total.is_empty):
        total.cost_usd = None
    else:
        total.cost_usd = (total.cost_usd or 0.0) + usage.cost_usd
    total.input_tokens += usage.input_tokens
    total.output_tokens += usage.output_tokens
    total.cache_read_tokens += usage.cache_read_tokens
    total.cache_write_tokens += usage.cache_write_tokens


def _row(calls: int, usage: Usage) -> dict[str, Any]:
    return {
        "calls": calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cost_usd": usage.cost_usd,
    }
