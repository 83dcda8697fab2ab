"""The warm pool: sandboxes started ahead, each handed to one run with its context."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rlm.sandbox import removals
from rlm.sandbox.engine import get_engine
from rlm.sandbox.pool import SandboxPool
from rlm.sandbox.rundir import OWNER_LABEL, RUN_DIR_LABEL, owner_id
from tests.conftest import RecordingHandler

pytestmark = pytest.mark.rootless


def our_containers() -> set[str]:
    """This process's containers: other processes' tests may run at the same time."""
    containers = get_engine().client.containers.list(
        # This process's only: other processes on the host run containers of their own.
        all=True,
        sparse=True,
        filters={"label": f"{OWNER_LABEL}={owner_id()}"},
    )
    return {c.id for c in containers}


async def all_gone(containers: set[str], *named: str | None) -> None:
    """Wait up to 60 s for `containers` to be removed; if one stays, fail saying what it
    is (this has failed rarely in CI, with no removal warning logged)."""
    deadline = asyncio.get_running_loop().time() + 60
    while left := containers & our_containers():
        if asyncio.get_running_loop().time() > deadline:
            found = get_engine().client.containers.list(all=True, filters={"id": list(left)})
            described = [
                f"{c.short_id} {c.status} created {c.attrs.get('Created')} "
                f"run-dir {c.labels.get(RUN_DIR_LABEL)} (exists: "
                f"{Path(c.labels.get(RUN_DIR_LABEL, '/nonexistent')).exists()})"
                for c in found
            ]
            pytest.fail(
                f"containers left 60 s after the pool closed: {described}; the test's own "
                f"sandboxes were {named}; removals pending {removals.pending()}"
            )
        await asyncio.sleep(0.1)


async def wait_ready(pool: SandboxPool, count: int) -> None:
    async with asyncio.timeout(120):
        while pool.ready < count:
            await asyncio.sleep(0.05)


async def test_warm_sandbox_gets_its_context_and_handler(runtime: str) -> None:
    handler = RecordingHandler()
    async with SandboxPool(2, runtime=runtime) as pool:
        await wait_ready(pool, 2)
        box = await pool.acquire({"rows": ["a", "b"]}, handler)
        try:
            result = await box.execute(
                "print(type(CONTEXT).__name__, json.dumps(context), llm_query('hi'))"
            )
            assert result.stdout == 'dict {"rows": ["a", "b"]} answer to hi\n'
            assert pool.stats()["hits"] == 1
        finally:
            await box.close()
        text = await pool.acquire("plain text", handler)
        try:
            assert (await text.execute("print(CONTEXT)")).stdout == "plain text\n"
        finally:
            await text.close()


@pytest.mark.container
async def test_each_sandbox_serves_one_run_and_the_pool_refills(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rlm.sandbox")  # shown if a container stays
    async with SandboxPool(1) as pool:
        await wait_ready(pool, 1)
        first = await pool.acquire("one", RecordingHandler())
        await first.execute("secret = 'left by run one'")
        first_id = first.container_id
        await first.close()
        await wait_ready(pool, 1)
        second = await pool.acquire("two", RecordingHandler())
        try:
            assert second.container_id != first_id
            leftover = await second.execute("print('secret' in globals(), CONTEXT)")
            assert leftover.stdout == "False two\n"
        finally:
            await second.close()
        waiting = our_containers()
    # Closing the pool hands the sandboxes still waiting for a run to the removal threads.
    await removals.drain()
    # A start abandoned in its engine call removes its own.
    await all_gone(waiting, first_id, second.container_id)


@pytest.mark.container
async def test_kernels_start_concurrently_and_released_ones_are_removed() -> None:
    before = our_containers()
    async with SandboxPool(3, start_concurrency=2) as pool:
        await asyncio.sleep(0)  # let the filler run once
        assert pool.stats()["starting"] == 2
        await wait_ready(pool, 3)
        box = await pool.acquire("x", RecordingHandler())
        await pool.release(box)
        assert box.closed
    await removals.drain()
    assert our_containers() <= before


@pytest.mark.container
async def test_closing_a_pool_leaves_the_engine_to_the_removal_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closing a pool asks the engine nothing on the caller's path: the label search for
    leftover containers runs on the removal worker, with the container's removal (it ran
    on the close's path once, 0.25-0.5 s per close here)."""
    searched_on: list[str] = []
    search = removals.remove_leftovers

    def recording(run_dir: str) -> bool:
        searched_on.append(threading.current_thread().name)
        return search(run_dir)

    monkeypatch.setattr(removals, "remove_leftovers", recording)
    before = our_containers()
    async with SandboxPool(2) as pool:
        await wait_ready(pool, 2)
    await removals.drain()
    assert len(searched_on) == 2
    assert all(name.startswith("rlm-removal") for name in searched_on), searched_on
    assert our_containers() <= before


async def test_empty_pool_starts_a_fresh_sandbox() -> None:
    pool = SandboxPool(1, runtime="local")  # never started: nothing is ready
    box = await pool.acquire("cold", RecordingHandler())
    try:
        assert (await box.execute("print(CONTEXT)")).stdout == "cold\n"
        assert pool.stats() == {"size": 1, "ready": 0, "starting": 0, "hits": 0, "misses": 1}
    finally:
        await box.close()
        await pool.close()


@pytest.mark.container
async def test_a_pool_that_cannot_start_kernels_falls_back_and_closes_cleanly() -> None:
    before = our_containers()
    pool = SandboxPool(2, image="localhost/rlm-kernel:does-not-exist")
    pool.start()
    await asyncio.sleep(1.0)
    assert pool.ready == 0
    with pytest.raises(Exception, match="make image"):
        await pool.acquire("x", RecordingHandler())
    await pool.close()
    assert our_containers() <= before


MEMFDS_HELD = """
def memfds_held():
    held = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            held += 'rlm-context' in os.readlink(f'/proc/self/fd/{fd}')
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return held
"""


async def test_load_context_replaces_context_without_a_file(runtime: str) -> None:
    async with SandboxPool(1, runtime=runtime) as pool:
        await wait_ready(pool, 1)
        box = await pool.acquire("first", RecordingHandler())
        try:
            for context in (["replaced", "caf\u00e9 \U0001f600"], "", "x" * 3_000_000):
                await box.load_context(context)
                result = await box.execute("print(json.dumps(CONTEXT)[:1000])")
                assert result.stdout == json.dumps(context)[:1000] + "\n"
            assert (await box.execute("print(CONTEXT == 'x' * 3_000_000)")).stdout == "True\n"
            # The memfd went with the load: neither side keeps it, nothing is on disk.
            held = await box.execute(f"import os\n{MEMFDS_HELD}\nprint(memfds_held())")
            assert held.stdout == "0\n"
            namespace: dict[str, Any] = {}
            exec(MEMFDS_HELD, {"os": os}, namespace)
            await wait_ready(pool, 1)  # the refill's kernel has taken its own context
            assert namespace["memfds_held"]() == 0
            assert box.run_dir is not None
            assert not [p for p in box.run_dir.rglob("*") if "context" in p.name]
        finally:
            await box.close()


@pytest.mark.container
async def test_closing_while_kernels_start_leaves_nothing() -> None:
    before = our_containers()
    pool = SandboxPool(2)
    pool.start()
    async with asyncio.timeout(120):  # a start is under way in the engine
        while not our_containers() - before:
            await asyncio.sleep(0.01)
    assert pool.ready == 0
    await pool.close()
    await removals.drain()
    # A start abandoned inside its engine call removes what it made on its own thread.
    async with asyncio.timeout(60):
        while our_containers() - before:
            await asyncio.sleep(0.1)


EXITS_RIGHT_AFTER_CLOSING = """
import asyncio
from rlm.sandbox import removals
from rlm.sandbox.pool import SandboxPool

async def main():
    pool = SandboxPool(2)
    pool.start()
    async with asyncio.timeout(120):
        while pool.ready < 2:
            await asyncio.sleep(0.05)
    print(*(box.container_id for box in pool._ready), flush=True)
    print(*(box.run_dir for box in pool._ready), flush=True)
    await pool.close()  # leaves the removals to worker threads and returns
    print(removals.pending(), flush=True)

asyncio.run(main())
"""


@pytest.mark.container
def test_a_process_that_exits_right_after_closing_leaves_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXITS_RIGHT_AFTER_CLOSING],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    containers, run_dirs, pending = done.stdout.splitlines()
    # Close returned with removals still to do (one worker: the second waits for the first,
    # which the host-side closes may already have outlasted).
    assert int(pending) >= 1
    for container in containers.split():
        exists = subprocess.run(["podman", "container", "exists", container], timeout=60)
        assert exists.returncode == 1
    assert not any(Path(run_dir).exists() for run_dir in run_dirs.split())
