"""Host side of the llm_query callback channel.

The host binds a ZMQ ROUTER socket on ipc in the kernel's run directory. Every message is
signed with a per-sandbox key (the kernel's protocol module defines the format for both
sides); unsigned, forged or replayed messages are dropped and logged. jupyter_client's
Session would do the signing too, but its headers and date parsing cost more than the rest
of a round trip. Each request is served in its own task, so concurrent llm_query calls from
kernel threads overlap; `cancel_requests` ends them when the execute that made them ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from rlm.errors import RequestsRefused
from rlm.kernel_image.rlm_kernel import protocol
from rlm.kernel_image.rlm_kernel.protocol import CallbackConfig, Signer
from rlm.sandbox.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMRequest:
    """One prompt from the kernel. `batch_index` is set for llm_query_batched items."""

    prompt: str
    model: str | None = None
    batch_index: int | None = None


LLMHandler = Callable[[LLMRequest], Awaitable[str]]


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
    ) -> None:
        self.run_dir = run_dir
        self.handler = handler
        self.request_timeout = request_timeout
        self.batch_concurrency = batch_concurrency
        self.max_message_bytes = max_message_bytes
        self.max_batch_prompts = max_batch_prompts
        # Requests being served at once; past that the host stops reading and ZMQ's
        # high-water mark pushes back on the kernel, so a flood cannot pile up here.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.key = secrets.token_hex(32).encode()
        self.rejected = 0
        self._signer = Signer(self.key)
        self._context = zmq.asyncio.Context.instance()
        self._socket: zmq.asyncio.Socket | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.run_dir.callback_socket}"

    async def start(self) -> None:
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # The kernel is untrusted: an oversized message drops its connection before the
        # host has buffered it, instead of after.
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        socket.setsockopt(zmq.RCVHWM, 16)
        socket.bind(self.endpoint)
        # A rootful engine runs the kernel under the image's uid: it must be able to connect.
        # Only that uid and ours can reach this directory.
        self.run_dir.callback_socket.chmod(0o666)
        self._socket = socket
        # Readable by the kernel through a read-only mount; its directory is private.
        key_file = self.run_dir.callback_key_file
        config = CallbackConfig(self.key.decode(), self.max_message_bytes, self.max_batch_prompts)
        key_file.write_text(config.to_json())
        key_file.chmod(0o644)
        self._receiver = asyncio.create_task(self._receive(), name="rlm-callback-receiver")

    async def _receive(self) -> None:
        assert self._socket is not None
        while True:
            await self._in_flight.acquire()
            frames = await self._socket.recv_multipart()
            try:
                message = self._signer.unpack(frames[1:])
            except Exception as exc:  # forged, unsigned, replayed or garbage: never served
                self._in_flight.release()
                self.rejected += 1
                log.warning("rejected a callback message: %.200s", exc)
                continue
            task = asyncio.create_task(self._serve(frames[0], message))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight.release()

    async def _serve(self, identity: bytes, message: dict[str, Any]) -> None:
        kind = message.get("type")
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
            else:
                reply = {"status": "error", "error": f"unknown request type {kind!r}"}
        except Exception as exc:
            reply = {"status": "error", "error": _describe(exc)}
        reply["re"] = message.get("id")
        if self._socket is not None and not self._socket.closed:
            try:
                await self._socket.send_multipart([identity, *self._signer.pack(reply)])
            except zmq.ZMQError as exc:  # the kernel went away meanwhile
                log.debug("could not send an llm_query reply: %s", exc)

    async def _ask(self, prompt: str, model: str | None, index: int | None = None) -> str:
        request = LLMRequest(prompt, model, index)
        try:
            # asyncio.timeout, unlike wait_for, needs no extra task per request.
            async with asyncio.timeout(self.request_timeout):
                result = await self.handler(request)
        except TimeoutError:
            raise TimeoutError(f"no answer in {self.request_timeout:g} s") from None
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
        tasks = [t for t in (self._receiver, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._receiver = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


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
