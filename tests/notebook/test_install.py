"""`rlm kernel install` says when the Jupyter on PATH cannot start the kernel it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A Jupyter from another environment (pipx installs each tool in a venv of its own): it
# lists the provisioners its environment has, and rlm's are not among them.
OTHER_JUPYTER = """#!/bin/sh
[ "$1 $2" = "kernelspec provisioners" ] || exit 2
echo "Available kernel provisioners:"
echo "  local-provisioner    jupyter_client.provisioning:LocalProvisioner"
"""


def install(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    args = ["kernel", "install", "--name", "t", "--prefix", str(tmp_path / "prefix")]
    return subprocess.run(
        [sys.executable, "-m", "rlm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": path},
    )


def test_a_jupyter_without_our_provisioner_is_named_with_the_fix(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "jupyter").write_text(OTHER_JUPYTER)
    (bin_dir / "jupyter").chmod(0o755)
    done = install(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "prefix/share/jupyter/kernels/t/kernel.json").exists()
    line = done.stderr.strip()
    assert line.startswith(f"rlm kernel install: warning: the jupyter on PATH ({bin_dir}/jupyter)")
    assert "cannot find rlm's provisioner 'rlm-container'" in line
    assert "pipx inject jupyterlab" in line
    assert f"{sys.prefix}/bin/jupyter lab" in line


def test_no_warning_when_jupyter_finds_our_provisioner(tmp_path: Path) -> None:
    listed = subprocess.run(
        ["jupyter", "kernelspec", "provisioners"], capture_output=True, text=True, timeout=60
    )
    if "rlm-container" not in listed.stdout:
        pytest.skip("the jupyter on PATH is not this environment's")
    done = install(tmp_path, os.environ["PATH"])
    assert (done.returncode, done.stderr) == (0, "")
