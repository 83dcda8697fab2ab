"""ContainerProvisioner: how jupyter_client starts rlm's kernel in a container.

Registered under the `jupyter_client.kernel_provisioners` entry point (see provisioner.py),
so rlm's own Sandbox, Jupyter servers and any `KernelManager` start our kernel through
the same code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from functools import cache
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import LogConfig, Mount, Ulimit
from jupyter_client.connect import KernelConnectionInfo
from traitlets import Float, Integer, Unicode

from rlm.errors import SandboxError
from rlm.kernel_image.rlm_kernel.protocol import Env
from rlm.sandbox import removals
from rlm.sandbox.container_launch import (
    ContainerRequest,
    Launch,
    check_image,
    default_image,
    read_only_mount,
)
from rlm.sandbox.engine import Engine, get_engine
from rlm.sandbox.limits import MiB, SandboxLimits
from rlm.sandbox.provisioning import RlmProvisioner
from rlm.sandbox.rundir import OWNER_LABEL, RUN_DIR_LABEL, SANDBOX_LABEL, UID_LABEL, owner_id
from rlm.sandbox.sweep import sweep_once

log = logging.getLogger(__name__)

EXIT_LOG_BYTES = 2000
SEAL_TIMEOUT = 120.0
LAUNCH_WAIT = 60.0
CONTAINER_RUN_DIR = "/run/rlm"
CONTAINER_CONNECTION_FILE = "/run/rlm-config/kernel.json"
CONTAINER_CALLBACK_FILE = "/run/rlm-config/callback.json"
CONTAINER_CONTEXT_DIR = "/run/rlm-context"
IMAGE_USER = "1000:1000"
NO_SUBORDINATE_IDS = (
    "rootful Podman has no subordinate ids for the kernel's user namespace: add a line "
    "'containers:1000000000:1000000000' to /etc/subuid and /etc/subgid (scripts/setup-host.sh "
    "does)"
)
SECCOMP_PROFILE = Path(__file__).with_name("seccomp.json")
# Podman mounts an unbounded tmpfs here on a read-only root; filling it ended in an OOM
# kill instead of ENOSPC. Nothing the kernel runs needs more than a little.
VAR_TMP_BYTES = 16 * MiB
_DEFAULTS = SandboxLimits()


class ContainerProvisioner(RlmProvisioner):
    """Runs the kernel in a rootless-friendly, network-less, read-only container.

    The container has no network, no capabilities, a read-only root with a small tmpfs
    /tmp, a non-root user, no-new-privileges, pid/memory/CPU limits (rlimits where the
    engine cannot enforce cgroup limits) and an init process. jupyter_client reaches the
    kernel through ipc sockets in the bind-mounted run directory: no ports.
    """

    image = Unicode("", config=True, help="Kernel image; default localhost/rlm-kernel:<version>.")
    memory_bytes = Integer(0, config=True, help="Memory limit; 0 sizes it to the context.")
    pids_limit = Integer(_DEFAULTS.pids, config=True)
    cpus = Float(_DEFAULTS.cpus, config=True)
    tmpfs_bytes = Integer(_DEFAULTS.tmpfs_bytes, config=True)

    container: Any = None
    engine: Engine | None = None
    _sealer: asyncio.Task[None] | None = None
    _launching: asyncio.Future[Any] | None = None
    _handed_off = False

    @property
    def kernel_shared_dir(self) -> str:
        return CONTAINER_RUN_DIR

    @property
    def container_id(self) -> str | None:
        return self.container.id if self.container is not None else None

    @property
    def has_process(self) -> bool:
        return self.container is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.prepare_run_dir()
        km = self.parent
        km.write_connection_file()
        self.connection_info = km.get_connection_info()
        self._write_container_connection_file()
        # Not km.format_kernel_cmd(): it swaps "python" for the host's interpreter path.
        cmd = [
            arg.replace("{connection_file}", CONTAINER_CONNECTION_FILE)
            for arg in self.kernel_spec.argv
        ] + list(kwargs.pop("extra_arguments", []))
        return await super().pre_launch(cmd=cmd, **kwargs)

    def _write_container_connection_file(self) -> None:
        info = dict(self.connection_info)
        info["ip"] = f"{CONTAINER_RUN_DIR}/kernel-ipc"
        info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        info.pop("kernel_name", None)
        # Written to the host-only part of the run directory and mounted read-only: the
        # kernel can plant symlinks in its own socket directory, and a restart would
        # otherwise have the host write through them.
        self.layout.container_connection_file.write_text(json.dumps(info))
        self.layout.container_connection_file.chmod(0o644)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        self.engine = engine = await asyncio.to_thread(get_engine)
        await asyncio.to_thread(sweep_once, engine)
        image = self.image or default_image()
        await asyncio.to_thread(check_image, engine, image)
        request = self._container_request(engine, image, cmd, kwargs.get("env", {}))
        launch = Launch(engine, request, self.layout.path)
        self._launching = asyncio.ensure_future(asyncio.to_thread(launch.run))
        try:
            self.container = await asyncio.shield(self._launching)
        except docker.errors.DockerException as exc:
            if "subuid" in str(exc) or "available IDs" in str(exc):
                raise SandboxError(NO_SUBORDINATE_IDS) from exc
            raise SandboxError(f"could not start the kernel container: {exc}") from exc
        except asyncio.CancelledError:
            # The engine call goes on in its thread and removes what it creates; cleanup()
            # waits for it. A container it already handed over is ours to remove.
            self.container = launch.abandon()
            raise
        return self.connection_info

    def _container_request(
        self, engine: Engine, image: str, cmd: list[str], launch_env: dict[str, str]
    ) -> ContainerRequest:
        layout = self.layout
        # Mount objects, not "src:dst:mode" strings: a path may contain a colon.
        mounts = [
            Mount(CONTAINER_RUN_DIR, str(layout.shared), type="bind"),
            read_only_mount(CONTAINER_CONNECTION_FILE, layout.container_connection_file),
        ]
        if layout.callback_key_file.exists():
            mounts.append(read_only_mount(CONTAINER_CALLBACK_FILE, layout.callback_key_file))
        context_path = None
        if self.context_file:
            suffix = ".json" if self.context_format == "json" else ".txt"
            context_path = f"{CONTAINER_CONTEXT_DIR}/context{suffix}"
            mounts.append(read_only_mount(context_path, Path(self.context_file).resolve()))
        # Only our variables and the kernelspec's reach the kernel: never the host's
        # environment, which holds API keys.
        env = {k: v for k, v in launch_env.items() if k in (self.kernel_spec.env or {})}
        env.update(
            self.kernel_env(CONTAINER_CALLBACK_FILE, f"{CONTAINER_RUN_DIR}/callback", context_path)
        )
        memory = self.memory_bytes or SandboxLimits().memory_for(self._context_size())
        request = ContainerRequest(
            image=image,
            command=cmd,
            user=f"{os.getuid()}:{os.getgid()}",
            environment=env,
            labels={
                SANDBOX_LABEL: "1",
                OWNER_LABEL: owner_id(),
                UID_LABEL: str(os.getuid()),
                RUN_DIR_LABEL: self.run_dir,
                "rlm.kernel-id": self.kernel_id or "",
            },
        )
        request.host = {
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges", _seccomp_option(engine)],
            "read_only": True,
            "tmpfs": {
                "/tmp": f"rw,nosuid,nodev,size={self.tmpfs_bytes // MiB}m,mode=1777",
                "/var/tmp": f"rw,nosuid,nodev,noexec,size={VAR_TMP_BYTES // MiB}m,mode=1777",
            },
            "init": True,
            # A kernel started by a Jupyter tool may be ended by a shutdown message alone
            # (jupyter console's `exit`): its container goes when it ends, whoever ends it.
            # rlm's Sandbox removes its own, after reading why a kernel died.
            "auto_remove": self._owned_run_dir is not None,
            # What the kernel writes to its raw stdout/stderr lands in the engine's log on
            # the host's disk: keep it small.
            "log_config": LogConfig(type="json-file", config={"max-size": "1m"}),
            "mounts": mounts,
        }
        if os.getuid() == 0:
            # Rootful engine: run as the image's unprivileged user, which may create its
            # sockets in the shared directory until seal_run_dir(). Its parent stays
            # private to root, so no host account reaches the directory meanwhile.
            os.chmod(layout.shared, 0o777)
            request.user = IMAGE_USER
            if engine.is_podman:
                # A user namespace of its own from Podman's subordinate range: the kernel's
                # uid is then no host account (a host user's keyring, per-uid limits) and
                # differs between sandboxes.
                request.userns_mode = "auto"
        elif engine.is_podman:
            # Socket files must belong to our own uid, not a subordinate one.
            request.userns_mode = "keep-id"
        if engine.enforces_cgroup_limits:
            request.host.update(
                mem_limit=memory,
                memswap_limit=memory,
                pids_limit=self.pids_limit,
                nano_cpus=int(self.cpus * 1e9),
            )
        else:
            _warn_rlimit_fallback(memory, self.pids_limit)
            env[Env.RLIMIT_AS] = str(memory)
            # An address-space limit counts reservations: glibc's per-thread malloc arenas
            # (64 MiB each) alone put a 12-thread kernel near 512 MiB before any user code.
            env["MALLOC_ARENA_MAX"] = "2"
            env[Env.RLIMIT_NPROC] = str(self.pids_limit)
            request.host["ulimits"] = [
                Ulimit(name="nproc", soft=self.pids_limit, hard=self.pids_limit)
            ]
        return request

    def _context_size(self) -> int:
        return os.path.getsize(self.context_file) if self.context_file else self.context_bytes

    async def poll(self) -> int | None:
        if self.container is None:
            return 0
        try:
            await asyncio.to_thread(self.container.reload)
        except docker.errors.NotFound:
            return -1
        except docker.errors.APIError as exc:
            # Podman answers 500 "no such container" while it auto-removes the container.
            if "no such container" in str(exc):
                return -1
            raise
        state = self.container.attrs.get("State", {})
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    async def exit_reason(self) -> str:
        """Why the container stopped: its state and the last lines it printed."""
        if self.container is None:
            return "no container"
        await self.poll()  # refreshes the container's state
        state = self.container.attrs.get("State", {})
        code = state.get("ExitCode")
        if state.get("OOMKilled") or code == 137:
            memory = self.memory_bytes or SandboxLimits().memory_for(self._context_size())
            return f"killed (exit {code}), most likely out of memory (limit {memory // MiB} MiB)"
        try:
            logs = await asyncio.to_thread(self.container.logs, tail=8)
            # The kernel chose these lines: keep what a person needs, not all of it.
            tail = logs[-EXIT_LOG_BYTES:].decode(errors="replace").strip()
        except docker.errors.DockerException:
            tail = ""
        return f"exited with code {code}" + (f"; its last output:\n{tail}" if tail else "")

    async def wait(self) -> int | None:
        while (status := await self.poll()) is None:
            await asyncio.sleep(0.1)
        return status

    async def send_signal(self, signum: int) -> None:
        if self.container is None or signum == 0:
            return
        try:
            await asyncio.to_thread(self.container.kill, signal=int(signum))
        except docker.errors.APIError as exc:
            log.debug("signal %s to kernel container failed: %s", signum, exc)

    async def kill(self, restart: bool = False) -> None:
        # Removing with force kills too, in one engine call instead of kill, poll, remove.
        await self._remove_container()
        if restart and self.container is not None:
            # Its successor would share its directory and callback channel with it.
            raise RuntimeError("the engine did not remove the old kernel's container")

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    def seal_run_dir(self) -> None:
        """The shared directory lives on the host's disk, outside the container's tmpfs and
        memory limits. Under a rootful engine the kernel is neither its owner nor in its
        group, so dropping the write bits holds; a rootless kernel runs as the directory's
        owner (your own uid) and could undo it, so there is nothing to seal. Done here as
        soon as the sockets appear, for every client (Jupyter's too), and again by rlm's
        Sandbox once the kernel answers, so no code runs before it.
        """
        if os.getuid() == 0:
            os.chmod(self.layout.shared, 0o755)

    async def post_launch(self, **kwargs: Any) -> None:
        await super().post_launch(**kwargs)
        if os.getuid() == 0:
            self._sealer = asyncio.create_task(self._seal_when_bound())

    async def _seal_when_bound(self) -> None:
        km = self.parent
        ports = (km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port)
        sockets = [Path(f"{km.ip}-{port}") for port in ports]
        deadline = time.monotonic() + SEAL_TIMEOUT
        while time.monotonic() < deadline:
            if all(path.exists() for path in sockets):
                self.seal_run_dir()
                return
            await asyncio.sleep(0.01)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return min(recommended, 2.0)

    def hand_off_container(self) -> Any:
        """Give the container (None if there is none) to a caller that removes it, and any
        other container labelled with the run directory, off the caller's path."""
        container, self.container = self.container, None
        self._handed_off = True
        return container

    async def _remove_container(self) -> None:
        if self.container is None:
            return
        if await asyncio.to_thread(removals.remove_container, self.container):
            self.container = None

    async def cleanup(self, restart: bool = False) -> None:
        if self._sealer is not None:
            self._sealer.cancel()
            self._sealer = None
        if self._launching is not None:
            # A cancelled start: nothing it made may outlive the caller's cleanup.
            done, _ = await asyncio.wait([self._launching], timeout=LAUNCH_WAIT)
            for launched in done:
                launched.exception()  # an abandoned start's failure matters to no one
            self._launching = None
        await self._remove_container()
        if restart:
            self.remove_socket_files()
        else:
            # Handed off, the leftovers go with the container (removals.remove_later): an
            # engine listing here would cost a background close 0.1-0.5 s.
            if self.container is None and self.engine is not None and not self._handed_off:
                await asyncio.to_thread(removals.remove_leftovers, self.run_dir)
            self.release_run_dir()

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(
            container_id=self.container.id if self.container else None, run_dir=self.run_dir
        )
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.run_dir = provisioner_info.get("run_dir", "")
        container_id = provisioner_info.get("container_id")
        if container_id:
            self.engine = await asyncio.to_thread(get_engine)
            self.container = await asyncio.to_thread(
                self.engine.client.containers.get, container_id
            )


def _seccomp_option(engine: Engine) -> str:
    """Our seccomp profile (scripts/make_seccomp_profile.py): Podman's API takes a path,
    Docker's the profile itself."""
    if engine.is_podman:
        return f"seccomp={SECCOMP_PROFILE}"
    return f"seccomp={SECCOMP_PROFILE.read_text()}"


@cache
def _warn_rlimit_fallback(memory: int, pids: int) -> None:
    log.warning(
        "this engine cannot enforce cgroup limits (rootless without delegated cgroups v2): "
        "limiting the kernel with rlimits instead (address space %d MiB, %d processes)",
        memory // MiB,
        pids,
    )
