"""The llm_query channel: only signed, fresh, well-sized requests are served, within bounds."""

from __future__ import annotations

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.conftest import RecordingHandler
from tests.security.conftest import output

pytestmark = [
    pytest.mark.container,
    pytest.mark.rootless,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]

# A second connection to the callback socket, speaking the wire format by hand with the key
# the kernel can read: what hostile code can do without the runtime's client.
RAW = """
import hashlib, hmac, json, os, socket, struct
_key = json.load(open(os.environ['RLM_CALLBACK_FILE']))['key'].encode()
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ['RLM_CALLBACK_ENDPOINT'])
    return s
_raw = connect()
def frame(body):
    return struct.pack('!I', len(body)) + body
def signed(message, key=_key):
    payload = json.dumps(message).encode()
    return frame(hmac.new(key, payload, hashlib.sha256).digest() + payload)
def _exactly(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError('closed by the host')
        data += chunk
    return data
def reply(timeout=5.0, sock=None):
    sock = sock or _raw
    sock.settimeout(timeout)
    try:
        size, = struct.unpack('!I', _exactly(sock, 4))
        return json.loads(_exactly(sock, size)[32:])
    except (TimeoutError, ConnectionError):  # no answer, or the host closed the connection
        return None
"""


async def rejected_after(box: Sandbox, code: str) -> int:
    before = box.callbacks_rejected
    await output(box, RAW + code)
    # Served or not, a real call afterwards proves the channel still works.
    assert await output(box, "print(llm_query('ping'))") == "answer to ping"
    return box.callbacks_rejected - before


async def test_unsigned_message_is_dropped(box: Sandbox) -> None:
    code = '_raw.sendall(frame(bytes(32) + b\'{"type": "llm_query"}\'))\n'
    assert await rejected_after(box, code + "print(reply(0.5))") == 1


async def test_forged_signature_is_dropped(box: Sandbox) -> None:
    code = "_raw.sendall(signed({'id': 'f', 'type': 'llm_query', 'prompt': 'x'}, b'k'))\n"
    assert await rejected_after(box, code + "print(reply(0.5))") == 1


async def test_replayed_message_is_dropped(box: Sandbox) -> None:
    code = (
        "frames = signed({'id': 'r1', 'type': 'llm_query', 'prompt': 'once'})\n"
        "_raw.sendall(frames); first = reply()\n"
        "_raw.sendall(frames); second = reply(0.5)\n"
        "assert first['result'] == 'answer to once' and second is None, (first, second)\n"
    )
    assert await rejected_after(box, code) == 1


async def test_junk_frames_are_dropped_with_their_connection(box: Sandbox) -> None:
    # Well framed but not JSON, not an object, or signed over nothing.
    code = (
        "body = hmac.new(_key, b'\\xff\\xfe', hashlib.sha256).digest() + b'\\xff\\xfe'\n"
        "out = []\n"
        "for junk in (frame(body), signed([1, 2]), frame(bytes(32))):\n"
        "    s = connect()\n"
        "    s.sendall(junk + signed({'id': 'j', 'type': 'llm_query', 'prompt': 'after'}))\n"
        "    out.append(reply(5.0, s))\n"
        "assert out == [None] * 3, out\n"
    )
    assert await rejected_after(box, code) == 3


async def test_a_flood_of_forged_frames_costs_one_rejection(box: Sandbox) -> None:
    # Issue 12's many-frame message: 200,000 frames in one write. The host stops at the
    # first and closes the connection, so it neither buffers nor checks the rest.
    code = (
        "try:\n    _raw.sendall(frame(bytes(32) + b'{}') * 200_000)\n"
        "except OSError as exc:\n    print(type(exc).__name__)\n"
    )
    assert await rejected_after(box, code) == 1


async def test_a_frame_too_short_to_be_signed_drops_its_connection(box: Sandbox) -> None:
    code = "_raw.sendall(frame(b'x' * 5))\nassert reply(5.0) is None\n"
    assert await rejected_after(box, code) == 1


async def test_oversized_request_is_refused_in_the_kernel(box: Sandbox) -> None:
    result = await box.execute("llm_query('x' * 40_000_000)")
    assert result.error is not None and result.error.name == "LLMQueryError"
    assert "over the limit" in result.error.value


async def test_oversized_raw_frame_does_not_reach_the_host(box: Sandbox) -> None:
    # The length comes first: the host refuses the frame on it and closes the connection
    # before reading the body, so the kernel's write fails instead of filling the host.
    code = (
        "try:\n    _raw.sendall(struct.pack('!I', 40_000_000) + b'x' * 40_000_000)\n"
        "except OSError as exc:\n    print(type(exc).__name__)\n"
    )
    assert await rejected_after(box, code) == 1


async def test_batch_over_the_length_cap_is_refused_in_the_kernel(box: Sandbox) -> None:
    result = await box.execute("llm_query_batched([''] * 1_000_000)")
    assert result.error is not None and result.error.name == "LLMQueryError"
    assert "prompts" in result.error.value


async def test_signed_batch_over_the_cap_is_refused_whole_by_the_host(box: Sandbox) -> None:
    answer = await output(
        box,
        RAW + "_raw.sendall(signed({'id': 'b', 'type': 'llm_query_batched',"
        " 'prompts': [''] * 200_000}))\nr = reply(20.0)\nprint(r['status'], 'results' in r)",
    )
    assert answer == "error False"


async def test_mistyped_request_fields_get_an_error_reply(box: Sandbox) -> None:
    answer = await output(
        box,
        RAW + "out = []\n"
        "for body in ({'prompts': 'abc'}, {'prompts': None}, {'prompts': [[1]], 'model': 5}):\n"
        "    _raw.sendall(signed({'id': 'm', 'type': 'llm_query_batched', **body}))\n"
        "    out.append(reply()['status'])\nprint(out)",
    )
    assert answer == "['error', 'error', 'error']"


async def test_connections_over_the_cap_are_refused(box: Sandbox) -> None:
    # Each connection may hold a partial frame: the host accepts 64 at once, no more.
    # RAW's connection and, after an earlier test, the runtime's own are open already, so
    # the last 36 of these 100 are refused whatever came before, and one or two more.
    code = (
        "held = [connect() for _ in range(100)]\n"
        "for s in held[64:]:\n    s.settimeout(5.0)\n"
        "closed = sum(s.recv(1) == b'' for s in held[64:])\n"
        "for s in held:\n    s.close()\n"
        "assert closed == 36, closed\n"
    )
    assert await rejected_after(box, code) in (37, 38)


async def test_partial_frames_together_are_capped(box: Sandbox) -> None:
    # Five connections each send most of a 30 MB frame and then nothing: each is under the
    # frame cap, but together they pass the host's 128 MiB for partial frames, so the fifth
    # is dropped instead of the host holding 150 MB (or 64 x 32 MiB with more of them).
    code = (
        "held = [connect() for _ in range(5)]\n"
        "for s in held:\n"
        "    try:\n"
        "        s.sendall(struct.pack('!I', 30_000_000) + b'x' * 29_000_000)\n"
        "    except OSError:\n        pass\n"
        "def closed(s):\n"
        "    s.settimeout(2.0)\n"
        "    try:\n        return s.recv(1) == b''\n"
        "    except TimeoutError:\n        return False\n"
        "    except OSError:\n        return True\n"
        "print([closed(s) for s in held])\n"
        "for s in held:\n    s.close()\n"
    )
    before = box.callbacks_rejected
    assert await output(box, RAW + code) == "[False, False, False, False, True]"
    assert box.callbacks_rejected - before == 1
    # What the dropped and the closed connections held is released: a big request fits.
    assert (await output(box, "print(len(llm_query('y' * 20_000_000)))")).isdigit()


# Hostile code that gets between the kernel's runtime and the memfd a load hands over, and
# tries to change it before the runtime reads it, through a descriptor reopened for writing.
TAMPER = """
import errno, fcntl, os
import rlm_kernel.runtime as _runtime
_decode, tampered = _runtime.decode_context, {}
def _tamper(fd, fmt):
    tampered["mode"] = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    w = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    for name, attempt in (
        ("write", lambda: os.pwrite(w, b"forged", 0)),
        ("grow", lambda: os.ftruncate(w, 1 << 30)),
        ("shrink", lambda: os.ftruncate(w, 0)),
        ("unseal", lambda: fcntl.fcntl(w, 1033, 0)),
    ):
        try:
            attempt()
            tampered[name] = "ok"
        except OSError as exc:
            tampered[name] = errno.errorcode[exc.errno]
    os.close(w)
    return _decode(fd, fmt)
_runtime.decode_context = _tamper
"""


async def test_a_loaded_context_cannot_be_changed_or_taken_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Sandbox("start", llm_handler=RecordingHandler()) as sandbox:
        assert (await sandbox.execute(TAMPER)).ok
        # The load's token, known here, is what hostile code would replay to take it again.
        with monkeypatch.context() as patch:
            patch.setattr("rlm.sandbox.sandbox.secrets.token_hex", lambda n: "known-token")
            await sandbox.load_context("a pooled run's document")
        denied = dict.fromkeys(("write", "grow", "shrink", "unseal"), "EPERM")
        assert await output(sandbox, "print(tampered)") == str({"mode": True, **denied})
        assert await output(sandbox, "print(CONTEXT)") == "a pooled run's document"
        again = await output(
            sandbox,
            RAW
            + "_raw.sendall(signed({'id': 'c', 'type': 'context_fd', 'token': 'known-token'}))\n"
            "print(reply()['error'])",
        )
        assert again == "LookupError: no context is offered under this token (each is taken once)"
