"""The llm_query handler a notebook kernel gets: a model call through one of our backends.

Named in a kernelspec as `rlm.notebook.handler:backend_handler`; the provisioner calls it
with the kernelspec's `handler_config` (backend preset, model, base URL). Keys come from
the environment of the process that starts the kernel, never from the kernelspec.
"""

from __future__ import annotations

from rlm.backends import PRESETS, Backend, make_backend
from rlm.errors import AuthenticationError
from rlm.sandbox import LLMHandler, LLMRequest


def backend_handler(
    backend: str = "anthropic", model: str | None = None, base_url: str | None = None
) -> LLMHandler:
    """A handler whose backend is made at the first llm_query: a notebook that never calls
    it needs no key, and one that does gets the missing key's message in its cell."""
    made: list[tuple[Backend, str]] = []

    async def answer(request: LLMRequest) -> str:
        if not made:
            try:
                made.append(make_backend(backend, model=model, base_url=base_url))
            except AuthenticationError:
                preset = PRESETS[backend]
                raise AuthenticationError(
                    f"{preset.provider} needs an API key: set {preset.key_env} in the "
                    "environment of the Jupyter server or client that starts this kernel, "
                    "then restart the kernel"
                ) from None
        client, default_model = made[0]
        messages = [{"role": "user", "content": request.prompt}]
        completion = await client.acomplete(messages, request.model or default_model)
        return completion.text

    return answer
