"""Kernel specs that select rlm's provisioners, for our own Sandbox and for Jupyter tools."""

from __future__ import annotations

import sys
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

RUNTIMES = ("container", "local")


def kernel_argv() -> list[str]:
    """The kernelspec argv; the container provisioner maps the connection file path."""
    return ["python", "-m", "rlm_kernel", "-f", "{connection_file}"]


def local_kernel_argv() -> list[str]:
    return [sys.executable, "-m", "rlm_kernel", "-f", "{connection_file}"]


def make_kernel_spec(runtime: str, provisioner_config: dict[str, Any]) -> KernelSpec:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    container = runtime == "container"
    return KernelSpec(
        argv=kernel_argv() if container else local_kernel_argv(),
        display_name="rlm (sandboxed Python)" if container else "rlm (local, NOT isolated)",
        language="python",
        # Interrupts travel as control messages: no signal has to cross the engine.
        interrupt_mode="message",
        metadata={
            "kernel_provisioner": {
                "provisioner_name": "rlm-container" if container else "rlm-local",
                "config": provisioner_config,
            }
        },
    )


class FixedKernelSpecManager(KernelSpecManager):
    """Hands a KernelManager one in-memory spec, without touching kernelspec directories."""

    def __init__(self, spec: KernelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec
