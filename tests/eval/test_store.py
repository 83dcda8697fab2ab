"""The results file: appends whole lines, survives a torn last line, refuses a foreign file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm.eval.store import ResultsFileError, ResultStore


def test_a_torn_last_line_is_dropped_so_appends_start_clean(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "run" / "results.jsonl")
    store.append({"id": "a", "score": 1.0})
    store.append({"id": "b", "score": 0.5})
    with store.path.open("a") as out:
        out.write('{"id": "c", "sco')  # killed mid-write
    assert set(store.load()) == {"a", "b"}
    store.append({"id": "c", "score": 0.0})
    lines = store.path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]


def test_a_later_record_of_an_id_replaces_the_earlier(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.jsonl")
    store.append({"id": "a", "score": 0.0})
    store.append({"id": "a", "score": 1.0})
    assert store.load() == {"a": {"id": "a", "score": 1.0}}


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("shopping list\n")
    with pytest.raises(ResultsFileError, match=r"line 1 of .* is not an rlm eval record"):
        ResultStore(path).load()
