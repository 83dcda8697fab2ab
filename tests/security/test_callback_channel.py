"""The llm_query channel: only signed, fresh, well-sized requests are served."""

from __future__ import annotations

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import output

pytestmark = [
    pytest.mark.container,
    pytest.mark.rootless,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]

# A second DEALER on the callback socket, speaking the wire format by hand with the key the
# kernel can read: what hostile code can do without the runtime's client.
RAW = """
import hashlib, hmac, json, os, zmq
_key = json.load(open(os.environ['RLM_CALLBACK_FILE']))['key'].encode()
_raw = zmq.Context.instance().socket(zmq.DEALER)
_raw.setsockopt(zmq.LINGER, 0)
_raw.connect(os.environ['RLM_CALLBACK_ENDPOINT'])
def signed(message, key=_key):
    payload = json.dumps(message).encode()
    return [b'rlm-callback/1', hmac.new(key, payload, hashlib.sha256).digest(), payload]
def reply(timeout_ms=5000):
    if not _raw.poll(timeout_ms):
        return None
    return json.loads(_raw.recv_multipart()[2])
"""


async def rejected_after(box: Sandbox, code: str) -> int:
    before = box.callbacks_rejected
    await output(box, RAW + code)
    # Served or not, a real call afterwards proves the channel still works.
    assert await output(box, "print(llm_query('ping'))") == "answer to ping"
    return box.callbacks_rejected - before


async def test_unsigned_message_is_dropped(box: Sandbox) -> None:
    code = "_raw.send_multipart([b'rlm-callback/1', b'', b'{\"type\": \"llm_query\"}'])\n"
    assert await rejected_after(box, code + "print(reply(500))") == 1


async def test_forged_signature_is_dropped(box: Sandbox) -> None:
    code = "_raw.send_multipart(signed({'id': 'f', 'type': 'llm_query', 'prompt': 'x'}, b'k'))\n"
    assert await rejected_after(box, code + "print(reply(500))") == 1


async def test_replayed_message_is_dropped(box: Sandbox) -> None:
    code = (
        "frames = signed({'id': 'r1', 'type': 'llm_query', 'prompt': 'once'})\n"
        "_raw.send_multipart(frames); first = reply()\n"
        "_raw.send_multipart(frames); second = reply(500)\n"
        "assert first['result'] == 'answer to once' and second is None, (first, second)\n"
    )
    assert await rejected_after(box, code) == 1


async def test_junk_frames_are_dropped(box: Sandbox) -> None:
    code = (
        "for frames in ([b'x'], [b''] * 7, [b'rlm-callback/1', b'a', b'\\xff\\xfe'],"
        " signed([1, 2])):\n    _raw.send_multipart(frames)\nprint(reply(500))\n"
    )
    assert await rejected_after(box, code) == 4


async def test_oversized_request_is_refused_in_the_kernel(box: Sandbox) -> None:
    result = await box.execute("llm_query('x' * 40_000_000)")
    assert result.error is not None and result.error.name == "LLMQueryError"
    assert "over the limit" in result.error.value


async def test_oversized_raw_frame_does_not_reach_the_host(box: Sandbox) -> None:
    code = "_raw.send_multipart([b'rlm-callback/1', b'', b'x' * 40_000_000])\nprint(reply(1000))\n"
    # ZMQ drops the connection before the host buffers it: nothing even to reject.
    assert await rejected_after(box, code) == 0


async def test_batch_over_the_length_cap_is_refused_in_the_kernel(box: Sandbox) -> None:
    result = await box.execute("llm_query_batched([''] * 1_000_000)")
    assert result.error is not None and result.error.name == "LLMQueryError"
    assert "prompts" in result.error.value


async def test_signed_batch_over_the_cap_is_refused_whole_by_the_host(box: Sandbox) -> None:
    answer = await output(
        box,
        RAW + "_raw.send_multipart(signed({'id': 'b', 'type': 'llm_query_batched',"
        " 'prompts': [''] * 200_000}))\nr = reply(20000)\nprint(r['status'], 'results' in r)",
    )
    assert answer == "error False"


async def test_mistyped_request_fields_get_an_error_reply(box: Sandbox) -> None:
    answer = await output(
        box,
        RAW + "out = []\n"
        "for body in ({'prompts': 'abc'}, {'prompts': None}, {'prompts': [[1]], 'model': 5}):\n"
        "    _raw.send_multipart(signed({'id': 'm', 'type': 'llm_query_batched', **body}))\n"
        "    out.append(reply()['status'])\nprint(out)",
    )
    assert answer == "['error', 'error', 'error']"
