"""Results as JSONL, one record per task, appended as each task ends, so a killed run
loses at most the tasks in flight and a rerun resumes by task id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class ResultsFileError(ValueError):
    """The results file cannot be resumed from (it is not ours, or holds another run)."""


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Record]:
        """Records by task id (a later record of an id replaces an earlier one). A last line
        torn by a kill is cut off first, so appending starts on a fresh line."""
        if not self.path.exists():
            return {}
        self._drop_torn_tail()
        records: dict[str, Record] = {}
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    records[record["id"]] = record
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ResultsFileError(
                        f"line {number} of {self.path} is not an rlm eval record"
                    ) from exc
        return records

    def append(self, record: Record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write per record: a kill can tear only the line being written.
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _drop_torn_tail(self) -> None:
        with self.path.open("rb+") as data:
            size = data.seek(0, 2)
            if size == 0:
                return
            data.seek(size - 1)
            if data.read(1) == b"\n":
                return
            # Scan back for the last complete line; results files are small enough.
            data.seek(0)
            end = data.read().rfind(b"\n") + 1
            data.truncate(end)
