"""Statistics and the cost ledger keep unknown costs unknown."""

from __future__ import annotations

import pytest

from rlm.backends import Usage
from rlm.orchestrator.stats import CostLedger, RLMStats


def test_stats_sum_calls_and_mark_unknown_cost() -> None:
    stats = RLMStats()
    stats.add_model_call(Usage(100, 10, cache_read_tokens=5, cost_usd=0.25), 1.5, root=True)
    stats.add_model_call(Usage(50, 5, cost_usd=0.5), 0.5, root=False)
    assert (stats.model_calls, stats.root_calls, stats.total_tokens) == (2, 1, 170)
    assert stats.cost_usd == pytest.approx(0.75)
    assert stats.model_time_s == pytest.approx(2.0)
    stats.add_model_call(Usage(1, 1, cost_usd=None), 0.1, root=False)
    stats.add_model_call(Usage(1, 1, cost_usd=0.5), 0.1, root=False)
    assert stats.cost_usd is None and stats.unpriced_calls == 1


def test_sub_calls_by_depth() -> None:
    stats = RLMStats()
    stats.add_sub_call(1, child_run=True)
    stats.add_sub_call(2, child_run=False)
    stats.add_sub_call(2, child_run=False)
    assert stats.sub_calls == {1: 1, 2: 2}
    assert (stats.total_sub_calls, stats.child_runs) == (3, 1)


def test_ledger_by_model() -> None:
    ledger = CostLedger()
    ledger.add("big", Usage(100, 10, cost_usd=1.0))
    ledger.add("big", Usage(200, 20, cache_write_tokens=3, cost_usd=2.0))
    ledger.add("local", Usage(5, 5, cost_usd=None))
    ledger.add("local", Usage(5, 5, cost_usd=None))
    summary = ledger.summary()
    assert summary["by_model"]["big"] == {
        "calls": 2,
        "input_tokens": 300,
        "output_tokens": 30,
        "cache_read_tokens": 0,
        "cache_write_tokens": 3,
        "cost_usd": 3.0,
    }
    assert summary["by_model"]["local"]["cost_usd"] is None
    assert summary["calls"] == 4 and summary["input_tokens"] == 310
    assert summary["cost_usd"] is None  # part of the total has no price
