"""The host's Jupyter channels to one kernel, which is untrusted.

- Every socket comes from one ZMQ context whose options bound what the kernel can do to
  the host: a message over JUPYTER_MAX_MESSAGE_BYTES is refused before it is buffered
  (at the price of its connection, which ZMQ does not re-establish), and a send that
  cannot be queued fails at once instead of blocking the event loop (jupyter_client's
  Session sends synchronously, and a dropped connection would block it for good).
- libzmq bounds one frame but not a message's frame count or total size, and buffers a
  message whole: every socket (the manager's control socket too) reaches the kernel
  through a relay (rlm.sandbox.relay) that drops the connection when a message from the
  kernel exceeds MAX_MESSAGE_FRAMES or MAX_MESSAGE_TOTAL, and a small receive high-water
  mark bounds how many whole messages wait unread (stdin's are never read).
- A socket monitor notices a dropped connection, and the relay reports a bound it had to
  enforce on any channel: `lost` then tells the Sandbox, which treats it like a dead
  kernel (restart it, then `open` new channels).
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
from rlm.sandbox.provisioning import RlmProvisioner
from rlm.sandbox.relay import KernelRelay

log = logging.getLogger(__name__)

# A Jupyter message is its identities, a delimiter, a signature, four dicts and any
# buffers: a kernel of ours sends seven or eight frames, comms with buffers a few more.
MAX_MESSAGE_FRAMES = 1024
# One frame may use all of the per-frame cap; the header, metadata, identities and
# signature around it take far less than the extra MiB.
MAX_MESSAGE_TOTAL = JUPYTER_MAX_MESSAGE_BYTES + 1024**2
# Whole messages a host socket holds unread: each can be MAX_MESSAGE_TOTAL, and stdin's
# are never read. The reader keeps up with iopub; a backlog waits in the kernel instead.
RECEIVE_HWM = 4


def make_context() -> zmq.asyncio.Context:
    """The context for the kernel manager and its clients."""
    context = zmq.asyncio.Context()
    # The kernel's sockets appear only once it is up; ZMQ retries connecting every 100 ms
    # by default, which would add up to that much to every start.
    context.setsockopt(zmq.RECONNECT_IVL, 5)
    context.setsockopt(zmq.MAXMSGSIZE, JUPYTER_MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.SNDTIMEO, 0)
    context.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
    return context


class RelayedKernelManager(AsyncKernelManager):  # type: ignore[misc]
    """A kernel manager whose own control socket and its clients' sockets reach the
    kernel through a KernelRelay listening in the host's part of the run directory.

    Only rlm's Sandbox uses it: kernels that Jupyter tools start through the provisioner
    keep jupyter_client's direct connections.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.relay: KernelRelay | None = None

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        # The ports are known now, and the control socket connects next.
        provisioner = self.provisioner
        assert isinstance(provisioner, RlmProvisioner) and self.transport == "ipc"
        if self.relay is None:
            # Outside the kernel's part of the run directory: only the host can reach it.
            prefix = provisioner.layout.path / "relay"
            self.relay = KernelRelay(prefix, MAX_MESSAGE_FRAMES, MAX_MESSAGE_TOTAL)
        ports = [self.shell_port, self.iopub_port, self.stdin_port, self.hb_port]
        await self.relay.serve(self.ip, [*ports, self.control_port])
        await super()._async_post_start_kernel(**kw)

    def _make_url(self, channel: str) -> str:
        if self.relay is None:
            raise RuntimeError("the kernel's relay is not running")
        return f"ipc://{self.relay.prefix}-{getattr(self, f'{channel}_port')}"

    def client(self, **kwargs: Any) -> AsyncKernelClient:
        if self.relay is None:
            raise RuntimeError("the kernel's relay is not running")
        return super().client(ip=str(self.relay.prefix), **kwargs)

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        await self.suspend_relay()
        await super()._async_kill_kernel(restart=restart)

    async def suspend_relay(self) -> None:
        """Call before the kernel is killed: no connection reaches it from then on, and
        the host's reconnects wait for the next kernel."""
        if self.relay is not None:
            await self.relay.suspend()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await self.suspend_relay()
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            if not restart:
                await self.close_relay()

    cleanup_resources = _async_cleanup_resources

    async def close_relay(self) -> None:
        """Stop relaying (safe to call twice): a cleanup that failed part way calls it."""
        if self.relay is not None:
            await self.relay.close()
            self.relay = None


class KernelChannels:
    """The shell and iopub channels of one kernel, watched for a lost connection."""

    def __init__(self, context: zmq.asyncio.Context) -> None:
        self._context = context
        self._client: AsyncKernelClient | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._monitored: list[tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]] = []
        self._lost = False
        self._relay: KernelRelay | None = None
        self._relay_broken = 0
        self.dropped = 0

    @property
    def client(self) -> AsyncKernelClient:
        if self._client is None:
            raise RuntimeError("the channels are not open")
        return self._client

    @property
    def lost(self) -> bool:
        """Whether a connection dropped: what the kernel sends may no longer arrive."""
        relay = self._relay
        return self._lost or (relay is not None and relay.broken > self._relay_broken)

    async def open(self, manager: RelayedKernelManager) -> AsyncKernelClient:
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
        self._relay = manager.relay
        self._relay_broken = manager.relay.broken if manager.relay else 0
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
