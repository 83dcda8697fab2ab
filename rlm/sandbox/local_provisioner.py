"""LocalProvisioner: rlm's kernel as a plain subprocess. NOT ISOLATED: for development only."""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from jupyter_client.provisioning import LocalProvisioner as JupyterLocalProvisioner

from rlm.kernel_image import RUNTIME_DIR
from rlm.sandbox.provisioning import RlmProvisioner

log = logging.getLogger(__name__)


class LocalProvisioner(RlmProvisioner, JupyterLocalProvisioner):  # type: ignore[misc]
    """Runs rlm's kernel as a plain subprocess. NOT ISOLATED: for development only."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.prepare_run_dir()
        _warn_not_isolated()
        kwargs = await super().pre_launch(**kwargs)
        env = kwargs["env"]
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(RUNTIME_DIR), env.get("PYTHONPATH", "")) if p
        )
        layout = self.layout
        env.update(
            self.kernel_env(
                str(layout.callback_key_file),
                str(layout.callback_socket),
                self.context_file or None,
            )
        )
        # Files the code writes land in the run directory, not in the user's project.
        kwargs["cwd"] = str(layout.shared)
        return kwargs

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if restart:
            self.remove_socket_files()
        else:
            self.release_run_dir()


@cache
def _warn_not_isolated() -> None:
    log.warning("local runtime: model-written code runs on this host WITHOUT isolation")
