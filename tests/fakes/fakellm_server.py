"""fakellm, a mock OpenAI + Anthropic server nobody here wrote, run as a subprocess.

`FakeModelServer` is our own reading of the two wire formats, so a backend tested only
against it can agree with our mistakes. fakellm (PyPI) is someone else's reading: tests
give it rules (``when:`` matchers, ``respond:`` content or an HTTP error, see its README)
and point the real SDKs at it:

    server = FakeLLM.start([{"name": "hi", "when": {"messages_contain": "hello"},
                             "respond": {"content": "Hi!"}}], tmp_path)
    ...  # AnthropicBackend(base_url=server.url) or
         # OpenAICompatibleBackend(base_url=server.openai_url)
    assert server.rule_hits() == {"hi": 1}
    server.stop()
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT_S = 30.0
"""Importing FastAPI and uvicorn takes seconds on a loaded machine; a real failure to
start shows sooner, as the process exiting."""

STOP_TIMEOUT_S = 10.0


@dataclass
class FakeLLM:
    """A running ``fakellm serve`` on 127.0.0.1; see the module docstring."""

    process: subprocess.Popen[bytes]
    port: int
    stderr_path: Path

    @classmethod
    def start(cls, rules: list[dict[str, Any]], workdir: Path) -> FakeLLM:
        """Write `rules` to a config in `workdir`, start fakellm on a free port and wait
        until it answers. Raises RuntimeError, with fakellm's stderr, if it does not."""
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "fakellm.yaml"
        # JSON is YAML, so the rules need no YAML library on our side.
        config.write_text(json.dumps({"version": 1, "rules": rules}, indent=2))
        stderr_path = workdir / "fakellm.stderr"
        port = _free_port()
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                # `-m fakellm.cli` is the `fakellm` command, from this interpreter's install.
                [sys.executable, "-m", "fakellm.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                # uvicorn's access log; files, not pipes, so nothing blocks on a full pipe.
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=workdir,
            )  # fmt: skip
        server = cls(process, port, stderr_path)
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def url(self) -> str:
        """Base URL for the Anthropic SDK (it appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (it appends ``/chat/completions``)."""
        return f"{self.url}/v1"

    def rule_hits(self) -> dict[str, int]:
        """How many requests each rule answered (``<fallthrough>``: no rule matched)."""
        response = httpx.get(f"{self.url}/_fakellm/stats", timeout=5.0)
        response.raise_for_status()
        return dict(response.json()["by_rule"])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate fakellm by its pid; kill it if it does not exit in time."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            status = self.process.poll()
            if status is not None:
                raise RuntimeError(
                    f"fakellm exited with status {status} before answering; "
                    f"its stderr:\n{self.stderr()}"
                )
            try:
                httpx.get(f"{self.url}/_fakellm/stats", timeout=1.0).raise_for_status()
                return
            except httpx.HTTPError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"fakellm did not answer on {self.url} within {STARTUP_TIMEOUT_S:g} s "
                        f"({exc}); its stderr:\n{self.stderr()}"
                    ) from exc
            time.sleep(0.1)


def _free_port() -> int:
    # Another process may take the port before fakellm binds it; fakellm then exits
    # saying so, and `start` reports its stderr.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
