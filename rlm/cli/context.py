"""Reading --context-file arguments into the CONTEXT of a run.

One file (or `-`, standard input) gives a string, and several files a list of strings in
argument order. A directory gives a dict `{path: text}` sorted by path, so the model can
say which file an answer came from: paths relative to the directory when it is the only
argument, else as given (standard input is `<stdin>`). Inside a directory, files that are
not text in the chosen encoding (binary ones included) are skipped with a note naming
them; a file named on its own must be text. Every problem is a UsageProblem naming the
file and the fix.

A single regular UTF-8 file is not read into memory: it becomes a ContextFile, which the
sandbox mounts read-only where it lies (a 1 GiB file is checked in one pass, never copied).
A large one is checked by the sandbox while its kernel starts, so a file that is not UTF-8
after its first megabyte is refused when the run starts (run.py makes that a UsageProblem).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rlm.cli.errors import UsageProblem
from rlm.errors import ContextFileError, NotUtf8Error

if TYPE_CHECKING:
    from rlm.sandbox.context_file import ContextFile

STDIN = "-"
STDIN_KEY = "<stdin>"
# Text files hold no NUL bytes; binary formats (images, archives, PDFs) nearly always
# do within their first few kilobytes.
BINARY_SNIFF_BYTES = 8192
# A file this small is checked at once (in about a millisecond); a larger one whose head
# shows it is not blank is left to the sandbox to check while its kernel starts.
EAGER_CHECK_BYTES = 1024 * 1024
SKIPPED_NAMES_SHOWN = 10
ENCODING_HINT = "name its encoding with --encoding, e.g. --encoding latin-1"


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
) -> str | list[str] | dict[str, str] | ContextFile:
    """The context the arguments name; `note` receives remarks (skipped files)."""
    if list(sources).count(STDIN) > 1:
        raise UsageProblem("standard input (-) can be read only once")
    # Not a directory, a pipe or a device: a plain file can be mounted as it is.
    if len(sources) == 1 and _is_utf8(encoding) and Path(sources[0]).is_file():
        return _context_file(Path(sources[0]))
    if not any(source != STDIN and Path(source).is_dir() for source in sources):
        texts = [_read_one(source, encoding, stdin) for source in sources]
        return texts[0] if len(texts) == 1 else texts
    files: dict[str, str] = {}
    for source in sources:
        if source != STDIN and Path(source).is_dir():
            prefix = "" if len(sources) == 1 else source.rstrip("/") + "/"
            found = _read_directory(Path(source), encoding, note)
            entries = ((prefix + name, text) for name, text in found.items())
        else:
            key = STDIN_KEY if source == STDIN else source
            entries = iter([(key, _read_one(source, encoding, stdin))])
        for key, text in entries:
            if key in files:
                raise UsageProblem(f"{key} is named twice by --context-file")
            files[key] = text
    return dict(sorted(files.items()))


def is_empty(context: str | list[str] | dict[str, str] | ContextFile) -> bool:
    """Whether no part of the context holds any text but whitespace."""
    if isinstance(context, str):
        return not context.strip()
    if not isinstance(context, list | dict):
        # A ContextFile: counted as it was checked, or left unchecked as its head had text.
        return bool(context.blank)
    parts = context.values() if isinstance(context, dict) else context
    return all(not part.strip() for part in parts)


def read_text(path: Path, encoding: str, *, what: str) -> str:
    return _decode(_read_bytes(path, what), str(path), encoding)


def _read_one(source: str, encoding: str, stdin: BinaryIO) -> str:
    if source == STDIN:
        return _decode(stdin.read(), "standard input", encoding)
    return read_text(Path(source), encoding, what="context file")


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _context_file(path: Path) -> ContextFile:
    # Imported here: the sandbox's stack loads only when a run needs it.
    from rlm.sandbox.context_file import ContextFile

    head = _read_bytes(path, "context file", BINARY_SNIFF_BYTES)
    _check_not_binary(head, str(path))
    # Characters of the head that are not whitespace say the file is not blank (is_empty
    # needs to know before the run): bytes cut or not UTF-8 are dropped, the check finds them.
    shows_text = not head.decode("utf-8", errors="ignore").isspace()
    try:
        if shows_text and path.stat().st_size > EAGER_CHECK_BYTES:
            return ContextFile.unchecked(path)
        return ContextFile.check(path)
    except ContextFileError as exc:
        raise UsageProblem(context_file_problem(exc)) from None
    except OSError as exc:
        raise UsageProblem(f"cannot read context file {path}: {exc.strerror or exc}") from None


def context_file_problem(exc: ContextFileError) -> str:
    """The one line telling the user why a context file was refused."""
    return f"{exc}: {ENCODING_HINT}" if isinstance(exc, NotUtf8Error) else str(exc)


def _read_bytes(path: Path, what: str, limit: int = -1) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise UsageProblem(f"{what} {path} does not exist") from None
    except PermissionError:
        raise UsageProblem(f"{what} {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise UsageProblem(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _check_not_binary(data: bytes, name: str) -> None:
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise UsageProblem(f"{name} looks binary (it holds NUL bytes): give a text file")


def _decode(data: bytes, name: str, encoding: str) -> str:
    _check_not_binary(data, name)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise UsageProblem(
            f"{name} is not {encoding} text (byte 0x{byte:02x} at offset {exc.start}): "
            + ENCODING_HINT
        ) from None


def _as_text(data: bytes, encoding: str) -> str | None:
    """The text `data` holds, or None if it is binary or not in `encoding`."""
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _files(directory: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of the directory's files, recursively, hidden ones left out."""
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield relative.as_posix(), path


def _read_directory(directory: Path, encoding: str, note: Callable[[str], None]) -> dict[str, str]:
    """The directory's text files by relative path. A folder of documents often holds an
    image or a file in another encoding: those are skipped alike, and named in a note."""
    texts: dict[str, str] = {}
    skipped: list[str] = []
    for name, path in _files(directory):
        text = _as_text(_read_bytes(path, "context file"), encoding)
        if text is None:
            skipped.append(name)
        else:
            texts[name] = text
    if skipped:
        shown = ", ".join(skipped[:SKIPPED_NAMES_SHOWN])
        more = len(skipped) - SKIPPED_NAMES_SHOWN
        note(
            f"skipped {len(skipped)} file(s) in {directory} that are not {encoding} text "
            f"(binary, or another encoding: see --encoding): {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    if not texts:
        raise UsageProblem(f"directory {directory} holds no {encoding} text files")
    return texts
