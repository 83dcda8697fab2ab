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
    frames = kernel.pack(message)
    assert host.unpack(frames) == message
    with pytest.raises(ValueError, match="replayed"):
        host.unpack(frames)
    with pytest.raises(ValueError, match="invalid signature"):
        host.unpack(protocol.Signer(b"other").pack(message))
    assert kernel.unpack(host.pack({"re": "1", "status": "ok"})) == {"re": "1", "status": "ok"}


def test_callback_config_round_trips() -> None:
    config = protocol.CallbackConfig("abc", 1024, 10)
    assert protocol.CallbackConfig.from_json(config.to_json()) == config


def test_the_kernel_has_the_declared_entry_point(kernel_package: ModuleType) -> None:
    kernel = importlib.import_module("rlm_kernel.kernel")
    assert callable(getattr(kernel.RLMKernel, protocol.LOAD_CONTEXT))
    with pytest.raises(ValueError, match="unknown context format"):
        protocol.load_context_code("/x", "pickle")
