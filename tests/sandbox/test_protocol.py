"""The host-kernel contract: one module, loaded by the kernel as `rlm_kernel.protocol`."""

from __future__ import annotations

import fcntl
import importlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rlm.kernel_image import RUNTIME_DIR
from rlm.kernel_image.rlm_kernel import protocol


@pytest.fixture
def kernel_package() -> Iterator[ModuleType]:
    """The kernel tree imported the way the kernel imports it (ipykernel is on the host)."""
    sys.path.insert(0, str(RUNTIME_DIR))
    try:
        yield importlib.import_module("rlm_kernel")
    finally:
        sys.path.remove(str(RUNTIME_DIR))
        for name in [n for n in sys.modules if n == "rlm_kernel" or n.startswith("rlm_kernel.")]:
            del sys.modules[name]


def test_messages_signed_by_one_side_verify_on_the_other(kernel_package: ModuleType) -> None:
    kernel_protocol = importlib.import_module("rlm_kernel.protocol")
    host, kernel = protocol.Signer(b"k"), kernel_protocol.Signer(b"k")
    message = {"id": "1", "type": protocol.LLM_QUERY, "prompt": "p", "model": None}
    host_reader, kernel_reader = protocol.FrameReader(1024), kernel_protocol.FrameReader()
    host_reader.feed(kernel.pack(message) * 2)
    assert host.unpack(host_reader.next()) == message
    with pytest.raises(ValueError, match="replayed"):
        host.unpack(host_reader.next())
    host_reader.feed(protocol.Signer(b"other").pack(message))
    with pytest.raises(ValueError, match="invalid signature"):
        host.unpack(host_reader.next())
    kernel_reader.feed(host.pack({"re": "1", "status": "ok"}))
    assert kernel.unpack(kernel_reader.next()) == {"re": "1", "status": "ok"}


def test_frames_are_split_wherever_the_reads_end() -> None:
    signer, reader = protocol.Signer(b"k"), protocol.FrameReader(1024)
    stream = b"".join(signer.pack({"id": str(i)}) for i in range(3))
    bodies = []
    for offset in range(0, len(stream), 7):  # reads that end mid-header and mid-body
        reader.feed(stream[offset : offset + 7])
        while (body := reader.next()) is not None:
            bodies.append(body)
    assert [protocol.Signer(b"k").unpack(b)["id"] for b in bodies] == ["0", "1", "2"]
    assert reader.buffered == 0


def test_a_frame_over_the_limit_is_refused_on_its_header() -> None:
    reader = protocol.FrameReader(1024)
    reader.feed(protocol.FRAME_HEADER.pack(1025))  # no body sent: none is waited for
    with pytest.raises(protocol.BadFrame, match="1,025 bytes"):
        reader.next()
    short = protocol.FrameReader(1024)
    short.feed(protocol.FRAME_HEADER.pack(protocol.SIGNATURE_BYTES - 1))
    with pytest.raises(protocol.BadFrame):
        short.next()


def test_callback_config_round_trips() -> None:
    config = protocol.CallbackConfig("abc", 1024, 10)
    assert protocol.CallbackConfig.from_json(config.to_json()) == config


def test_the_kernel_has_the_declared_entry_point(kernel_package: ModuleType) -> None:
    kernel = importlib.import_module("rlm_kernel.kernel")
    assert callable(getattr(kernel.RLMKernel, protocol.LOAD_CONTEXT))
    assert protocol.load_context_code("t0k'en") == (
        f'get_ipython().kernel.{protocol.LOAD_CONTEXT}("t0k\'en")'
    )


def _fake_host(path: Path, key: str, answer: bool) -> threading.Thread:
    """A host that takes one request and answers it with a pipe's read end attached, or
    never answers."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def serve() -> None:
        kernel_protocol = importlib.import_module("rlm_kernel.protocol")
        connection, _ = listener.accept()
        reader = kernel_protocol.FrameReader()
        while (body := reader.next()) is None:
            reader.feed(connection.recv(1 << 16))
        request = kernel_protocol.Signer(key.encode()).unpack(body)
        if answer:
            read_end, write_end = os.pipe()
            os.write(write_end, b"attached")
            reply = {"status": "ok", "format": "text", "re": request["id"]}
            socket.send_fds(
                connection, [kernel_protocol.Signer(key.encode()).pack(reply)], [read_end]
            )
            os.close(read_end)
            os.close(write_end)
        else:
            time.sleep(3)
        connection.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_descriptor_comes_with_its_reply_closed_on_exec(
    kernel_package: ModuleType, tmp_path: Path
) -> None:
    callback = importlib.import_module("rlm_kernel.callback")
    config = protocol.CallbackConfig("k" * 64, 1 << 20, 8)
    host = _fake_host(tmp_path / "callback", config.key, answer=True)
    client = callback.CallbackClient(str(tmp_path / "callback"), config, timeout=10.0)
    reply, fd = client.call_for_fd(protocol.CONTEXT_FD, {"token": "t"})
    try:
        assert reply["format"] == "text" and fd is not None
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.read(fd, 100) == b"attached"
    finally:
        os.close(fd)
    host.join(10)


def test_a_request_for_a_descriptor_waits_out_its_timeout_once(
    kernel_package: ModuleType, tmp_path: Path
) -> None:
    callback = importlib.import_module("rlm_kernel.callback")
    config = protocol.CallbackConfig("k" * 64, 1 << 20, 8)
    _fake_host(tmp_path / "callback", config.key, answer=False)
    client = callback.CallbackClient(str(tmp_path / "callback"), config, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(callback.LLMQueryError, match="no answer from the host in 1 s"):
        client.call_for_fd(protocol.CONTEXT_FD, {"token": "t"})
    # Twice the timeout when the receive ignored MSG_DONTWAIT (socket.recv_fds drops flags).
    assert time.monotonic() - started < 1.9
