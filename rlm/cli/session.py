"""Driving one completion for the command line.

SIGINT and SIGTERM cancel the completion, which releases every sandbox it started (see
RLM.acompletion) before this returns; a second signal only says cleanup is under way, so
an impatient Ctrl-C cannot leave containers behind.

The backend is watched so that an endpoint which cannot be reached, or rejects the key,
before the model answered anything counts as a setup problem rather than a failed run.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlm.backends import Backend, Completion, Message
from rlm.errors import AuthenticationError, BackendError, EndpointUnreachableError
from rlm.orchestrator import RLM, RLMResult

SETUP_ERRORS = (AuthenticationError, EndpointUnreachableError)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WatchedBackend(Backend):
    """Passes every call to `inner`, counting answers and keeping the first failure."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.answers = 0
        self.first_error: BackendError | None = None

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        try:
            completion = await self.inner.acomplete(
                messages, model, system=system, max_tokens=max_tokens
            )
        except BackendError as exc:
            self.first_error = self.first_error or exc
            raise
        self.answers += 1
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def setup_error(self) -> BackendError | None:
        """The endpoint failure that kept the model from ever answering, if that was it."""
        if self.answers == 0 and isinstance(self.first_error, SETUP_ERRORS):
            return self.first_error
        return None


@dataclass
class Finished:
    result: RLMResult | None
    """None when a signal stopped the run."""
    signum: int | None = None


async def complete_until_stopped(
    rlm: RLM, context: Any, query: str, on_signal: Callable[[int, bool], None]
) -> Finished:
    """Run the completion; `on_signal(signum, first)` is told of each stop signal."""
    task = asyncio.ensure_future(rlm.acompletion(context, query))
    received: list[int] = []

    def stop(signum: int) -> None:
        on_signal(signum, not received)
        if not received:
            task.cancel()
        received.append(signum)

    loop = asyncio.get_running_loop()
    # Signal handlers can only be set from the main thread (not so in embedding apps).
    handling = threading.current_thread() is threading.main_thread()
    if handling:
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
    try:
        return Finished(await task)
    except asyncio.CancelledError:
        if not received:
            raise
        return Finished(None, received[0])
    finally:
        if handling:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
