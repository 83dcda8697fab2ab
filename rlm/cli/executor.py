"""`--executor` and `--ray-address`: where batch work runs, checked before any model call.

With `--executor ray` the driver joins the cluster, finds the nodes offering sandboxes
and checks on each that it can start one (engine and image, or ipykernel); any problem is
a UsageProblem naming the node. The preset's key and endpoint variables are forwarded to
the workers through the tasks' runtime environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from rlm.batch import Executor, ExecutorSetupError, LocalExecutor, RuntimeProbe
from rlm.cli.errors import UsageProblem

DEFAULT_LOCAL_CONCURRENCY = 4

F = TypeVar("F", bound=Callable[..., Any])


def executor_options(command: F) -> F:
    command = click.option(
        "--ray-address",
        metavar="ADDR",
        help="With --executor ray: the head's host:port (default: auto, the cluster this "
        "machine belongs to).",
    )(command)
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="Where tasks run: this machine, or the nodes of a Ray cluster that offer the "
        "rlm_sandbox resource (pip install 'rlm[ray]').",
    )(command)


def check_options(kind: str, address: str | None) -> None:
    if address and kind != "ray":
        raise UsageProblem("--ray-address needs --executor ray")


def make_executor(
    kind: str,
    address: str | None,
    concurrency: int | None,
    env_vars: Mapping[str, str],
    probe: RuntimeProbe | None,
) -> Executor:
    """The executor asked for, connected and checked. `env_vars` (keys, endpoints) become
    the workers' environment; `probe` (None: no sandboxes are needed, as for the
    baseline) runs on every sandbox node of a cluster."""
    check_options(kind, address)
    if kind == "local":
        return LocalExecutor(concurrency or DEFAULT_LOCAL_CONCURRENCY)
    from rlm.batch.ray_executor import RayExecutor

    executor = RayExecutor(address or "auto", env_vars=env_vars, concurrency=concurrency)
    try:
        executor.connect()
        if probe is not None:
            executor.check_nodes(probe)
    except ExecutorSetupError as exc:
        executor.close()
        raise UsageProblem(str(exc)) from None
    return executor
