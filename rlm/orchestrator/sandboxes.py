"""Where runs get their sandboxes: the one hook a warm pool will plug into.

Every run, root or child, obtains its sandbox with `SandboxFactory.acquire` and gives it
back with `release`. A pool of ready kernels (planned: child runs at depth > 1 start from
it) subclasses this and overrides both, using `depth` to decide which runs it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlm.sandbox import LLMHandler, Sandbox, SandboxLimits


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

        Called by the run at `depth` (0 = root) before its first execute.
        """
        sandbox = Sandbox(
            context,
            llm_handler=llm_handler,
            runtime=self.runtime,
            image=self.image,
            limits=self.limits,
            batch_concurrency=self.batch_concurrency,
        )
        return await sandbox.start()

    async def release(self, sandbox: Sandbox, depth: int) -> None:
        """Called once when the run that acquired `sandbox` ends, even if it was cancelled."""
        await sandbox.close()
