"""RLMKernelApp: ipykernel's kernel process without the parts that slow every request.

- No shell-channel thread. ipykernel 7 reads shell requests on a thread of its own (for
  subshells, which no rlm host asks for) and hands each request to the main thread and its
  reply back: two thread switches per execute, a fifth of a short execute's time. Without
  it the main thread reads the shell socket itself, as in ipykernel 6; kernel_info then
  does not list "kernel subshells", and Jupyter front ends run without them.
- Replies straight onto the shell socket, which only the main thread uses. ZMQStream would
  queue each reply, arm a write handler and send it on a later turn of the loop, about a
  tenth of a short execute; it sends with the same call, and a ROUTER socket never blocks.
- Busy and idle sent from the main thread when no other IOPub message is on its way
  (`DirectIOPub`), not through a wake-up of the IOPub thread each.
- No DEBUG log records. The app's logger passes DEBUG to a handler that drops it: each
  execute built four records, one a dump of the whole request, only to throw them away.
"""

from __future__ import annotations

import logging
from typing import Any

from ipykernel.kernelapp import IPKernelApp

from rlm_kernel.iopub import DirectIOPub


class RLMKernelApp(IPKernelApp):
    def init_iopub(self, context: Any) -> None:
        super().init_iopub(context)
        self.direct_iopub = DirectIOPub(self.iopub_thread)

    def init_control(self, context: Any) -> None:
        super().init_control(context)
        self.shell_channel_thread = None

    def init_kernel(self) -> None:
        super().init_kernel()
        stream = self.kernel.shell_stream
        stream.send_multipart = stream.socket.send_multipart

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        shown = min((handler.level for handler in self.log.handlers), default=logging.WARNING)
        self.log.setLevel(max(self.log.level, shown))
