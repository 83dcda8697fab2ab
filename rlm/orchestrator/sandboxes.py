"""Where runs get their sandboxes: the one hook a warm pool will plug into.

Every run, root or child, obtains its sandbox with `SandboxFactory.acquire` and gives it
back with `release`. A pool of ready kernels (planned: child runs at depth > 1 start from
it) subclasses this and overrides both, using `depth` to decide which runs it serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from rlm.sandbox import LLMHandler, Sandbox, SandboxLimits
from rlm.sandbox.pool import SandboxPool

# The warm pool of the completion being run: a context variable, so that concurrent
# completions sharing one factory each use their own pool, and the tasks a completion
# starts see it.
_warm_pool: ContextVar[SandboxPool | None] = ContextVar("rlm_warm_pool", default=None)


@contextlib.asynccontextmanager
async def warm_pool_scope(pool: SandboxPool | None) -> AsyncIterator[None]:
    """Child runs acquired inside this scope start from `pool`; it is closed on exit."""
    token = _warm_pool.set(pool)
    try:
        yield
    finally:
        _warm_pool.reset(token)
        if pool is not None:
            await pool.close()


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

    async def acquire(self, context: Any, llm_handler: LLMHandler, depth: int) -> Sandbox:
        """A started sandbox with `context` as CONTEXT, serving llm_query with the handler.

        Called by the run at `depth` (0 = root) before its first execute. Child runs take
        a warm sandbox when their completion has a pool (see `warm_pool_scope`).
        """
        pool = _warm_pool.get()
        if pool is not None and depth >= 1:
            sandbox = await pool.acquire(context, llm_handler)
        else:
            sandbox = await Sandbox(
                context,
                llm_handler=llm_handler,
                runtime=self.runtime,
                image=self.image,
                limits=self.limits,
                batch_concurrency=self.batch_concurrency,
            ).start()
        if pool is not None:
            # Filling starts once the root has its sandbox: kernels warm up while the
            # root model writes its first reply instead of slowing the root's start.
            pool.start()
        return sandbox

    def warm_pool(self, size: int) -> SandboxPool:
        """A pool of `size` sandboxes configured like this factory's own."""
        return SandboxPool(
            size,
            runtime=self.runtime,
            image=self.image,
            limits=self.limits,
            batch_concurrency=self.batch_concurrency,
        )

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        """Called once when the run that acquired `sandbox` ends, even if it was cancelled."""
        await sandbox.close()
