"""Packages whose __init__ runs only when something reads a name it defines.

ipykernel uses jupyter_client's Session, connection helpers and version, but importing any
submodule runs the package's __init__ first, which imports its clients, managers,
provisioners and kernelspecs: a third of the kernel's imports, for nothing the kernel
runs. Likewise jupyter_client's Session needs dateutil's ISO parser only, and importing
it loads dateutil's general-purpose parser too. Each package here is registered with its
__init__ not yet run: submodules import as usual (`from . import x` gets submodule x),
the few names read from the package itself at import time come from the submodule that
defines them, and reading any other name runs the __init__ then (a `%connect_info` magic,
say, still works).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

# package -> {name read from the package at import time: the submodule defining it}
DEFERRED = {
    # (ipykernel's app reads all three at every start: connection helpers, and a trait
    # naming the blocking client class, resolved when the app is made.)
    "jupyter_client": {
        "write_connection_file": "connect",
        "find_connection_file": "connect",
        "BlockingKernelClient": "blocking",
    },
    "dateutil.parser": {"isoparse": "isoparser"},
}


def defer_init(name: str, early: dict[str, str]) -> None:
    """Register package `name` with its __init__ deferred (nothing if already imported)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str) -> Any:
        if attr in early:
            return getattr(importlib.import_module(f"{name}.{early[attr]}"), attr)
        if importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")  # `from . import submodule`
        del package.__getattr__
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, attr)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, package)


def install() -> None:
    for name, early in DEFERRED.items():
        defer_init(name, early)
