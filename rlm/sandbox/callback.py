"""Host side of the llm_query callback channel.

The host listens on a unix socket in the kernel's run directory, served by its event loop
directly (no I/O thread between the socket and the handler). Every message is a frame signed
with a per-sandbox key (the kernel's protocol module defines the format for both sides);
a forged, replayed or malformed message is dropped and logged together with its connection,
and a frame over the size limit drops its connection before its body is read. Each request
is served as a task of its own whose first step runs as soon as it is read (eager.py): an
answer the handler has at once goes back in the same loop iteration, while concurrent
llm_query calls from kernel threads still overlap; `cancel_requests` ends them when the
execute that made them ends.

The kernel's context comes the same way, at every (re)start and for a pooled kernel's
load: the host offers a sealed memfd under a token (`offer`), and the kernel's CONTEXT_FD
request for that token gets it attached to the reply, once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from rlm.errors import RequestsRefused
from rlm.kernel_image.rlm_kernel import protocol
from rlm.kernel_image.rlm_kernel.protocol import BadFrame, CallbackConfig, FrameReader, Signer
from rlm.sandbox.eager import EagerStarter
from rlm.sandbox.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMRequest:
    """One prompt from the kernel. `batch_index` is set for llm_query_batched items."""

    prompt: str
    model: str | None = None
    batch_index: int | None = None


LLMHandler = Callable[[LLMRequest], Awaitable[str]]


@dataclass(frozen=True)
class _Offer:
    fmt: str
    fd: asyncio.Future[int] | None  # None: the kernel reads its mounted file


class CallbackServer:
    """Serves llm_query / llm_query_batched requests from one kernel with `handler`."""

    def __init__(
        self,
        run_dir: RunDir,
        handler: LLMHandler,
        *,
        request_timeout: float = protocol.DEFAULT_CALLBACK_TIMEOUT,
        batch_concurrency: int = 32,
        max_message_bytes: int = 32 * 1024**2,
        max_batch_prompts: int = 4096,
        max_in_flight: int = 64,
        max_connections: int = 64,
        max_buffered_bytes: int = 128 * 1024**2,
    ) -> None:
        self.run_dir = run_dir
        self.handler = handler
        self.request_timeout = request_timeout
        self.batch_concurrency = batch_concurrency
        self.max_message_bytes = max_message_bytes
        self.max_batch_prompts = max_batch_prompts
        # Requests being served at once; past that the host stops reading every connection,
        # and the socket's buffers push back on the kernel, so a flood cannot pile up here.
        self.max_in_flight = max_in_flight
        # Each connection may hold one partial frame of up to max_message_bytes; together
        # they may hold max_buffered_bytes, so many connections each sending most of a big
        # frame and then nothing cannot add up to connections x frame cap.
        self.max_connections = max_connections
        self.max_buffered_bytes = max_buffered_bytes
        self.buffered = 0
        self.key = secrets.token_hex(32).encode()
        self.rejected = 0
        self._signer = Signer(self.key)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        # Requests in flight and their deadlines. Every request has the same timeout, so in
        # this (insertion) order the deadlines only grow: one timer, armed for the oldest,
        # serves them all, instead of a timer per request (which cost a tenth of a round
        # trip).
        self._tasks: dict[asyncio.Task[None], float] = {}
        self._expired: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._starter: EagerStarter | None = None
        # token -> the context offered under it; the server owns (closes) each memfd.
        self._offers: dict[str, _Offer] = {}

    @property
    def endpoint(self) -> str:
        """The path of the unix socket, as the kernel on this host sees it."""
        return str(self.run_dir.callback_socket)

    async def start(self) -> None:
        self._starter = EagerStarter(asyncio.get_running_loop())
        await self._listen()
        # Readable by the kernel through a read-only mount; its directory is private.
        key_file = self.run_dir.callback_key_file
        config = CallbackConfig(self.key.decode(), self.max_message_bytes, self.max_batch_prompts)
        key_file.write_text(config.to_json())
        key_file.chmod(0o644)

    async def listen_again(self) -> None:
        """Listen afresh (before a kernel restarts): the kernel may have removed or replaced
        the socket in its own directory, and the next kernel must reach the host, which it
        asks for its context as it boots."""
        if self._server is not None:
            self._server.close()
            self._server = None
        # The old kernel is dead: nothing replaces the path between the unlink and the bind.
        self.run_dir.callback_socket.unlink(missing_ok=True)  # a link goes, never followed
        await self._listen()

    async def _listen(self) -> None:
        path = self.run_dir.callback_socket
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), str(path))
        if os.getuid() == 0:
            # A rootful engine runs the kernel under the image's uid: it must be able to
            # connect. Only that uid and ours can reach this directory, which that kernel
            # cannot write to (sealed), so the path is still our socket. Anywhere else the
            # kernel runs as our uid and needs no chmod, which would follow a link.
            path.chmod(0o666)

    def offer(self, token: str, fmt: str, fd: asyncio.Future[int] | None) -> None:
        """Give the kernel the memfd `fd` resolves to (None: its mounted file), in format
        `fmt`, when it asks with CONTEXT_FD and `token`, once; an earlier offer under
        `token` ends. The server closes the memfd: once sent, or on `withdraw`."""
        self.withdraw(token)
        self._offers[token] = _Offer(fmt, fd)

    def withdraw(self, token: str) -> None:
        """End the offer under `token` if the kernel has not taken it."""
        offered = self._offers.pop(token, None)
        if offered is not None and offered.fd is not None:
            _close_when_done(offered.fd)

    def _reject(self, reason: object) -> None:
        self.rejected += 1
        log.warning("rejected a callback message: %.200s", reason)

    def _dispatch(self, connection: _Connection, body: bytes) -> bool:
        """Serve one frame's body in its own task; False if it does not verify."""
        try:
            message = self._signer.unpack(body)
        except Exception as exc:  # forged, unsigned, replayed or garbage: never served
            self._reject(exc)
            return False
        assert self._starter is not None
        task = self._starter.start(self._serve(connection, message))
        if task is None:
            return True  # answered already
        loop = asyncio.get_running_loop()
        self._tasks[task] = deadline = loop.time() + self.request_timeout
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._expire)
        task.add_done_callback(self._finished)
        if len(self._tasks) == self.max_in_flight:
            for each in self._connections:
                each.hold(True)
        return True

    def _expire(self) -> None:
        """Cancel the requests past their deadline; re-arm for the oldest one left."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in self._tasks.items():
            if deadline > now:
                self._watchdog = loop.call_at(deadline, self._expire)
                return
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._expired.discard(task)
        if len(self._tasks) == self.max_in_flight - 1:
            for each in list(self._connections):
                each.hold(False)

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self.max_in_flight

    async def _serve(self, connection: _Connection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        attach: int | None = None
        try:
            # Signed, but written by code the model controls: check every field's type.
            model = message.get("model")
            if model is not None and not isinstance(model, str):
                raise TypeError("model must be a string or None")
            if kind == protocol.LLM_QUERY:
                reply = {"status": "ok", "result": await self._ask(_one(message), model)}
            elif kind == protocol.LLM_QUERY_BATCHED:
                prompts = _batch(message, self.max_batch_prompts)
                reply = {"status": "ok", "results": await self._ask_batch(prompts, model)}
            elif kind == protocol.CONTEXT_FD:
                fmt, attach = await self._take_offer(message.get("token"))
                reply = {"status": "ok", "format": fmt}
            else:
                reply = {"status": "error", "error": f"unknown request type {kind!r}"}
        except Exception as exc:
            reply = {"status": "error", "error": _describe(exc)}
        except asyncio.CancelledError:
            if asyncio.current_task() not in self._expired:
                raise  # cancel_requests or close: nobody waits for an answer
            timeout = TimeoutError(f"no answer in {self.request_timeout:g} s")
            reply = {"status": "error", "error": _describe(timeout)}
        reply["re"] = message.get("id")
        if attach is None:
            connection.send(self._signer.pack(reply))
            return
        try:
            if not connection.send_with_fd(self._signer.pack(reply), attach):
                error = "the host could not send the context on this connection"
                reply = {"status": "error", "error": error, "re": message.get("id")}
                connection.send(self._signer.pack(reply))
        finally:
            os.close(attach)

    async def _take_offer(self, token: object) -> tuple[str, int | None]:
        offered = self._offers.pop(token, None) if isinstance(token, str) else None
        if offered is None:
            raise LookupError("no context is offered under this token (each is taken once)")
        if offered.fd is None:
            return offered.fmt, None
        try:
            return offered.fmt, await asyncio.shield(offered.fd)
        except asyncio.CancelledError:
            _close_when_done(offered.fd)
            raise

    async def _ask(self, prompt: str, model: str | None, index: int | None = None) -> str:
        result = await self.handler(LLMRequest(prompt, model, index))
        return result if isinstance(result, str) else str(result)

    async def _ask_batch(self, prompts: list[str], model: str | None) -> list[dict[str, str]]:
        """Serve `prompts` with `batch_concurrency` workers, answers in order.

        Workers take prompts in turn, so a batch costs tasks per worker, not per prompt; once
        the handler raises RequestsRefused (a spent budget), the prompts not yet asked get
        that refusal without reaching the handler.
        """
        results: list[dict[str, str]] = [{}] * len(prompts)
        pending = iter(enumerate(prompts))
        refusal: dict[str, str] | None = None

        async def worker() -> None:
            nonlocal refusal
            for index, prompt in pending:
                if refusal is not None:
                    results[index] = refusal
                    continue
                try:
                    answer = await self._ask(prompt, model, index)
                    results[index] = {"status": "ok", "result": answer}
                except RequestsRefused as exc:
                    refusal = results[index] = {"status": "error", "error": _describe(exc)}
                except Exception as exc:
                    results[index] = {"status": "error", "error": _describe(exc)}

        workers = min(self.batch_concurrency, len(prompts))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return results

    async def cancel_requests(self) -> int:
        """Cancel every request being served and wait until their handlers have ended.

        Called when an execute ends by timeout, interrupt or restart: executes run one at a
        time, so what is in flight then was asked by that execute (or by a thread it left
        behind), and nobody will read the answers. A handler running a child run is
        cancelled with it, and the child releases its sandbox on the way out. Returns how
        many requests were cancelled.
        """
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for token in list(self._offers):
            self.withdraw(token)
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._starter is not None:
            await self._starter.close()
            self._starter = None


class _Connection(asyncio.Protocol):
    """One connection from the kernel (one per kernel thread that calls llm_query)."""

    def __init__(self, server: CallbackServer) -> None:
        self._server = server
        self._reader = FrameReader(server.max_message_bytes)
        self._counted = 0  # of the reader's bytes, how many server.buffered includes
        self._transport: asyncio.Transport | None = None
        self._writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (Ray's workers run uvloop) are
        # transports without being asyncio.Transport instances.
        transport = cast(asyncio.Transport, transport)
        server = self._server
        if len(server._connections) >= server.max_connections:
            server._reject(f"over {server.max_connections} connections at once")
            transport.abort()
            return
        self._transport = transport
        server._connections.add(self)
        if server.full:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._transport = None
        self._release()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        self._drain()

    def _drain(self) -> None:
        self._serve_buffered()
        if self._transport is None:
            return
        server = self._server
        server.buffered += self._reader.buffered - self._counted
        self._counted = self._reader.buffered
        if server.buffered > server.max_buffered_bytes:
            server._reject(f"over {server.max_buffered_bytes:,} bytes buffered at once")
            self.abort()

    def _serve_buffered(self) -> None:
        """Serve the whole frames buffered, while the server has room for them."""
        while self._transport is not None and not self._server.full:
            try:
                body = self._reader.next()
            except BadFrame as exc:
                # Refused on its header, before its body is read; the stream has no next
                # frame to resynchronise on, so the connection goes.
                self._server._reject(exc)
                self.abort()
                return
            if body is None:
                return
            if not self._server._dispatch(self, body):
                # The runtime's client never sends a bad frame: this connection is hostile,
                # and a flood of forged frames costs the host one check, not one each.
                self.abort()
                return

    def hold(self, held: bool) -> None:
        """Stop reading while the server is full; catch up when it has room again."""
        if self._transport is None:
            return
        if held:
            self._transport.pause_reading()
            return
        self._drain()
        if self._transport is not None and not self._server.full and not self._writing_paused:
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        # The kernel does not read its answers: read no more questions from it either.
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.hold(self._server.full)

    def send(self, frame: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    def send_with_fd(self, frame: bytes, fd: int) -> bool:
        """Send `frame` with `fd` attached (SCM_RIGHTS); False if it could not go.

        asyncio's transports carry no descriptors, so this writes to the socket itself,
        and only while the transport has nothing buffered: the frame must not overtake it.
        """
        transport = self._transport
        if transport is None or transport.is_closing() or transport.get_write_buffer_size():
            return False
        raw = transport.get_extra_info("socket")
        try:
            with socket.socket(fileno=os.dup(raw.fileno())) as sock:
                sent = socket.send_fds(sock, [frame], [fd])
        except OSError:  # EAGAIN with a full socket buffer, or the kernel has gone
            return False
        if sent < len(frame):
            transport.write(frame[sent:])
        return True

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
            self._transport = None
        self._release()

    def _release(self) -> None:
        """Forget what this connection buffered: it is never read again."""
        self._server.buffered -= self._counted
        self._counted = 0
        self._reader = FrameReader(self._server.max_message_bytes)


def _one(message: dict[str, Any]) -> str:
    prompt = message.get("prompt")
    if not isinstance(prompt, str):
        raise TypeError("prompt must be a string")
    return prompt


def _batch(message: dict[str, Any], limit: int) -> list[str]:
    prompts = message.get("prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be a list of strings")
    if len(prompts) > limit:
        # Refused whole, before anything is asked or recorded per prompt.
        raise ValueError(f"llm_query_batched takes at most {limit:,} prompts, not {len(prompts):,}")
    return prompts


def _close_when_done(fd: asyncio.Future[int]) -> None:
    """Close the memfd `fd` resolves to, now or once its write ends."""

    def close(done: asyncio.Future[int]) -> None:
        if not done.cancelled() and done.exception() is None:
            os.close(done.result())

    fd.add_done_callback(close)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CallbackServerThread:
    """A CallbackServer on its own event loop thread.

    For kernels started by other tools (Jupyter servers, nbclient, a blocking
    KernelManager), whose event loop may not run between their calls: the callbacks
    must be served whenever the kernel asks.
    """

    def __init__(self, run_dir: RunDir, handler: LLMHandler, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rlm-callbacks", daemon=True
        )
        self.server = CallbackServer(run_dir, handler, **options)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
