"""Whether the Jupyter a user runs can start the kernelspecs we write.

A kernelspec names rlm's provisioner, which Jupyter finds through entry points of its own
Python environment. When rlm is installed in an isolated environment (pipx, a separate
venv), the `jupyter` on PATH belongs to another one and cannot start the kernel; it says
so only when the kernel is started. We ask that `jupyter` which provisioners it sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution

LIST_TIMEOUT = 30.0


def unreachable_by_jupyter(provisioner: str) -> str | None:
    """Why the `jupyter` on PATH cannot start a kernel through `provisioner`, with the fix;
    None if it can (or no answer came: Jupyter itself will say more)."""
    jupyter = shutil.which("jupyter")
    if jupyter is None:
        return (
            "no `jupyter` command on PATH: run Jupyter from rlm's environment "
            f"({_install_next_to_rlm()}), or install rlm where Jupyter is"
        )
    try:
        listed = subprocess.run(
            [jupyter, "kernelspec", "provisioners"],
            capture_output=True,
            text=True,
            timeout=LIST_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if provisioner in listed.stdout.split():
        return None
    source = _source()
    return (
        f"the jupyter on PATH ({jupyter}) runs in another Python environment than rlm "
        f"({sys.prefix}, an isolated install such as pipx) and cannot find rlm's "
        f"provisioner {provisioner!r}, so it cannot start this kernel: install rlm where "
        f"Jupyter is (a pipx-installed JupyterLab: `pipx inject jupyterlab {source}`; "
        f"otherwise that environment's `pip install {source}`), or run Jupyter from rlm's "
        f"environment ({_install_next_to_rlm()})"
    )


def _install_next_to_rlm() -> str:
    if "pipx" in sys.prefix.split("/"):
        return f"`pipx inject {_pipx_venv()} jupyterlab`, then {sys.prefix}/bin/jupyter lab"
    return f"`{sys.executable} -m pip install jupyterlab`, then {sys.prefix}/bin/jupyter lab"


def _pipx_venv() -> str:
    """The pipx venv name rlm lives in (pipx names venvs after the package)."""
    return sys.prefix.rstrip("/").rsplit("/", 1)[-1]


def _source() -> str:
    """What to pip-install to get this rlm: the directory it was installed from, if any."""
    try:
        recorded = distribution("rlm").read_text("direct_url.json")
    except PackageNotFoundError:
        recorded = None
    url = json.loads(recorded).get("url", "") if recorded else ""
    return url.removeprefix("file://") if url.startswith("file://") else "rlm"
