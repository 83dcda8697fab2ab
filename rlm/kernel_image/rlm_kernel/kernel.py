"""RLMKernel: ipykernel's IPython kernel plus rlm's namespace, output cap and reply fields."""

from __future__ import annotations

import os
import sys
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from rlm_kernel import protocol
from rlm_kernel.protocol import Env
from rlm_kernel.runtime import Runtime


class OutputCap:
    """Stops forwarding stdout/stderr after `limit` characters per execute.

    Capping here, before the text is published, keeps a runaway print from flooding the
    ZMQ channel; the host caps again for anything that slips past. It also skips flushes
    of streams nothing was written to: each flush is a round trip to ipykernel's IO
    thread, and an execute flushes both streams twice.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0

    def reset(self) -> None:
        self.used = 0
        self.dropped = 0

    def wrap(self, stream: Any) -> None:
        original_write, original_flush = stream.write, stream.flush
        dirty = False

        def write(text: str) -> int:
            nonlocal dirty
            room = self.limit - self.used
            if len(text) > room:
                self.dropped += len(text) - max(room, 0)
                if room > 0:
                    dirty = True
                    original_write(text[:room])
                    self.used = self.limit
                return len(text)
            self.used += len(text)
            dirty = True
            return original_write(text)

        def flush(*args: Any) -> None:
            nonlocal dirty
            if dirty:
                dirty = False
                original_flush(*args)

        stream.write = write
        stream.flush = flush


class RLMKernel(IPythonKernel):
    implementation = "rlm"
    implementation_version = "1"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = Runtime.from_environment()
        self.runtime.install(self.shell.user_ns)
        self.shell.set_custom_exc((NameError,), self._explain_name_error)
        limit = os.environ.get(Env.OUTPUT_LIMIT, protocol.DEFAULT_OUTPUT_LIMIT)
        self.output_cap = OutputCap(int(limit))
        for stream in (sys.stdout, sys.stderr):
            self.output_cap.wrap(stream)
        # ipykernel sleeps 0.5 ms per execute so output "makes it to the clients"; our host
        # waits for the idle status, which follows all output on the same socket.
        self._execute_sleep = 0.0
        # rlm's own host never shows the code back; Jupyter front ends want it echoed.
        self.echo_input = os.environ.get(Env.ECHO_INPUT, "1") != "0"

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
        # The host reads these from the execute_reply: no extra round trip per execute.
        reply[protocol.REPLY_KEY] = {
            protocol.REPLY_FINAL: self.runtime.final,
            protocol.REPLY_FINISH: self.runtime.finish,
            protocol.REPLY_OUTPUT_DROPPED: self.output_cap.dropped,
            protocol.REPLY_RESTORED: self.runtime.restore_reserved(),
        }
        return reply

    def rlm_load_context(self, path: str, fmt: str) -> None:
        """protocol.LOAD_CONTEXT: replace CONTEXT from a file the host wrote (pooled kernels)."""
        self.runtime.load_context_file(path, fmt)
