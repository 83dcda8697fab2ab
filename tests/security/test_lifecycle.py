"""Lifecycle: cancelled, killed and closed sandboxes leave nothing behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from rlm.errors import SandboxError
from rlm.sandbox.engine import get_engine
from rlm.sandbox.rundir import OWNER_LABEL, base_dir, owner_id, sweep_run_dirs
from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import QUICK, still_works

pytestmark = [pytest.mark.security]


def _ours() -> tuple[set[Path], set[str]]:
    containers = get_engine().client.containers.list(
        all=True, sparse=True, filters={"label": f"{OWNER_LABEL}={owner_id()}"}
    )
    # Other processes of this uid share the base directory: only this one's count.
    return set(base_dir().glob(f"r{os.getpid()}-*")), {c.id for c in containers}


@pytest.mark.container
@pytest.mark.rootless
async def test_cancelled_starts_leave_no_run_directory_or_container() -> None:
    before_dirs, before_containers = _ours()
    for delay_ms in range(0, 70, 7):
        start = asyncio.ensure_future(Sandbox("x").start())
        await asyncio.sleep(delay_ms / 1000)
        start.cancel()
        try:
            box = await start
        except asyncio.CancelledError:
            continue
        await box.close()  # it won the race: a started sandbox is closed the normal way
    # Closing waits for the engine calls a cancelled start left running: nothing is left
    # once the cancelled caller has returned.
    dirs, containers = _ours()
    assert dirs - before_dirs == set()
    assert containers - before_containers == set()


@pytest.mark.container
@pytest.mark.rootless
async def test_kernel_that_kills_itself_is_rebuilt() -> None:
    async with Sandbox("x", limits=QUICK) as box:
        result = await box.execute("import os; os._exit(9)")
        assert result.restarted and result.error is not None
        await still_works(box)


@pytest.mark.container
@pytest.mark.rootless
async def test_closed_sandbox_refuses_work_and_closes_twice() -> None:
    box = await Sandbox("x").start()
    await box.close()
    await box.close()
    with pytest.raises(SandboxError):
        await box.execute("print(1)")


@pytest.mark.rootless
def test_run_directory_without_an_owner_file_is_swept() -> None:
    """What an engine recreates after a cancelled start: the bind source, but no owner."""
    dead = _dead_pid()
    left = base_dir() / f"r{dead}-0badc0de"
    (left / "k").mkdir(parents=True)
    sweep_run_dirs()
    assert not left.exists()


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1
