"""Any endpoint speaking OpenAI's chat-completions API: OpenAI, OpenRouter, Hugging Face,
Ollama, vLLM and the like."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import openai

from rlm.backends._sdk import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    Answer,
    SDKBackend,
    token_count,
)
from rlm.backends.base import Message, Usage
from rlm.backends.pricing import PricesArg, resolve_prices
from rlm.errors import AuthenticationError, MalformedResponseError

# Local servers (Ollama, vLLM without --api-key) ignore the key, but the SDK insists on one.
_UNUSED_KEY = "unused"


class OpenAICompatibleBackend(SDKBackend):
    """A chat-completions endpoint via the official `openai` SDK.

    The key comes from `api_key`, else from the environment variable `api_key_env`.
    Without `base_url` (OpenAI itself) a missing key fails here, before any network
    call; with a `base_url` the key is optional, since local servers need none.

    Cached prompt tokens are read from ``usage.prompt_tokens_details``; a cost the
    endpoint reports in ``usage.cost`` (OpenRouter) wins over the price table.
    `extra_body` is merged into every request (e.g. OpenRouter's usage accounting).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        name: str = "openai",
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        extra_body: Mapping[str, Any] | None = None,
        prices: PricesArg = None,
    ) -> None:
        self.name = name
        api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        if not api_key:
            if base_url is None:
                raise AuthenticationError(
                    f"no API key for {name}: set {api_key_env} or pass api_key"
                )
            api_key = _UNUSED_KEY
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._extra_body = dict(extra_body or {})
        super().__init__(
            sdk=openai,
            key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            prices=resolve_prices(prices),
        )

    async def _create(
        self, messages: list[Message], model: str, system: str | None, max_tokens: int | None
    ) -> Any:
        chat: list[Message] = [{"role": "system", "content": system}] if system else []
        params: dict[str, Any] = {"model": model, "messages": chat + list(messages)}
        if max_tokens is not None:
            # `max_tokens` rather than `max_completion_tokens`: the compatible servers
            # (Ollama, vLLM, Hugging Face) understand only the older name.
            params["max_tokens"] = max_tokens
        if self._extra_body:
            params["extra_body"] = self._extra_body
        return await self._client.chat.completions.create(**params)

    def _parse(self, response: Any) -> Answer:
        where = f"{self.name} endpoint {self.base_url}"
        choices = getattr(response, "choices", None)
        message = (
            getattr(choices[0], "message", None) if isinstance(choices, list) and choices else None
        )
        if message is None:
            raise MalformedResponseError(f"{where} sent a completion without choices")
        # content is None when the model only refused or called tools: no text answer.
        text = message.content or ""
        if not isinstance(text, str):
            raise MalformedResponseError(f"{where} sent non-text content {text!r}")
        usage = getattr(response, "usage", None)
        return Answer(
            text=text,
            # Some local servers omit usage; then tokens are unknown and so is the cost.
            usage=None if usage is None else _usage(usage, where),
            model=getattr(response, "model", None),
            reported_cost=_reported_cost(usage),
        )


def _usage(usage: Any, where: str) -> Usage:
    prompt = token_count(usage.prompt_tokens, "prompt_tokens", where)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = token_count(getattr(details, "cached_tokens", None) or 0, "cached_tokens", where)
    # OpenRouter also reports cache writes (Anthropic models behind it).
    written = token_count(
        getattr(details, "cache_write_tokens", None) or 0, "cache_write_tokens", where
    )
    return Usage(
        # prompt_tokens includes the cached ones; ours are disjoint.
        input_tokens=max(prompt - cached - written, 0),
        output_tokens=token_count(usage.completion_tokens, "completion_tokens", where),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


def _reported_cost(usage: Any) -> float | None:
    cost = getattr(usage, "cost", None)
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    return None
