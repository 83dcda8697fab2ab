"""Reading --context-file arguments into the CONTEXT of a run.

One file (or `-`, standard input) gives a string. Several arguments, or a directory,
give a list of strings: one per file, in argument order, a directory's files sorted by
path. Every problem is a UsageProblem naming the file and the fix.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from rlm.cli.errors import UsageProblem

STDIN = "-"
# Text files hold no NUL bytes; binary formats (images, archives, PDFs) nearly always
# do within their first few kilobytes.
BINARY_SNIFF_BYTES = 8192


def check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UsageProblem(f"unknown encoding {encoding!r} for --encoding") from None


def load_context(
    sources: Sequence[str],
    *,
    encoding: str,
    stdin: BinaryIO,
    note: Callable[[str], None],
) -> str | list[str]:
    """The context the arguments name; `note` receives remarks (skipped files)."""
    if list(sources).count(STDIN) > 1:
        raise UsageProblem("standard input (-) can be read only once")
    texts: list[str] = []
    for source in sources:
        if source == STDIN:
            texts.append(_decode(stdin.read(), "standard input", encoding))
        elif Path(source).is_dir():
            texts.extend(_read_directory(Path(source), encoding, note))
        else:
            texts.append(read_text(Path(source), encoding, what="context file"))
    if len(sources) == 1 and not Path(sources[0]).is_dir():
        return texts[0]
    return texts


def read_text(path: Path, encoding: str, *, what: str) -> str:
    return _decode(_read_bytes(path, what), str(path), encoding)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageProblem(f"{what} {path} does not exist") from None
    except PermissionError:
        raise UsageProblem(f"{what} {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise UsageProblem(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _decode(data: bytes, name: str, encoding: str) -> str:
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise UsageProblem(f"{name} looks binary (it holds NUL bytes): give a text file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise UsageProblem(
            f"{name} is not {encoding} text (byte 0x{byte:02x} at offset {exc.start}): "
            "name its encoding with --encoding, e.g. --encoding latin-1"
        ) from None


def _read_directory(directory: Path, encoding: str, note: Callable[[str], None]) -> list[str]:
    """The directory's text files, recursively, hidden ones left out; binary files are
    skipped with a note (a folder of documents often holds an image or two)."""
    texts: list[str] = []
    skipped: list[str] = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        data = _read_bytes(path, "context file")
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            skipped.append(str(relative))
            continue
        texts.append(_decode(data, str(path), encoding))
    if skipped:
        note(f"skipped {len(skipped)} binary file(s) in {directory}: {', '.join(skipped[:5])}")
    if not texts:
        raise UsageProblem(f"directory {directory} holds no text files")
    return texts
