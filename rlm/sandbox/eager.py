"""Run a coroutine's first step at once, inside a protocol callback, as a task would.

The callback channel answers most requests without waiting (a zero-latency handler, a
refusal), yet a task made for each request runs its first step one loop iteration later,
and making and ending the task cost a zero-latency round trip as much as the answer itself.
Python 3.12's eager tasks run that step at once; Python 3.11 has none, so `EagerStarter`
does it: the step runs inline with a *spare* task as the current task, so the coroutine
sees what it would see in a task of its own (`asyncio.current_task()`, which anyio, httpx
and `asyncio.timeout` need, a copy of the context). If the step finishes, no task was
made or scheduled; if the coroutine suspends, the spare task it ran under becomes its
task, and drives it on with the same identity, context, cancellation and result, and a
new spare is made for the next request.
"""

from __future__ import annotations

import asyncio
import contextvars
import types

# asyncio's own hooks that make a task the current one while its step runs (Python 3.12's
# eager tasks use them); nothing public runs a task's step inline on 3.11.
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from typing import Any

Request = Coroutine[Any, Any, None]


class EagerStarter:
    """Starts coroutines on `loop` from its callbacks, one first step at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._spare = _Spare(loop)

    def start(self, coro: Request) -> asyncio.Task[None] | None:
        """Run `coro` until it first suspends. None if it finished (an exception it raised
        propagates), else the task that runs the rest of it. Call it from a callback of
        the loop, never from a task (asyncio refuses to enter a task in a task)."""
        spare = self._spare
        if not spare.ready:
            # Not parked yet (made in this iteration) or cancelled by a stray cancel(): a
            # task of its own for this coroutine (and a fresh spare for the next one if
            # this one is lost).
            if spare.task.done() or spare.task.cancelling():
                self._spare = _Spare(self._loop)
            return self._loop.create_task(coro)
        context = contextvars.copy_context()
        _enter_task(self._loop, spare.task)
        try:
            awaited = context.run(coro.send, None)
        except StopIteration:
            return None
        finally:
            _leave_task(self._loop, spare.task)
        self._spare = _Spare(self._loop)
        spare.adopt(coro, context, awaited)
        return spare.task

    async def close(self) -> None:
        """End the spare task (the tasks `start` returned are the caller's to end)."""
        task = self._spare.task
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _Spare:
    """A task parked until a coroutine's first step suspends under it; then its task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._parked = False
        self._handed: tuple[Request, contextvars.Context, Any] | None = None
        self._wakeup: asyncio.Future[None] = loop.create_future()
        self.task = loop.create_task(self._run())

    @property
    def ready(self) -> bool:
        """Parked, and asked by nobody to cancel: a first step may run under it."""
        return self._parked and not self.task.cancelling()

    def adopt(self, coro: Request, context: contextvars.Context, awaited: Any) -> None:
        self._handed = (coro, context, awaited)
        self._parked = False
        if not self._wakeup.done():  # the step may have cancelled its own (this) task
            self._wakeup.set_result(None)

    async def _run(self) -> None:
        # Started before any step runs under this task: a cancel() can only reach the
        # coroutine below, never skip it.
        self._parked = True
        cancelled = False
        try:
            await self._wakeup
        except asyncio.CancelledError:
            if self._handed is None:
                raise  # cancelled while parked: nothing to run
            cancelled = True
        assert self._handed is not None
        await _resume(*self._handed, cancelled=cancelled)


@types.coroutine
def _resume(
    coro: Request, context: contextvars.Context, awaited: Any, *, cancelled: bool
) -> Generator[Any, Any, None]:
    """Drive `coro`, suspended on `awaited`, to its end in `context`, as a task steps it:
    what it awaits is yielded to the task, what the task sends or throws goes to it."""
    step: tuple[Any, ...] | None = None
    if cancelled:
        # Cancelled between its first step and the hand-over: as for a task, the future
        # it awaits is cancelled (it sees that), or if that is done, the error is thrown.
        if asyncio.isfuture(awaited) and awaited.cancel():
            step = (coro.send, None)
        else:
            step = (coro.throw, asyncio.CancelledError())
    while True:
        if step is not None:
            try:
                awaited = context.run(*step)
            except StopIteration:
                return
        try:
            step = (coro.send, (yield awaited))
        except BaseException as exc:  # a cancellation, or the task closing: it is coro's
            step = (coro.throw, exc)
