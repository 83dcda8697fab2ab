"""The contract between rlm's host and its kernel, written once.

Both sides import this module: the kernel as `rlm_kernel.protocol` (the image build copies
this tree), the host as `rlm.kernel_image.rlm_kernel.protocol`. It therefore imports only
the standard library, and nothing else of either side.

It defines:
- the environment the host starts the kernel with (`Env`) and the kernel's defaults;
- the callback channel: the key file (`CallbackConfig`), the request types and the signed
  wire format (`Signer`);
- the fields the kernel adds to every execute_reply (`REPLY_KEY` and `Reply*`);
- the kernel's entry point for replacing CONTEXT (`load_context_code`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


class Env:
    """Names of the environment variables the host sets for the kernel."""

    OUTPUT_LIMIT = "RLM_OUTPUT_LIMIT"
    CALLBACK_TIMEOUT = "RLM_CALLBACK_TIMEOUT"
    ECHO_INPUT = "RLM_ECHO_INPUT"
    CALLBACK_FILE = "RLM_CALLBACK_FILE"
    CALLBACK_ENDPOINT = "RLM_CALLBACK_ENDPOINT"
    CONTEXT_FILE = "RLM_CONTEXT_FILE"
    CONTEXT_FORMAT = "RLM_CONTEXT_FORMAT"
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


PROTOCOL = b"rlm-callback/1"
REPLAY_HISTORY = 1 << 16


class Signer:
    """Signed messages of the callback channel.

    A message is three ZMQ frames: [PROTOCOL, signature, payload]. The payload is JSON; the
    signature is its HMAC-SHA256 under the sandbox's key. A verified signature is
    remembered, so a replayed message is rejected (each payload carries a random id, so
    signatures never repeat legitimately).
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def pack(self, message: dict[str, Any]) -> list[bytes]:
        payload = json.dumps(message, separators=(",", ":")).encode()
        return [PROTOCOL, hmac.new(self._key, payload, hashlib.sha256).digest(), payload]

    def unpack(self, frames: list[bytes]) -> dict[str, Any]:
        """Verify and decode; ValueError for anything unsigned, forged, replayed or malformed."""
        if len(frames) != 3 or frames[0] != PROTOCOL:
            raise ValueError("not a signed rlm callback message")
        signature, payload = frames[1], frames[2]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise ValueError("invalid signature")
        if signature in self._seen:
            raise ValueError("replayed message")
        self._seen.add(signature)
        self._order.append(signature)
        if len(self._order) > REPLAY_HISTORY:
            self._seen.discard(self._order.popleft())
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise ValueError("malformed message")
        return message


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
"""Method of the running kernel object that replaces CONTEXT from a file: (path, format)."""


def load_context_code(path: str, fmt: str) -> str:
    """The code the host executes to call the kernel's LOAD_CONTEXT entry point."""
    if fmt not in CONTEXT_FORMATS:
        raise ValueError(f"unknown context format {fmt!r}")
    return f"get_ipython().kernel.{LOAD_CONTEXT}({path!r}, {fmt!r})"
