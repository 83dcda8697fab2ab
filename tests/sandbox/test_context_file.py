"""ContextFile: one reading pass checks a file is UTF-8 and counts what the prompt says."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm.errors import ContextFileError, NotUtf8Error
from rlm.orchestrator.prompts import describe_context
from rlm.sandbox import context_file
from rlm.sandbox.context_file import ContextFile

TEXT = "ab\u20acd\ncaf\u00e9\n\U0001f600 end"


@pytest.mark.parametrize("chunk", [3, 4, 5, 1 << 20])
def test_counts_like_the_str_whatever_the_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Small chunks cut multi-byte characters in two.
    monkeypatch.setattr(context_file, "CHUNK_BYTES", chunk)
    path = tmp_path / "doc.txt"
    path.write_bytes(TEXT.encode())
    checked = ContextFile.check(path)
    assert (checked.chars, checked.lines) == (len(TEXT), TEXT.count("\n") + 1)
    assert describe_context(checked) == describe_context(TEXT)


@pytest.mark.parametrize("chunk", [3, 7, 16, 1 << 20])
@pytest.mark.parametrize(
    "text", ["plain ascii\n" * 3 + TEXT + " more ascii\n", " \t\n\x1c\x1f ", " \n\x1c x"]
)
def test_ascii_chunks_count_as_decoded_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, text: str
) -> None:
    # ASCII chunks skip the decoder: mixed with cut multi-byte characters they must count
    # the same, and blankness must follow str.isspace() (which counts \x1c-\x1f as space).
    monkeypatch.setattr(context_file, "CHUNK_BYTES", chunk)
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode())
    checked = ContextFile.check(path)
    assert (checked.chars, checked.lines) == (len(text), text.count("\n") + 1)
    assert checked.blank == (not text.strip())


@pytest.mark.parametrize("chunk", [2, 4, 1 << 20])
def test_names_the_offset_of_a_bad_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(context_file, "CHUNK_BYTES", chunk)
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(NotUtf8Error, match=r"byte 0xe9 at offset 3\)"):
        ContextFile.check(path)


def test_empty_missing_and_truncated_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert describe_context(ContextFile.check(empty)) == describe_context("")
    with pytest.raises(ContextFileError, match="cannot read"):
        ContextFile.check(tmp_path / "missing.txt")
    cut = tmp_path / "cut.txt"
    cut.write_bytes("\u20ac".encode()[:2])
    with pytest.raises(NotUtf8Error, match="truncated"):
        ContextFile.check(cut)


def test_unchecked_refuses_what_is_not_a_readable_file(tmp_path: Path) -> None:
    document = tmp_path / "doc.txt"
    document.write_text("text")
    unchecked = ContextFile.unchecked(document)
    assert (unchecked.path, unchecked.checked, unchecked.chars) == (document.resolve(), False, None)
    assert ContextFile.check(document).checked
    with pytest.raises(ContextFileError, match="not a regular file"):
        ContextFile.unchecked(tmp_path)
    with pytest.raises(ContextFileError, match="cannot read"):
        ContextFile.unchecked(tmp_path / "missing.txt")
