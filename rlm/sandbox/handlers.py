"""Loading the llm_query handler named in a kernelspec, for kernels Jupyter tools start."""

from __future__ import annotations

import importlib
from typing import Any

from rlm.errors import SandboxError
from rlm.sandbox.callback import LLMHandler


def load_handler(spec: str, config: dict[str, Any]) -> LLMHandler:
    """Import 'module:function' and call it with `config` to get an llm_query handler."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SandboxError(f"callback_handler must look like 'module:function', not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(**config)
