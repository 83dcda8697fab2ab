"""Model backends: how rlm reaches a language model.

`import rlm.backends` stays cheap: the two SDK-based backends (and so the heavy
`anthropic` and `openai` packages) are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlm.backends.base import Backend, Completion, LLMBackend, Message, Usage
from rlm.backends.claude_cli import ClaudeCLIBackend
from rlm.backends.presets import PRESETS, Preset, make_backend
from rlm.backends.pricing import Price, PriceTable
from rlm.backends.scripted import ScriptedBackend
from rlm.backends.watched import WatchedBackend

if TYPE_CHECKING:
    from rlm.backends.anthropic_api import AnthropicBackend
    from rlm.backends.openai_compat import OpenAICompatibleBackend

_LAZY = {
    "AnthropicBackend": "rlm.backends.anthropic_api",
    "OpenAICompatibleBackend": "rlm.backends.openai_compat",
}

__all__ = [
    "PRESETS",
    "AnthropicBackend",
    "Backend",
    "ClaudeCLIBackend",
    "Completion",
    "LLMBackend",
    "Message",
    "OpenAICompatibleBackend",
    "Preset",
    "Price",
    "PriceTable",
    "ScriptedBackend",
    "Usage",
    "WatchedBackend",
    "make_backend",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
