"""Writing a context the kernel reads: a file it may open before the write is done (at
start), or a sealed memfd it gets over the callback channel (a pooled kernel's load).

The host creates the file at its final size and holds an exclusive flock(2) on it until
every byte is in; the kernel takes a shared lock before it maps the file
(rlm_kernel.runtime.load_context), so it waits only if it gets there first. The write can
then run alongside what does not need it: the container's creation and the kernel's boot
(a 100 MB str: 25-120 ms of writing here), or the execute that tells a pooled kernel to load it.

    pending = PendingWrite.create(path, text)   # the file exists, sized and locked
    ...                                         # start the kernel, send the execute
    pending.finish()                            # on a worker thread: write, unlock

A load goes through a memfd rather than a file: on a VM that hands freed memory back to its
host (free page reporting, as here), a file's page cache takes fresh 2 MB blocks, each
faulted in again by the host: a 10 MB write took 17-22 ms instead of 2-3 ms in a third of
writes made seconds apart. A memfd's pages come one at a time: 4-5 ms, every time.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.implementation.name == "cpython":
    _as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8AndSize
    _as_utf8.argtypes = [ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t)]
    _as_utf8.restype = ctypes.c_void_p


@dataclass
class PendingWrite:
    path: Path
    _fd: int
    _data: str | bytes

    @classmethod
    def create(cls, path: Path, text: str) -> PendingWrite:
        """Create `path` (never following or reusing what is there), locked, at its final
        size already, which the container's memory limit follows (a non-ASCII str is then
        encoded here; an ASCII one, as all JSON rlm writes is, needs no encoding to know
        it)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            # Never waits: a kernel can open a file in its own directory as soon as it
            # exists, and a lock it took first would otherwise hang the host.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data: str | bytes = text
            if not text.isascii():
                data = text.encode("utf-8", "surrogatepass")
            os.ftruncate(fd, len(data))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return cls(path, fd, data)

    def finish(self) -> None:
        """Write the text and release the lock; a failed write leaves the file empty, so a
        kernel that was waiting reads nothing rather than a part (its host reports it)."""
        data, self._data = self._data, b""
        try:
            _write_all(self._fd, data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            raise
        finally:
            os.close(self._fd)  # releases the lock


SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def sealed_copy(data: str | bytes) -> int:
    """A memfd holding `data` in UTF-8, sealed: whoever gets it can neither change nor
    grow it (the kernel it goes to is untrusted, and its pages are charged to the host)."""
    fd = os.memfd_create("rlm-context", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        _write_all(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: str | bytes) -> None:
    # `data` keeps a str alive while its view is used.
    with _utf8_view(data) as view:
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])


def _utf8_view(data: str | bytes) -> memoryview:
    """The UTF-8 bytes of `data`, without a copy where CPython has them already.

    A str of ASCII characters is stored as its UTF-8 bytes, and PyUnicode_AsUTF8AndSize
    (CPython's C API) hands out that buffer, valid while the str lives. Writing from it
    costs a 100 MB str ~25 ms here, against ~95 ms to encode a copy first, most of it
    the copy's fresh memory; and the write releases the GIL all along, the encode not.
    (Only for exact str: a subclass's buffer would be a cached copy, kept with it.)
    """
    if isinstance(data, bytes):
        return memoryview(data)
    if type(data) is str and data.isascii() and sys.implementation.name == "cpython":
        size = ctypes.c_ssize_t()
        address = _as_utf8(data, ctypes.byref(size))
        return memoryview((ctypes.c_char * size.value).from_address(address)).cast("B")
    return memoryview(data.encode("utf-8", "surrogatepass"))
