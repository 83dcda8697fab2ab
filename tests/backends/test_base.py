"""Usage arithmetic and the sync layer of `Backend`."""

from __future__ import annotations

import pytest

from rlm.backends import Backend, Completion, Usage


def test_usages_add_up():
    total = Usage(1, 2, 3, 4, 0.5) + Usage(10, 20, 30, 40, 0.25)

    assert total == Usage(11, 22, 33, 44, 0.75)


def test_an_unknown_cost_makes_the_total_unknown():
    total = Usage(1, 1, cost_usd=0.5) + Usage(1, 1, cost_usd=None)

    assert total.input_tokens == 2
    assert total.cost_usd is None


def test_sum_starts_from_an_empty_usage_without_losing_the_cost():
    usages = [Usage(1, 1, cost_usd=0.5), Usage(2, 2, cost_usd=0.25)]

    assert sum(usages) == Usage(3, 3, cost_usd=0.75)
    assert sum(usages, Usage()) == Usage(3, 3, cost_usd=0.75)


def test_adding_leaves_the_operands_alone():
    first = Usage(1, 1, cost_usd=0.5)

    total = first + Usage()
    total.input_tokens = 99

    assert first == Usage(1, 1, cost_usd=0.5)


class _Echo(Backend):
    name = "echo"

    async def acomplete(self, messages, model, *, system=None, max_tokens=None):
        return Completion(messages[-1]["content"], Usage(), model, 0.0)


def test_complete_runs_without_an_event_loop():
    assert _Echo().complete([{"role": "user", "content": "hi"}], "m").text == "hi"


async def test_complete_runs_inside_a_running_event_loop():
    # e.g. a callback invoked from async orchestrator code
    assert _Echo().complete([{"role": "user", "content": "hi"}], "m").text == "hi"


def test_backend_is_abstract():
    with pytest.raises(TypeError):
        Backend()  # type: ignore[abstract]
