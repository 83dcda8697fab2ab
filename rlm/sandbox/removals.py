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
import contextlib
import logging
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker.errors
import requests

from rlm.sandbox.engine import get_engine
from rlm.sandbox.rundir import OWNER_LABEL, RUN_DIR_LABEL, RunDir, owner_id

log = logging.getLogger(__name__)

# One at a time: removing 100 sandboxes then takes about 20 s of background work, while
# parallel removals racing other processes' creates have deadlocked Podman 4.3 here (a
# forced removal and the container's own clean-up process waiting on each other).
WORKERS = 1
# Podman's clean-up race can outlast a second under load. Usually it is over at once: a
# third of foreground closes here hit it, and a retry 0.02 s later found the container
# gone (a close took 160 ms instead of 390 ms with a first retry after 0.25 s).
RETRY_DELAYS = (0.02, 0.1, 0.25, 1.0, 2.0, 4.0)
EXIT_TIMEOUT = 10.0

_executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rlm-removal")
_pending: set[Future[None]] = set()
_lock = threading.Lock()


def remove_later(container: Any, run_dir: RunDir | None, *, engine: bool) -> None:
    """Remove `container` (a docker-py Container, or None), then `run_dir`, on a worker.

    With `engine`, any other container labelled with `run_dir` goes too; without it
    (a sandbox that never ran on an engine) the engine is not asked at all.
    """
    try:
        future = _executor.submit(_remove, container, run_dir, engine)
    except RuntimeError:  # the interpreter is shutting down: no new threads
        _remove(container, run_dir, engine)
        return
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def pending() -> int:
    """Removals handed over and not yet done."""
    with _lock:
        return len(_pending)


def wait(timeout: float = 60.0) -> bool:
    """Block until every removal handed over so far is done; False if some are not."""
    with _lock:
        waiting = list(_pending)
    return not futures.wait(waiting, timeout).not_done


async def drain(timeout: float = 60.0) -> None:
    """Wait until every removal handed over so far is done (tests, benchmarks)."""
    if not await asyncio.to_thread(wait, timeout):
        raise TimeoutError(f"background container removals still running after {timeout:g} s")


def _forget(future: Future[None]) -> None:
    with _lock:
        _pending.discard(future)


def _remove(container: Any, run_dir: RunDir | None, engine: bool) -> None:
    try:
        _remove_now(container, run_dir, engine)
    except Exception as exc:
        # Nobody awaits a background removal: unlogged, this failure would leave a
        # container behind without a word.
        log.warning("a background removal failed: %r", exc, exc_info=exc)


def _remove_now(container: Any, run_dir: RunDir | None, engine: bool) -> None:
    if container is not None and not remove_container(container):
        return  # the run directory stays: the reaper or the next sweep finds the container by it
    if run_dir is not None:
        if engine and not remove_leftovers(str(run_dir.path)):
            return
        run_dir.remove()


def remove_leftovers(run_dir: str) -> bool:
    """Remove every container labelled with `run_dir` (blocking); False if one stays.

    The container a sandbox holds is not always every container made for it: a start
    cancelled at the wrong moment can leave one the sandbox never learnt of. The label
    names them all.
    """
    return not run_dir or _remove_labelled(f"{RUN_DIR_LABEL}={run_dir}")


def remove_owned() -> None:
    """Remove every container of this process that is still there (blocking), at its exit."""
    # The process is ending: a hung engine may hold it seconds, not the client's minutes.
    get_engine().client.api.timeout = EXIT_TIMEOUT
    _remove_labelled(f"{OWNER_LABEL}={owner_id()}")


def _remove_labelled(label: str) -> bool:
    """Remove every container carrying `label` (`name=value`); False if one stays."""
    if _answers.stuck:
        return False
    try:
        found = get_engine().client.containers.list(all=True, sparse=True, filters={"label": label})
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("could not list the containers labelled %s: %s", label, exc)
        return False
    return all([remove_container(container) for container in found])


def remove_container(container: Any) -> bool:
    """Remove a container now (blocking); False if the engine refused it, which is logged.

    Podman 4.3 sometimes fails a removal that races the container's own clean-up
    ("unlinkat .../userdata/shm: device or resource busy"): it is tried again.
    """
    for delay in (*RETRY_DELAYS, None):
        if _answers.stuck:
            break
        try:
            with get_engine().changes, contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
            return True
        except requests.exceptions.Timeout as exc:  # no answer within the client's timeout
            _answers.stuck = True
            log.warning("the engine did not answer a removal: %s", exc)
        except (docker.errors.DockerException, OSError) as exc:  # refused, or a dropped call
            if delay is None:
                log.warning("could not remove kernel container %s: %s", container.short_id, exc)
            else:
                time.sleep(delay)
    return False


@dataclass
class _EngineState:
    # Once a removal went unanswered (a deadlocked Podman), the rest are left to the reaper
    # and the next sweep: the interpreter joins these threads at exit, and each further
    # call could wait out the client's timeout again.
    stuck: bool = False


_answers = _EngineState()
