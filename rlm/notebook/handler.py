"""The llm_query handler a notebook kernel gets: a model call through one of our backends.

Named in a kernelspec as `rlm.notebook.handler:backend_handler`; the provisioner calls it
with the kernelspec's `handler_config` (backend preset, model, base URL). Keys come from
the environment of the process that starts the kernel, never from the kernelspec.
"""

from __future__ import annotations

from rlm.backends import make_backend
from rlm.sandbox import LLMHandler, LLMRequest


def backend_handler(
    backend: str = "anthropic", model: str | None = None, base_url: str | None = None
) -> LLMHandler:
    client, default_model = make_backend(backend, model=model, base_url=base_url)

    async def answer(request: LLMRequest) -> str:
        messages = [{"role": "user", "content": request.prompt}]
        completion = await client.acomplete(messages, request.model or default_model)
        return completion.text

    return answer
