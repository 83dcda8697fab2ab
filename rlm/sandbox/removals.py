"""Removing finished sandboxes' containers off the caller's path, yet before the process exits.

Removing a container costs the engine 0.1-0.4 s. A run that is done with its sandbox (a
child answering its llm_query, a pool closing with its completion) need not wait for
that: the removal goes to these worker threads. The interpreter joins them when it exits
(concurrent.futures does so for its workers, before atexit handlers stop a podman service
we started), so a process that ends normally, even right after a close, leaves nothing.
The container goes before its run directory: if the process is killed meanwhile, the
owner-death reaper (rlm.sandbox.reaper) still finds the directory, and removes both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import docker.errors

from rlm.sandbox.rundir import RunDir

log = logging.getLogger(__name__)

# Removals are engine calls that mostly wait; a few at once keep up with 100 sandboxes
# without the create/remove churn that has deadlocked Podman 4.3's API service.
WORKERS = 4

_executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rlm-removal")
_pending: set[Future[None]] = set()
_lock = threading.Lock()


def remove_later(container: Any, run_dir: RunDir | None) -> None:
    """Remove `container` (a docker-py Container, or None), then `run_dir`, on a worker."""
    try:
        future = _executor.submit(_remove, container, run_dir)
    except RuntimeError:  # the interpreter is shutting down: no new threads
        _remove(container, run_dir)
        return
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def pending() -> int:
    """Removals handed over and not yet done."""
    with _lock:
        return len(_pending)


async def drain(timeout: float = 60.0) -> None:
    """Wait until every removal handed over so far is done (tests, benchmarks)."""
    with _lock:
        waiting = list(_pending)
    if waiting:
        await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, waiting)), timeout)


def _forget(future: Future[None]) -> None:
    with _lock:
        _pending.discard(future)


def _remove(container: Any, run_dir: RunDir | None) -> None:
    if container is not None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            # The run directory stays: the reaper or the next sweep finds the container by it.
            log.warning("could not remove kernel container %s: %s", container.short_id, exc)
            return
    if run_dir is not None:
        run_dir.remove()
