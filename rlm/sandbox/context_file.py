"""A plain UTF-8 file as CONTEXT, handed to the kernel without a copy.

    rlm.completion(ContextFile.check("corpus.txt"), "How many chapters?")

The sandbox mounts the file read-only and the kernel maps it, so a 1 GiB file costs the
host one reading pass (to check it is UTF-8 and count what the prompt describes) instead
of a decode, a second copy on disk and the memory to hold both. `ContextFile.unchecked`
leaves that pass to the sandbox, which makes it while its kernel starts.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from rlm.errors import ContextFileError, NotUtf8Error

# 1 MiB stays in the CPU cache between the read and the scans over it: a 1 GiB check took
# 0.51 s against 0.60 s with 16 MiB chunks (10 turns), and the GIL is given up more often
# to the event loop starting the kernel meanwhile.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ContextFile:
    """A UTF-8 text file; CONTEXT is its text, a str. Build it with `check`, or with
    `unchecked` to have the sandbox check it while its kernel starts (the counts are None
    until then: `Sandbox.context_file` holds the checked one)."""

    path: Path
    chars: int | None = None
    lines: int | None = None
    blank: bool | None = None  # nothing but whitespace, as `not text.strip()` says of a str

    @property
    def checked(self) -> bool:
        return self.chars is not None

    @classmethod
    def unchecked(cls, path: str | os.PathLike[str]) -> ContextFile:
        """`path` if it is a readable regular file; whether it is UTF-8 is left to the
        sandbox, whose start fails with NotUtf8Error if it is not."""
        path = Path(path).resolve()
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ContextFileError(f"cannot read context file {path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ContextFileError(f"context file {path} is not a regular file")
        if not os.access(path, os.R_OK):
            raise ContextFileError(f"cannot read context file {path}: Permission denied")
        return cls(path)

    @classmethod
    def check(cls, path: str | os.PathLike[str]) -> ContextFile:
        """Read `path` once in chunks: it must be UTF-8; count its characters and lines."""
        path = Path(path).resolve()
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = chars = newlines = 0
        last = b""
        blank = True
        try:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    held = len(decoder.getstate()[0])  # a character cut by the last chunk
                    if not held and chunk.isascii():
                        # Most large contexts are ASCII: a byte is a character, and
                        # checking that is several times cheaper than decoding. (Decoded
                        # while all so far is blank, as str.isspace() counts more as space.)
                        text: bytes | str = chunk.decode("ascii") if blank else chunk
                    else:
                        try:
                            text = decoder.decode(chunk)
                        except UnicodeDecodeError as exc:
                            at, byte = offset - held + exc.start, exc.object[exc.start]
                            raise NotUtf8Error(
                                f"{path} is not utf-8 text (byte 0x{byte:02x} at offset {at})"
                            ) from None
                    chars += len(text)
                    # isspace() stops at the first other character: cheap once it is found.
                    blank = blank and (not text or text.isspace())
                    newlines += chunk.count(b"\n")
                    offset += len(chunk)
                    last = chunk
                decoder.decode(b"", final=True)
        except OSError as exc:
            raise ContextFileError(f"cannot read context file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise NotUtf8Error(f"{path} is not utf-8 text (truncated at the end)") from None
        # Counted like str.count("\n") + 1, the way a str context is described.
        return cls(path, chars, newlines + 1 if last else 0, blank)
