"""Both HTTP backends, and a whole run, against fakellm: a mock OpenAI + Anthropic server
written by others (tests/fakes/fakellm_server.py), so the SDKs meet a reading of the wire
formats that is not ours. Sandboxes use the local runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from rlm import RLM
from rlm.backends import AnthropicBackend, OpenAICompatibleBackend
from rlm.backends._sdk import SDKBackend
from rlm.errors import RateLimitError
from tests.fakes.fakellm_server import FakeLLM
from tests.orchestrator.helpers import repl

BOTH_APIS = pytest.mark.parametrize("kind", ["anthropic", "openai"])
StartFakeLLM = Callable[[list[dict[str, Any]]], FakeLLM]
MakeBackend = Callable[..., SDKBackend]

ROOT, SUB = "fake-root", "fake-sub"
PRICES = {ROOT: {"input": 3.0, "output": 15.0}, SUB: {"input": 1.0, "output": 5.0}}
SYSTEM = "You answer questions about vaults in one short sentence."
QUESTION = "What is the vault code written on the door of the old mill?"
ANSWER = "The vault code is 4417."
VAULT_RULE = {
    "name": "vault",
    "when": {"messages_contain": "old mill"},
    "respond": {"content": ANSWER},
}


@pytest.fixture
async def make_backend(kind: str) -> AsyncIterator[MakeBackend]:
    """`make(server, **overrides)`: a backend of this test's kind on fakellm, with no
    retries unless overridden; all are closed after."""
    made: list[SDKBackend] = []

    def make(server: FakeLLM, **overrides: Any) -> SDKBackend:
        options: dict[str, Any] = {
            "api_key": "test-key",
            "max_retries": 0,
            "timeout": 30.0,
            "prices": PRICES,
        }
        options.update(overrides)
        backend: SDKBackend
        if kind == "anthropic":
            backend = AnthropicBackend(base_url=server.url, **options)
        else:
            backend = OpenAICompatibleBackend(base_url=server.openai_url, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


def reported_usage(server: FakeLLM, kind: str, system: str, user: str) -> tuple[int, int]:
    """The (input, output) tokens fakellm reports for these messages, asked over plain HTTP.

    fakellm estimates tokens (len // 4 per message, or tiktoken's count where that is
    installed), so the test asks it rather than re-deriving its estimate. The explicit
    conversation id keeps this request out of the conversation under test.
    """
    headers = {"x-fakellm-conversation-id": "reference"}
    messages = [{"role": "user", "content": user}]
    if kind == "anthropic":
        body = {"model": ROOT, "max_tokens": 100, "system": system, "messages": messages}
        reply = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers).json()
        return reply["usage"]["input_tokens"], reply["usage"]["output_tokens"]
    body = {"model": ROOT, "messages": [{"role": "system", "content": system}, *messages]}
    reply = httpx.post(f"{server.openai_url}/chat/completions", json=body, headers=headers).json()
    return reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"]


@BOTH_APIS
async def test_one_call_reads_content_tokens_and_cost(
    kind: str, start_fakellm: StartFakeLLM, make_backend: MakeBackend
) -> None:
    server = start_fakellm([VAULT_RULE])
    backend = make_backend(server)

    completion = await backend.acomplete(
        [{"role": "user", "content": QUESTION}], ROOT, system=SYSTEM
    )

    assert server.rule_hits() == {"vault": 1}
    assert (completion.text, completion.model) == (ANSWER, ROOT)
    input_tokens, output_tokens = reported_usage(server, kind, SYSTEM, QUESTION)
    assert input_tokens > output_tokens > 0  # told apart, so a swap would show
    usage = completion.usage
    assert (usage.input_tokens, usage.output_tokens) == (input_tokens, output_tokens)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (0, 0)
    assert usage.cost_usd == pytest.approx((input_tokens * 3.0 + output_tokens * 15.0) / 1e6)


@BOTH_APIS
async def test_rate_limit_exhausting_retries_is_a_rate_limit_error(
    kind: str, start_fakellm: StartFakeLLM, make_backend: MakeBackend
) -> None:
    rule = {"name": "throttled", "respond": {"status": 429, "error": "Rate limit exceeded (mock)"}}
    server = start_fakellm([rule])
    backend = make_backend(server, max_retries=1)

    with pytest.raises(RateLimitError, match=r"after 1 retries: Rate limit exceeded \(mock\)"):
        await backend.acomplete([{"role": "user", "content": QUESTION}], ROOT)
    assert server.rule_hits() == {"throttled": 2}  # the SDK retried once


CONTEXT = "Notes on the mill. " * 200 + "The vault code is 4417. " + "More notes. " * 200

RUN_RULES: list[dict[str, Any]] = [
    {
        # The root's first reply: code that reads CONTEXT and asks the sub-model.
        "name": "root-code",
        "when": {"model_matches": ROOT, "turn": 1},
        "respond": {
            "content": repl(
                "at = CONTEXT.index('vault code')\n"
                "print('sub-answer:', llm_query('Extract the code: ' + CONTEXT[at:at + 30]))"
            )
        },
    },
    {
        # Matches only if the sandbox sent CONTEXT's text in the sub-call.
        "name": "sub-answer",
        "when": {"model_matches": SUB, "messages_contain": "extract the code: vault code is 4417"},
        "respond": {"content": "4417"},
    },
    {
        # Matches only if the root was shown the sub-call's answer, printed by its code.
        "name": "root-final",
        "when": {"model_matches": ROOT, "turn": 2, "messages_contain": "sub-answer: 4417"},
        "respond": {"content": "FINAL(The vault code is 4417)"},
    },
]


@BOTH_APIS
async def test_run_with_a_sub_call(
    kind: str, start_fakellm: StartFakeLLM, make_backend: MakeBackend
) -> None:
    server = start_fakellm(RUN_RULES)
    rlm = RLM(
        make_backend(server),
        model=ROOT,
        recursive_model=SUB,
        max_iterations=3,
        max_depth=1,
        runtime="local",
    )

    result = await rlm.acompletion(CONTEXT, "What is the vault code?")

    assert server.rule_hits() == {"root-code": 1, "sub-answer": 1, "root-final": 1}
    assert (result.success, result.finish) == (True, "final")
    assert result.answer == "The vault code is 4417"
    assert "sub-answer: 4417" in result.history[0]["outputs"][0]["stdout"]
    stats = result.stats
    assert (stats.iterations, stats.root_calls, stats.model_calls) == (2, 2, 3)
    assert (stats.sub_calls, stats.child_runs) == ({1: 1}, 0)
    assert stats.input_tokens > 0 and stats.output_tokens > 0
    by_model = rlm.cost_summary()["by_model"]
    assert (by_model[ROOT]["calls"], by_model[SUB]["calls"]) == (2, 1)
    expected_cost = sum(
        (by_model[model]["input_tokens"] * price["input"]
         + by_model[model]["output_tokens"] * price["output"]) / 1e6
        for model, price in PRICES.items()
    )  # fmt: skip
    assert stats.cost_usd == pytest.approx(expected_cost)


def test_a_fakellm_that_cannot_start_is_reported_with_its_stderr(
    start_fakellm: StartFakeLLM,
) -> None:
    # fakellm refuses unknown `when:` keys (here a typo) when it loads its rules.
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 1.*messages_contains"):
        start_fakellm([{"name": "typo", "when": {"messages_contains": "x"}}])
