"""A Ray cluster of several nodes on this machine, kept on loopback: for the tests, the
benchmark, and trying the Ray executor without a cluster.

    with LoopbackCluster.start(sandboxes=2) as cluster:
        cluster.add_node(sandboxes=2)            # a second node, at 127.0.0.3
        executor = RayExecutor(cluster.address)

Ray rewrites 127.0.0.1 to the machine's outward address, so nodes bind 127.0.0.2, .3, ...
Unconfigured, Ray's processes also reach out (usage reports, a cloud metadata probe): the
nodes get a HOME of their own holding an empty ray_bootstrap_config.yaml, usage stats
off and aimed at a closed loopback port, and no dashboard. Each node is a `ray start
--block` in a process group of its own: killing it (SIGKILL to the group) takes its
raylet down like a machine lost, and its workers (Ray gives each a group of its own) exit
with their raylet; stopping it touches nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rlm.batch.ray_executor import RESOURCE, require_ray

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
GRACE_S = 5.0
"""How long a node may take to stop on SIGTERM before its group is killed."""
READY_LINE = "This command will now block forever"
OBJECT_STORE_BYTES = 200 * 1024 * 1024
"""Plenty for contexts in flight; Ray's default takes 30% of memory per node."""


def quiet_env(home: Path) -> dict[str, str]:
    """Environment for Ray processes (nodes and drivers) that send nothing off the machine."""
    return {
        "HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Port 9 (discard) on loopback: nothing listens, so a report would fail at once.
        "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    }


@dataclass
class LoopbackNode:
    ip: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class LoopbackCluster:
    base: Path
    port: int
    nodes: dict[str, LoopbackNode] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.2:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return quiet_env(self.base / "home")

    @classmethod
    def start(cls, sandboxes: int = 2) -> LoopbackCluster:
        """A head node at 127.0.0.2 offering `sandboxes` units of RESOURCE."""
        require_ray()
        # Short: Ray's Unix sockets live under it, and their paths are limited to 107 bytes.
        base = Path(tempfile.mkdtemp(prefix="rlmray-", dir="/tmp"))
        home = base / "home"
        home.mkdir()
        (home / "ray_bootstrap_config.yaml").write_text("{}\n")
        cluster = cls(base, _free_port("127.0.0.2"))
        try:
            cluster._start_node(
                "127.0.0.2",
                sandboxes,
                ["--head", f"--port={cluster.port}", "--include-dashboard=false"],
            )
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_node(
        self, sandboxes: int = 2, ip: str | None = None, env: Mapping[str, str] | None = None
    ) -> LoopbackNode:
        """Another node joining the head, at the next loopback address; `env` adds to its
        processes' environment (to make one node differ from the others)."""
        ip = ip or f"127.0.0.{2 + len(self.nodes)}"
        return self._start_node(ip, sandboxes, [f"--address={self.address}"], env or {})

    def kill(self, ip: str) -> None:
        """Lose a node abruptly, workers and all."""
        node = self.nodes.pop(ip)
        _signal_group(node.process, signal.SIGKILL)
        node.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stop every node this cluster started (and nothing else), then remove its files."""
        for ip in sorted(self.nodes, reverse=True):  # workers before the head
            node = self.nodes.pop(ip)
            _signal_group(node.process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(GRACE_S)
            # Whatever outlived the graceful stop (workers, agents) goes with the group.
            _signal_group(node.process, signal.SIGKILL)
            node.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_node(
        self, ip: str, sandboxes: int, role: list[str], env: Mapping[str, str] | None = None
    ) -> LoopbackNode:
        log = self.base / f"node-{ip}.log"
        command = [
            # Ray's CLI run by this interpreter: the nodes import the same rlm as the driver,
            # whether or not the `ray` script is on PATH.
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            *role,
            f"--node-ip-address={ip}",
            "--num-cpus=1",
            f"--resources={json.dumps({RESOURCE: sandboxes})}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={self.base / 'ray'}",
            "--disable-usage-stats",
            "--block",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {}), **self.env},
                start_new_session=True,
            )
        node = self.nodes[ip] = LoopbackNode(ip, process, log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while READY_LINE not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"Ray node {ip} did not start: {' '.join(tail)}")
            time.sleep(0.2)
        return node


def _free_port(host: str) -> int:
    # An ephemeral port, outside the range Ray gives its workers (10002-19999).
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
