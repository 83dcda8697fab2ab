"""The shared budget: each limit, stickiness, and exact counting under threads."""

from __future__ import annotations

import threading
import time

import pytest

from rlm.backends import Usage
from rlm.orchestrator.budget import Budget, BudgetExceeded, BudgetLimits


def test_unlimited_never_refuses() -> None:
    budget = Budget(BudgetLimits())
    for _ in range(100):
        budget.start_sub_call()
        budget.charge(Usage(10**6, 10**6, cost_usd=100.0))
    budget.check()


@pytest.mark.parametrize(
    ("limits", "usage", "name"),
    [
        (BudgetLimits(max_tokens=100), Usage(60, 20, cache_read_tokens=20), "max_tokens"),
        (BudgetLimits(max_cost_usd=0.5), Usage(1, 1, cost_usd=0.5), "max_cost_usd"),
    ],
)
def test_usage_limits_refuse_the_next_call(limits: BudgetLimits, usage: Usage, name: str) -> None:
    budget = Budget(limits)
    budget.check()
    budget.charge(usage)
    with pytest.raises(BudgetExceeded) as caught:
        budget.check()
    assert caught.value.budget == name
    assert name in str(caught.value)


def test_unknown_cost_does_not_count_against_cost_limit() -> None:
    budget = Budget(BudgetLimits(max_cost_usd=0.01))
    budget.charge(Usage(1000, 1000, cost_usd=None))
    budget.check()


def test_time_limit() -> None:
    budget = Budget(BudgetLimits(max_time_s=0.05))
    budget.check()
    time.sleep(0.06)
    with pytest.raises(BudgetExceeded, match="max_time_s"):
        budget.check()


def test_first_refusal_is_recorded_for_the_tree() -> None:
    budget = Budget(BudgetLimits(max_sub_calls=1, max_tokens=10))
    budget.start_sub_call()
    with pytest.raises(BudgetExceeded, match="max_sub_calls=1"):
        budget.start_sub_call()
    # Calls already admitted still get their model call; runs stop at their next step.
    budget.check()
    budget.charge(Usage(10, 0))
    with pytest.raises(BudgetExceeded, match="max_tokens"):
        budget.check()
    assert budget.exceeded is not None and budget.exceeded.budget == "max_sub_calls"


def test_counts_exactly_under_threads() -> None:
    budget = Budget(BudgetLimits(max_sub_calls=3000))
    granted = []

    def worker() -> None:
        mine = 0
        for _ in range(500):
            try:
                budget.start_sub_call()
                mine += 1
            except BudgetExceeded:
                pass
            budget.charge(Usage(1, 1, cost_usd=0.001))
        granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 3000 == budget.sub_calls
    assert budget.tokens == 8 * 500 * 2
    assert budget.cost_usd == pytest.approx(8 * 500 * 0.001)
