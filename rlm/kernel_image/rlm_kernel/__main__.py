"""Start rlm's kernel: apply resource limits, then hand over to ipykernel (RLMKernelApp).

Limits come from the environment because the host decides them; they are applied here,
before any user code exists, where the engine cannot enforce cgroup limits (rootless Podman
on cgroups v1 hosts).
"""

import os
import resource

from rlm_kernel.protocol import Env


def _apply_rlimits() -> None:
    address_space = os.environ.get(Env.RLIMIT_AS)
    if address_space:
        limit = int(address_space)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    processes = os.environ.get(Env.RLIMIT_NPROC)
    if processes:
        limit = int(processes)
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def main() -> None:
    _apply_rlimits()
    from rlm_kernel import lazy_packages

    lazy_packages.install()
    from traitlets.config import Config

    from rlm_kernel.app import RLMKernelApp
    from rlm_kernel.kernel import RLMKernel

    config = Config()
    # No input history database: nothing reads it, and creating it slows every start.
    config.HistoryManager.enabled = False
    RLMKernelApp.launch_instance(kernel_class=RLMKernel, config=config)


if __name__ == "__main__":
    main()
