"""Where batch work runs: the executor contract and the local executor.

A job is a picklable async callable; an executor applies it to many inputs with bounded
concurrency and yields each output as soon as it exists, tagged with its input's index.
The local executor runs jobs on the caller's event loop; the Ray executor
(rlm.batch.ray_executor) ships them to the nodes of a cluster.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

Job = Callable[[Any], Awaitable[Any]]
"""One unit of batch work: `await job(item)` returns its output. Jobs report expected
failures in their output; an exception ends the whole stream."""


class ExecutorSetupError(RuntimeError):
    """The executor cannot run jobs (no Ray, no cluster, a node unable to start a sandbox).
    The message is one line naming what is missing and where."""


class Executor(ABC):
    @abstractmethod
    def stream(self, job: Job, inputs: Sequence[Any]) -> AsyncIterator[tuple[int, Any]]:
        """Run `job` on every input; yield (index into inputs, output) as each finishes.
        Leaving the iteration early cancels the jobs still running."""

    def close(self) -> None:  # noqa: B027 - optional hook, the local executor holds nothing
        """Release what the executor holds (a cluster connection); idempotent."""


class LocalExecutor(Executor):
    """Jobs on the running event loop, at most `concurrency` at once."""

    def __init__(self, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency

    async def stream(self, job: Job, inputs: Sequence[Any]) -> AsyncIterator[tuple[int, Any]]:
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> tuple[int, Any]:
            async with slots:
                return index, await job(inputs[index])

        running = {asyncio.ensure_future(one(index)) for index in range(len(inputs))}
        try:
            while running:
                finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in running:
                future.cancel()
            # Cancelled jobs release their sandboxes before the caller goes on.
            await asyncio.gather(*running, return_exceptions=True)
