"""The JSONL trace: one line per event, written and flushed as it happens.

The file is opened for each line, so a run that is killed keeps every step it finished
and no handle outlives a completion. Several completions may share one trace file: lines
are appended whole (under a lock) and each carries its run_id.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from rlm.orchestrator.events import Event


class TraceWriter:
    """An EventSink appending events to `path` as JSON lines."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Completions on different threads may share this writer.
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        # ensure_ascii keeps lone surrogates (possible in model text) writable.
        line = json.dumps(event.to_json(), ensure_ascii=True, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
