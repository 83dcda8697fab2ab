"""What the two HTTP backends share: both SDKs (anthropic, openai) are generated from
the same template, so they have the same retry and timeout machinery and the same
exception hierarchy, which this module maps onto `rlm.errors`.
"""

from __future__ import annotations

import json
import re
import time
from abc import abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rlm.backends._loop import LoopThread
from rlm.backends.base import Backend, Completion, Message, Usage
from rlm.backends.pricing import PriceTable
from rlm.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    EndpointUnreachableError,
    MalformedResponseError,
    PromptTooLongError,
    RateLimitError,
)

DEFAULT_TIMEOUT_S = 300.0
"""Seconds one HTTP attempt may take; a root model writing code can be slow."""

DEFAULT_MAX_RETRIES = 3
"""Retries of rate-limited (429), overloaded (5xx), timed-out or dropped requests.
The SDKs back off exponentially from 0.5 s, or as the server's retry-after says."""

# How providers phrase "your prompt does not fit" in a 400: Anthropic ("prompt is too
# long"), OpenAI and OpenRouter ("maximum context length", "context_length_exceeded"),
# vLLM ("maximum model length"), others ("context window", "too many tokens").
PROMPT_TOO_LONG = re.compile(
    r"prompt is too long|context[ _]length|context window|maximum model length|too many tokens",
    re.IGNORECASE,
)


@dataclass
class Answer:
    """What a backend read from a response, before costing."""

    text: str
    usage: Usage | None
    """None when the endpoint did not report usage: tokens and cost are then unknown."""
    model: str | None
    reported_cost: float | None = None


class SDKBackend(Backend):
    """A backend on an async SDK client, driven from a loop it owns (see `_loop`)."""

    _client: Any  # AsyncAnthropic or AsyncOpenAI

    def __init__(
        self,
        *,
        sdk: ModuleType,
        key_env: str | None,
        timeout: float,
        max_retries: int,
        prices: PriceTable,
    ) -> None:
        self._sdk = sdk
        self._key_env = key_env
        self._timeout = timeout
        self._max_retries = max_retries
        self._prices = prices
        self._loop = LoopThread(f"rlm-{self.name}")

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        return await self._loop.run(self._complete(messages, model, system, max_tokens))

    def complete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        return self._loop.submit(self._complete(messages, model, system, max_tokens)).result()

    async def aclose(self) -> None:
        await self._loop.run(self._client.close())
        self._loop.stop()

    @abstractmethod
    async def _create(
        self, messages: list[Message], model: str, system: str | None, max_tokens: int | None
    ) -> Any:
        """Make the SDK call (its retries and timeout included) and return its response."""

    @abstractmethod
    def _parse(self, response: Any) -> Answer:
        """Read text and usage from a response; raise MalformedResponseError if absent."""

    async def _complete(
        self, messages: list[Message], model: str, system: str | None, max_tokens: int | None
    ) -> Completion:
        started = time.monotonic()
        try:
            response = await self._create(messages, model, system, max_tokens)
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc
        answer = self._parse(response)
        usage = answer.usage or Usage()
        if answer.reported_cost is not None:
            usage.cost_usd = answer.reported_cost
        elif answer.usage is not None:
            # Price by the name asked for: endpoints often answer with a dated variant
            # ("gpt-4o" -> "gpt-4o-2024-08-06") that the table may not list.
            usage.cost_usd = self._prices.cost(model, usage)
            if usage.cost_usd is None and answer.model:
                usage.cost_usd = self._prices.cost(answer.model, usage)
        return Completion(
            text=answer.text,
            usage=usage,
            model=answer.model or model,
            latency_s=time.monotonic() - started,
        )

    def _translate(self, exc: Exception) -> BackendError | None:
        """The `rlm.errors` exception for an SDK failure; None for anything else."""
        sdk, where = self._sdk, f"{self.name} endpoint {self.base_url}"
        if isinstance(exc, sdk.APITimeoutError):
            return BackendTimeoutError(
                f"{where} did not answer within {self._timeout:g} s "
                f"(tried {self._max_retries + 1} times)"
            )
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc
            return EndpointUnreachableError(f"cannot reach {where}: {cause}")
        if isinstance(exc, sdk.APIStatusError):
            status, message = exc.status_code, _error_message(exc)
            if status in (401, 403):
                hint = (
                    f"set {self._key_env} to a valid key" if self._key_env else "give a valid key"
                )
                return AuthenticationError(
                    f"{where} rejected the API key ({status}: {message}); {hint}"
                )
            if status == 429:
                return RateLimitError(
                    f"{where} still rate-limited after {self._max_retries} retries: {message}"
                )
            if status == 413 or (status == 400 and PROMPT_TOO_LONG.search(message)):
                return PromptTooLongError(f"the prompt does not fit the model: {message}")
            return BackendError(f"{where} answered {status}: {message}")
        if isinstance(exc, json.JSONDecodeError | sdk.APIResponseValidationError):
            return MalformedResponseError(f"{where} sent a body that is not valid JSON: {exc}")
        return None


def _error_message(exc: Any) -> str:
    # Anthropic puts {"type": "error", "error": {"message": ...}} in the body; the
    # OpenAI SDK hands over the inner {"message": ...}; some servers send plain text.
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    if isinstance(body, str) and body:
        return body
    return str(exc.message)


def token_count(value: object, field: str, where: str) -> int:
    """An integer token count from a response, or MalformedResponseError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedResponseError(f"{where} sent a response whose {field} is {value!r}")
