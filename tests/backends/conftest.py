"""Fixtures for backend tests: a fake endpoint and backends pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rlm.backends import AnthropicBackend, OpenAICompatibleBackend
from rlm.backends._sdk import SDKBackend
from tests.fakes.fixtures import model_server, start_fakellm  # noqa: F401 - re-exported
from tests.fakes.model_server import FakeModelServer

_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "HF_TOKEN",
    *(f"RLM_{name}_BASE_URL" for name in ("ANTHROPIC", "OPENAI", "OPENROUTER", "HUGGINGFACE",
                                          "OLLAMA", "VLLM")),
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's real keys and endpoints must not leak into the tests."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def make_sdk_backend(
    model_server: FakeModelServer,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[Callable[..., SDKBackend]]:
    """`make(kind, **overrides)` builds an "anthropic" or "openai" backend on the fake
    server, with no retries and a short timeout unless overridden; all are closed after."""
    made: list[SDKBackend] = []

    def make(kind: str, **overrides: Any) -> SDKBackend:
        url = model_server.url if kind == "anthropic" else model_server.openai_url
        options: dict[str, Any] = {
            "base_url": url,
            "api_key": "test-key",
            "max_retries": 0,
            "timeout": 5.0,
        }
        options.update(overrides)
        backend_class = AnthropicBackend if kind == "anthropic" else OpenAICompatibleBackend
        backend: SDKBackend = backend_class(**options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
