"""IOPub messages sent from the main thread when nothing else is on their way.

ipykernel sends every IOPub message from its IOPub thread: the sender queues a closure and
wakes the thread through an inproc pipe, and the thread's event loop runs it. For the busy
and idle status of an execute that is a thread wake-up and a turn of that loop each, and
the host waits for the idle one. `DirectIOPub` sends such a message on the socket itself,
from the calling thread, when no message is queued or being sent; otherwise it queues it
behind them as ipykernel would, so IOPub messages keep their order.

A ZMQ socket may be used from several threads if one at a time, each use separated by a
full memory barrier: one lock covers every use of the socket, the IOPub thread's sends and
its handling of subscriptions (XPUB) included.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import zmq


class DirectIOPub:
    def __init__(self, thread: Any) -> None:
        """Take over a running ipykernel IOPubThread."""
        self._thread = thread
        self._lock = threading.Lock()
        self._pending = 0  # closures queued for the IOPub thread and not yet finished
        self._ready = False
        self._queue = thread.schedule
        thread.schedule = self._schedule
        really_send = thread._really_send

        def locked_send(*args: Any, **kwargs: Any) -> None:
            with self._lock:
                really_send(*args, **kwargs)

        thread._really_send = locked_send
        # A child forked by user code while another thread held the lock would wait for it
        # forever: the child has the only thread, so it starts with a fresh lock.
        os.register_at_fork(after_in_child=self._after_fork)
        # On the thread, after whatever was queued before the lines above.
        self._schedule(self._take_over)

    def _take_over(self) -> None:
        """Put the subscription handler under the lock (on the IOPub thread, which owns
        its loop), then allow direct sends."""
        with self._lock:
            xpub = getattr(self._thread, "_xpub_stream", None)
            if xpub is not None:
                handle = xpub._handle_events

                def locked_events(*args: Any) -> None:
                    with self._lock:
                        handle(*args)

                xpub._handle_events = locked_events  # (ZMQStream reads it on each use)
                xpub.io_loop.remove_handler(xpub.socket)
                xpub.io_loop.add_handler(xpub.socket, locked_events, xpub.io_loop.READ)
                self._xpub_events: Callable[..., None] | None = locked_events
            else:
                self._xpub_events = None
            self._ready = True

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0

    def _schedule(self, run: Callable[[], Any]) -> None:
        with self._lock:
            self._pending += 1

        def counted() -> None:
            try:
                run()
            finally:
                with self._lock:
                    self._pending -= 1

        self._queue(counted)

    def send(self, frames: list[bytes]) -> None:
        """Send `frames` now if nothing is ahead of them, else queue them behind."""
        thread = self._thread
        with self._lock:
            if self._ready and not self._pending and thread.socket is not None:
                socket = thread.socket
                socket.send_multipart(frames)
                if self._xpub_events is not None and socket.EVENTS & zmq.POLLIN:
                    # The send may have taken the descriptor's signal of a subscription.
                    thread.io_loop.add_callback(self._xpub_events, socket, 0)
                return
        thread.send_multipart(frames)
