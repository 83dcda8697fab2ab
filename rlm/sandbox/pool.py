"""A warm pool: sandboxes started ahead of time, each handed out once.

A started kernel takes about half a second to come up; a pooled one only needs its
context, which takes milliseconds. Every sandbox serves one run and is then closed: a
kernel that ran someone's code is never reused.

    async with SandboxPool(4) as pool:
        box = await pool.acquire("the context", llm_handler)   # fresh if none is ready
        ...
        await pool.release(box)

Up to `start_concurrency` kernels start at once, refilling as sandboxes are taken.
Releasing a sandbox and closing the pool leave the containers' removal to worker threads
(rlm.sandbox.removals), which finish before the process exits: neither waits for the
engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rlm.errors import SandboxError
from rlm.sandbox.callback import LLMHandler, LLMRequest
from rlm.sandbox.context_file import ContextFile
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.sandbox import Context, Sandbox, serialize

log = logging.getLogger(__name__)


async def _unassigned(request: LLMRequest) -> str:
    raise SandboxError("llm_query from a pooled kernel that has no run yet")


class SandboxPool:
    """Keeps up to `size` started sandboxes ready and refills in the background."""

    def __init__(
        self,
        size: int,
        *,
        runtime: str = "container",
        image: str | None = None,
        limits: SandboxLimits | None = None,
        batch_concurrency: int = 32,
        start_concurrency: int = 2,
    ) -> None:
        if size < 1 or start_concurrency < 1:
            raise ValueError("a pool holds at least one sandbox and starts at least one at once")
        self.size = size
        self.runtime = runtime
        self.image = image
        self.limits = limits or SandboxLimits()
        self.batch_concurrency = batch_concurrency
        self.start_concurrency = start_concurrency
        self.hits = 0
        self.misses = 0
        self._ready: list[Sandbox] = []
        self._starting: set[asyncio.Task[Sandbox]] = set()
        self._wanted = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> SandboxPool:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Begin filling the pool in the background; acquire() never waits for it."""
        if self._filler is None:
            self._filler = asyncio.create_task(self._fill(), name="rlm-sandbox-pool")
            self._wanted.set()

    @property
    def ready(self) -> int:
        return len(self._ready)

    def fits(self, size: int) -> bool:
        """Whether a pooled sandbox (started before its context was known) can hold a
        context of `size` characters."""
        return self.limits.memory_for(size) <= self.limits.memory_for(0)

    async def acquire(self, context: Context, llm_handler: LLMHandler) -> Sandbox:
        """A started sandbox holding `context`: a warm one if ready, else a fresh one."""
        # A file is mounted at start: a pooled kernel, already started, cannot take one.
        warm = bool(self._ready) and not isinstance(context, ContextFile)
        data, fmt = serialize(context) if warm else ("", "text")
        while warm and self._ready and self.fits(len(data)):
            sandbox = self._ready.pop()
            try:
                sandbox.set_llm_handler(llm_handler)
                await sandbox.load_context(context, (data, fmt))
            except (SandboxError, OSError) as exc:
                log.warning("discarding a pooled sandbox: %s", exc)
                await sandbox.close(background=True)
                continue
            finally:
                # Refilled once the context is in: a start's first steps (the engine's
                # create, a thread, the loop) would compete with this load for both cores.
                self._wanted.set()
            self.hits += 1
            return sandbox
        self.misses += 1
        return await self._new(context, llm_handler).start()

    def _new(self, context: Context | None, handler: LLMHandler) -> Sandbox:
        return Sandbox(
            context,
            llm_handler=handler,
            runtime=self.runtime,
            image=self.image,
            limits=self.limits,
            batch_concurrency=self.batch_concurrency,
        )

    async def release(self, sandbox: Sandbox) -> None:
        """Close a sandbox a run is done with; its container is removed in the background."""
        await sandbox.close(background=True)

    async def _fill(self) -> None:
        failures = 0
        while not self._closed:
            while (
                len(self._ready) + len(self._starting) < self.size
                and len(self._starting) < self.start_concurrency
            ):
                start = self._new(None, _unassigned).start()
                self._starting.add(asyncio.create_task(start))
            wanted = asyncio.ensure_future(self._wanted.wait())
            try:
                done, _ = await asyncio.wait(
                    {*self._starting, wanted}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                wanted.cancel()
            self._wanted.clear()
            for task in done - {wanted}:
                self._starting.discard(task)
                if (exc := task.exception()) is not None:  # the engine is down, no image...
                    failures += 1
                    log.warning("could not start a pooled sandbox: %s", exc)
                else:
                    failures = 0
                    self._ready.append(task.result())
            if failures:
                # Runs still get fresh sandboxes; retry later, more slowly each time.
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def close(self) -> None:
        """Stop refilling; close the sandboxes still waiting, leaving their removal to worker
        threads, and stop those still starting. Safe to call twice."""
        self._closed = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None
        starting, self._starting = self._starting, set()
        for task in starting:
            # Sandbox.start removes what it began before it re-raises: a start caught in its
            # engine call is waited for (handing it off leaked a container in tests).
            task.cancel()
        started = await asyncio.gather(*starting, return_exceptions=True)
        # A start may have finished after the filler last looked: it is waiting too.
        ready = self._ready + [box for box in started if isinstance(box, Sandbox)]
        self._ready = []
        await asyncio.gather(*(sandbox.close(background=True) for sandbox in ready))

    def stats(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "ready": self.ready,
            "starting": len(self._starting),
            "hits": self.hits,
            "misses": self.misses,
        }
