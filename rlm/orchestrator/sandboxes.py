"""Where runs get their sandboxes.

Every run, root or child, obtains its sandbox with `acquire` and gives it back with
`release`, on the `Sandboxes` its completion opened: `RLM` enters the factory's
`completion()` once per completion and hands what it yields to the runs.

`SandboxFactory` starts a fresh sandbox per run. `WarmPoolFactory` composes one with a
warm pool: each completion gets its own `SandboxPool`, built like the factory's
sandboxes, from which child runs start; the pool is closed with the completion.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from rlm.sandbox import LLMHandler, Sandbox, SandboxLimits
from rlm.sandbox.pool import SandboxPool


class Sandboxes(Protocol):
    """The sandboxes of one completion, as its runs use them."""

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        """A started sandbox with `context` as CONTEXT, serving llm_query with the handler.
        Called by the run at `depth` (0 = root) before its first execute."""
        ...

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        """Called once when the run that acquired `sandbox` ends, even if it was cancelled."""
        ...


@dataclass
class SandboxFactory:
    """Starts a fresh sandbox per run and closes it afterwards.

    runtime="container" isolates the code; "local" is a plain subprocess kernel for
    development and tests where isolation does not matter.
    """

    runtime: str = "container"
    image: str | None = None
    limits: SandboxLimits | None = None
    batch_concurrency: int = 32

    @contextlib.asynccontextmanager
    async def completion(self) -> AsyncIterator[Sandboxes]:
        """The sandboxes of one completion: this factory itself, as it keeps no state."""
        yield self

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        return await Sandbox(
            context,
            llm_handler=llm_handler,
            runtime=self.runtime,
            image=self.image,
            limits=self.limits,
            batch_concurrency=self.batch_concurrency,
        ).start()

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        # A child's llm_query answer does not wait for its container's removal.
        await sandbox.close(background=depth >= 1)


@dataclass
class WarmPoolFactory:
    """`base`'s sandboxes, with `size` more warming up during each completion so that
    child runs (max_depth >= 2) start from a ready kernel."""

    base: SandboxFactory
    size: int

    @contextlib.asynccontextmanager
    async def completion(self) -> AsyncIterator[Sandboxes]:
        # One pool per completion: concurrent completions never take each other's
        # kernels, and every kernel still waiting is removed when its completion ends
        # (in the background: closing the pool costs the completion no engine call).
        base = self.base
        pool = SandboxPool(
            self.size,
            runtime=base.runtime,
            image=base.image,
            limits=base.limits,
            batch_concurrency=base.batch_concurrency,
        )
        try:
            yield _Pooled(base, pool)
        finally:
            await pool.close()


@dataclass
class _Pooled:
    base: SandboxFactory
    pool: SandboxPool

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        if depth >= 1:
            sandbox = await self.pool.acquire(context, llm_handler)
        else:
            sandbox = await self.base.acquire(context, llm_handler, depth)
        # Filling starts once the root has its sandbox: kernels warm up while the root
        # model writes its first reply instead of slowing the root's start.
        self.pool.start()
        return sandbox

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        await self.base.release(sandbox, depth)
