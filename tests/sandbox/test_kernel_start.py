"""What the kernel loads to start, in the image: nothing compiled at run time, no debugpy."""

from __future__ import annotations

import json

import pytest

from rlm.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.container

# Every module loaded so far whose source has no bytecode next to it. The root filesystem
# is read-only, so each of these would be compiled again at every start.
UNCOMPILED = """
import importlib.util, json, os, sys
print(json.dumps(sorted(
    module.__file__
    for module in list(sys.modules.values())
    if getattr(module, "__file__", None) and module.__file__.endswith(".py")
    and not os.path.exists(importlib.util.cache_from_source(module.__file__))
)))
"""


async def test_every_module_the_kernel_loaded_was_compiled_at_build(
    container_sandbox: Sandbox,
) -> None:
    result = await container_sandbox.execute(UNCOMPILED)
    assert result.ok, result.error
    assert json.loads(result.stdout) == []


async def test_debugpy_is_neither_loaded_nor_installed(container_sandbox: Sandbox) -> None:
    result = await container_sandbox.execute(
        "import importlib.util, sys\n"
        "print('debugpy' in sys.modules, importlib.util.find_spec('debugpy') is not None)"
    )
    assert result.stdout.strip() == "False False"
