"""AnthropicBackend against the fake endpoint, through the real `anthropic` SDK."""

from __future__ import annotations

import asyncio

import pytest

from rlm.backends import AnthropicBackend
from rlm.errors import AuthenticationError
from tests.fakes.model_server import Reply, last_user_text

SONNET = "claude-sonnet-4-20250514"
CACHED = {"type": "ephemeral"}


async def test_text_usage_and_cost(make_sdk_backend, model_server):
    model_server.push(
        Reply(
            "the answer",
            input_tokens=1000,
            output_tokens=200,
            cache_read_tokens=10_000,
            cache_write_tokens=2000,
        )
    )
    backend = make_sdk_backend("anthropic")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], SONNET)

    assert completion.text == "the answer"
    assert completion.model == SONNET
    assert completion.latency_s > 0
    usage = completion.usage
    assert (usage.input_tokens, usage.output_tokens) == (1000, 200)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (10_000, 2000)
    # Sonnet 4: $3 in, $15 out, $0.30 cache read, $3.75 cache write, per million.
    expected = (1000 * 3 + 200 * 15 + 10_000 * 0.30 + 2000 * 3.75) / 1e6
    assert usage.cost_usd == pytest.approx(expected)


async def test_request_carries_model_max_tokens_and_key(make_sdk_backend, model_server):
    model_server.push("ok")
    backend = make_sdk_backend("anthropic", max_tokens=123)

    await backend.acomplete([{"role": "user", "content": "q"}], "claude-x")

    request = model_server.requests[0]
    assert request.path == "/v1/messages"
    assert "test-key" in _credentials(request.headers)
    assert request.json["model"] == "claude-x"
    assert request.json["max_tokens"] == 123


async def test_system_prompt_and_earlier_turns_are_marked_for_caching(
    make_sdk_backend, model_server
):
    model_server.push("ok")
    backend = make_sdk_backend("anthropic")
    conversation = [
        {"role": "user", "content": "query"},
        {"role": "assistant", "content": "```python\nprint(1)\n```"},
        {"role": "user", "content": "output: 1"},
        {"role": "assistant", "content": "```python\nprint(2)\n```"},
        {"role": "user", "content": "output: 2"},
    ]

    await backend.acomplete(conversation, SONNET, system="You are an RLM.", max_tokens=50)

    sent = model_server.requests[0].json
    assert sent["max_tokens"] == 50
    assert sent["system"] == [{"type": "text", "text": "You are an RLM.", "cache_control": CACHED}]
    marked = [
        i
        for i, message in enumerate(sent["messages"])
        if isinstance(message["content"], list) and message["content"][0].get("cache_control")
    ]
    # The newest user turn (written for the next call) and the previous one (read
    # from the last call's write); earlier turns are covered by those prefixes.
    assert marked == [2, 4]
    assert sent["messages"][4]["content"][0]["text"] == "output: 2"
    assert sent["messages"][0] == {"role": "user", "content": "query"}


async def test_unknown_model_has_unknown_cost(make_sdk_backend, model_server):
    model_server.push(Reply(input_tokens=10, output_tokens=10))
    backend = make_sdk_backend("anthropic")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "claude-unknown")

    assert completion.usage.cost_usd is None
    assert completion.usage.input_tokens == 10


async def test_user_prices_extend_the_table(make_sdk_backend, model_server):
    model_server.push(Reply(input_tokens=1_000_000, output_tokens=1_000_000))
    backend = make_sdk_backend("anthropic", prices={"claude-custom": {"input": 1, "output": 2}})

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "claude-custom")

    assert completion.usage.cost_usd == pytest.approx(3.0)


def test_sync_complete(make_sdk_backend, model_server):
    model_server.push("sync answer")
    backend = make_sdk_backend("anthropic")

    assert backend.complete([{"role": "user", "content": "q"}], SONNET).text == "sync answer"


def test_usable_from_several_event_loops_and_concurrently(make_sdk_backend, model_server):
    # The SDK's pooled connections belong to one loop; the orchestrator may call from
    # a new loop per run (asyncio.run), from threads, and concurrently.
    model_server.handler = last_user_text  # echo
    backend = make_sdk_backend("anthropic")

    async def ask(*texts: str) -> list[str]:
        completions = await asyncio.gather(
            *(backend.acomplete([{"role": "user", "content": text}], SONNET) for text in texts)
        )
        return [completion.text for completion in completions]

    assert asyncio.run(ask("a", "b", "c")) == ["a", "b", "c"]
    assert asyncio.run(ask("d")) == ["d"]
    assert backend.complete([{"role": "user", "content": "e"}], SONNET).text == "e"


def test_missing_key_fails_before_any_call():
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        AnthropicBackend()


def test_key_from_the_environment(monkeypatch, model_server):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    model_server.push("ok")
    backend = AnthropicBackend(base_url=model_server.url)
    try:
        backend.complete([{"role": "user", "content": "q"}], SONNET)
    finally:
        backend.close()

    assert "env-key" in _credentials(model_server.requests[0].headers)


def _credentials(headers: dict[str, str]) -> str:
    # SDK versions differ: x-api-key, or an Authorization bearer token.
    return headers.get("x-api-key", "") + headers.get("authorization", "")
