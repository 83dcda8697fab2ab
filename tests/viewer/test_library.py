"""rlm.viewer is a library under the command line, never over it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import rlm.viewer


def test_the_viewer_library_imports_nothing_from_the_cli() -> None:
    prefix = "rlm.viewer."
    modules = [info.name for info in pkgutil.walk_packages(rlm.viewer.__path__, prefix=prefix)]
    assert "rlm.viewer.serve" in modules  # the walk found the package's modules
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
