"""A process that removes what ours leaves behind when it ends without cleaning up.

A kernel can outlive the process that started it (SIGKILL, a crash, or `jupyter console`,
which ends its kernel with a shutdown message and exits without asking its provisioner to
clean up), and with it the run directory (connection keys, a copy of the context) and
the `podman system service` we started. So the first time a process of ours makes a run
directory or connects to an engine, it starts a reaper: a small process in a session of
its own (Ctrl-C on our terminal does not reach it) that holds the read end of a pipe
whose write end only we hold. We write to the pipe what to clean up; when we end, however
we end, the pipe closes, and the reaper removes the containers of the run directories
that still exist, the directories, and the podman service. A process that cleaned up
after itself leaves the reaper nothing to do, and it exits at once.

The sweep at the next start (rlm.sandbox.sweep) remains the fallback, for a reaper that
was killed too.

Run as a script (`python reaper.py`), not as a module, so that it waits without importing
rlm's packages; it imports them only when there is something to remove.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

RUN_DIR = "run-dir"
ENGINE = "engine"
SERVICE = "service"


class Reaper:
    """This process's reaper, started on first use; `watch` tells it what to remove."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the process that started it: a forked child needs its own

    def watch(self, kind: str, value: str) -> None:
        """Have the reaper remove `value` (a RUN_DIR, the ENGINE to remove containers
        through, or a podman SERVICE's pid) if this process ends without doing so."""
        with self._lock:
            try:
                process = self._started()
                assert process.stdin is not None
                process.stdin.write(f"{kind} {value}\n".encode())
                process.stdin.flush()
            except OSError as exc:  # the reaper was killed: the sweep is the fallback
                log.debug("could not tell the reaper about %s %s: %s", kind, value, exc)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        return self._process


_reaper = Reaper()
watch = _reaper.watch


def reap(lines: list[str]) -> None:
    """Remove what the lines name that still exists."""
    watched: dict[str, list[str]] = {RUN_DIR: [], ENGINE: [], SERVICE: []}
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        if kind in watched and value:
            watched[kind].append(value)
    run_dirs = [path for path in watched[RUN_DIR] if Path(path).is_dir()]
    if run_dirs:
        _remove_containers(run_dirs, watched[ENGINE])
        for path in run_dirs:
            _remove_run_dir(path)
    for pidfile in watched[SERVICE]:
        _stop_service(pidfile)


def _remove_containers(run_dirs: list[str], engines: list[str]) -> None:
    import docker
    import docker.errors

    from rlm.sandbox.rundir import RUN_DIR_LABEL

    for url in dict.fromkeys(engines):
        try:
            client = docker.DockerClient(base_url=url, timeout=60)
            for path in run_dirs:
                found = client.containers.list(
                    all=True, sparse=True, filters={"label": f"{RUN_DIR_LABEL}={path}"}
                )
                for container in found:
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True)
        except docker.errors.DockerException:
            continue  # the engine is gone too: the next sweep removes the containers


def _remove_run_dir(path: str) -> None:
    import shutil

    from rlm.sandbox.rundir import owner_alive

    try:
        owner = (Path(path) / "owner").read_text()
    except OSError:
        return
    if not Path(path).is_symlink() and not owner_alive(owner):
        shutil.rmtree(path, ignore_errors=True)


def _stop_service(pidfile: str) -> None:
    from rlm.sandbox.engine import stop_service

    stop_service(Path(pidfile))


def main() -> None:
    # Run as a script, Python put this file's directory first on the path, where its
    # siblings would shadow top-level modules: put the rlm this file belongs to there.
    sys.path[0] = str(Path(__file__).resolve().parents[2])
    lines = sys.stdin.buffer.read().decode(errors="replace").splitlines()
    reap(lines)


if __name__ == "__main__":
    main()
