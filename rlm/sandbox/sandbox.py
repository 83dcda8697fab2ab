"""Sandbox: one rlm kernel, with CONTEXT loaded, driven over the Jupyter protocol.

    async with Sandbox("some long text", llm_handler=answer) as sandbox:
        result = await sandbox.execute("print(len(CONTEXT))")

The kernel runs in a container (runtime="container") or, for development only and without
isolation, as a local subprocess (runtime="local"). Both start through jupyter_client's
AsyncKernelManager and our provisioners.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import resource
import secrets
import shutil
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from stat import S_IROTH
from typing import Any

import zmq
import zmq.asyncio

from rlm.errors import ContextFileError, KernelDiedError, SandboxError
from rlm.kernel_image.rlm_kernel import protocol
from rlm.sandbox import removals
from rlm.sandbox.callback import CallbackServer, LLMHandler, LLMRequest
from rlm.sandbox.channels import (
    MAX_MESSAGE_FRAMES,
    KernelChannels,
    RelayedKernelManager,
    make_context,
)
from rlm.sandbox.context_file import ContextFile
from rlm.sandbox.context_write import sealed_copy
from rlm.sandbox.kernelspec import FixedKernelSpecManager, make_kernel_spec
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.provisioning import RlmProvisioner
from rlm.sandbox.result import CappedText, ExecuteError, ExecuteResult, strip_ansi
from rlm.sandbox.rundir import RunDir

log = logging.getLogger(__name__)

# A ContextFile is a str in the kernel, read from the user's file where it lies.
Context = str | list[Any] | dict[str, Any] | ContextFile
LIVENESS_INTERVAL = 1.0
REPLY_GRACE = 5.0
LOST_GRACE = 1.0
KERNEL_INFO_WAIT = 1.0  # how often a start that waits for kernel_info looks at the kernel
IOPUB_PROBE = 0.2  # IOPub messages sent before our subscription reached the kernel are lost
LOST_CHANNEL = (
    "its connection to the host dropped (a message over the "
    f"{protocol.JUPYTER_MAX_MESSAGE_BYTES // 1024**2} MiB cap, or over "
    f"{MAX_MESSAGE_FRAMES:,} frames?)"
)
# Kernels starting at once per event loop. A boot is CPU-bound: 100 started together on a
# 2-core machine each took past the 60 s start timeout, while in turns of a few all start.
START_CONCURRENCY = max(4, os.cpu_count() or 1)
_start_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class _Placement:
    """How a kernel is started with its context: a file to mount, or `size` bytes offered."""

    file: Path | None
    fmt: str
    data: str | bytes | None = None  # the serialized context, for the first write

    @property
    def size(self) -> int:
        return 0 if self.data is None else len(self.data)


async def _no_llm_handler(request: LLMRequest) -> str:
    raise RuntimeError("this sandbox has no llm_query handler")


class Sandbox:
    def __init__(
        self,
        context: Context | None = None,
        *,
        context_file: str | Path | None = None,
        llm_handler: LLMHandler | None = None,
        runtime: str = "container",
        image: str | None = None,
        limits: SandboxLimits | None = None,
        batch_concurrency: int = 32,
    ) -> None:
        if context is not None and context_file is not None:
            raise ValueError("give either context or context_file, not both")
        self.runtime = runtime
        self.limits = limits or SandboxLimits()
        self._context = context
        self._context_file = Path(context_file) if context_file is not None else None
        # The file CONTEXT is read from, with its counts once the start has checked it.
        self.context_file: ContextFile | None = (
            context if isinstance(context, ContextFile) and context.checked else None
        )
        self._handler = llm_handler
        self._image = image
        self._batch_concurrency = batch_concurrency
        self._run_dir: RunDir | None = None
        self._callbacks: CallbackServer | None = None
        self._manager: RelayedKernelManager | None = None
        self._channels: KernelChannels | None = None
        self._materializing: asyncio.Future[Exception | None] | None = None
        # What the kernel is to hold, asked for at every (re)start under `_context_token`:
        # the start's context or the last one loaded (a restart serializes it afresh, so
        # no serialized copy is kept), or None for the file it mounts (`_file_format`).
        self._kernel_context: Context | None = None
        self._file_format = "text"
        self._context_token = secrets.token_hex(16)
        self._writes: set[asyncio.Future[int]] = set()
        # Set once the kernel's container runs, or the start ends without one.
        self._launched = asyncio.Event()
        self._zmq: zmq.asyncio.Context | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    # --- life cycle ------------------------------------------------------------------

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Sandbox:
        """Start the kernel and wait until it answers; everything is released on failure."""
        try:
            # Waiting for a slot is outside the start timeout: it only measures the start.
            async with _start_slots():
                await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        _raise_fd_limit()
        self._run_dir = run_dir = RunDir.create()
        # A thread goes on when its caller is cancelled: close() waits for it before it
        # removes the run directory, or a copy of the context would land in a removed one.
        placed: Future[_Placement] = Future()
        self._materializing = asyncio.ensure_future(
            asyncio.to_thread(self._materialize_context, placed)
        )
        placement = await asyncio.shield(asyncio.wrap_future(placed))
        # Every sandbox has the channel: it carries the context, and llm_query if handled.
        self._callbacks = CallbackServer(
            run_dir,
            self._handler or _no_llm_handler,
            request_timeout=self.limits.callback_timeout,
            batch_concurrency=self._batch_concurrency,
            max_message_bytes=self.limits.callback_max_bytes,
            max_batch_prompts=self.limits.callback_max_batch,
            max_in_flight=self.limits.callback_in_flight,
        )
        await self._callbacks.start()
        writing = self._offer_context(placement.data)
        config: dict[str, Any] = {
            "run_dir": str(run_dir.path),
            "context_file": str(placement.file) if placement.file else "",
            "context_format": placement.fmt,
            "context_token": self._context_token,
            "context_bytes": placement.size,
            "output_limit": self.limits.output_chars,
            "callback_timeout": self.limits.callback_timeout,
            "echo_input": False,
        }
        if self.runtime == "container":
            config.update(
                image=self._image or "",
                memory_bytes=self.limits.memory_bytes or 0,
                pids_limit=self.limits.pids,
                cpus=self.limits.cpus,
                tmpfs_bytes=self.limits.tmpfs_bytes,
            )
        spec = make_kernel_spec(self.runtime, config)
        self._zmq = make_context()
        self._manager = RelayedKernelManager(
            kernel_name="rlm", kernel_spec_manager=FixedKernelSpecManager(spec), context=self._zmq
        )
        try:
            await asyncio.wait_for(self._manager.start_kernel(), self.limits.start_timeout)
        except TimeoutError:
            raise SandboxError(
                f"the kernel container did not start within {self.limits.start_timeout:g} s"
            ) from None
        finally:
            self._launched.set()
        self._channels = KernelChannels(self._zmq)
        await self._channels.open(self._manager)
        if (failed := await asyncio.shield(self._materializing)) is not None:
            raise failed
        try:
            await self._wait_ready()
        except KernelDiedError:
            # The kernel fails its boot without its context: say why, if it was the write.
            if writing is not None and writing.done() and (lost := writing.exception()):
                raise SandboxError(f"could not write the context for the kernel: {lost}") from lost
            raise

    async def _wait_ready(self) -> None:
        try:
            await asyncio.wait_for(self._handshake(), self.limits.start_timeout)
        except (TimeoutError, RuntimeError, zmq.ZMQError) as exc:
            alive = self._manager is not None and await self._manager.is_alive()
            reason = "" if alive else await self._death_reason()
            why = str(exc) or f"no kernel_info reply within {self.limits.start_timeout:g} s"
            raise KernelDiedError(f"the kernel did not start: {reason or why}") from None
        self._provisioner().seal_run_dir()

    async def _handshake(self) -> None:
        """Ask kernel_info until the kernel answers and IOPub carries its messages.

        jupyter_client's wait_for_ready does the same, then waits for 0.2 s of silence on
        IOPub (a third of a cold start); `_collect` skips other requests' messages, so that
        wait buys us nothing.

        One request at a time: a request sent before the kernel is up is not lost (the
        relay holds it until the kernel's socket appears), so a resend only adds work to a
        boot that is already slow. (It also spares images built before the kernel's own
        request loop, which could stop reading requests when one arrived during a reply.)
        """
        channels, manager = self._channels, self._manager
        assert channels is not None and manager is not None
        channels.kernel_info()
        while True:
            reply = await channels.receive("shell", KERNEL_INFO_WAIT)
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await channels.receive("iopub", IOPUB_PROBE) is not None:
                    return
                channels.kernel_info()  # for IOPub messages our subscription now receives
            elif reply is None and not await manager.is_alive():
                raise RuntimeError("the kernel exited")

    def _provisioner(self) -> RlmProvisioner:
        """The running kernel's provisioner: always one of ours, as our kernelspec names it."""
        provisioner = self._manager.provisioner if self._manager is not None else None
        if not isinstance(provisioner, RlmProvisioner):
            raise SandboxError("the sandbox is not running")
        return provisioner

    def _materialize_context(self, placed: Future[_Placement]) -> Exception | None:
        """Settle how the kernel gets its context; `placed` has it as soon as the kernel can
        be started. Returns what failed after that: the check of a file named by path, made
        while the kernel starts (the check is a whole reading pass)."""
        try:
            unchecked = self._place_context(placed)
        except Exception as exc:
            placed.set_exception(exc)
            return None
        if unchecked is None:
            return None
        try:
            self.context_file = ContextFile.check(unchecked)
        except OSError as exc:
            return SandboxError(f"could not read the context file: {exc}")
        except ContextFileError as exc:
            return exc
        return None

    def _place_context(self, placed: Future[_Placement]) -> Path | None:
        """A file is mounted (and returned if not checked yet); anything else is serialized
        here and written for the kernel once its container runs (`_offer_context`)."""
        if self._context_file is not None:
            self._file_format = "json" if self._context_file.suffix == ".json" else "text"
            path = self._shareable(self._context_file, self._file_format)
            placed.set_result(_Placement(path, self._file_format))
            return self._context_file
        if isinstance(self._context, ContextFile):
            placed.set_result(_Placement(self._shareable(self._context.path, "text"), "text"))
            return None if self._context.checked else self._context.path
        self._kernel_context = "" if self._context is None else self._context
        text, fmt = serialize(self._kernel_context)
        # Its size in bytes sizes the container's memory limit: an ASCII str (all JSON rlm
        # writes is) needs no encoding to know it.
        data: str | bytes = text if text.isascii() else text.encode("utf-8", "surrogatepass")
        placed.set_result(_Placement(None, fmt, data))
        return None

    def _offer_context(self, data: str | bytes | None = None) -> asyncio.Future[int] | None:
        """Offer the kernel its context under the start token, for its next boot: in a
        memfd (returned; from `data`, if the caller has serialized it already), or its
        mounted file."""
        assert self._callbacks is not None
        if self._kernel_context is None:
            self._callbacks.offer(self._context_token, self._file_format, None)
            return None
        return self._offer(self._context_token, self._kernel_context, data)

    def _offer(self, token: str, context: Context, data: str | bytes | None) -> asyncio.Future[int]:
        """Offer `context` under `token`, in a memfd written on a thread once the container
        runs (from `data`, if serialized already); the callback server owns the memfd."""
        assert self._callbacks is not None
        writing = asyncio.ensure_future(self._seal_once_launched(context, data))
        self._writes.add(writing)
        writing.add_done_callback(self._writes.discard)
        self._callbacks.offer(token, context_format(context), writing)
        return writing

    async def _seal_once_launched(self, context: Context, data: str | bytes | None) -> int:
        # Written while the kernel boots, not while the engine creates its container: on 2
        # cores a write beside the engine's create and start slowed them by 25-55 ms, while
        # a booting kernel leaves a core free (measured with the file this memfd replaced:
        # 100 MB beyond an empty start, in turns, 61 against 105 ms).
        await self._launched.wait()
        return await asyncio.to_thread(
            lambda: sealed_copy(serialize(context)[0] if data is None else data)
        )

    def _shareable(self, path: Path, fmt: str) -> Path:
        """`path` if the kernel can read it where it lies (it is then mounted read-only),
        else a copy it can read. Under a rootful engine the kernel's user is none of the
        host's, so only a file readable by everyone is mounted as it is."""
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ContextFileError(f"cannot read context file {path}: {exc.strerror}") from None
        if self.runtime != "container" or os.getuid() != 0 or mode & S_IROTH:
            return path
        assert self._run_dir is not None
        copy = self._run_dir.path / ("context.json" if fmt == "json" else "context.txt")
        shutil.copyfile(path, copy)  # copy_file_range/sendfile: no decoding, no Python buffer
        copy.chmod(0o644)
        return copy

    async def close(self, *, background: bool = False) -> None:
        """Remove the kernel, its container and run directory. Safe to call twice.

        With `background`, only the host's side (channels, callback server) is closed here
        and the container and run directory are removed on a worker thread, before the
        process exits (rlm.sandbox.removals): the caller does not wait for the engine.
        """
        if self.closed:
            return
        self.closed = True
        # Shielded so that a cancelled caller (Ctrl-C, task cancellation) still cleans up,
        # and awaited to the end before the cancellation goes on: whoever awaits the
        # cancelled caller must find the container gone (or its removal under way).
        release = asyncio.ensure_future(self._release(background))
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            await release
            raise

    async def _release(self, background: bool) -> None:
        provisioner = self._manager.provisioner if self._manager is not None else None
        if not isinstance(provisioner, RlmProvisioner):
            provisioner = None
        container = None
        if background and provisioner is not None:
            container = provisioner.hand_off_container()
        try:
            await self._close_host_side()
        finally:
            # Whatever failed above, a container handed off is removed.
            if background:
                removals.remove_later(container, self._run_dir, engine=self.runtime == "container")
            elif self._run_dir is not None and (
                provisioner is None or provisioner.container_id is None
            ):
                # A container the engine refused to remove (logged) keeps its run
                # directory: the reaper finds the container by it when this process ends.
                self._run_dir.remove()
            self._run_dir = None

    async def _close_host_side(self) -> None:
        if self._channels is not None:
            await self._channels.close()
            self._channels = None
        if self._manager is not None:
            try:
                if self._manager.has_kernel:
                    await asyncio.wait_for(self._manager.shutdown_kernel(now=True), 30)
                else:
                    await self._manager.cleanup_resources()
            except Exception as exc:
                log.warning("kernel shutdown failed: %s", exc)
                provisioner = self._manager.provisioner
                if provisioner is not None:
                    await provisioner.cleanup(restart=False)
            await self._manager.close_relay()
            self._manager = None
        if self._zmq is not None:
            self._zmq.destroy(linger=0)
            self._zmq = None
        if self._callbacks is not None:
            await self._callbacks.close()
            self._callbacks = None
        self._launched.set()  # a start that ended early: a write need not wait
        if self._writes:
            await asyncio.wait(self._writes)  # their memfds are closed as they end
        if self._run_dir is not None and self._materializing is not None:
            await asyncio.wait([self._materializing])

    # --- handing a started sandbox to a run (warm pools) ---------------------------------

    def set_llm_handler(self, handler: LLMHandler) -> None:
        """Serve llm_query with `handler` from now on."""
        self._handler = handler
        if self._callbacks is not None:
            self._callbacks.handler = handler

    async def load_context(
        self, context: Context, serialized: tuple[str, str] | None = None
    ) -> None:
        """Replace CONTEXT in the running kernel: a sealed memfd it maps, never over ZMQ.
        `serialized` is `serialize(context)`, if the caller has it already."""
        data = (serialized or serialize(context))[0]
        if self._callbacks is None or self._manager is None or self.closed:
            raise SandboxError("the sandbox is not running")
        # Written while the kernel is told to load it: the kernel's request for it is
        # answered once the write has ended (CallbackServer.offer).
        token = secrets.token_hex(16)
        writing = self._offer(token, context, data)
        try:
            result = await self.execute(protocol.load_context_code(token))
        finally:
            self._callbacks.withdraw(token)
            await asyncio.wait([writing])
        if (failed := writing.exception()) is not None:
            raise SandboxError(f"could not hand the context to the kernel: {failed}") from failed
        if result.error is not None:
            raise SandboxError(f"the kernel could not load the context: {result.error.value}")
        self._kernel_context = context  # what a restart brings back

    # --- running code ------------------------------------------------------------------

    @property
    def messages_dropped(self) -> int:
        """Jupyter messages from the kernel dropped as unparsable or of the wrong shape."""
        return self._channels.dropped if self._channels else 0

    @property
    def callbacks_rejected(self) -> int:
        """Callback messages dropped for a bad signature or a replay."""
        return self._callbacks.rejected if self._callbacks else 0

    @property
    def run_dir(self) -> Path | None:
        return self._run_dir.path if self._run_dir else None

    @property
    def container_id(self) -> str | None:
        provisioner = self._manager.provisioner if self._manager else None
        return provisioner.container_id if isinstance(provisioner, RlmProvisioner) else None

    async def execute(self, code: str, timeout: float | None = None) -> ExecuteResult:
        """Run `code` in the kernel; never waits longer than `timeout` plus the interrupt grace."""
        if self._channels is None or self.closed:
            raise SandboxError("the sandbox is not running")
        async with self._lock:
            return await self._execute(
                code, self.limits.execute_timeout if timeout is None else timeout
            )

    async def _execute(self, code: str, timeout: float) -> ExecuteResult:
        assert self._channels is not None and self._manager is not None
        started = time.perf_counter()
        output = _Collector(self.limits.output_chars)
        try:
            msg_id = self._channels.execute(code)
        except zmq.ZMQError:  # could not even be queued: the shell connection is gone
            outcome = "lost"
        else:
            outcome = await self._collect(msg_id, output, started + timeout)
        if outcome != "done":
            # No one will read what this execute's llm_query calls return: stop them now,
            # before they spend more of the budget.
            await self._cancel_callbacks()
        if outcome == "timeout":
            try:
                await self._manager.interrupt_kernel()
            except zmq.ZMQError as exc:  # the control connection is gone: restart below
                log.debug("could not send the interrupt: %s", exc)
            outcome = await self._collect(
                msg_id, output, time.perf_counter() + self.limits.interrupt_grace
            )
            output.result.timed_out = True
            if outcome != "done":
                await self._restart(output.result, f"it ignored the interrupt after {timeout:g} s")
            elif output.result.error is not None:
                output.result.error.value = (
                    f"execution exceeded the {timeout:g} s timeout and was interrupted"
                )
        elif outcome == "died" or (outcome == "lost" and await self._dies_within(LOST_GRACE)):
            # (A kernel that exits drops its connections too: say it died, and why.)
            reason = await self._death_reason()
            await self._restart(output.result, f"the kernel died ({reason})")
        elif outcome == "lost":
            await self._restart(output.result, LOST_CHANNEL)
        output.result.duration = time.perf_counter() - started
        return output.finish()

    async def _dies_within(self, seconds: float) -> bool:
        assert self._manager is not None
        deadline = time.perf_counter() + seconds
        while await self._manager.is_alive():
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def _cancel_callbacks(self) -> None:
        if self._callbacks is not None and (count := await self._callbacks.cancel_requests()):
            log.info("cancelled %d llm_query call(s) of an execute that did not finish", count)

    async def _collect(self, msg_id: str, output: _Collector, deadline: float) -> str:
        """Read until the reply and the idle status arrive: 'done', 'timeout', 'died' or
        'lost' (a connection dropped, so they may never arrive)."""
        channels, manager = self._channels, self._manager
        assert channels is not None and manager is not None
        idle = replied = False
        while not (idle and replied):
            if channels.lost:
                return "lost"
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                if idle:
                    output.result.error = ExecuteError(
                        "KernelError", "the kernel went idle without replying to the code", ""
                    )
                    return "done"
                return "timeout"
            wait = min(remaining, LIVENESS_INTERVAL)
            msg = await channels.receive("shell" if idle else "iopub", wait)
            if msg is None:
                if not await manager.is_alive():
                    return "died"
            elif msg["parent_header"].get("msg_id") != msg_id:
                continue
            elif not idle:
                idle = output.add_iopub(msg)
                if idle:
                    # The reply is sent before the idle status: if it is still missing
                    # a moment later, the kernel failed inside its own handler.
                    deadline = min(deadline, time.perf_counter() + REPLY_GRACE)
            else:
                output.add_reply(msg["content"])
                replied = True
        return "done"

    async def _restart(self, result: ExecuteResult, why: str) -> None:
        assert self._manager is not None and self._channels is not None
        log.warning("restarting the kernel: %s", why)
        try:
            # Killed first: jupyter_client interrupts a kernel it still has before a
            # restart, over a control connection that may be the one that dropped.
            await self._manager.suspend_relay()
            await self._provisioner().kill(restart=True)
            assert self._callbacks is not None
            await self._callbacks.listen_again()
            self._offer_context()  # the new kernel asks for it again
            await asyncio.wait_for(
                self._manager.restart_kernel(now=True), self.limits.start_timeout
            )
            # New channels: ZMQ does not re-establish a connection it dropped.
            await self._channels.open(self._manager)
            await self._wait_ready()
        except (TimeoutError, Exception) as exc:
            raise KernelDiedError(f"the kernel could not be restarted after {why}: {exc}") from exc
        result.restarted = True
        result.error = ExecuteError(
            "KernelRestarted", f"{why}; the kernel was restarted and its variables are lost", ""
        )

    async def _death_reason(self) -> str:
        provisioner = self._manager.provisioner if self._manager else None
        if not isinstance(provisioner, RlmProvisioner):
            return ""
        return await provisioner.exit_reason()


class _Collector:
    """Accumulates one execute's messages into an ExecuteResult, within the output cap."""

    def __init__(self, limit: int) -> None:
        self.result = ExecuteResult()
        self._limit = limit
        self._stdout = CappedText(limit)
        self._stderr = CappedText(limit)
        self._results = CappedText(limit)

    def add_iopub(self, msg: dict[str, Any]) -> bool:
        """Take one iopub message; True when the kernel went idle.

        Written by the kernel, which user code controls: a field of the wrong type is
        ignored (the channel checked only that `content` is a dict).
        """
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            stream = self._stdout if content.get("name") == "stdout" else self._stderr
            stream.add(_text(content.get("text")))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data")
            text = _text(data.get("text/plain")) if isinstance(data, dict) else ""
            before = len(self._results.text)
            self._results.add(text)
            self.result.results.append(self._results.text[before:])
        elif kind == "error":
            self._set_error(content)
        elif kind == "status":
            return content.get("execution_state") == "idle"
        return False

    def add_reply(self, content: dict[str, Any]) -> None:
        # Written by the kernel, which user code controls: take only well-formed values.
        extra = content.get(protocol.REPLY_KEY)
        extra = extra if isinstance(extra, dict) else {}
        final = extra.get(protocol.REPLY_FINAL)
        self.result.final = final if isinstance(final, str) else None
        finish = extra.get(protocol.REPLY_FINISH)
        self.result.finish = finish if isinstance(finish, str) and self.result.final else None
        dropped = extra.get(protocol.REPLY_OUTPUT_DROPPED)
        self.result.dropped_chars += dropped if isinstance(dropped, int) and dropped > 0 else 0
        restored = extra.get(protocol.REPLY_RESTORED)
        if isinstance(restored, list):
            self.result.restored_names = [name for name in restored if isinstance(name, str)]
        if content.get("status") == "error" and self.result.error is None:
            self._set_error(content)

    def _set_error(self, content: dict[str, Any]) -> None:
        traceback = content.get("traceback")
        lines = traceback if isinstance(traceback, list) else []
        self.result.error = ExecuteError(
            _text(content.get("ename")) or "Error",
            self._cap(strip_ansi(_text(content.get("evalue")))),
            self._cap(strip_ansi("\n".join(map(_text, lines)))),
        )

    def _cap(self, text: str) -> str:
        capped = CappedText(self._limit)
        capped.add(text)
        self.result.dropped_chars += capped.dropped
        return capped.text

    def finish(self) -> ExecuteResult:
        result = self.result
        result.stdout, result.stderr = self._stdout.text, self._stderr.text
        result.results = [r for r in result.results if r]
        result.dropped_chars += self._stdout.dropped + self._stderr.dropped + self._results.dropped
        return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _start_slots() -> asyncio.Semaphore:
    """The running loop's limit on kernels starting at once (a semaphore binds to a loop)."""
    loop = asyncio.get_running_loop()
    if (slots := _start_semaphores.get(loop)) is None:
        slots = _start_semaphores[loop] = asyncio.Semaphore(START_CONCURRENCY)
    return slots


@functools.cache
def _raise_fd_limit() -> None:
    """Each sandbox holds about 20 descriptors (sockets, ZMQ's event fds): the usual soft
    limit of 1024 ends at about 50 of them. Raise it to the hard limit, as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serialize(context: Context) -> tuple[str, str]:
    """The context as text, and the format the kernel decodes it with."""
    fmt = context_format(context)
    return (context if isinstance(context, str) else json.dumps(context)), fmt


def context_format(context: Context) -> str:
    if isinstance(context, str):
        return "text"
    if isinstance(context, list | dict):
        return "json"
    if isinstance(context, ContextFile):
        raise TypeError("a ContextFile is mounted when its sandbox starts, not loaded later")
    raise TypeError(f"context must be a str, list or dict, not {type(context).__name__}")
