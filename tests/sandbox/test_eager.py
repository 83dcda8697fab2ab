"""EagerStarter: a coroutine's first step runs at once, and the rest in the task it ran under."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rlm.sandbox.eager import EagerStarter

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture
async def starter() -> AsyncIterator[EagerStarter]:
    starter = EagerStarter(asyncio.get_running_loop())
    await asyncio.sleep(0)  # the spare parks
    yield starter
    await starter.close()


def start(starter: EagerStarter, coro: Any) -> list[asyncio.Task[None] | None]:
    """Start from a loop callback, as the callback channel does (never from a task); the
    list gets what `start` returned."""
    started: list[asyncio.Task[None] | None] = []
    asyncio.get_running_loop().call_soon(lambda: started.append(starter.start(coro)))
    return started


async def started(starter: EagerStarter, coro: Any) -> asyncio.Task[None] | None:
    box = start(starter, coro)
    while not box:
        await asyncio.sleep(0)
    return box[0]


async def test_a_step_that_finishes_runs_at_once_in_a_task(starter: EagerStarter) -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def answer() -> None:
        seen.append(asyncio.current_task())

    assert await started(starter, answer()) is None
    assert seen and isinstance(seen[0], asyncio.Task)  # what anyio and asyncio.timeout need


async def test_a_suspended_coroutine_goes_on_in_the_task_it_started_in(
    starter: EagerStarter,
) -> None:
    future = asyncio.get_running_loop().create_future()
    seen: list[asyncio.Task[Any] | None] = []

    async def wait() -> None:
        seen.append(asyncio.current_task())
        seen.append(await future)
        seen.append(asyncio.current_task())

    task = await started(starter, wait())
    assert task is not None and seen == [task]
    future.set_result("done")
    await task
    assert seen == [task, "done", task]


@pytest.mark.parametrize("iterations", [0, 1, 3])
async def test_a_cancel_reaches_the_coroutine_and_what_it_awaits(
    starter: EagerStarter, iterations: int
) -> None:
    """Whether the task is cancelled before it took the coroutine over or after."""
    future = asyncio.get_running_loop().create_future()
    ended: list[str] = []

    async def wait() -> None:
        try:
            await future
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    task = await started(starter, wait())
    assert task is not None
    for _ in range(iterations):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cancelled"] and future.cancelled()


async def test_an_error_after_the_first_step_is_the_task_s(starter: EagerStarter) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    task = await started(starter, fail())
    assert task is not None
    with pytest.raises(ValueError, match="late"):
        await task


async def test_a_timeout_set_in_the_first_step_cancels_the_right_task(
    starter: EagerStarter,
) -> None:
    async def slow() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(30)

    task = await started(starter, slow())
    assert task is not None
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(task, 5)


async def test_each_coroutine_has_its_own_copy_of_the_context(starter: EagerStarter) -> None:
    seen: list[str] = []
    future = asyncio.get_running_loop().create_future()

    async def first() -> None:
        seen.append(VAR.get())
        VAR.set("first")

    async def second() -> None:
        seen.append(VAR.get())
        VAR.set("second")
        await future
        seen.append(VAR.get())

    VAR.set("outer")
    assert await started(starter, first()) is None
    task = await started(starter, second())
    assert task is not None
    future.set_result(None)
    await task
    assert seen == ["outer", "outer", "second"] and VAR.get() == "outer"


async def test_coroutines_started_at_once_all_run_to_their_end(starter: EagerStarter) -> None:
    """The spare is used up by the first to suspend; the next ones get tasks of their own."""
    futures = [asyncio.get_running_loop().create_future() for _ in range(3)]
    done: list[int] = []

    async def wait(index: int) -> None:
        await futures[index]
        done.append(index)

    boxes = [start(starter, wait(index)) for index in range(3)]
    await asyncio.sleep(0)
    tasks = [box[0] for box in boxes]
    assert all(task is not None for task in tasks) and len(set(tasks)) == 3
    for future in futures:
        future.set_result(None)
    await asyncio.gather(*tasks)  # type: ignore[arg-type]
    assert sorted(done) == [0, 1, 2]


async def test_a_stray_cancel_of_the_spare_costs_only_the_spare(starter: EagerStarter) -> None:
    async def cancel_own_task() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def answer(out: list[str]) -> None:
        await asyncio.sleep(0)
        out.append("answered")

    assert await started(starter, cancel_own_task()) is None
    out: list[str] = []
    task = await started(starter, answer(out))
    assert task is not None
    await task
    assert out == ["answered"]


async def test_close_ends_the_spare() -> None:
    before = asyncio.all_tasks()
    starter = EagerStarter(asyncio.get_running_loop())
    await asyncio.sleep(0)
    await starter.close()
    assert asyncio.all_tasks() == before
