"""What the RLM specification's own set-up steps expect of the checkout and the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from rlm.backends import Backend, LLMBackend

ROOT = Path(__file__).resolve().parent.parent


def test_requirements_install_this_checkout_with_its_test_extra() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    wanted = [line for line in lines if line.strip() and not line.startswith("#")]
    assert wanted == ["-e .[test]"]


def test_license_file_is_the_one_pyproject_names() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == {"text": "BSD-2-Clause"}
    assert text.startswith("BSD 2-Clause License")
    assert "2. Redistributions in binary form" in text
    assert "3." not in text  # the three-clause licence adds an endorsement clause


def test_the_specs_backend_name_is_our_base_class() -> None:
    assert LLMBackend is Backend


def test_package_is_typed() -> None:
    assert (ROOT / "rlm" / "py.typed").is_file()


def test_python_dash_m_rlm_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rlm", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "rlm, version 0.1.0\n"), done.stderr
