"""Failures of the HTTP endpoints, through the real SDKs, for both HTTP backends."""

from __future__ import annotations

import socket

import pytest

from rlm.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    EndpointUnreachableError,
    MalformedResponseError,
    PromptTooLongError,
    RateLimitError,
)
from tests.fakes.model_server import FakeModelServer, Reply

USER = [{"role": "user", "content": "hi"}]
FAST_RETRY = {"retry-after-ms": "10"}  # the SDKs wait what the server says

pytestmark = pytest.mark.parametrize("kind", ["anthropic", "openai"])


async def test_rate_limit_then_success_is_retried(kind, make_sdk_backend, model_server):
    model_server.push(Reply(status=429, text="slow down", headers=FAST_RETRY), "after retry")
    backend = make_sdk_backend(kind, max_retries=2)

    completion = await backend.acomplete(USER, "m")

    assert completion.text == "after retry"
    assert len(model_server.requests) == 2


async def test_rate_limit_exhausting_retries(kind, make_sdk_backend, model_server):
    model_server.push(*[Reply(status=429, text="slow down", headers=FAST_RETRY)] * 3)
    backend = make_sdk_backend(kind, max_retries=2)

    with pytest.raises(RateLimitError, match="slow down"):
        await backend.acomplete(USER, "m")
    assert len(model_server.requests) == 3


async def test_repeated_server_errors(kind, make_sdk_backend, model_server):
    model_server.push(*[Reply(status=500, text="boom", headers=FAST_RETRY)] * 3)
    backend = make_sdk_backend(kind, max_retries=2)

    with pytest.raises(BackendError, match="500: boom"):
        await backend.acomplete(USER, "m")
    assert len(model_server.requests) == 3


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_names_the_env_var(kind, status, make_sdk_backend, model_server):
    model_server.push(Reply(status=status, text="invalid x-api-key"))
    backend = make_sdk_backend(kind, max_retries=2)

    expected_env = "ANTHROPIC_API_KEY" if kind == "anthropic" else "OPENAI_API_KEY"
    with pytest.raises(AuthenticationError, match=expected_env):
        await backend.acomplete(USER, "m")
    assert len(model_server.requests) == 1  # a bad key is not retried


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 250000 tokens > 200000 maximum",
        "This model's maximum context length is 128000 tokens. However, you requested 200000",
    ],
)
async def test_prompt_too_long(kind, message, make_sdk_backend, model_server):
    model_server.push(Reply(status=400, text=message))
    backend = make_sdk_backend(kind)

    with pytest.raises(PromptTooLongError, match="does not fit"):
        await backend.acomplete(USER, "m")


async def test_other_bad_request_is_a_plain_backend_error(kind, make_sdk_backend, model_server):
    model_server.push(Reply(status=400, text="unknown model"))
    backend = make_sdk_backend(kind)

    with pytest.raises(BackendError, match="400: unknown model") as caught:
        await backend.acomplete(USER, "m")
    assert not isinstance(caught.value, PromptTooLongError)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b"{}",
        b'{"content": "x", "choices": "x", "usage": 3}',
        # Well-formed in both formats except for a token count that is not a number.
        b'{"content": [{"type": "text", "text": "x"}], "choices": [{"message": {"content": "x"}}],'
        b' "usage": {"input_tokens": "many", "output_tokens": 1,'
        b' "prompt_tokens": "many", "completion_tokens": 1}}',
    ],
)
async def test_malformed_response(kind, body, make_sdk_backend, model_server):
    model_server.push(Reply(raw_body=body))
    backend = make_sdk_backend(kind)

    with pytest.raises(MalformedResponseError):
        await backend.acomplete(USER, "m")


async def test_slow_server_hits_the_timeout(kind, make_sdk_backend, model_server):
    model_server.push(Reply(delay_s=10))
    backend = make_sdk_backend(kind, timeout=0.3)

    with pytest.raises(BackendTimeoutError, match=r"0\.3 s"):
        await backend.acomplete(USER, "m")


async def test_unreachable_endpoint_names_the_url(kind, make_sdk_backend):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}" + ("" if kind == "anthropic" else "/v1")
    backend = make_sdk_backend(kind, base_url=url)

    with pytest.raises(EndpointUnreachableError, match=f"127.0.0.1:{port}"):
        await backend.acomplete(USER, "m")


def test_sync_complete_maps_errors_too(kind, make_sdk_backend, model_server: FakeModelServer):
    model_server.push(Reply(status=401, text="bad key"))
    backend = make_sdk_backend(kind)

    with pytest.raises(AuthenticationError):
        backend.complete(USER, "m")
