"""rlm: Recursive Language Models over huge contexts, with code run in sandboxed kernels.

    from rlm import RLM
    from rlm.backends import AnthropicBackend

`import rlm` stays cheap: the orchestrator (and the Jupyter machinery under it) loads on
first use of one of the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm.orchestrator import RLM, RLMResult, RLMStats
    from rlm.sandbox import ContextFile

__all__ = ["RLM", "ContextFile", "RLMResult", "RLMStats"]


def __getattr__(name: str) -> Any:
    if name == "ContextFile":
        return importlib.import_module("rlm.sandbox").ContextFile
    if name in __all__:
        return getattr(importlib.import_module("rlm.orchestrator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
