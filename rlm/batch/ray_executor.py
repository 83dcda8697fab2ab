"""Batch work on a Ray cluster: each job runs as a Ray task on a node offering a sandbox.

Every node that should run sandboxes advertises a custom resource, RESOURCE, as many units
as sandboxes it can hold (`ray start --resources '{"rlm_sandbox": 4}'`); each task takes
one unit, so Ray never starts more sandboxes on a node than it declared. A task whose
worker or node dies is retried elsewhere by Ray (`max_retries`); its output still reaches
the driver exactly once. Secrets reach workers as the environment variables named by the
caller, set through each task's runtime environment: never as task arguments.

Ray is an optional extra (`pip install 'rlm[ray]'`); it is imported on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rlm.batch.executor import Executor, ExecutorSetupError, Job

log = logging.getLogger(__name__)

RESOURCE = "rlm_sandbox"
CONNECT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 120.0
CANCEL_GRACE_S = 5.0
"""How long interrupted jobs get to close their sandboxes before their workers are killed."""

NodeProbe = Callable[[], "str | None"]
"""Run on a node: None if it can run our jobs, else what it lacks, in a few words."""


class TaskLost(RuntimeError):
    """A job's node or worker died more often than Ray retries it."""


@dataclass(frozen=True, order=True)
class Node:
    ip: str
    id: str
    sandboxes: int
    """Units of RESOURCE: the sandboxes it runs at once."""


def require_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ExecutorSetupError("the Ray executor needs Ray: pip install 'rlm[ray]'") from None
    return ray


def _run_job(job: Job, item: Any) -> Any:
    """The Ray task: one job on a worker, with an event loop of its own."""
    return asyncio.run(_interruptible(job, item))


async def _interruptible(job: Job, item: Any) -> Any:
    # Ray cancels a running task with SIGINT; as a loop signal handler it wakes the loop
    # and cancels the job, which then closes its sandbox. (Left to Python's default
    # handler, it waits until the loop happens to wake, possibly never.)
    main = asyncio.current_task()
    assert main is not None
    with contextlib.suppress(ValueError, RuntimeError):  # not on the main thread: no signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, main.cancel)
    return await job(item)


def _probe_node(probe: NodeProbe) -> str | None:
    try:
        return probe()
    except Exception as exc:  # a broken node is reported like a missing piece
        return f"the check failed: {type(exc).__name__}: {exc}"


class RayExecutor(Executor):
    """Jobs as Ray tasks on the cluster at `address` ("auto": the one this machine
    belongs to; "host:port": its head). At most `concurrency` tasks are in flight (default:
    every sandbox the cluster declares), so inputs are shipped as slots free up.
    `env_vars` become the workers' environment (keys, endpoints). A Ray connection made
    here is closed by `close`; one the caller made stays open."""

    def __init__(
        self,
        address: str = "auto",
        *,
        env_vars: Mapping[str, str] | None = None,
        concurrency: int | None = None,
        max_retries: int = 3,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.env_vars = dict(env_vars or {})
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.connect_timeout_s = connect_timeout_s
        self.nodes: list[Node] = []
        self._owns_connection = False

    def connect(self) -> list[Node]:
        """Join the cluster (bounded by connect_timeout_s); return the nodes offering
        sandboxes. Raises ExecutorSetupError when there is no such cluster or node."""
        ray = require_ray()
        if not ray.is_initialized():
            self._init(ray)
            self._owns_connection = True
        self.nodes = [
            Node(node["NodeManagerAddress"], node["NodeID"], int(node["Resources"][RESOURCE]))
            for node in ray.nodes()
            if node["Alive"] and node["Resources"].get(RESOURCE, 0) >= 1
        ]
        if not self.nodes:
            raise ExecutorSetupError(
                f"no node of the Ray cluster at {self.address} offers the {RESOURCE} resource: "
                f"start nodes with ray start --resources '{{\"{RESOURCE}\": N}}'"
            )
        return self.nodes

    def check_nodes(self, probe: NodeProbe, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        """Run `probe` on every sandbox node; raise ExecutorSetupError naming, in one line,
        each node that lacks something (or does not answer within timeout_s)."""
        ray = require_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = self.nodes or self.connect()
        remote = ray.remote(_probe_node)
        refs = {
            remote.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
                runtime_env=self._runtime_env(),
            ).remote(probe): node
            for node in nodes
        }
        done, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in late:
            ray.cancel(ref, force=True)
        problems: list[tuple[Node, str | None]] = []
        gone: set[Node] = set()
        for ref in done:
            try:
                problems.append((refs[ref], ray.get(ref)))
            except ray.exceptions.TaskUnschedulableError:
                # Listed alive, already gone: Ray notices a lost node only after its health
                # checks fail. A node that left is no reason to refuse the batch.
                gone.add(refs[ref])
        problems += [(refs[ref], f"did not answer within {timeout_s:g} s") for ref in late]
        if gone:
            log.warning("Ray nodes left the cluster: %s", ", ".join(sorted(n.ip for n in gone)))
            self.nodes = [node for node in nodes if node not in gone]
            if not self.nodes:
                raise ExecutorSetupError(f"every sandbox node of {self.address} left the cluster")
        found = [f"node {node.ip}: {problem}" for node, problem in sorted(problems) if problem]
        if found:
            raise ExecutorSetupError("; ".join(found))

    async def stream(self, job: Job, inputs: Sequence[Any]) -> AsyncIterator[tuple[int, Any]]:
        ray = require_ray()
        nodes = self.nodes or self.connect()
        limit = self.concurrency or sum(node.sandboxes for node in nodes)
        remote = ray.remote(_run_job).options(
            num_cpus=0,
            resources={RESOURCE: 1},
            max_retries=self.max_retries,
            runtime_env=self._runtime_env(),
        )
        job_ref = ray.put(job)  # shipped once, not once per task
        in_flight: dict[asyncio.Future[Any], tuple[int, Any]] = {}
        submitted = 0
        try:
            while submitted < len(inputs) or in_flight:
                while submitted < len(inputs) and len(in_flight) < limit:
                    ref = remote.remote(job_ref, inputs[submitted])
                    in_flight[asyncio.wrap_future(ref.future())] = (submitted, ref)
                    submitted += 1
                finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for future in finished:
                    index, _ = in_flight.pop(future)
                    yield index, _result(ray, future, index)
        finally:
            if in_flight:
                await _cancel([ref for _, ref in in_flight.values()], list(in_flight))

    def close(self) -> None:
        if self._owns_connection:
            require_ray().shutdown()
            self._owns_connection = False
        self.nodes = []

    def _runtime_env(self) -> dict[str, Any]:
        return {"env_vars": self.env_vars} if self.env_vars else {}

    def _init(self, ray: ModuleType) -> None:
        if ":" in self.address and "://" not in self.address:
            # Ray itself retries an unreachable head for minutes.
            host, _, port = self.address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), self.connect_timeout_s).close()
            except (OSError, ValueError) as exc:
                raise ExecutorSetupError(
                    f"cannot reach the Ray cluster at {self.address}: {exc}"
                ) from None
        outcome: list[BaseException | None] = []

        def init() -> None:
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
                outcome.append(None)
            except BaseException as exc:  # reported on the caller's thread
                outcome.append(exc)

        # On a thread, so a head that accepts connections but never answers cannot hang us.
        quiet = logging.getLogger("ray")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # Ray warns it cannot set signal handlers off-main
        try:
            thread = threading.Thread(target=init, name="ray-init", daemon=True)
            thread.start()
            thread.join(self.connect_timeout_s)
        finally:
            quiet.setLevel(level)
        if not outcome:
            raise ExecutorSetupError(
                f"the Ray cluster at {self.address} did not answer within "
                f"{self.connect_timeout_s:g} s"
            )
        if isinstance(outcome[0], ConnectionError) and self.address == "auto":
            raise ExecutorSetupError(
                "no running Ray cluster found from this machine (address 'auto'): start one "
                "(ray start --head) or give the head's host:port"
            )
        if outcome[0] is not None:
            first_line = str(outcome[0]).strip().splitlines()[0] if str(outcome[0]) else ""
            raise ExecutorSetupError(
                f"cannot join the Ray cluster at {self.address}: "
                f"{first_line or type(outcome[0]).__name__}"
            )


async def _cancel(refs: list[Any], running: Collection[asyncio.Future[Any]]) -> None:
    """Stop jobs still running: interrupt them (a job then closes its sandbox), and kill the
    workers of those that do not finish within CANCEL_GRACE_S (a job stuck in a blocking
    call does not see the interrupt). A killed job's container is removed by the next rlm
    process to start a sandbox on that node, which sweeps those of dead owners."""
    ray = require_ray()
    for future in running:
        # Nobody reads these outcomes (mostly "cancelled"): mark them read, or asyncio logs
        # each as an exception never retrieved.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
    for ref in refs:
        ray.cancel(ref)
    await asyncio.wait(running, timeout=CANCEL_GRACE_S)
    for ref in refs:
        ray.cancel(ref, force=True)  # a no-op for the jobs that have finished


def _result(ray: ModuleType, future: asyncio.Future[Any], index: int) -> Any:
    try:
        return future.result()
    except ray.exceptions.RayTaskError as exc:
        # The job itself raised: re-raise its own exception type.
        raise exc.as_instanceof_cause() from None
    except ray.exceptions.RayError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise TaskLost(f"input {index} was lost after Ray's retries: {first_line}") from None
