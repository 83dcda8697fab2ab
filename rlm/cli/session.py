"""Driving long work for the command line: `rlm` runs one completion, `rlm eval` many.

SIGINT and SIGTERM cancel the work, which releases every sandbox it started (see
RLM.acompletion) before `until_stopped` returns; a second signal only says cleanup is
under way, so an impatient Ctrl-C cannot leave containers behind.

While the work runs, rlm's log records are printed through the command's console, above
any live display. RLM_DEBUG=1 shows debug records too, with their tracebacks: a run that
failed on an internal error logs its traceback there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.markup import escape

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


@dataclass
class Finished(Generic[T]):
    result: T | None
    """None when a signal stopped the work."""
    signum: int | None = None


async def until_stopped(
    work: Coroutine[Any, Any, T], on_signal: Callable[[int, bool], None] | None = None
) -> Finished[T]:
    """Run `work`; a stop signal cancels it. `on_signal(signum, first)` is told of each."""
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def stop(signum: int) -> None:
        if on_signal is not None:
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


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name if signum else "a signal"


class _ConsoleHandler(logging.Handler):
    """Log records printed through the command's console, so they land above a live
    display instead of through it."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"[yellow]rlm: {escape(record.getMessage())}[/]")
        if record.exc_info:
            self.console.print(escape(logging.Formatter().formatException(record.exc_info)))


@contextmanager
def logging_to(console: Console, level: int) -> Iterator[None]:
    """rlm's log records at `level` and above (any level with RLM_DEBUG set) go to
    `console`; the logger is restored after, as the command may be one call in a
    longer-lived process (tests, demo.py)."""
    logger = logging.getLogger("rlm")
    saved = logger.handlers, logger.level, logger.propagate
    logger.handlers, logger.propagate = [_ConsoleHandler(console)], False
    logger.setLevel(logging.DEBUG if os.environ.get("RLM_DEBUG") else level)
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])
