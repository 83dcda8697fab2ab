"""Claude through Anthropic's Messages API, with prompt caching of the stable prefix."""

from __future__ import annotations

import os
from typing import Any

import anthropic

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

KEY_ENV = "ANTHROPIC_API_KEY"

DEFAULT_MAX_TOKENS = 8192
"""The Messages API requires a cap on the answer; this one fits every current model."""

_CACHED = {"cache_control": {"type": "ephemeral"}}


class AnthropicBackend(SDKBackend):
    """Anthropic's API via the official `anthropic` SDK.

    The key comes from `api_key` or ``ANTHROPIC_API_KEY``; a missing key fails here,
    before any network call. `base_url` defaults to the SDK's (which honours
    ``ANTHROPIC_BASE_URL``). Each HTTP attempt may take `timeout` seconds; the SDK
    retries rate limits, overloads and dropped connections `max_retries` times.
    """

    name = "anthropic"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        prices: PricesArg = None,
    ) -> None:
        api_key = api_key or os.environ.get(KEY_ENV)
        if not api_key:
            raise AuthenticationError(f"no Anthropic API key: set {KEY_ENV} or pass api_key")
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._max_tokens = max_tokens
        super().__init__(
            sdk=anthropic,
            key_env=KEY_ENV,
            timeout=timeout,
            max_retries=max_retries,
            prices=resolve_prices(prices),
        )

    async def _create(
        self, messages: list[Message], model: str, system: str | None, max_tokens: int | None
    ) -> Any:
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens or self._max_tokens,
            "messages": _mark_cache_breakpoints(messages),
        }
        if system:
            params["system"] = [{"type": "text", "text": system, **_CACHED}]
        return await self._client.messages.create(**params)

    def _parse(self, response: Any) -> Answer:
        where = f"{self.name} endpoint {self.base_url}"
        content = getattr(response, "content", None)
        usage = getattr(response, "usage", None)
        if not isinstance(content, list) or usage is None:
            raise MalformedResponseError(f"{where} sent a message without content or usage")
        if not all(isinstance(getattr(block, "type", None), str) for block in content):
            raise MalformedResponseError(f"{where} sent content blocks without a type")
        # Only text blocks are the answer; thinking or tool blocks are not.
        text = "".join(block.text for block in content if block.type == "text")
        return Answer(
            text=text,
            usage=Usage(
                input_tokens=token_count(usage.input_tokens, "input_tokens", where),
                output_tokens=token_count(usage.output_tokens, "output_tokens", where),
                # Absent (None) when the request hit no cache breakpoint.
                cache_read_tokens=token_count(
                    usage.cache_read_input_tokens or 0, "cache_read_input_tokens", where
                ),
                cache_write_tokens=token_count(
                    usage.cache_creation_input_tokens or 0, "cache_creation_input_tokens", where
                ),
            ),
            model=getattr(response, "model", None),
        )


def _mark_cache_breakpoints(messages: list[Message]) -> list[dict[str, Any]]:
    """The messages in API form, with cache breakpoints on the last two user turns.

    An RLM conversation only grows at its end, so everything up to the newest user
    turn is the next call's stable prefix: marking it writes that prefix to the cache,
    and marking the previous user turn (the newest one of the last call) reads what the
    last call wrote. With the system prompt that is 3 of the 4 breakpoints allowed.
    """
    user_turns = [i for i, message in enumerate(messages) if message["role"] == "user"]
    marked = set(user_turns[-2:])
    result: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        # The API rejects cache_control on an empty text block.
        if i in marked and message["content"]:
            block = {"type": "text", "text": message["content"], **_CACHED}
            result.append({"role": message["role"], "content": [block]})
        else:
            result.append({"role": message["role"], "content": message["content"]})
    return result
