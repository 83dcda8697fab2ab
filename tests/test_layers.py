"""Libraries under the command line never import it: the arrows go cli -> libraries only."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("package", "known_module"),
    [("rlm.eval", "rlm.eval.runner"), ("rlm.viewer", "rlm.viewer.serve")],
)
def test_the_library_imports_nothing_from_the_cli(package: str, known_module: str) -> None:
    path = importlib.import_module(package).__path__
    modules = [info.name for info in pkgutil.walk_packages(path, prefix=f"{package}.")]
    assert known_module in modules  # the walk found the package's modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('rlm.cli')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
