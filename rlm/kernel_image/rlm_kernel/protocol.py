"""The contract between rlm's host and its kernel, written once.

Both sides import this module: the kernel as `rlm_kernel.protocol` (the image build copies
this tree), the host as `rlm.kernel_image.rlm_kernel.protocol`. It therefore imports only
the standard library, and nothing else of either side.

It defines:
- the environment the host starts the kernel with (`Env`) and the kernel's defaults;
- the callback channel: the key file (`CallbackConfig`), the request types, the signed
  wire format (`Signer`) and its framing (`FrameReader`);
- the fields the kernel adds to every execute_reply (`REPLY_KEY` and `Reply*`);
- the kernel's entry point for replacing CONTEXT (`load_context_code`), whose data comes
  over the callback channel as a sealed memfd (`CONTEXT_FD`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


class Env:
    """Names of the environment variables the host sets for the kernel."""

    OUTPUT_LIMIT = "RLM_OUTPUT_LIMIT"
    CALLBACK_TIMEOUT = "RLM_CALLBACK_TIMEOUT"
    ECHO_INPUT = "RLM_ECHO_INPUT"
    CALLBACK_FILE = "RLM_CALLBACK_FILE"
    CALLBACK_ENDPOINT = "RLM_CALLBACK_ENDPOINT"  # the path of the callback unix socket
    CONTEXT_FILE = "RLM_CONTEXT_FILE"
    CONTEXT_FORMAT = "RLM_CONTEXT_FORMAT"  # of CONTEXT_FILE, when no token is given
    CONTEXT_TOKEN = "RLM_CONTEXT_TOKEN"  # ask the callback channel (CONTEXT_FD) at boot
    RLIMIT_AS = "RLM_RLIMIT_AS"
    RLIMIT_NPROC = "RLM_RLIMIT_NPROC"


# What the kernel assumes for a variable the host left unset.
DEFAULT_OUTPUT_LIMIT = 100_000
DEFAULT_CALLBACK_TIMEOUT = 300.0
DEFAULT_CONTEXT_FORMAT = "text"
CONTEXT_FORMATS = ("text", "json")

# The host drops (and loses the connection of) any Jupyter message over this size.
JUPYTER_MAX_MESSAGE_BYTES = 64 * 1024**2
# The longest answer FINAL takes: at up to 4 bytes a character in UTF-8, the execute_reply
# carrying it stays under JUPYTER_MAX_MESSAGE_BYTES.
FINAL_LIMIT = 8_000_000
# Rich display data (images, HTML) kept per message; text/plain is capped like stdout.
RICH_DISPLAY_LIMIT = 16_000_000

# --- the callback channel ------------------------------------------------------------

LLM_QUERY = "llm_query"
LLM_QUERY_BATCHED = "llm_query_batched"
# {"token": str}: the context the host offers under `token` (Env.CONTEXT_TOKEN at start,
# load_context_code later). The reply, {"format": ...}, carries it as a sealed memfd
# (SCM_RIGHTS): no file, no copy over the socket; a reply without one means the mounted
# file (Env.CONTEXT_FILE). Each offer is taken once.
CONTEXT_FD = "context_fd"


@dataclass(frozen=True)
class CallbackConfig:
    """The callback.json the host writes and the kernel reads (through a read-only mount)."""

    key: str
    max_message_bytes: int
    max_batch_prompts: int  # prompts one llm_query_batched may carry

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CallbackConfig:
        data = json.loads(text)
        return cls(str(data["key"]), int(data["max_message_bytes"]), int(data["max_batch_prompts"]))


REPLAY_HISTORY = 1 << 16
# A frame on the callback socket: its body's length, then the body.
FRAME_HEADER = struct.Struct("!I")
SIGNATURE_BYTES = hashlib.sha256().digest_size
# Made once: json.dumps with options builds an encoder per call (half of packing a small
# frame), and json.loads of bytes first guesses their encoding (ours is always UTF-8).
_encode = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode


class Signer:
    """Signed messages of the callback channel.

    The channel is a unix stream socket; a message is one frame: a 4-byte big-endian length,
    then the body: the HMAC-SHA256 of the payload under the sandbox's key, then the payload
    (JSON). A verified signature is remembered, so a replayed message is rejected (each
    payload carries a random id, so signatures never repeat legitimately).
    """

    def __init__(self, key: bytes) -> None:
        # Keyed once and copied per message: a third cheaper than hmac.digest, which sets
        # the key up each time.
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def _sign(self, payload: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(payload)
        return mac.digest()

    def pack(self, message: dict[str, Any]) -> bytes:
        """The whole frame, length prefix included."""
        payload = _encode(message).encode()
        header = FRAME_HEADER.pack(SIGNATURE_BYTES + len(payload))
        return header + self._sign(payload) + payload

    def unpack(self, body: bytes) -> dict[str, Any]:
        """Verify and decode a frame's body; ValueError for anything forged, replayed or
        malformed."""
        signature, payload = body[:SIGNATURE_BYTES], body[SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise ValueError("invalid signature")
        if signature in self._seen:
            raise ValueError("replayed message")
        self._seen.add(signature)
        self._order.append(signature)
        if len(self._order) > REPLAY_HISTORY:
            self._seen.discard(self._order.popleft())
        message = _decode(payload.decode())
        if not isinstance(message, dict):
            raise ValueError("malformed message")
        return message


class BadFrame(ValueError):
    """A frame announced a body over the reader's limit, or too short to be signed."""


class FrameReader:
    """Splits the bytes read from the callback socket into frame bodies.

    A frame's length comes first, so one over `max_bytes` is refused before its body is
    buffered: what a peer can make the reader hold is bounded by the limit plus one read.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next whole body, or None until more bytes arrive; BadFrame if the next
        frame may not be read (the stream cannot be resynchronised after it)."""
        buffer = self._buffer
        if len(buffer) < FRAME_HEADER.size:
            return None
        (size,) = FRAME_HEADER.unpack_from(buffer)
        if size < SIGNATURE_BYTES or (self._max_bytes is not None and size > self._max_bytes):
            raise BadFrame(f"a frame of {size:,} bytes")
        end = FRAME_HEADER.size + size
        if len(buffer) < end:
            return None
        body = bytes(buffer[FRAME_HEADER.size : end])
        del buffer[:end]
        return body


# --- execute_reply --------------------------------------------------------------------

REPLY_KEY = "rlm"
"""execute_reply[REPLY_KEY] holds the fields below: no extra round trip per execute."""
REPLY_FINAL = "final"  # str | None: the answer FINAL recorded
# str | None: how it was given: "final", "final_var" or "answer_dict" (added after "final":
# a host reading an older kernel's reply finds no such key)
REPLY_FINISH = "finish"
REPLY_OUTPUT_DROPPED = "output_dropped"  # int: output characters the kernel did not send
REPLY_RESTORED = "restored"  # list[str]: reserved names user code rebound, now put back

# --- entry points the host calls ------------------------------------------------------

LOAD_CONTEXT = "rlm_load_context"
"""Method of the running kernel object that replaces CONTEXT with the one the host offers
under a token on the callback channel: (token)."""


def load_context_code(token: str) -> str:
    """The code the host executes to call the kernel's LOAD_CONTEXT entry point."""
    return f"get_ipython().kernel.{LOAD_CONTEXT}({token!r})"
