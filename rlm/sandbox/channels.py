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
from hmac import compare_digest
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client import AsyncKernelManager
from jupyter_client.session import Session
from traitlets import default
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
SOCKET_TYPES = {"shell": zmq.DEALER, "iopub": zmq.SUB, "stdin": zmq.DEALER}
# Plain ints: pyzmq resolves `socket.EVENTS` and its enum flags anew on every use.
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)


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

    @default("session")
    def _session_default(self) -> Session:
        return LeanSession(parent=self)

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

    def channel_url(self, channel: str) -> str:
        """Where the host connects to `channel`: the relay's end, not the kernel's."""
        if self.relay is None:
            raise RuntimeError("the kernel's relay is not running")
        return f"ipc://{self.relay.prefix}-{getattr(self, f'{channel}_port')}"

    _make_url = channel_url  # what jupyter_client connects the manager's control socket to

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


class LeanSession(Session):  # type: ignore[misc]
    """jupyter_client's Session, minus what our host never reads on a received message.

    `deserialize` still checks the signature and refuses a replayed one, but leaves the
    header's dates as the strings they arrived as (Session parses them with dateutil,
    about a sixth of the host's CPU per execute) and skips the adapter, which rewrites
    only messages of protocol versions before 5.
    """

    def deserialize(
        self, msg_list: list[bytes], content: bool = True, copy: bool = True
    ) -> dict[str, Any]:
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self.digest_history:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            if not compare_digest(signature, self.sign(msg_list[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
            self._add_digest(signature)
        if len(msg_list) < 5:
            raise TypeError("malformed message, must have at least 5 elements")
        unpack = self.unpack
        header = unpack(msg_list[1])
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": unpack(msg_list[2]),
            "metadata": unpack(msg_list[3]),
            "content": unpack(msg_list[4]) if content else msg_list[4],
            "buffers": [memoryview(b) for b in msg_list[5:]],
        }


class _Inbox:
    """One channel's socket, read straight off its ZMQ file descriptor.

    zmq.asyncio arms a reader, a future and a timer for every receive; here the reader is
    armed once, and a receive that finds a message waiting takes it without a turn of the
    event loop. Messages stay in ZMQ until they are read, so the receive high-water mark
    still bounds what waits unread.
    """

    def __init__(self, socket: zmq.Socket[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.socket = socket
        self._loop = loop
        self._waiter: asyncio.Future[bool] | None = None
        self._fd = socket.FD
        loop.add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        # ZMQ's descriptor signals a change of state, not a message: reading EVENTS clears
        # it (a level-triggered poll would otherwise spin) and says whether one is waiting.
        ready, waiter = self.socket.get(_EVENTS) & _POLLIN, self._waiter
        if ready and waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def receive(self, deadline: float) -> list[bytes] | None:
        """The next message's frames; None at the loop time `deadline`."""
        socket, loop = self.socket, self._loop
        while True:
            if socket.get(_EVENTS) & _POLLIN:  # cheaper than a receive that fails
                return socket.recv_multipart(_NOBLOCK)
            if deadline <= loop.time():
                return None
            self._waiter = waiter = loop.create_future()
            timer = loop.call_at(deadline, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self.socket.close(linger=0)


def _settle(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class KernelChannels:
    """The shell, iopub and stdin channels of one kernel, watched for a lost connection.

    Our own small client instead of jupyter_client's AsyncKernelClient: the host's share
    of a warm execute was mostly that client's receive path (see README, "Where the time
    goes: the host's share of an execute"). Stdin is connected, never read: the kernel's
    ROUTER drops what it addresses to a peer that is not there, and the relay bounds what
    it sends.
    """

    def __init__(self, context: zmq.asyncio.Context) -> None:
        self._context = context
        self._session: Session | None = None
        self._inboxes: dict[str, _Inbox] = {}
        self._stdin: zmq.Socket[bytes] | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._monitored: list[tuple[zmq.Socket[bytes], zmq.asyncio.Socket]] = []
        self._lost = False
        self._relay: KernelRelay | None = None
        self._relay_broken = 0
        self.dropped = 0

    @property
    def lost(self) -> bool:
        """Whether a connection dropped: what the kernel sends may no longer arrive."""
        relay = self._relay
        return self._lost or (relay is not None and relay.broken > self._relay_broken)

    async def open(self, manager: RelayedKernelManager) -> None:
        """(Re)connect to the kernel `manager` runs; replaces any channels open before."""
        await self.close()
        loop = asyncio.get_running_loop()
        self._session = session = manager.session
        for channel in ("shell", "iopub"):
            socket = self._connect(manager, channel, session.bsession)
            monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._monitored.append((socket, monitor))
            self._watchers.append(asyncio.create_task(self._watch(monitor)))
            self._inboxes[channel] = _Inbox(socket, loop)
        # The same identity as the shell's: the kernel addresses stdin by the shell's.
        self._stdin = self._connect(manager, "stdin", session.bsession)
        self._lost = False
        self._relay = manager.relay
        self._relay_broken = manager.relay.broken if manager.relay else 0

    def _connect(self, manager: RelayedKernelManager, channel: str, identity: bytes) -> Any:
        socket: zmq.Socket[bytes] = zmq.Socket(self._context, SOCKET_TYPES[channel])
        socket.linger = 0
        socket.identity = identity
        if channel == "iopub":
            socket.subscribe(b"")
        socket.connect(manager.channel_url(channel))
        return socket

    def kernel_info(self) -> str:
        return self._send("kernel_info_request", {})

    def execute(self, code: str) -> str:
        """Send an execute_request; its msg_id. Raises zmq.ZMQError if it cannot be queued."""
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        return self._send("execute_request", content)

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        session, inbox = self._session, self._inboxes.get("shell")
        if session is None or inbox is None:
            raise RuntimeError("the channels are not open")
        msg = session.msg(msg_type, content)
        inbox.socket.send_multipart(session.serialize(msg))
        return str(msg["msg_id"])

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._lost = True

    async def receive(self, channel: str, timeout: float) -> dict[str, Any] | None:
        """The next well-formed message on 'shell' or 'iopub'; None if none came in time."""
        inbox, session = self._inboxes.get(channel), self._session
        if inbox is None or session is None:
            raise RuntimeError("the channels are not open")
        deadline = asyncio.get_running_loop().time() + timeout
        while (frames := await inbox.receive(deadline)) is not None:
            try:
                _, frames = session.feed_identities(frames)
                msg = session.deserialize(frames)
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
        for inbox in self._inboxes.values():
            inbox.close()
        self._inboxes.clear()
        if self._stdin is not None:
            self._stdin.close(linger=0)
            self._stdin = None
        self._session = None


def _well_formed(msg: Any) -> bool:
    return (
        isinstance(msg, dict)
        and isinstance(msg.get("msg_type"), str)
        and isinstance(msg.get("parent_header"), dict)
        and isinstance(msg.get("content"), dict)
    )
