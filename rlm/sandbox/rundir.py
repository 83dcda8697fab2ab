"""Per-kernel run directories, process ownership, and the sweep of what dead owners left.

Every kernel gets a fresh directory for its ipc sockets, connection file and callback
socket (reusing socket files of an earlier kernel makes the new one unreachable). Each
directory and container records its owner (pid plus process start time, so a recycled pid
is not mistaken for the owner); the sweep removes those whose owner has died.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from rlm.sandbox import reaper

log = logging.getLogger(__name__)

OWNER_LABEL = "rlm.owner"
RUN_DIR_LABEL = "rlm.run-dir"
SANDBOX_LABEL = "rlm.sandbox"
UID_LABEL = "rlm.uid"


def base_dir() -> Path:
    """Root of our run directories: short (ipc paths are limited to ~100 bytes), private."""
    path = Path(os.environ.get("RLM_RUN_BASE") or f"/tmp/rlm-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{path} must be a directory owned by you with mode 0700")
    return path


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # Field 22 (process start time); the command name (field 2) may contain spaces.
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    """`host:pid:start-time` of a process, the default being this one."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_time in (None, "?"):
        return True
    current = _start_time(pid)
    # Unreadable (/proc mounted with hidepid): assume alive rather than remove a live
    # process's sandbox.
    return current is None or current == start_time


def owner_alive(owner: str) -> bool:
    """Whether the process an owner id names still runs; owners on other hosts count as alive."""
    try:
        host, pid, start = owner.rsplit(":", 2)
        return host != socket.gethostname() or pid_alive(int(pid), start)
    except ValueError:
        return True


@dataclass
class RunDir:
    """One kernel's directory. Only `shared` is visible to (and writable by) the kernel.

    Everything the host writes after the kernel exists lives outside `shared`: the kernel
    could plant symlinks there, and the host must never write (or read) through them.
    """

    path: Path

    @property
    def shared(self) -> Path:
        """Mounted at /run/rlm in the container: the kernel's ipc sockets, the callback socket."""
        return self.path / "k"

    @property
    def callback_socket(self) -> Path:
        return self.shared / "callback"

    @property
    def callback_key_file(self) -> Path:
        return self.path / "callback.json"

    @property
    def connection_file(self) -> Path:
        return self.path / "kernel.json"

    @property
    def container_connection_file(self) -> Path:
        return self.path / "kernel.container.json"

    @classmethod
    def create(cls) -> RunDir:
        path = base_dir() / f"r{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        (path / "owner").write_text(owner_id())
        run_dir = cls(path)
        run_dir.shared.mkdir(mode=0o700)
        # Removed by the reaper if this process ends without removing it.
        reaper.watch(reaper.RUN_DIR, str(path))
        return run_dir

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def ours_to_remove(path: str) -> Path | None:
    """`path` if it is one of our run directories, else None: a label is only a label."""
    candidate = Path(path)
    base = base_dir()
    if candidate.parent == base and candidate.name.startswith("r") and not candidate.is_symlink():
        return candidate
    return None


def sweep_run_dirs() -> int:
    """Remove run directories whose owner has died; return how many.

    A directory without an owner file (an engine recreated a removed bind source) is judged
    by the pid in its name.
    """
    removed = 0
    for path in base_dir().glob("r*-*"):
        try:
            owner = (path / "owner").read_text()
        except FileNotFoundError:
            owner = f"{socket.gethostname()}:{path.name[1:].split('-', 1)[0]}:?"
        except OSError:
            continue
        if not owner_alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d run directories left by dead processes", removed)
    return removed
