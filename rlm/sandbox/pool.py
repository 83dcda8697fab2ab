"""A warm pool: sandboxes started ahead of time, each handed out once.

A started kernel takes about half a second to come up; a pooled one only needs its
context, which takes milliseconds. Every sandbox serves one run and is then closed: a
kernel that ran someone's code is never reused.

    async with SandboxPool(4) as pool:
        box = await pool.acquire("the context", llm_handler)   # fresh if none is ready
        ...
        await box.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rlm.errors import SandboxError
from rlm.sandbox.callback import LLMHandler, LLMRequest
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
    ) -> None:
        if size < 1:
            raise ValueError("a pool holds at least one sandbox")
        self.size = size
        self.runtime = runtime
        self.image = image
        self.limits = limits or SandboxLimits()
        self.batch_concurrency = batch_concurrency
        self.hits = 0
        self.misses = 0
        self._ready: list[Sandbox] = []
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
        data, fmt = serialize(context) if self._ready else ("", "text")
        while self._ready and self.fits(len(data)):
            sandbox = self._ready.pop()
            self._wanted.set()
            try:
                sandbox.set_llm_handler(llm_handler)
                await sandbox.load_serialized(data, fmt)
            except (SandboxError, OSError) as exc:
                log.warning("discarding a pooled sandbox: %s", exc)
                await sandbox.close()
                continue
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

    async def _fill(self) -> None:
        failures = 0
        while not self._closed:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._ready) < self.size and not self._closed:
                try:
                    sandbox = await self._new(None, _unassigned).start()
                except Exception as exc:  # the engine is down, the image is missing...
                    failures += 1
                    log.warning("could not start a pooled sandbox: %s", exc)
                    # Runs still get fresh sandboxes; retry later, more slowly each time.
                    await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                    continue
                failures = 0
                if self._closed:
                    await sandbox.close()
                    return
                self._ready.append(sandbox)

    async def close(self) -> None:
        """Stop refilling and remove every sandbox still waiting. Safe to call twice."""
        self._closed = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None
        ready, self._ready = self._ready, []
        await asyncio.gather(*(sandbox.close() for sandbox in ready))

    def stats(self) -> dict[str, Any]:
        return {"size": self.size, "ready": self.ready, "hits": self.hits, "misses": self.misses}
