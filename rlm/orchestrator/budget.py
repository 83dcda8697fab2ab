"""What one completion may spend, shared by the root run and every child run.

Limits are checked before each model call and each sub-call. The call that crosses a
token or cost limit is allowed to finish (its size is only known afterwards), so usage
can overshoot by the calls already in flight; the next check refuses. The first refusal
is kept in `exceeded`: every run of the tree stops at its next step boundary once it is
set, while calls already admitted finish (their answers may complete a partial answer).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rlm.backends import Usage
from rlm.errors import RequestsRefused


class BudgetExceeded(RequestsRefused):
    """A limit of the completion's budget was reached; `budget` names which one."""

    def __init__(self, budget: str, limit: float, detail: str) -> None:
        super().__init__(f"budget exhausted: {budget}={limit:g} ({detail})")
        self.budget = budget


@dataclass(frozen=True)
class BudgetLimits:
    """None means unlimited.

    max_tokens counts every token: input (cached or not) and output, over all calls.
    max_cost_usd counts known costs only: calls to a model missing from the price table
    have an unknown cost (see RLMStats.unpriced_calls) and cannot be held to it.
    """

    max_sub_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_time_s: float | None = None


class Budget:
    """Counters against `limits`. Safe to share between tasks and threads."""

    def __init__(self, limits: BudgetLimits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.sub_calls = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.exceeded: BudgetExceeded | None = None
        self._lock = threading.Lock()

    @property
    def remaining_time(self) -> float | None:
        if self.limits.max_time_s is None:
            return None
        return self.limits.max_time_s - (time.monotonic() - self.started)

    def check(self) -> None:
        """Raise BudgetExceeded if any limit is reached; call before each model call."""
        with self._lock:
            self._check_locked()

    def start_sub_call(self) -> None:
        """Check, then count one sub-call (refused once max_sub_calls have started)."""
        with self._lock:
            self._check_locked()
            limit = self.limits.max_sub_calls
            if limit is not None and self.sub_calls >= limit:
                self._refuse("max_sub_calls", limit, f"{self.sub_calls} sub-calls started")
            self.sub_calls += 1

    def charge(self, usage: Usage) -> None:
        with self._lock:
            self.tokens += (
                usage.input_tokens
                + usage.output_tokens
                + usage.cache_read_tokens
                + usage.cache_write_tokens
            )
            if usage.cost_usd is not None:
                self.cost_usd += usage.cost_usd

    def expire(self) -> BudgetExceeded:
        """Record that the wall-time limit ended the run (the run's timeout fired)."""
        with self._lock:
            return self._time_refusal()

    def _check_locked(self) -> None:
        limits = self.limits
        if limits.max_tokens is not None and self.tokens >= limits.max_tokens:
            self._refuse("max_tokens", limits.max_tokens, f"{self.tokens} tokens used")
        if limits.max_cost_usd is not None and self.cost_usd >= limits.max_cost_usd:
            self._refuse("max_cost_usd", limits.max_cost_usd, f"${self.cost_usd:.4f} spent")
        remaining = self.remaining_time
        if remaining is not None and remaining <= 0:
            raise self._time_refusal()

    def _time_refusal(self) -> BudgetExceeded:
        assert self.limits.max_time_s is not None
        elapsed = time.monotonic() - self.started
        return self._record("max_time_s", self.limits.max_time_s, f"{elapsed:.1f} s elapsed")

    def _refuse(self, budget: str, limit: float, detail: str) -> None:
        raise self._record(budget, limit, detail)

    def _record(self, budget: str, limit: float, detail: str) -> BudgetExceeded:
        refusal = BudgetExceeded(budget, limit, detail)
        if self.exceeded is None:
            self.exceeded = refusal
        return refusal
