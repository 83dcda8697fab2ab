"""The base of rlm's kernel provisioners: the run directory, and what Sandbox relies on.

Both provisioners put the kernel's ipc sockets in a fresh run directory:

    <run dir>/            host only: owner marker, connection files, callback key, context
                          written by the Sandbox (files the kernel needs are mounted
                          read-only under /run/rlm-config)
    <run dir>/k/          shared with the kernel (mounted at /run/rlm in the container):
                          its ipc sockets and the callback socket
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Dict, Float, Integer, Unicode

from rlm.errors import ContextFileError
from rlm.kernel_image.rlm_kernel.protocol import Env
from rlm.sandbox.callback import CallbackServerThread
from rlm.sandbox.handlers import load_handler
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.rundir import RunDir

_DEFAULTS = SandboxLimits()


class RlmProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """What both provisioners share: the run directory, ipc transport and kernel env.

    It also declares what rlm's Sandbox uses beyond jupyter_client's provisioner API:
    `kernel_shared_dir`, `seal_run_dir`, `exit_reason`, `container_id` and
    `hand_off_container`.
    `self.parent` is the KernelManager.
    """

    run_dir = Unicode("", config=True, help="Run directory to use; empty: create and own one.")
    context_file = Unicode("", config=True, help="File holding CONTEXT (read-only to the kernel).")
    context_format = Unicode("text", config=True, help="'text' (a str) or 'json'.")
    context_token = Unicode(
        "",
        config=True,
        help="Token the kernel asks the callback channel for its context with (rlm's Sandbox).",
    )
    context_bytes = Integer(0, config=True, help="Size of the context offered under the token.")
    output_limit = Integer(_DEFAULTS.output_chars, config=True, help="Output chars per execute.")
    callback_timeout = Float(_DEFAULTS.callback_timeout, config=True)
    echo_input = Bool(True, config=True, help="Publish execute_input (front ends show it).")
    callback_handler = Unicode(
        "",
        config=True,
        help="'module:function' returning an llm_query handler, given `handler_config`; "
        "lets kernels started by Jupyter tools call llm_query. Empty: no callbacks, "
        "unless the caller (rlm's Sandbox) serves them itself.",
    )
    handler_config = Dict(config=True, help="Keyword arguments for `callback_handler`.")

    _owned_run_dir: RunDir | None = None
    _callbacks: CallbackServerThread | None = None

    # --- what Sandbox uses ---------------------------------------------------------------

    @property
    def kernel_shared_dir(self) -> str:
        """Where the kernel sees the run directory's shared part."""
        return str(self.layout.shared)

    @property
    def container_id(self) -> str | None:
        """The kernel's container, if it runs in one."""
        return None

    def seal_run_dir(self) -> None:
        """Call once the kernel's sockets exist: from then on it may create no more files."""

    async def exit_reason(self) -> str:
        """Why the kernel stopped, for a person to read."""
        return f"exit status {await self.poll()}"

    def hand_off_container(self) -> Any:
        """The kernel's container, or None, which from now on the caller removes (in the
        background: rlm.sandbox.removals); shutting the kernel down then makes no engine
        call. A kernel without a container is stopped by the shutdown as usual."""
        return None

    # --- the run directory ---------------------------------------------------------------

    @property
    def layout(self) -> RunDir:
        return RunDir(Path(self.run_dir))

    def prepare_run_dir(self) -> None:
        if not self.run_dir:
            self._owned_run_dir = RunDir.create()
            self.run_dir = str(self._owned_run_dir.path)
        if self.context_file and not os.access(self.context_file, os.R_OK):
            raise ContextFileError(f"cannot read context file {self.context_file}")
        if self.callback_handler and self._callbacks is None:
            self._callbacks = CallbackServerThread(
                self.layout,
                load_handler(self.callback_handler, self.handler_config),
                request_timeout=self.callback_timeout,
            )
            self._callbacks.start()
        km = self.parent
        km.transport = "ipc"
        km.ip = str(self.layout.shared / "kernel-ipc")
        # Outside the kernel's directory: on a restart jupyter_client reads and may rewrite
        # this file, and the kernel could have replaced it with a symlink.
        km.connection_file = str(self.layout.connection_file)

    def kernel_env(
        self, callback_file: str, callback_endpoint: str, context_path: str | None
    ) -> dict[str, str]:
        env = {
            Env.OUTPUT_LIMIT: str(self.output_limit),
            Env.CALLBACK_TIMEOUT: str(self.callback_timeout),
            Env.ECHO_INPUT: "1" if self.echo_input else "0",
        }
        if self.layout.callback_key_file.exists():
            env[Env.CALLBACK_FILE] = callback_file
            env[Env.CALLBACK_ENDPOINT] = callback_endpoint
        if context_path:
            env[Env.CONTEXT_FILE] = context_path
            env[Env.CONTEXT_FORMAT] = self.context_format
        if self.context_token:
            env[Env.CONTEXT_TOKEN] = self.context_token
        return env

    def remove_socket_files(self) -> None:
        for path in self.layout.shared.glob("kernel-ipc-*"):
            path.unlink(missing_ok=True)

    def release_run_dir(self) -> None:
        if self._callbacks is not None:
            self._callbacks.stop()
            self._callbacks = None
        if self._owned_run_dir is not None:
            self._owned_run_dir.remove()
            self._owned_run_dir = None
            self.run_dir = ""
