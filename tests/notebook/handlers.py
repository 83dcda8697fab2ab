"""llm_query handlers that kernelspecs in these tests name by import path."""

from __future__ import annotations

from rlm.sandbox import LLMHandler, LLMRequest


def echo_handler(prefix: str = "echo") -> LLMHandler:
    async def answer(request: LLMRequest) -> str:
        return f"{prefix}: {request.prompt}"

    return answer
