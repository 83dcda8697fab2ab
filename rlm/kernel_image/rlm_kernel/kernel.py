"""RLMKernel: ipykernel's IPython kernel plus rlm's namespace, output caps and reply fields."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from rlm_kernel import protocol
from rlm_kernel.caps import OutputCap, clip, clip_lines
from rlm_kernel.protocol import Env
from rlm_kernel.runtime import Runtime
from rlm_kernel.shell import RLMShell


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
        self.runtime.final = self.runtime.finish = None
        self.output_cap.reset()
        self.shell.forget_transform()
        reply = await super().do_execute(
            code,
            silent,
            store_history,
            user_expressions,
            allow_stdin,
            cell_meta=cell_meta,
            cell_id=cell_id,
        )
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

    def rlm_load_context(self, path: str, fmt: str) -> None:
        """protocol.LOAD_CONTEXT: replace CONTEXT from a file the host wrote (pooled kernels)."""
        self.runtime.load_context_file(path, fmt)
