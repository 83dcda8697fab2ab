"""The adversarial suite: hostile code against the sandbox, each test asserting the hardened
outcome. Most tests share one sandbox per module (a probe that breaks it fails loudly in
the next test); those that restart or damage a kernel start their own.

Run it alone with `make test-security`; `-m rootless` is the part the rootless run repeats.
"""

from __future__ import annotations

import os
import platform
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.result import ExecuteResult
from rlm.sandbox.sandbox import Sandbox
from tests.conftest import RecordingHandler

ROOTFUL = os.getuid() == 0
# Short enough that tests which make a kernel ignore its interrupt finish quickly.
QUICK = SandboxLimits(interrupt_grace=1.0, start_timeout=30.0)

# Syscall numbers the C library has no wrapper for (keyutils lives in its own library).
SYSCALLS = {
    "x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250, "clone": 56},
    "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220},
}[platform.machine()]

# Kernel-side helper: `call(name, *args)` runs a raw syscall or a libc function and returns
# the errno name it failed with, or "ok".
PROBE = f"""
import ctypes, errno
_libc = ctypes.CDLL(None, use_errno=True)
_numbers = {SYSCALLS!r}
def call(name, *args):
    ctypes.set_errno(0)
    if name in _numbers:
        result = _libc.syscall(_numbers[name], *args)
    else:
        result = getattr(_libc, name)(*args)
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box() -> AsyncIterator[Sandbox]:
    async with Sandbox("the sandbox's own document", llm_handler=RecordingHandler()) as sandbox:
        setup = await sandbox.execute(PROBE)
        assert setup.ok, setup.error
        yield sandbox


async def run(sandbox: Sandbox, code: str, timeout: float | None = None) -> ExecuteResult:
    return await sandbox.execute(code, timeout=timeout)


async def output(sandbox: Sandbox, code: str) -> str:
    """stdout of `code`, which must succeed."""
    result = await sandbox.execute(code)
    assert result.error is None, result.error
    return result.stdout.strip()


async def still_works(sandbox: Sandbox) -> None:
    result = await sandbox.execute("print(6 * 7)")
    assert result.error is None and result.stdout == "42\n", result


@pytest.fixture
def quick_limits() -> SandboxLimits:
    return QUICK
