"""Nothing is left behind: after close, after errors, after the owner is killed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm.errors import (
    ContextFileError,
    ImageNotFoundError,
    KernelDiedError,
    NotUtf8Error,
    SandboxError,
)
from rlm.sandbox import removals
from rlm.sandbox.context_file import ContextFile
from rlm.sandbox.engine import get_engine
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.provisioner import default_image
from rlm.sandbox.rundir import OWNER_LABEL, RUN_DIR_LABEL, base_dir
from rlm.sandbox.sandbox import Sandbox
from tests.conftest import RecordingHandler
from tests.processes import reaper_of, until

pytestmark = [pytest.mark.container, pytest.mark.rootless]


def our_containers() -> list[str]:
    containers = get_engine().client.containers.list(
        all=True, sparse=True, filters={"label": OWNER_LABEL}
    )
    return [c.id for c in containers]


async def test_close_removes_container_and_run_dir() -> None:
    box = await Sandbox("x").start()
    container_id, run_dir = box.container_id, box.run_dir
    assert container_id in our_containers()
    assert run_dir is not None and run_dir.exists()
    await box.close()
    await box.close()  # idempotent
    assert container_id not in our_containers()
    assert not run_dir.exists()


async def test_exception_inside_the_block_cleans_up() -> None:
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="boom"):
        async with Sandbox("x") as box:
            seen["id"], seen["dir"] = box.container_id, box.run_dir
            raise RuntimeError("boom")
    assert seen["id"] not in our_containers()
    assert not Path(str(seen["dir"])).exists()


OWNER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from rlm.sandbox.sandbox import Sandbox

    async def main():
        box = await Sandbox("x").start()
        print(box.container_id, box.run_dir, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


@pytest.fixture
def run_base() -> Iterator[Path]:
    """A run base of its own (short: ipc paths are limited), where no other process's
    sweep removes what a dead owner left: only its reaper can."""
    path = Path(tempfile.mkdtemp(prefix="rlm-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_owner(cwd: Path, run_base: Path | None = None) -> tuple[subprocess.Popen[str], str, str]:
    """A process that starts a sandbox and waits; its container id and run directory."""
    env = {**os.environ, **({"RLM_RUN_BASE": str(run_base)} if run_base else {})}
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    assert child.stdout is not None
    try:
        container_id, run_dir = child.stdout.readline().split()
    except ValueError:
        child.kill()
        raise
    return child, container_id, run_dir


def test_a_sigkilled_owner_leaves_nothing_behind(tmp_path: Path, run_base: Path) -> None:
    child, container_id, run_dir = start_owner(tmp_path, run_base)
    service = run_base / f"podman-{child.pid}.pid"
    service_pid = int(service.read_text()) if service.exists() else None
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    # No other process starts: the dead owner's reaper removes what it left.
    assert until(lambda: container_id not in our_containers())
    assert until(lambda: not Path(run_dir).exists())
    if service_pid is not None:  # its own podman service does not outlive it
        assert until(
            lambda: (
                not Path(f"/proc/{service_pid}").exists()
                or b"podman" not in (Path(f"/proc/{service_pid}/cmdline").read_bytes())
            )
        )
        assert not service.exists()


def test_what_a_killed_owner_and_reaper_left_is_swept_by_the_next_start(tmp_path: Path) -> None:
    child, container_id, run_dir = start_owner(tmp_path)
    os.kill(reaper_of(child.pid), signal.SIGKILL)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert container_id in our_containers()
    # The next sandbox start, in a new process, sweeps what the dead one left.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio\nfrom rlm.sandbox.sandbox import Sandbox\n"
            "async def m():\n    async with Sandbox('x'): pass\nasyncio.run(m())",
        ],
        check=True,
        timeout=120,
    )
    assert container_id not in our_containers()
    assert not Path(run_dir).exists()
    assert not any(base_dir().glob(f"r{child.pid}-*"))


CARELESS_OWNER = textwrap.dedent(
    """
    import asyncio
    from rlm.sandbox import removals
    from rlm.sandbox.sandbox import Sandbox

    async def main():
        kept = await Sandbox("x").start()  # never closed
        refused = await Sandbox("x").start()
        refused_id, refused_dir = refused.container_id, refused.run_dir
        remove = removals.remove_container
        removals.remove_container = lambda container: False  # the engine refuses, once
        await refused.close()
        removals.remove_container = remove
        print(kept.container_id, refused_id, refused_dir.exists(), flush=True)

    asyncio.run(main())
    """
)


def test_what_a_process_leaves_running_goes_when_it_exits(tmp_path: Path, run_base: Path) -> None:
    """A sandbox never closed, and one whose container the engine refused to remove, are
    gone once their process has exited normally (no other process sweeps this run base)."""
    done = subprocess.run(
        [sys.executable, "-c", CARELESS_OWNER],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "RLM_RUN_BASE": str(run_base)},
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    kept_id, refused_id, refused_dir_kept = done.stdout.split()
    # The refused container's run directory stayed: where the engine outlives this process
    # (a system socket), the reaper finds the container by it.
    assert refused_dir_kept == "True"
    assert until(lambda: not {kept_id, refused_id} & set(our_containers()))
    assert until(lambda: not any(run_base.glob("r*")))


async def test_missing_image_says_how_to_build_it() -> None:
    with pytest.raises(ImageNotFoundError, match="make image"):
        await Sandbox("x", image="localhost/rlm-kernel:does-not-exist").start()


async def test_a_start_that_fails_before_its_kernel_runs_does_not_wait_for_the_context_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A str context is written once the kernel's container runs; a start that fails
    before that closes at once (had the write gone on waiting, the close would wait out
    the start timeout for it)."""
    from rlm.sandbox.callback import CallbackServer

    async def refused(self: CallbackServer) -> None:
        raise RuntimeError("no callback socket today")

    monkeypatch.setattr(CallbackServer, "start", refused)
    box = Sandbox("a context", llm_handler=RecordingHandler(), runtime="local",
                  limits=SandboxLimits(start_timeout=600))  # fmt: skip
    async with asyncio.timeout(60):  # a hang would last the 600 s start timeout
        with pytest.raises(RuntimeError, match="no callback socket today"):
            await box.start()
    assert box.closed and box.run_dir is None


async def test_context_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "doc.txt"
    bad.write_bytes(b"fine text \xff\xfe broken")
    with pytest.raises(ContextFileError, match=r"(?i)not utf-8"):
        await Sandbox(context_file=bad).start()
    with pytest.raises(ContextFileError, match="cannot read"):
        await Sandbox(context_file=tmp_path / "missing.txt").start()


async def test_an_unchecked_context_file_is_checked_by_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "doc.txt"
    bad.write_bytes(b"fine text \xff\xfe broken")
    with pytest.raises(NotUtf8Error, match=r"byte 0xff at offset 10"):
        await Sandbox(ContextFile.unchecked(bad)).start()
    good = tmp_path / "good.txt"
    good.write_text("caf\u00e9\nau lait")
    async with Sandbox(ContextFile.unchecked(good)) as box:
        result = await box.execute("print(CONTEXT)")
        # The start counted it, as ContextFile.check does.
        assert box.context_file == ContextFile.check(good)
    assert result.stdout == "caf\u00e9\nau lait\n"


async def test_context_file_is_mounted_read_only(tmp_path: Path) -> None:
    document = tmp_path / "doc.txt"
    document.write_text("a file context")
    document.chmod(0o644)
    tmp_path.chmod(0o755)
    async with Sandbox(context_file=document) as box:
        result = await box.execute(
            "print(CONTEXT)\nimport os\nopen(os.environ['RLM_CONTEXT_FILE'], 'a').write('x')"
        )
    assert result.stdout.strip() == "a file context"
    assert result.error is not None and result.error.name in {"OSError", "PermissionError"}
    assert document.read_text() == "a file context"


async def test_a_context_file_object_is_mounted_not_copied(tmp_path: Path) -> None:
    document = tmp_path / "doc.txt"
    document.write_text("caf\u00e9\nau lait")
    document.chmod(0o644)
    context = ContextFile.check(document)
    assert (context.chars, context.lines, context.blank) == (12, 2, False)
    async with Sandbox(context) as box:
        result = await box.execute(
            "import os\nprint(repr(CONTEXT), os.stat(os.environ['RLM_CONTEXT_FILE']).st_ino)\n"
            "open(os.environ['RLM_CONTEXT_FILE'], 'a')"
        )
        assert box.run_dir is not None
        copies = [p for p in box.run_dir.rglob("*") if p.is_file() and "au lait" in _text(p)]
    # The kernel's file is the user's own (same inode), and it cannot write to it.
    assert result.stdout.rsplit(maxsplit=1) == [
        repr("caf\u00e9\nau lait"),
        str(document.stat().st_ino),
    ]
    assert result.error is not None and result.error.name in {"OSError", "PermissionError"}
    assert copies == []


@pytest.mark.skipif(os.getuid() != 0, reason="a rootless kernel runs as the file's owner")
async def test_a_private_context_file_reaches_a_rootful_kernel_as_a_copy(tmp_path: Path) -> None:
    document = tmp_path / "private.txt"
    document.write_text("for my eyes and the kernel's")
    document.chmod(0o600)  # the kernel's user, in a user namespace of its own, is "other"
    async with Sandbox(ContextFile.check(document)) as box:
        result = await box.execute("print(CONTEXT)")
    assert result.stdout == "for my eyes and the kernel's\n"


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


async def test_a_start_that_times_out_leaves_no_container() -> None:
    before = set(our_containers())
    with pytest.raises(SandboxError, match=r"did not start within 0\.05 s"):
        await Sandbox("x", limits=SandboxLimits(start_timeout=0.05)).start()
    # The engine call that was under way finishes in its thread; what it made is removed.
    for _ in range(100):
        if set(our_containers()) <= before:
            break
        await asyncio.sleep(0.1)
    assert set(our_containers()) <= before


def test_sweep_removes_only_our_dead_owners_and_only_our_directories(tmp_path: Path) -> None:
    from rlm.sandbox.rundir import UID_LABEL, ours_to_remove, owner_id, pid_alive
    from rlm.sandbox.sweep import sweep_leftovers

    assert ours_to_remove(str(tmp_path)) is None  # a label naming any other path is ignored
    assert ours_to_remove(str(base_dir() / "r123-abc")) == base_dir() / "r123-abc"
    assert ours_to_remove(str(base_dir())) is None
    # A live process whose start time cannot be read counts as alive.
    assert pid_alive(os.getpid(), "not-the-real-start-time") is False
    assert pid_alive(os.getpid(), "?") is True

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = owner_id(owner.pid)
    owner.kill()
    owner.wait()
    uid = str(os.getuid())
    # Run directories without an owner file: only the containers' labels can remove them.
    ours_dead, ours_live = (base_dir() / f"r0-sweeptest{i}" for i in range(2))
    not_ours = tmp_path / "r0-sweeptest"
    for path in (ours_dead, ours_live, not_ours):
        path.mkdir()
    engine = get_engine()
    made: list[str] = []

    def leftover(owner: str, run_dir: Path, uid: str = uid) -> str:
        labels = {OWNER_LABEL: owner, UID_LABEL: uid, RUN_DIR_LABEL: str(run_dir)}
        made.append(engine.client.containers.create(default_image(), "true", labels=labels).id)
        return made[-1]

    try:
        dead_with_ours = leftover(dead, ours_dead)
        dead_with_other_path = leftover(dead, not_ours)
        kept = [leftover(owner_id(), ours_live), leftover(dead, ours_live, uid=uid + "0")]
        assert sweep_leftovers(engine) >= 2  # other dead processes' leftovers may go too
        remaining = our_containers()
        assert dead_with_ours not in remaining and dead_with_other_path not in remaining
        assert all(container in remaining for container in kept)  # live owner, other user
        assert not ours_dead.exists()
        assert not_ours.exists() and ours_live.exists()
    finally:
        for container in set(made) & set(our_containers()):
            engine.client.containers.get(container).remove(force=True)
        for path in (ours_dead, ours_live):
            shutil.rmtree(path, ignore_errors=True)


async def test_context_file_whose_name_has_a_colon(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    document = folder / "minutes:v2.txt"
    document.write_text("colon safe")
    document.chmod(0o644)
    async with Sandbox(context_file=document) as box:
        assert (await box.execute("print(CONTEXT)")).stdout == "colon safe\n"


async def test_close_finishes_before_a_cancelled_caller_returns() -> None:
    box = await Sandbox("x").start()
    container_id, run_dir = box.container_id, box.run_dir
    closing = asyncio.create_task(box.close())
    await asyncio.sleep(0.01)  # removal under way
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert container_id not in our_containers()
    assert run_dir is not None and not run_dir.exists()


async def test_a_restart_fails_while_the_engine_keeps_the_old_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two kernels would share one directory and callback channel: no restart then."""
    async with Sandbox("x") as box:
        with monkeypatch.context() as patch:
            patch.setattr(removals, "remove_container", lambda container: False)
            with pytest.raises(KernelDiedError, match="did not remove the old kernel"):
                await box.execute("import os; os._exit(1)")
