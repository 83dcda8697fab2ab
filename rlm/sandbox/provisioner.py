"""Kernel provisioners: how jupyter_client starts rlm's kernel.

`ContainerProvisioner` runs the kernel in a locked-down container; `LocalProvisioner`
(development only, no isolation) runs it as a plain subprocess. Both are registered under
the `jupyter_client.kernel_provisioners` entry point, so rlm's own Sandbox, Jupyter servers
and any `KernelManager` start our kernel through the same code.

Both put the kernel's ipc sockets in a fresh run directory:

    <run dir>/            host only: owner marker, connection files, callback key, context
                          written by the Sandbox (files the kernel needs are mounted
                          read-only under /run/rlm-config)
    <run dir>/k/          shared with the kernel (mounted at /run/rlm in the container):
                          its ipc sockets and the callback socket
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import LogConfig, Mount, Ulimit
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner as JupyterLocalProvisioner
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Dict, Float, HasTraits, Integer, Unicode

from rlm.errors import ContextFileError, SandboxError
from rlm.kernel_image import RUNTIME_DIR, runtime_hash
from rlm.sandbox.callback import CallbackServerThread, LLMHandler
from rlm.sandbox.engine import Engine, get_engine
from rlm.sandbox.limits import MiB, SandboxLimits
from rlm.sandbox.rundir import (
    OWNER_LABEL,
    RUN_DIR_LABEL,
    SANDBOX_LABEL,
    UID_LABEL,
    RunDir,
    owner_id,
)
from rlm.sandbox.sweep import sweep_once

log = logging.getLogger(__name__)

EXIT_LOG_BYTES = 2000
SEAL_TIMEOUT = 120.0
CONTAINER_RUN_DIR = "/run/rlm"
CONTAINER_CONNECTION_FILE = "/run/rlm-config/kernel.json"
CONTAINER_CALLBACK_FILE = "/run/rlm-config/callback.json"
CONTAINER_CONTEXT_DIR = "/run/rlm-context"
IMAGE_UID = IMAGE_GID = 1000
IMAGE_USER = f"{IMAGE_UID}:{IMAGE_GID}"
_DEFAULTS = SandboxLimits()


class RunDirProvisioning(HasTraits):
    """What both provisioners share: the run directory, ipc transport and kernel env.

    Mixed into a KernelProvisionerBase subclass: `self.parent` is the KernelManager.
    """

    run_dir = Unicode("", config=True, help="Run directory to use; empty: create and own one.")
    context_file = Unicode("", config=True, help="File holding CONTEXT (read-only to the kernel).")
    context_format = Unicode("text", config=True, help="'text' (a str) or 'json'.")
    output_limit = Integer(_DEFAULTS.output_chars, config=True, help="Output chars per execute.")
    callback_timeout = Float(_DEFAULTS.callback_timeout, config=True)
    echo_input = Bool(True, config=True, help="Publish execute_input (front ends show it).")
    callback_handler = Unicode(
        "",
        config=True,
        help="'module:function' returning an llm_query handler, given `handler_config`; "
        "lets kernels started by Jupyter tools call llm_query. Empty: no callbacks, "
        "unless the caller (rlm's Sandbox) serves them itself.",
    )
    handler_config = Dict(config=True, help="Keyword arguments for `callback_handler`.")

    _owned_run_dir: RunDir | None = None
    _callbacks: CallbackServerThread | None = None

    @property
    def layout(self) -> RunDir:
        return RunDir(Path(self.run_dir))

    @property
    def kernel_shared_dir(self) -> str:
        """Where the kernel sees the run directory's shared part."""
        return str(self.layout.shared)

    def prepare_run_dir(self) -> None:
        if not self.run_dir:
            self._owned_run_dir = RunDir.create()
            self.run_dir = str(self._owned_run_dir.path)
        if self.context_file and not os.access(self.context_file, os.R_OK):
            raise ContextFileError(f"cannot read context file {self.context_file}")
        if self.callback_handler and self._callbacks is None:
            self._callbacks = CallbackServerThread(
                self.layout,
                load_handler(self.callback_handler, self.handler_config),
                request_timeout=self.callback_timeout,
            )
            self._callbacks.start()
        km = self.parent
        km.transport = "ipc"
        km.ip = str(self.layout.shared / "kernel-ipc")
        # Outside the kernel's directory: on a restart jupyter_client reads and may rewrite
        # this file, and the kernel could have replaced it with a symlink.
        km.connection_file = str(self.layout.connection_file)

    def kernel_env(
        self, callback_file: str, callback_endpoint: str, context_path: str | None
    ) -> dict[str, str]:
        env = {
            "RLM_OUTPUT_LIMIT": str(self.output_limit),
            "RLM_CALLBACK_TIMEOUT": str(self.callback_timeout),
            "RLM_ECHO_INPUT": "1" if self.echo_input else "0",
        }
        if self.layout.callback_key_file.exists():
            env["RLM_CALLBACK_FILE"] = callback_file
            env["RLM_CALLBACK_ENDPOINT"] = callback_endpoint
        if context_path:
            env["RLM_CONTEXT_FILE"] = context_path
            env["RLM_CONTEXT_FORMAT"] = self.context_format
        return env

    def remove_socket_files(self) -> None:
        for path in self.layout.shared.glob("kernel-ipc-*"):
            path.unlink(missing_ok=True)

    def release_run_dir(self) -> None:
        if self._callbacks is not None:
            self._callbacks.stop()
            self._callbacks = None
        if self._owned_run_dir is not None:
            self._owned_run_dir.remove()
            self._owned_run_dir = None
            self.run_dir = ""


class ContainerProvisioner(RunDirProvisioning, KernelProvisionerBase):  # type: ignore[misc]
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
    kernel_shared_dir = CONTAINER_RUN_DIR

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
        await asyncio.to_thread(_check_image, engine, image)
        options = self._container_options(engine, cmd, kwargs.get("env", {}))
        launch = _Launch(engine, image, options)
        try:
            self.container = await asyncio.to_thread(launch.run)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not start the kernel container: {exc}") from exc
        except asyncio.CancelledError:
            # The engine call goes on in its thread: whatever it creates must go too.
            launch.abandon()
            raise
        return self.connection_info

    def _container_options(
        self, engine: Engine, cmd: list[str], launch_env: dict[str, str]
    ) -> dict[str, Any]:
        layout = self.layout
        # Mount objects, not "src:dst:mode" strings: a path may contain a colon.
        mounts = [
            Mount(CONTAINER_RUN_DIR, str(layout.shared), type="bind"),
            _read_only(CONTAINER_CONNECTION_FILE, layout.container_connection_file),
        ]
        if layout.callback_key_file.exists():
            mounts.append(_read_only(CONTAINER_CALLBACK_FILE, layout.callback_key_file))
        context_path = None
        if self.context_file:
            suffix = ".json" if self.context_format == "json" else ".txt"
            context_path = f"{CONTAINER_CONTEXT_DIR}/context{suffix}"
            mounts.append(_read_only(context_path, Path(self.context_file).resolve()))
        # Only our variables and the kernelspec's reach the kernel: never the host's
        # environment, which holds API keys.
        env = {k: v for k, v in launch_env.items() if k in (self.kernel_spec.env or {})}
        env.update(
            self.kernel_env(
                CONTAINER_CALLBACK_FILE, f"ipc://{CONTAINER_RUN_DIR}/callback", context_path
            )
        )
        memory = self.memory_bytes or SandboxLimits().memory_for(self._context_size())
        options: dict[str, Any] = {
            "command": cmd,
            "detach": True,
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_bytes // MiB}m,mode=1777"},
            "init": True,
            # What the kernel writes to its raw stdout/stderr lands in the engine's log on
            # the host's disk: keep it small.
            "log_config": LogConfig(type="json-file", config={"max-size": "1m"}),
            "mounts": mounts,
            "environment": env,
            "labels": {
                SANDBOX_LABEL: "1",
                OWNER_LABEL: owner_id(),
                UID_LABEL: str(os.getuid()),
                RUN_DIR_LABEL: self.run_dir,
                "rlm.kernel-id": self.kernel_id or "",
            },
        }
        if os.getuid() == 0:
            # Rootful engine: run as the image's unprivileged user, which may create its
            # sockets in the shared directory (through its group) until seal_run_dir().
            # The directory's parent stays private to root.
            os.chown(layout.shared, 0, IMAGE_GID)
            os.chmod(layout.shared, 0o770)
            options["user"] = IMAGE_USER
        else:
            options["user"] = f"{os.getuid()}:{os.getgid()}"
            if engine.is_podman:
                # Socket files must belong to our own uid, not a subordinate one.
                options["userns_mode"] = "keep-id"
        if engine.enforces_cgroup_limits:
            options.update(
                mem_limit=memory,
                memswap_limit=memory,
                pids_limit=self.pids_limit,
                nano_cpus=int(self.cpus * 1e9),
            )
        else:
            _warn_rlimit_fallback(memory, self.pids_limit)
            env["RLM_RLIMIT_AS"] = str(memory)
            # An address-space limit counts reservations: glibc's per-thread malloc arenas
            # (64 MiB each) alone put a 12-thread kernel near 512 MiB before any user code.
            env["MALLOC_ARENA_MAX"] = "2"
            env["RLM_RLIMIT_NPROC"] = str(self.pids_limit)
            options["ulimits"] = [Ulimit(name="nproc", soft=self.pids_limit, hard=self.pids_limit)]
        return options

    def _context_size(self) -> int:
        return os.path.getsize(self.context_file) if self.context_file else 0

    async def poll(self) -> int | None:
        if self.container is None:
            return 0
        try:
            await asyncio.to_thread(self.container.reload)
        except docker.errors.NotFound:
            return -1
        state = self.container.attrs.get("State", {})
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    async def exit_reason(self) -> str:
        """Why the container stopped: its state and the last lines it printed."""
        if self.container is None:
            return "no container"
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

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    def seal_run_dir(self) -> None:
        """Call once the kernel's sockets exist: it may create no more files.

        The shared directory lives on the host's disk, outside the container's tmpfs and
        memory limits. Under a rootful engine the kernel reaches it only through its group,
        so dropping the group's write bit holds; a rootless kernel runs as the directory's
        owner (your own uid) and could undo it, so there is nothing to seal. Done here as
        soon as the sockets appear, for every client (Jupyter's too), and again by rlm's
        Sandbox once the kernel answers, so no code runs before it.
        """
        if os.getuid() == 0:
            os.chmod(self.layout.shared, 0o750)

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

    async def _remove_container(self) -> None:
        if self.container is None:
            return
        try:
            await asyncio.to_thread(self.container.remove, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            log.warning("could not remove kernel container: %s", exc)
            return
        self.container = None

    async def cleanup(self, restart: bool = False) -> None:
        if self._sealer is not None:
            self._sealer.cancel()
            self._sealer = None
        await self._remove_container()
        if restart:
            self.remove_socket_files()
        else:
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


class LocalProvisioner(RunDirProvisioning, JupyterLocalProvisioner):  # type: ignore[misc]
    """Runs rlm's kernel as a plain subprocess. NOT ISOLATED: for development only."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.prepare_run_dir()
        _warn_not_isolated()
        kwargs = await super().pre_launch(**kwargs)
        env = kwargs["env"]
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(RUNTIME_DIR), env.get("PYTHONPATH", "")) if p
        )
        layout = self.layout
        env.update(
            self.kernel_env(
                str(layout.callback_key_file),
                f"ipc://{layout.callback_socket}",
                self.context_file or None,
            )
        )
        # Files the code writes land in the run directory, not in the user's project.
        kwargs["cwd"] = str(layout.shared)
        return kwargs

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if restart:
            self.remove_socket_files()
        else:
            self.release_run_dir()


def load_handler(spec: str, config: dict[str, Any]) -> LLMHandler:
    """Import 'module:function' and call it with `config` to get an llm_query handler."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SandboxError(f"callback_handler must look like 'module:function', not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(**config)


def default_image() -> str:
    from importlib.metadata import version

    return os.environ.get("RLM_IMAGE") or f"localhost/rlm-kernel:{version('rlm')}"


def kernel_argv() -> list[str]:
    """The kernelspec argv; the container provisioner maps the connection file path."""
    return ["python", "-m", "rlm_kernel", "-f", "{connection_file}"]


def local_kernel_argv() -> list[str]:
    return [sys.executable, "-m", "rlm_kernel", "-f", "{connection_file}"]


def _read_only(target: str, source: Path) -> Mount:
    return Mount(target, str(source), type="bind", read_only=True)


class _Launch:
    """One container start on a worker thread, which a cancelled caller can abandon."""

    def __init__(self, engine: Engine, image: str, options: dict[str, Any]) -> None:
        self._args = (engine, image, options)
        self._lock = threading.Lock()
        self._abandoned = False
        self._container: Any = None

    def run(self) -> Any:
        container = _run_container(*self._args)
        with self._lock:
            if not self._abandoned:
                self._container = container
                return container
        _remove_quietly(container)
        return None

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            container, self._container = self._container, None
        if container is not None:  # created, but the result never reached the caller
            threading.Thread(target=_remove_quietly, args=(container,), daemon=True).start()


def _remove_quietly(container: Any) -> None:
    with contextlib.suppress(docker.errors.DockerException):
        container.remove(force=True)


def _run_container(engine: Engine, image: str, options: dict[str, Any]) -> Any:
    """Create and start a container from `options` (containers.run's keywords, detached);
    a container whose start fails is removed rather than left behind "Created".

    docker-py refuses every userns_mode but "host", while Podman's Docker-compatible API
    takes `keep-id` in HostConfig.UsernsMode: build the request with docker-py and set it there.
    """
    from docker.models.containers import _create_container_args

    options = dict(options)
    userns_mode = options.pop("userns_mode", None)
    options.pop("detach", None)
    create = _create_container_args(
        {**options, "image": image, "detach": True, "version": engine.client.api._version}
    )
    if userns_mode:
        create["host_config"]["UsernsMode"] = userns_mode
    container_id = engine.client.api.create_container(**create)["Id"]
    try:
        engine.client.api.start(container_id)
    except docker.errors.DockerException:
        with contextlib.suppress(docker.errors.DockerException):
            engine.client.api.remove_container(container_id, force=True)
        raise
    return engine.client.containers.get(container_id)


_checked_images: set[str] = set()


def _check_image(engine: Engine, image: str) -> None:
    """Fail clearly on a missing image; warn once about one built from other runtime code."""
    if image in _checked_images:
        return
    built_from = engine.require_image(image).get("rlm.runtime-hash")
    if built_from not in (None, "unknown", runtime_hash()):
        log.warning(
            "kernel image %s was built from a different rlm kernel runtime: rebuild it "
            "with `make image`",
            image,
        )
    _checked_images.add(image)


@cache
def _warn_not_isolated() -> None:
    log.warning("local runtime: model-written code runs on this host WITHOUT isolation")


@cache
def _warn_rlimit_fallback(memory: int, pids: int) -> None:
    log.warning(
        "this engine cannot enforce cgroup limits (rootless without delegated cgroups v2): "
        "limiting the kernel with rlimits instead (address space %d MiB, %d processes)",
        memory // MiB,
        pids,
    )
