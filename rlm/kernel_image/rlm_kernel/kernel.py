"""RLMKernel: ipykernel's IPython kernel plus rlm's namespace, output caps and reply fields.

Execute requests that need no event loop are read, run and answered by `execute_now` from
the main thread's own reader of the shell socket (`ShellChannel`); ipykernel's dispatch
handles everything else.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from jupyter_client.session import protocol_version

from rlm_kernel import protocol
from rlm_kernel.caps import OutputCap, clip, clip_lines
from rlm_kernel.protocol import Env
from rlm_kernel.runtime import Runtime
from rlm_kernel.shell import RLMShell
from rlm_kernel.shell_channel import ShellChannel
from rlm_kernel.wire import Request, Wire, now


class _NoShellChannelThread:
    """Held in place of ipykernel 7's shell-channel thread when RLMKernelApp runs none.

    ipykernel tests the thread for truth everywhere but one place: a cell with top-level
    `await` reads `parent_thread` (the thread that runs cells) to route Ctrl-C to it.
    """

    parent_thread = threading.main_thread()

    def __bool__(self) -> bool:
        return False


class RLMKernel(IPythonKernel):
    implementation = "rlm"
    implementation_version = "1"
    shell_class = RLMShell

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.shell_channel_thread is None:  # started by RLMKernelApp
            self.shell_channel_thread = _NoShellChannelThread()
        self.runtime = Runtime.from_environment()
        self.runtime.install(self.shell.user_ns)
        self.shell.set_custom_exc((NameError,), self._explain_name_error)
        limit = os.environ.get(Env.OUTPUT_LIMIT, protocol.DEFAULT_OUTPUT_LIMIT)
        self.output_cap = OutputCap(int(limit))
        for stream in (sys.stdout, sys.stderr):
            self.output_cap.wrap(stream)
        # Results, displays and errors too: one over the host's message cap would cost the
        # host its connection to the kernel (and the kernel a restart).
        self.output_cap.wrap_display(self.shell.display_pub, "publish")
        self.output_cap.wrap_display(self.shell.displayhook, "write_format_data")
        show_traceback = self.shell._showtraceback
        self.shell._showtraceback = lambda etype, evalue, stb: show_traceback(
            etype, clip(str(evalue), self.output_cap.limit), clip_lines(stb, self.output_cap.limit)
        )
        # ipykernel sleeps 0.5 ms per execute so output "makes it to the clients"; our host
        # waits for the idle status, which follows all output on the same socket.
        self._execute_sleep = 0.0
        # rlm's own host never shows the code back; Jupyter front ends want it echoed.
        self.echo_input = os.environ.get(Env.ECHO_INPUT, "1") != "0"
        self._told_restored = False
        self._shell_channel: ShellChannel | None = None

    @property
    def _supports_kernel_subshells(self) -> bool:
        return bool(self.shell_channel_thread)

    def _explain_name_error(
        self, shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
    ) -> Any:
        """Add the REPL's names and the user's variables to an unknown name's NameError."""
        missing = getattr(value, "name", None)
        if missing is not None and value.args:  # raised by Python, not by FINAL_VAR
            value.args = (f"{value.args[0]}{self.runtime.name_hint(missing)}", *value.args[1:])
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    def _publish_execute_input(self, code: str, parent: Any, execution_count: int) -> None:
        if self.echo_input:
            super()._publish_execute_input(code, parent, execution_count)

    def start(self) -> None:
        super().start()
        if not self.shell_channel_thread:  # RLMKernelApp: the main thread reads the shell
            self._wire = Wire(self.session, protocol_version)
            self._status_topic = self._topic("status")
            direct = getattr(self.parent, "direct_iopub", None)  # RLMKernelApp's
            self._send_iopub = direct.send if direct else self.iopub_socket.send_multipart
            self._shell_channel = ShellChannel(self, self._wire)
            self._shell_channel.start()

    # --- execute requests handled by ShellChannel, with no task and no Session ---------

    def execute_now(self, request: Request, parent: dict[str, Any]) -> None:
        """Run an execute request whose code runs synchronously, and answer it.

        The same steps as ipykernel's dispatch_shell and execute_request, in one call.
        """
        wire, idents = self._wire, request.idents
        self.set_parent(idents, parent, channel="shell")
        self._send_status(b"busy", request.raw_header)
        started = now()
        try:
            content = parent["content"]
            silent = bool(content.get("silent", False))
            if not silent:
                self.execution_count += 1
                self._publish_execute_input(content["code"], parent, self.execution_count)
            self.pre_handler_hook()
            try:
                reply = self._run_cell_now(
                    content["code"],
                    silent,
                    content.get("store_history", not silent),
                    content.get("user_expressions") or {},
                    bool(content.get("allow_stdin", False)),
                    parent["metadata"].get("cellId"),
                )
            finally:
                self.post_handler_hook()
            if sys.stdout is not None:
                sys.stdout.flush()
            if sys.stderr is not None:
                sys.stderr.flush()
            metadata = {
                "started": started,
                "dependencies_met": True,
                "engine": self.ident,
                "status": reply["status"],
            }
            if reply["status"] == "error" and not silent and content.get("stop_on_error", True):
                # Before the reply goes out: what is queued now was sent without knowing
                # of the failure, and is aborted.
                self._shell_channel.hold_waiting()
            self.shell_stream.send_multipart(
                wire.encode(
                    "execute_reply",
                    wire.pack(reply),
                    request.raw_header,
                    wire.pack(metadata),
                    idents,
                )
            )
        except Exception:
            self.log.error("Exception in execute request:", exc_info=True)
        except KeyboardInterrupt:  # an interrupt between cells must not end the kernel
            self.log.error("KeyboardInterrupt caught in kernel.")
        finally:
            self._send_status(b"idle", request.raw_header)

    def _abort_queues(self, subshell_id: str | None = None) -> None:
        """After a failed cell that ipykernel ran itself (top-level `await`): its own way
        flushes the shell stream, which would drop the requests ShellChannel has yet to
        read. Hold those instead (ShellChannel aborts the execute requests among them
        once this request is finished, as for the cells it runs itself); the ones already
        passed on wait for the lock that runs cells, and see `_aborting` until a task
        queued on that lock behind them clears it, as ipykernel 7 does with a message."""
        if self._shell_channel is None:
            super()._abort_queues(subshell_id)
            return
        self._aborting = True
        self._shell_channel.hold_waiting()
        self._stopping_abort = asyncio.ensure_future(self._stop_aborting_in_turn())

    async def _stop_aborting_in_turn(self) -> None:
        async with self._main_asyncio_lock:
            self._aborting = False

    def abort_now(self, request: Request) -> None:
        """Answer an execute request queued behind a cell that failed (stop_on_error)."""
        parent = request.message({}, {})
        self.set_parent(request.idents, parent, channel="shell")
        self._send_status(b"busy", request.raw_header)
        try:
            self._send_abort_reply(self.shell_stream, parent, request.idents)
        finally:
            self._send_status(b"idle", request.raw_header)

    def _send_status(self, state: bytes, parent_header: bytes) -> None:
        self._send_iopub(
            self._wire.encode(
                "status",
                b'{"execution_state": "%s"}' % state,
                parent_header,
                idents=self._status_topic,
            )
        )

    def _run_cell_now(
        self,
        code: str,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, Any],
        allow_stdin: bool,
        cell_id: str | None,
    ) -> dict[str, Any]:
        """IPythonKernel.do_execute for a cell with no top-level `await`, without its
        coroutine and its per-call look at run_cell's signature."""
        self._before_cell()
        shell = self.shell
        self._forward_input(allow_stdin)
        try:
            result = shell.run_cell(
                code, store_history=store_history, silent=silent, cell_id=cell_id
            )
        finally:
            self._restore_input()
        reply: dict[str, Any] = {}
        error = result.error_before_exec
        if error is None:
            error = result.error_in_exec
        if result.success and not getattr(shell, "_last_traceback_during_displayhook", False):
            reply["status"] = "ok"
        else:
            reply.update(
                status="error",
                traceback=shell._last_traceback or [],
                ename=type(error).__name__,
                evalue=str(error),
                engine_info={
                    "engine_uuid": self.ident,
                    "engine_id": self.int_id,
                    "method": "execute",
                },
            )
        reply["execution_count"] = shell.execution_count - 1
        ok = reply["status"] == "ok"
        reply["user_expressions"] = shell.user_expressions(user_expressions) if ok else {}
        reply["payload"] = shell.payload_manager.read_payload()
        shell.payload_manager.clear_payload()
        return self._after_cell(reply)

    # --- what rlm adds to every execute, on either path ----------------------------------

    def _before_cell(self) -> None:
        self.runtime.final = self.runtime.finish = None
        self.output_cap.reset()
        self.shell.forget_transform()

    def _after_cell(self, reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("status") == "ok":  # not from a block that failed after setting it
            self.runtime.check_answer_dict()
        if "evalue" in reply:
            reply["evalue"] = clip(str(reply["evalue"]), self.output_cap.limit)
        restored = self.runtime.restore_reserved()
        if restored and self.echo_input and not self._told_restored:
            # A notebook's author would otherwise see the assignment silently undone; rlm's
            # own host (no echo) reads the names from the reply and tells its model.
            self._told_restored = True
            print(
                f"rlm: reserved name(s) restored: {', '.join(restored)}. Rebinding them is "
                "undone after each cell; to replace CONTEXT, call set_context(value). "
                "(Said once.)",
                file=sys.stderr,
            )
        # The host reads these from the execute_reply: no extra round trip per execute.
        reply[protocol.REPLY_KEY] = {
            protocol.REPLY_FINAL: self.runtime.final,
            protocol.REPLY_FINISH: self.runtime.finish,
            protocol.REPLY_OUTPUT_DROPPED: self.output_cap.dropped,
            protocol.REPLY_RESTORED: restored,
        }
        return reply

    async def do_execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        """Cells with top-level `await`, which ipykernel's own dispatch runs."""
        self._before_cell()
        reply = await super().do_execute(
            code,
            silent,
            store_history,
            user_expressions,
            allow_stdin,
            cell_meta=cell_meta,
            cell_id=cell_id,
        )
        return self._after_cell(reply)

    def rlm_load_context(self, token: str) -> None:
        """protocol.LOAD_CONTEXT: replace CONTEXT with the one the host offers (pooled kernels)."""
        self.runtime.load_offered_context(token)
