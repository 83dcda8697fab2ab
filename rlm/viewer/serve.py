"""`rlm view --serve`: the page on 127.0.0.1, following a trace that is still being written.

`LiveTrace` reads only what was appended since it last looked, and only whole lines (a
line being written is read once it ends). The page subscribes to /events, a stream of
server-sent events saying the model changed; it then fetches /model.json and redraws.
Standard library only: one thread per connection, none outliving the server.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rlm.viewer.model import NotATrace, PageBuilder
from rlm.viewer.render import page_json, render_html

POLL_S = 0.5
KEEPALIVE_S = 15.0


class LiveTrace:
    """The page model of a trace file that may still grow."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.builder = PageBuilder(path.name)
        self.offset = 0
        self.version = 0
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Read what was appended; returns the model's version (bumped on each change).
        A line that cannot be read stops reading there, as `damage` (see `not_a_trace`)."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return self.version
            if size < self.offset:  # rewritten from the start
                self.builder, self.offset = PageBuilder(self.path.name), 0
            if size == self.offset:
                return self.version
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read(size - self.offset)
            whole = data[: data.rfind(b"\n") + 1]
            self.offset += len(whole)
            for raw in whole.splitlines():
                try:
                    if not self.builder.add_line(raw.decode("utf-8", errors="replace")):
                        break
                except NotATrace as exc:
                    self.builder.damage = {"line": self.builder.lines, "reason": str(exc)}
            self.version += 1
            return self.version

    @property
    def not_a_trace(self) -> str | None:
        """Why the file is no trace at all (its first line is not an event), or None."""
        damage = self.builder.damage
        return damage["reason"] if damage and self.builder.events == 0 else None

    def json(self) -> str:
        """The page model as it is now, as JSON for the page."""
        self.refresh()
        with self._lock:
            return page_json(self.builder.page().to_json(), live=True)

    def html(self) -> str:
        """The page, live, with the model as it is now."""
        self.refresh()
        with self._lock:
            return render_html(self.builder.page().to_json(), live=True)


class TraceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, trace: LiveTrace, port: int = 0) -> None:
        self.trace = trace
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def stop(self) -> None:
        """Ends the event streams and the server (from another thread than serve_forever)."""
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: TraceServer

    def do_GET(self) -> None:
        trace = self.server.trace
        if self.path == "/":
            self._send("text/html; charset=utf-8", trace.html())
        elif self.path == "/model.json":
            self._send("application/json", trace.json())
        elif self.path == "/events":
            self._stream()
        else:
            self.send_error(404)

    def _send(self, kind: str, text: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        trace, stopping = self.server.trace, self.server.stopping
        seen, quiet_since = -1, time.monotonic()
        try:
            while not stopping.is_set():
                version = trace.refresh()
                if version != seen:
                    seen, quiet_since = version, time.monotonic()
                    self.wfile.write(f"event: update\ndata: {version}\n\n".encode())
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                stopping.wait(POLL_S)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page was closed

    def log_message(self, format: str, *args: object) -> None:
        pass  # the command's own output says what is served
