"""ScriptedBackend, the in-process backend other modules test with."""

from __future__ import annotations

import pytest

from rlm.backends import ScriptedBackend
from rlm.errors import BackendError, RateLimitError

Q = [{"role": "user", "content": "12345678"}]


async def test_replies_in_order_and_records_calls():
    backend = ScriptedBackend(["first", "second"])

    first = await backend.acomplete(Q, "m1", system="sys", max_tokens=5)
    second = backend.complete(Q, "m2")

    assert (first.text, second.text) == ("first", "second")
    assert [(c.model, c.system, c.max_tokens) for c in backend.calls] == [
        ("m1", "sys", 5),
        ("m2", None, None),
    ]
    assert backend.calls[0].messages == Q


async def test_running_out_of_replies():
    backend = ScriptedBackend(["only"])
    await backend.acomplete(Q, "m")

    with pytest.raises(BackendError, match="no reply left for call 2"):
        await backend.acomplete(Q, "m")


async def test_an_exception_in_the_script_is_raised():
    backend = ScriptedBackend([RateLimitError("busy"), "recovered"])

    with pytest.raises(RateLimitError, match="busy"):
        await backend.acomplete(Q, "m")
    assert (await backend.acomplete(Q, "m")).text == "recovered"


async def test_sync_and_async_functions():
    def sync_reply(messages, model):
        return f"{model}: {messages[-1]['content']}"

    async def async_reply(messages, model):
        return "async " + model

    assert (await ScriptedBackend(sync_reply).acomplete(Q, "m")).text == "m: 12345678"
    assert ScriptedBackend(async_reply).complete(Q, "m").text == "async m"


async def test_plausible_usage_and_configurable_cost():
    completion = await ScriptedBackend(["abcd" * 3], cost_per_call=0.01).acomplete(
        Q, "m", system="sys!"
    )

    assert completion.usage.input_tokens == 3  # 12 characters in
    assert completion.usage.output_tokens == 3
    assert completion.usage.cost_usd == 0.01
    unknown = await ScriptedBackend(["x"], cost_per_call=None).acomplete(Q, "m")
    assert unknown.usage.cost_usd is None
