"""Host side of rlm's sandboxed kernel: start it, run code in it, serve its llm_query calls."""

from rlm.sandbox.callback import LLMHandler, LLMRequest
from rlm.sandbox.context_file import ContextFile
from rlm.sandbox.limits import SandboxLimits
from rlm.sandbox.result import ExecuteError, ExecuteResult
from rlm.sandbox.sandbox import Sandbox

__all__ = [
    "ContextFile",
    "ExecuteError",
    "ExecuteResult",
    "LLMHandler",
    "LLMRequest",
    "Sandbox",
    "SandboxLimits",
]
