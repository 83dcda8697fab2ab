"""What the model reads back after its code ran: each block's output, capped.

The sandbox already caps what one execute can produce; this cap is the smaller budget of
one turn of the model's conversation. Head and tail are kept (a traceback's last line
and a loop's last prints are often what matters) and the cut is said, with its size.
"""

from __future__ import annotations

from rlm.sandbox import ExecuteResult

TRACEBACK_CHARS = 3000


def block_output(index: int, result: ExecuteResult, limit: int) -> str:
    """The text of block `index` (1-based) for the model, at most about `limit` characters."""
    parts: list[str] = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.results:
        parts.append("\n".join(result.results))
    if result.stderr:
        parts.append(f"[stderr]\n{result.stderr.rstrip()}")
    if result.error is not None:
        parts.append(_error_text(result))
    body = "\n".join(parts) if parts else "(no output)"
    body = cap(body, limit)
    if result.dropped_chars:
        body += f"\n[the sandbox dropped {result.dropped_chars:,} more characters of output]"
    if result.restarted:
        body += "\n[the REPL was restarted: every variable you defined is gone]"
    return f"Output of block {index}:\n{body}"


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    note = (
        f"\n[... {cut:,} characters cut here; print less, e.g. slices, counts or summaries ...]\n"
    )
    return text[:head] + note + (text[-tail:] if tail else "")


def _error_text(result: ExecuteResult) -> str:
    error = result.error
    assert error is not None
    if result.timed_out:
        return f"[error] {error.name}: {error.value}"
    trace = error.traceback.strip() or f"{error.name}: {error.value}"
    if len(trace) > TRACEBACK_CHARS:
        trace = "..." + trace[-TRACEBACK_CHARS:]
    return f"[error]\n{trace}"
