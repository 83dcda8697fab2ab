"""Finding and talking to the container engine (Podman or Docker) through the docker SDK.

Search order: DOCKER_HOST, the rootless Podman socket, the rootful Podman socket, Docker's
socket. If Podman is installed but none of those answers, start `podman system service`
for this process and stop it at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import docker
import docker.errors

from rlm.errors import EngineNotFoundError, ImageNotFoundError
from rlm.sandbox import reaper
from rlm.sandbox.rundir import base_dir, pid_alive

log = logging.getLogger(__name__)

SERVICE_START_TIMEOUT = 15.0
SERVICE_STOP_GRACE = 5.0
PING_TIMEOUT = 5


def _candidate_sockets() -> list[str]:
    uid = os.getuid()
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    candidates = [f"{runtime_dir}/podman/podman.sock"]
    if uid == 0:
        candidates.append("/run/podman/podman.sock")
    candidates.append("/var/run/docker.sock")
    return [f"unix://{path}" for path in candidates if Path(path).exists()]


def _connect(url: str) -> docker.DockerClient | None:
    try:
        client = docker.DockerClient(base_url=url, timeout=120)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError) as exc:
        log.debug("engine socket %s did not answer: %s", url, exc)
        return None


class PodmanService:
    """A `podman system service` owned by this process, on a socket in our run base."""

    def __init__(self) -> None:
        self.socket_path = base_dir() / f"podman-{os.getpid()}.sock"
        # A file, not a pipe: nobody reads the service's warnings once it is up, and a
        # full pipe would stall the engine.
        self.log_path = base_dir() / f"podman-{os.getpid()}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> docker.DockerClient:
        self.socket_path.unlink(missing_ok=True)
        # A session of its own: Ctrl-C on our terminal must not kill the engine before
        # we have removed our containers.
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
                # conmon writes marker files (an "oom" file after an OOM kill) into its
                # working directory: keep them out of the caller's.
                cwd=base_dir(),
            )
        pidfile = base_dir() / f"podman-{os.getpid()}.pid"
        pidfile.write_text(str(self._process.pid))
        # Stopped at exit, or by the reaper if this process is killed.
        atexit.register(self.stop)
        reaper.watch(reaper.SERVICE, str(pidfile))
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self.log_path.read_bytes()[-2000:].decode(errors="replace").strip()
                raise EngineNotFoundError(f"podman system service exited: {err}")
            if self.socket_path.exists() and (client := _connect(self.url)):
                return client
            time.sleep(0.05)
        self.stop()
        raise EngineNotFoundError(
            f"podman system service did not answer within {SERVICE_START_TIMEOUT:g} s"
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None
        for path in (self.socket_path, self.log_path, base_dir() / f"podman-{os.getpid()}.pid"):
            path.unlink(missing_ok=True)


def sweep_podman_services() -> None:
    """Stop podman services started by processes of ours that have died."""
    for pidfile in base_dir().glob("podman-*.pid"):
        try:
            owner = int(pidfile.stem.split("-", 1)[1])
        except ValueError:
            continue
        if not pid_alive(owner):
            stop_service(pidfile)


def stop_service(pidfile: Path) -> None:
    """Stop the podman service a PodmanService's pid file names, and remove its files."""
    try:
        service: int | None = int(pidfile.read_text())
    except (ValueError, OSError):
        service = None
    # Removed first: once the service is gone, so are its files.
    for suffix in (".pid", ".sock", ".log"):
        pidfile.with_suffix(suffix).unlink(missing_ok=True)
    if service is None or not _is_podman_service(service):  # gone, or a recycled pid
        return
    with contextlib.suppress(OSError):
        os.kill(service, signal.SIGTERM)
        # A service stuck on Podman's locks ignores SIGTERM and holds the storage lock,
        # which hangs every podman command on the host: it must not outlive its owner.
        deadline = time.monotonic() + SERVICE_STOP_GRACE
        while _is_podman_service(service) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_podman_service(service):
            os.kill(service, signal.SIGKILL)


def _is_podman_service(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(command) and command[0].endswith(b"podman") and b"service" in command


@dataclass
class Engine:
    """A connected engine and what it can enforce."""

    client: docker.DockerClient
    url: str
    service: PodmanService | None = None
    # Held for each container create/start and removal: Podman 4.3's API service
    # deadlocked here (holding the storage lock, waiting on a container's lock) when one
    # process sent it starts and removals at once. Kernels still boot concurrently.
    changes: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def is_podman(self) -> bool:
        # Podman's ping names its API; `version` and `info` take 0.3-0.6 s each.
        ping = self.client.api.get(f"{self.client.api.base_url}/_ping", timeout=PING_TIMEOUT)
        return "Libpod-Api-Version" in ping.headers

    @property
    def is_local(self) -> bool:
        return self.url.startswith("unix://")

    @cached_property
    def rootless(self) -> bool:
        if self.is_podman and self.is_local:
            return os.getuid() != 0
        return "rootless" in " ".join(self.client.info().get("SecurityOptions") or [])

    @cached_property
    def enforces_cgroup_limits(self) -> bool:
        """False where rootless containers get no cgroup limits (cgroups v1 or no delegation)."""
        if not self.rootless:
            return True
        if self.is_local:
            return _cgroup_limits_delegated()
        return str(self.client.info().get("CgroupVersion", "2")) == "2"

    def require_image(self, image: str) -> dict[str, str]:
        """Return the image's labels, or explain how to build it."""
        try:
            return self.client.images.get(image).labels or {}
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(
                f"kernel image {image} not found: build it with `rlm image build` or "
                "`make image` (no registry: `make base-image image "
                "BASE_IMAGE=localhost/rlm-base:bookworm`)"
            ) from None


def _cgroup_limits_delegated() -> bool:
    """Whether this host gives our user's containers memory and pids cgroup controllers."""
    root = Path("/sys/fs/cgroup")
    if not (root / "cgroup.controllers").exists():
        return False  # cgroups v1 or hybrid: nothing is delegated to rootless users
    uid = os.getuid()
    delegated = root / f"user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    try:
        return {"memory", "pids"} <= set(delegated.read_text().split())
    except OSError:
        return False


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine connection, found (or started) on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _discover()
            # Containers of a process killed before removing them go through this engine.
            reaper.watch(reaper.ENGINE, _engine.url)
            if _engine.service is not None:
                # Runs before the service's own stop (atexit: last in, first out). Once our
                # service is gone, nothing could reach a container this process left (a
                # sandbox never closed, a removal the engine refused): not even the reaper.
                atexit.register(_remove_what_is_left)
        return _engine


def _remove_what_is_left() -> None:
    from rlm.sandbox import removals  # removals builds on this module

    removals.remove_owned()


def _discover() -> Engine:
    if url := os.environ.get("DOCKER_HOST"):
        client = _connect(url)
        if client is None:
            raise EngineNotFoundError(f"DOCKER_HOST={url} does not answer")
        return Engine(client, url)
    for url in _candidate_sockets():
        if client := _connect(url):
            return Engine(client, url)
    if shutil.which("podman"):
        sweep_podman_services()
        service = PodmanService()
        return Engine(service.start(), service.url, service)
    raise EngineNotFoundError(
        "no container engine found: install Podman (apt-get install podman runc uidmap) "
        "or Docker, or set DOCKER_HOST"
    )
