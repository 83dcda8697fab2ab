"""A context file the kernel may open while the host still writes it: it waits on a lock."""

from __future__ import annotations

import fcntl
import importlib
import mmap
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rlm.errors import SandboxError
from rlm.kernel_image import RUNTIME_DIR
from rlm.sandbox.context_write import SEALS, PendingWrite, sealed_copy
from rlm.sandbox.rundir import base_dir
from rlm.sandbox.sandbox import Sandbox

ASCII = "plain text\n" * 1000
UNICODE = "caf\u00e9 \U0001f600 \ud800 end"  # a lone surrogate is written as it is


@pytest.fixture
def kernel_runtime() -> Iterator[ModuleType]:
    """The kernel's runtime module, imported the way the kernel imports it."""
    sys.path.insert(0, str(RUNTIME_DIR))
    try:
        yield importlib.import_module("rlm_kernel.runtime")
    finally:
        sys.path.remove(str(RUNTIME_DIR))
        for name in [n for n in sys.modules if n == "rlm_kernel" or n.startswith("rlm_kernel.")]:
            del sys.modules[name]


def shared_lock_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("text", [ASCII, UNICODE, ""])
def test_the_file_has_its_size_at_once_and_is_locked_until_written(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "context.txt"
    encoded = text.encode("utf-8", "surrogatepass")
    pending = PendingWrite.create(path, text)
    # The container's memory limit is sized from the file before a byte is in.
    assert path.stat().st_size == len(encoded)
    assert not shared_lock_free(path)
    pending.finish()
    assert shared_lock_free(path)
    assert path.read_bytes() == encoded


@pytest.mark.parametrize("text", [ASCII, UNICODE, ""])
def test_a_sealed_copy_holds_the_text_and_can_only_be_read(text: str) -> None:
    fd = sealed_copy(text)
    try:
        assert os.pread(fd, len(text) * 4 + 1, 0) == text.encode("utf-8", "surrogatepass")
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        # What a kernel holding it might try: write, grow, shrink, map writable, unseal.
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, len(text) + 4096)
        if text:
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 0)
            with pytest.raises(PermissionError):
                mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0)
    finally:
        os.close(fd)


def test_a_str_subclass_is_written_as_its_text(tmp_path: Path) -> None:
    class Text(str):
        pass

    path = tmp_path / "context.txt"
    PendingWrite.create(path, Text(ASCII)).finish()
    assert path.read_text() == ASCII


def test_a_failed_write_leaves_an_empty_unlocked_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "context.txt"
    pending = PendingWrite.create(path, ASCII)

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        pending.finish()
    assert path.stat().st_size == 0 and shared_lock_free(path)


def test_never_follows_or_reuses_a_planted_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched")
    (tmp_path / "link.txt").symlink_to(target)
    for name in ("link.txt", "target"):
        with pytest.raises(FileExistsError):
            PendingWrite.create(tmp_path / name, ASCII)
    assert target.read_text() == "untouched"


def test_a_lock_taken_first_by_the_kernel_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel may open a new file in its own directory before the host locks it."""
    path = tmp_path / "context.txt"
    flock = fcntl.flock
    held: list[int] = []

    def kernel_first(fd: int, operation: int) -> None:
        held.append(os.open(path, os.O_RDONLY))
        flock(held[0], fcntl.LOCK_SH)
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", kernel_first)
    try:
        with pytest.raises(BlockingIOError):
            PendingWrite.create(path, ASCII)
    finally:
        os.close(held[0])
    assert not path.exists()


@pytest.mark.parametrize("text", [ASCII, "caf\u00e9 \U0001f600 end"])
def test_the_kernel_waits_for_the_write_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_runtime: ModuleType, text: str
) -> None:
    path = tmp_path / "context.txt"
    pending = PendingWrite.create(path, text)
    waiting = threading.Event()
    sleep = kernel_runtime.time.sleep

    def wait_a_little(seconds: float) -> None:
        waiting.set()  # called only while the host holds the lock
        sleep(seconds)

    monkeypatch.setattr(kernel_runtime.time, "sleep", wait_a_little)
    loaded: list[str] = []
    reader = threading.Thread(
        target=lambda: loaded.append(kernel_runtime.load_context(str(path), "text"))
    )
    reader.start()
    assert waiting.wait(30), "the kernel read the file without waiting for its lock"
    pending.finish()
    reader.join(30)
    assert loaded == [text]


def opened_elsewhere(path: Path) -> bool:
    """Whether a process other than this one has `path` open (the kernel, in its container)."""
    target = path.stat()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        if fd.parts[2] == str(os.getpid()):
            continue
        try:
            info = fd.stat()
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def once_the_kernel_opens_the_file(finish: Callable[[PendingWrite], None]) -> Callable[..., None]:
    """A write that starts only when the kernel already has the file open."""

    def late_finish(self: PendingWrite) -> None:
        deadline = time.monotonic() + 60
        while not opened_elsewhere(self.path) and time.monotonic() < deadline:
            time.sleep(0.01)
        finish(self)

    return late_finish


@pytest.mark.container
@pytest.mark.rootless
async def test_a_kernel_started_before_its_context_is_written_gets_all_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "0123456789abcdef" * 1_000_000 + "end"
    monkeypatch.setattr(PendingWrite, "finish", once_the_kernel_opens_the_file(PendingWrite.finish))
    async with Sandbox(text) as box:
        result = await box.execute("print(len(CONTEXT), CONTEXT[-3:])")
    assert result.stdout.split() == [str(len(text)), "end"]


@pytest.mark.container
@pytest.mark.rootless
async def test_a_context_that_cannot_be_written_fails_the_start_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(self: PendingWrite) -> None:
        os.close(self._fd)  # as a failed write ends: the file empty, the lock released
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PendingWrite, "finish", once_the_kernel_opens_the_file(full))
    # Other tests' run directories in this process may still be there (a provisioner's
    # are removed when the process ends): only this start's must be gone.
    before = set(base_dir().glob(f"r{os.getpid()}-*"))
    box = Sandbox("some text")
    with pytest.raises(SandboxError, match=r"could not write the context.*No space left"):
        await box.start()
    assert box.run_dir is None and box.container_id is None
    assert set(base_dir().glob(f"r{os.getpid()}-*")) <= before
