"""OpenAICompatibleBackend against the fake endpoint, through the real `openai` SDK."""

from __future__ import annotations

import pytest

from rlm.backends import OpenAICompatibleBackend
from rlm.errors import AuthenticationError
from tests.fakes.model_server import Reply, last_user_text


async def test_text_usage_and_cost(make_sdk_backend, model_server):
    # prompt_tokens = 1000 uncached + 4000 cached
    model_server.push(
        Reply("the answer", input_tokens=1000, output_tokens=100, cache_read_tokens=4000)
    )
    backend = make_sdk_backend("openai")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "gpt-4o")

    assert completion.text == "the answer"
    assert completion.model == "gpt-4o"
    usage = completion.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (1000, 4000, 100)
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out, per million.
    assert usage.cost_usd == pytest.approx((1000 * 2.5 + 4000 * 1.25 + 100 * 10) / 1e6)


async def test_system_prompt_goes_first_and_max_tokens_is_sent(make_sdk_backend, model_server):
    model_server.push("ok")
    backend = make_sdk_backend("openai")

    await backend.acomplete(
        [{"role": "user", "content": "q"}], "gpt-4o", system="be brief", max_tokens=64
    )

    sent = model_server.requests[0].json
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"},
    ]
    assert sent["max_tokens"] == 64
    assert model_server.requests[0].headers["authorization"] == "Bearer test-key"


async def test_reported_cost_wins_over_the_price_table(make_sdk_backend, model_server):
    model_server.push(Reply(input_tokens=1000, output_tokens=100, cost=0.1234))
    backend = make_sdk_backend("openai")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "gpt-4o")

    assert completion.usage.cost_usd == 0.1234


async def test_priced_by_the_model_answering_when_the_asked_name_is_unknown(
    make_sdk_backend, model_server
):
    model_server.push(Reply(input_tokens=1_000_000, output_tokens=0, model="gpt-4o-mini"))
    backend = make_sdk_backend("openai")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "my-alias")

    assert completion.model == "gpt-4o-mini"
    assert completion.usage.cost_usd == pytest.approx(0.15)


async def test_unknown_model_has_unknown_cost(make_sdk_backend, model_server):
    model_server.push(Reply(input_tokens=10, output_tokens=10))
    backend = make_sdk_backend("openai")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "llama3.2")

    assert completion.usage.cost_usd is None


async def test_missing_usage_leaves_tokens_and_cost_unknown(make_sdk_backend, model_server):
    model_server.push(Reply(raw_body=b'{"choices": [{"message": {"content": "hi"}}]}'))
    backend = make_sdk_backend("openai")

    completion = await backend.acomplete([{"role": "user", "content": "q"}], "gpt-4o")

    assert completion.text == "hi"
    assert completion.usage.cost_usd is None


def test_sync_complete_with_a_scripted_model(make_sdk_backend, model_server):
    model_server.handler = lambda request: f"you said {last_user_text(request)}"
    backend = make_sdk_backend("openai")

    assert backend.complete([{"role": "user", "content": "q"}], "gpt-4o").text == "you said q"


def test_openai_itself_needs_a_key():
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        OpenAICompatibleBackend()


async def test_a_local_server_needs_no_key(model_server):
    model_server.push("local")
    backend = OpenAICompatibleBackend(base_url=model_server.openai_url, max_retries=0)
    try:
        completion = await backend.acomplete([{"role": "user", "content": "q"}], "llama3.2")
    finally:
        await backend.aclose()

    assert completion.text == "local"
