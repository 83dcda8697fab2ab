"""The host-kernel contract: one module, loaded by the kernel as `rlm_kernel.protocol`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
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
