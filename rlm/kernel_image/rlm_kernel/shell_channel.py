"""The shell socket read on the main thread's event loop, execute requests handled at once.

ipykernel reads the shell socket through tornado's ZMQStream (event handling, socket-option
lookups, a task per request) and decodes each message with Session: about half of a short
execute's time in the kernel. Here the socket is an ordinary reader on the asyncio loop
that drains it, and an execute request whose code can run synchronously (no top-level
`await`) is verified, run and answered in that same callback by `RLMKernel.execute_now`.

Everything else (kernel_info, complete, inspect, history, comms, cells with top-level
`await`, requests for subshells) goes to ipykernel's own dispatch, as a task, exactly as
its ZMQStream would have passed it. While any such task is unfinished every request goes
that way, so requests are still handled one at a time and in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

import zmq

from rlm_kernel.shell import may_run_async
from rlm_kernel.wire import Request, Wire

log = logging.getLogger(__name__)


class ShellChannel:
    def __init__(self, kernel: Any, wire: Wire) -> None:
        self._kernel = kernel
        self._wire = wire
        self._socket: zmq.Socket = kernel.shell_stream.socket
        self._loop = asyncio.get_event_loop()
        self._context = contextvars.copy_context()
        self._passed_on = 0  # requests handed to ipykernel's dispatch, not yet finished
        self._draining = False
        self._held: list[list[bytes]] = []

    def start(self) -> None:
        """Take the socket over from the kernel's ZMQStream, which no longer reads it on
        its own. Its callback stays ours: ipykernel's GUI event loops (qt, tk, ...) read
        requests with the stream's flush(), which would drop them without one."""
        stream = self._kernel.shell_stream
        stream.on_recv(self._receive)
        stream.io_loop.remove_handler(self._socket)
        self._loop.add_reader(self._socket.FD, self.drain)
        self.drain()  # requests that arrived before the reader existed

    def drain(self) -> None:
        """Handle every request waiting on the socket.

        The socket's descriptor signals edges: it is read until the socket says it holds
        nothing more, and again after anything else used the socket (`_finished`). A
        cell that runs the event loop itself does not get here again: the requests that
        arrive meanwhile wait for it, as they would in ipykernel.
        """
        if self._draining:
            return
        self._draining = True
        socket = self._socket
        try:
            while socket.EVENTS & zmq.POLLIN:
                self._route(socket.recv_multipart(zmq.NOBLOCK))
        finally:
            self._draining = False

    def _receive(self, frames: list[bytes]) -> None:
        """A request read by the ZMQStream (a GUI event loop's flush)."""
        if self._draining:  # from inside a cell: it waits for the cell, as in ipykernel
            self._pass_on(frames)
            return
        self._draining = True
        try:
            self._route(frames)
        finally:
            self._draining = False

    def _route(self, frames: list[bytes]) -> None:
        request = None if self._passed_on else self._wire.read(frames)
        # (A request that fails the check goes on too: Session refuses it and logs.)
        if request is None or not self._handle(request):
            self._pass_on(frames)

    def _handle(self, request: Request) -> bool:
        """Handle `request` here if it is an execute request that can run now."""
        header = request.header
        if request.msg_type != "execute_request" or header.get("subshell_id") is not None:
            return False
        try:
            content = _loads_dict(request.parts[4])
            metadata = _loads_dict(request.parts[3])
            code = content["code"]
        except (ValueError, KeyError):
            return False  # ipykernel logs the bad message as it always has
        if not isinstance(code, str) or may_run_async(code):
            return False
        self._wire.accept(request)
        self._kernel.execute_now(request, request.message(content, metadata))
        self.abort_held()
        return True

    def hold_waiting(self) -> None:
        """Take the requests waiting now: a cell failed with stop_on_error, and the execute
        requests sent before its reply are to be aborted (`abort_held`), as ipykernel does."""
        socket = self._socket
        while socket.EVENTS & zmq.POLLIN:
            self._held.append(socket.recv_multipart(zmq.NOBLOCK))

    def abort_held(self) -> None:
        """Answer the held execute requests as aborted; pass the other requests on."""
        held, self._held = self._held, []
        for frames in held:
            request = self._wire.read(frames)
            if request is not None and request.msg_type == "execute_request":
                self._wire.accept(request)
                self._kernel.abort_now(request)
            else:
                self._pass_on(frames)

    def _pass_on(self, frames: list[bytes]) -> None:
        self._passed_on += 1
        task = self._loop.create_task(
            self._kernel.shell_main(None, [zmq.Frame(frame) for frame in frames]),
            context=self._context,
        )
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._passed_on -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("shell request failed", exc_info=task.exception())
        self.abort_held()  # held if the request was a cell that failed (stop_on_error)
        # The handler may have sent on the socket, which can swallow the descriptor's
        # signal for a request that arrived meanwhile.
        self.drain()


def _loads_dict(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
