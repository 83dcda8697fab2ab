"""Starting a kernel container through the engine's public API, and its image.

Only docker-py's public API is used: `APIClient.create_host_config` builds the host config
(a dict) and `APIClient.create_container` takes it. A container that fails after it was
created is removed, and so is one whose start the caller abandoned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import Mount

from rlm.kernel_image import runtime_hash
from rlm.sandbox import removals
from rlm.sandbox.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class ContainerRequest:
    """One kernel container: what `create_container` takes, and its host config.

    `host` holds `create_host_config` keywords. `userns_mode` is set on the built host
    config instead: docker-py refuses every value but "host", while Podman's
    Docker-compatible API takes `keep-id` in HostConfig.UsernsMode.
    """

    image: str
    command: list[str]
    user: str
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    userns_mode: str | None = None


def default_image() -> str:
    from importlib.metadata import version

    return os.environ.get("RLM_IMAGE") or f"localhost/rlm-kernel:{version('rlm')}"


def read_only_mount(target: str, source: Path) -> Mount:
    return Mount(target, str(source), type="bind", read_only=True)


def run_container(engine: Engine, request: ContainerRequest) -> Any:
    """Create and start the container; remove it if anything fails once it exists."""
    api = engine.client.api
    host_config = api.create_host_config(**request.host)
    if request.userns_mode:
        host_config["UsernsMode"] = request.userns_mode
    with engine.changes:
        container_id = api.create_container(
            request.image,
            command=request.command,
            user=request.user,
            environment=request.environment,
            labels=request.labels,
            detach=True,
            host_config=host_config,
        )["Id"]
        try:
            api.start(container_id)
            # A model of the id alone, not an inspect (one more engine round trip on every
            # start): the provisioner reloads the container's state whenever it reads it.
            return engine.client.containers.prepare_model({"Id": container_id})
        except BaseException:
            with contextlib.suppress(docker.errors.DockerException):
                api.remove_container(container_id, force=True)
            raise


class Launch:
    """One container start on a worker thread, which a cancelled caller can abandon.

    `run_dir` holds the container's bind sources: an engine recreates a missing source as
    an empty directory, so once the caller has removed it, an abandoned start would leave
    it behind (with no owner file): the start removes it again on its way out.
    """

    def __init__(self, engine: Engine, request: ContainerRequest, run_dir: Path) -> None:
        self._args = (engine, request)
        self._run_dir = run_dir
        self._lock = threading.Lock()
        self._abandoned = False
        self._container: Any = None

    def run(self) -> Any:
        try:
            container = run_container(*self._args)
        except BaseException:
            self._remove_run_dir_if_abandoned()
            raise
        with self._lock:
            if not self._abandoned:
                self._container = container
                return container
        _remove_quietly(container)
        self._remove_run_dir_if_abandoned()
        return None

    def _remove_run_dir_if_abandoned(self) -> None:
        with self._lock:
            if self._abandoned:
                shutil.rmtree(self._run_dir, ignore_errors=True)

    def abandon(self) -> Any:
        """Mark the start abandoned. Returns its container if `run` had already handed it
        over (the result never reached the caller, who must remove it); otherwise `run`
        removes whatever it creates."""
        with self._lock:
            self._abandoned = True
            container, self._container = self._container, None
        return container


def _remove_quietly(container: Any) -> None:
    # Retried: Podman refuses some removals that race the container's own clean-up.
    removals.remove_container(container)


_checked_images: set[str] = set()


def check_image(engine: Engine, image: str) -> None:
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
