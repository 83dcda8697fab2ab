"""An event loop on a private thread, owning an async SDK client's connections.

The async SDK clients pool HTTP connections that belong to the event loop that
opened them; reusing the client from another loop (each `asyncio.run` makes a new
one) fails or hangs. Running every call on one loop the backend owns makes the same
backend usable from any loop and any thread, sync or async.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Starts its thread on first use; `stop` ends it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the owned loop; wait on the returned future from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_started())

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the owned loop from the caller's loop; cancelling the caller
        cancels the call."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        """Stop the loop and join its thread; safe to call from another loop's thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                # Daemon: a backend nobody closed must not keep the interpreter alive.
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop
