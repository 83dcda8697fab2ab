"""The host's Jupyter channels to one kernel, which is untrusted.

- Every socket comes from one ZMQ context whose options bound what the kernel can do to
  the host: a message over JUPYTER_MAX_MESSAGE_BYTES is refused before it is buffered
  (at the price of its connection, which ZMQ does not re-establish), and a send that
  cannot be queued fails at once instead of blocking the event loop (jupyter_client's
  Session sends synchronously, and a dropped connection would block it for good).
- A socket monitor notices a dropped connection: `lost` then tells the Sandbox, which
  treats it like a dead kernel (restart it, then `open` new channels).
- Messages that do not parse, or whose fields have the wrong types, are dropped and
  counted, never raised: the kernel's own key is readable inside, so anything can arrive
  signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from zmq.utils.monitor import parse_monitor_message

from rlm.kernel_image.rlm_kernel.protocol import JUPYTER_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


def make_context() -> zmq.asyncio.Context:
    """The context for the kernel manager and its clients."""
    context = zmq.asyncio.Context()
    # The kernel's sockets appear only once it is up; ZMQ retries connecting every 100 ms
    # by default, which would add up to that much to every start.
    context.setsockopt(zmq.RECONNECT_IVL, 5)
    context.setsockopt(zmq.MAXMSGSIZE, JUPYTER_MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.SNDTIMEO, 0)
    return context


class KernelChannels:
    """The shell and iopub channels of one kernel, watched for a lost connection."""

    def __init__(self, context: zmq.asyncio.Context) -> None:
        self._context = context
        self._client: AsyncKernelClient | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._monitored: list[tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]] = []
        self._lost = False
        self.dropped = 0

    @property
    def client(self) -> AsyncKernelClient:
        if self._client is None:
            raise RuntimeError("the channels are not open")
        return self._client

    @property
    def lost(self) -> bool:
        """Whether a connection dropped: what the kernel sends may no longer arrive."""
        return self._lost

    async def open(self, manager: AsyncKernelManager) -> AsyncKernelClient:
        """(Re)connect to the kernel `manager` runs; replaces any channels open before."""
        await self.close()
        client = manager.client(context=self._context)
        client.start_channels()
        for channel in (client.shell_channel, client.iopub_channel):
            socket = channel.socket
            monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._monitored.append((socket, monitor))
            self._watchers.append(asyncio.create_task(self._watch(monitor)))
        self._lost = False
        self._client = client
        return client

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._lost = True

    async def receive(self, channel: str, timeout: float) -> dict[str, Any] | None:
        """The next well-formed message on 'shell' or 'iopub'; None if none came in time."""
        get = self.client.get_iopub_msg if channel == "iopub" else self.client.get_shell_msg
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await get(timeout=remaining)
            except Empty:
                return None
            except Exception as exc:  # junk frames, a bad signature, broken JSON
                self._drop(channel, exc)
                continue
            if _well_formed(msg):
                return msg
            self._drop(channel, "fields of the wrong type")
        return None

    def _drop(self, channel: str, why: object) -> None:
        self.dropped += 1
        log.debug("dropped a malformed %s message from the kernel: %.200s", channel, why)

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        for socket, monitor in self._monitored:
            with contextlib.suppress(zmq.ZMQError):
                socket.disable_monitor()
            monitor.close(linger=0)
        self._monitored.clear()
        if self._client is not None:
            self._client.stop_channels()
            self._client = None


def _well_formed(msg: Any) -> bool:
    return (
        isinstance(msg, dict)
        and isinstance(msg.get("msg_type"), str)
        and isinstance(msg.get("parent_header"), dict)
        and isinstance(msg.get("content"), dict)
    )
