"""Removing containers and run directories left behind by rlm processes that died."""

from __future__ import annotations

import logging
import os
import shutil
import threading

import docker.errors

from rlm.sandbox.engine import Engine
from rlm.sandbox.rundir import (
    OWNER_LABEL,
    RUN_DIR_LABEL,
    UID_LABEL,
    ours_to_remove,
    owner_alive,
    sweep_run_dirs,
)

log = logging.getLogger(__name__)

_swept: set[str] = set()
_lock = threading.Lock()


def sweep_leftovers(engine: Engine) -> int:
    """Remove dead owners' containers (and their run dirs); return how many containers."""
    removed = 0
    try:
        containers = engine.client.containers.list(
            all=True, sparse=True, filters={"label": OWNER_LABEL}
        )
    except docker.errors.DockerException as exc:
        log.warning("could not list containers to sweep: %s", exc)
        return 0
    for container in containers:
        # A sparse listing carries the labels at the top level.
        labels = container.attrs.get("Labels") or {}
        if labels.get(UID_LABEL) != str(os.getuid()) or owner_alive(labels.get(OWNER_LABEL, "")):
            continue  # another user's (a shared Docker daemon), or its owner still runs
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            log.warning("could not remove leftover container %s: %s", container.short_id, exc)
        if run_dir := ours_to_remove(labels.get(RUN_DIR_LABEL, "")):
            shutil.rmtree(run_dir, ignore_errors=True)
    sweep_run_dirs()
    if removed:
        log.info("removed %d containers left by dead rlm processes", removed)
    return removed


def sweep_once(engine: Engine) -> None:
    """Sweep the first time this process uses an engine."""
    with _lock:
        if engine.url in _swept:
            return
        _swept.add(engine.url)
    sweep_leftovers(engine)
