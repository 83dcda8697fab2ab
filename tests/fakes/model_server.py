"""A fake model endpoint on 127.0.0.1 speaking the Anthropic and OpenAI wire formats.

Tests script what it answers and inspect what it received:

    with FakeModelServer() as server:
        server.push(Reply(status=429, headers={"retry-after-ms": "10"}), "hello")
        ...  # AnthropicBackend(base_url=server.url) or
             # OpenAICompatibleBackend(base_url=server.openai_url)
        assert server.requests[-1].json["system"][0]["cache_control"]

Queued replies are used first, in order; then the handler, a callable
``(request_json) -> str | Reply`` (e.g. a fake model writing code, reading the prompt
with `last_user_text`); with neither, the server answers 500 with
``x-should-retry: false`` so a test missing a script fails fast.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    With status 200, `text` is the completion; otherwise it is the error message in the
    provider's error envelope. Token counts left at None are estimated (len // 4).
    """

    text: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float | None = None
    """OpenAI format only: reported as ``usage.cost``, as OpenRouter does."""
    model: str | None = None
    """The model named in the answer; None echoes the requested one."""
    raw_body: bytes | None = None
    """Sent verbatim instead of a well-formed body (to fake malformed answers)."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Names lower-cased."""
    json: Any
    """The decoded body; None if it was not JSON."""


Script = Callable[[Any], "str | Reply"]


class FakeModelServer:
    """Threaded HTTP server on a random local port; see the module docstring."""

    def __init__(self, handler: Script | None = None) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        # Set on stop, so replies sleeping to simulate a slow model end promptly.
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler_class(self))
        self._httpd.daemon_threads = True
        # A short poll interval makes stop() (which waits for a poll) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL for the Anthropic SDK (it appends ``/v1/messages``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (it appends ``/chat/completions``)."""
        return f"{self.url}/v1"

    def push(self, *replies: str | Reply) -> None:
        """Queue replies, answered in order before the handler is consulted."""
        with self._lock:
            self._queue.extend(_as_reply(reply) for reply in replies)

    def start(self) -> FakeModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        if self.handler is not None:
            return _as_reply(self.handler(request.json))
        return Reply(
            status=500,
            text="fake model server: no reply scripted for this request",
            headers={"x-should-retry": "false"},
        )


def last_user_text(request_json: Any) -> str:
    """The newest user message of a request in either wire format, as plain text
    (Anthropic requests may carry it as content blocks with cache markers)."""
    user_turns = [m for m in request_json["messages"] if m["role"] == "user"]
    content = user_turns[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


def _as_reply(reply: str | Reply) -> Reply:
    return Reply(text=reply) if isinstance(reply, str) else reply


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _anthropic_body(request: Any, reply: Reply) -> dict[str, Any]:
    if reply.status != 200:
        return {"type": "error", "error": {"type": "api_error", "message": reply.text}}
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": reply.model or request.get("model", "fake"),
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": _input_tokens(request, reply),
            "output_tokens": _output_tokens(reply),
            "cache_read_input_tokens": reply.cache_read_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
        },
    }


def _openai_body(request: Any, reply: Reply) -> dict[str, Any]:
    if reply.status != 200:
        return {"error": {"message": reply.text, "type": "api_error", "code": None}}
    # OpenAI counts cached tokens inside prompt_tokens.
    prompt_tokens = _input_tokens(request, reply) + reply.cache_read_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": _output_tokens(reply),
        "total_tokens": prompt_tokens + _output_tokens(reply),
        "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens},
    }
    if reply.cost is not None:
        usage["cost"] = reply.cost
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": reply.model or request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _input_tokens(request: Any, reply: Reply) -> int:
    if reply.input_tokens is not None:
        return reply.input_tokens
    return _estimate_tokens(json.dumps(request.get("messages", "")))


def _output_tokens(reply: Reply) -> int:
    return _estimate_tokens(reply.text) if reply.output_tokens is None else reply.output_tokens


_BODIES = {"/v1/messages": _anthropic_body, "/v1/chat/completions": _openai_body}


def _make_handler_class(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as real endpoints do: the SDKs reuse connections.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest("POST", self.path, headers, body)
            if self.path not in _BODIES:
                self._send(404, b'{"error": {"message": "no such route"}}', {})
                return
            reply = server._next_reply(request)
            if reply.delay_s and server._stopping.wait(reply.delay_s):
                return
            payload = reply.raw_body
            if payload is None:
                payload = json.dumps(_BODIES[self.path](body or {}, reply)).encode()
            self._send(reply.status, payload, reply.headers)

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests); nothing to tell it

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
