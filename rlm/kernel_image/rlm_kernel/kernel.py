"""RLMKernel: ipykernel's IPython kernel plus rlm's namespace, output cap and reply fields."""

from __future__ import annotations

import os
import sys
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from rlm_kernel.runtime import Runtime


class OutputCap:
    """Stops forwarding stdout/stderr after `limit` characters per execute.

    Capping here, before the text is published, keeps a runaway print from flooding the
    ZMQ channel; the host caps again for data that bypasses sys.stdout (fd-level output).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0

    def reset(self) -> None:
        self.used = 0
        self.dropped = 0

    def wrap(self, stream: Any) -> None:
        original = stream.write

        def write(text: str) -> int:
            room = self.limit - self.used
            if len(text) > room:
                self.dropped += len(text) - max(room, 0)
                if room <= 0:
                    return len(text)
                original(text[:room])
                self.used = self.limit
                return len(text)
            self.used += len(text)
            return original(text)

        stream.write = write


class RLMKernel(IPythonKernel):
    implementation = "rlm"
    implementation_version = "1"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = Runtime.from_environment()
        self.runtime.install(self.shell.user_ns)
        self.output_cap = OutputCap(int(os.environ.get("RLM_OUTPUT_LIMIT", "100000")))
        for stream in (sys.stdout, sys.stderr):
            self.output_cap.wrap(stream)

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
        self.runtime.final = None
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
        # The host reads these from the execute_reply: no extra round trip per execute.
        reply["rlm"] = {
            "final": self.runtime.final,
            "output_dropped": self.output_cap.dropped,
            "restored": self.runtime.restore_reserved(),
        }
        return reply
