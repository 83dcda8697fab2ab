"""Resources: limits hold, and what one sandbox uses is not taken from the host or others."""

from __future__ import annotations

import ctypes

import pytest

from rlm.sandbox.limits import MiB, SandboxLimits
from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import QUICK, output, still_works

pytestmark = [pytest.mark.container, pytest.mark.security, pytest.mark.asyncio(loop_scope="module")]


@pytest.mark.rootless
async def test_inotify_is_refused_and_the_host_keeps_its_instances(box: Sandbox) -> None:
    """inotify instances are counted per host uid: one sandbox could take all 128."""
    result = await output(
        box,
        "got = []\nfor _ in range(200):\n    r = call('inotify_init1', 0)\n"
        "    if r != 'ok':\n        break\n    got.append(r)\nprint(len(got), r)",
    )
    assert result == "0 EPERM"
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    assert fd >= 0
    libc.close(fd)


@pytest.mark.rootless
async def test_fork_loop_stops_at_the_process_limit() -> None:
    async with Sandbox("x", limits=SandboxLimits(pids=32)) as sandbox:
        result = await sandbox.execute(
            "import os, time\nkids = 0\n"
            "try:\n    while kids < 500:\n        if os.fork() == 0:\n"
            "            time.sleep(20); os._exit(0)\n        kids += 1\n"
            "except OSError:\n    pass\nprint(kids)",
            timeout=60,
        )
        assert result.error is None and int(result.stdout) < 32
        await still_works(sandbox)


@pytest.mark.rootless
async def test_thread_bomb_is_bounded(box: Sandbox) -> None:
    result = await output(
        box,
        "import threading, time\nev = threading.Event(); n = 0\n"
        "try:\n    while n < 5000:\n"
        "        threading.Thread(target=ev.wait, daemon=True).start(); n += 1\n"
        "except RuntimeError:\n    pass\nev.set()\nprint(n)",
    )
    assert int(result) < 5000
    await still_works(box)


@pytest.mark.rootless
async def test_memory_hog_is_stopped() -> None:
    async with Sandbox("x", limits=SandboxLimits(memory_bytes=512 * MiB)) as sandbox:
        result = await sandbox.execute("hog = bytearray(2 * 1024**3)", timeout=60)
        assert result.error is not None
        assert result.restarted or result.error.name == "MemoryError"
        await still_works(sandbox)


@pytest.mark.rootless
async def test_runaway_loop_is_interrupted(box: Sandbox) -> None:
    result = await box.execute("while True:\n    pass", timeout=1.0)
    assert result.timed_out and not result.restarted
    await still_works(box)


@pytest.mark.rootless
async def test_loop_that_ignores_interrupts_gets_a_new_kernel() -> None:
    async with Sandbox("x", limits=QUICK) as sandbox:
        result = await sandbox.execute(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
            timeout=1.0,
        )
        assert result.timed_out and result.restarted
        await still_works(sandbox)
