"""Writing a context file that the kernel may open before the write is done.

The host creates the file at its final size and holds an exclusive flock(2) on it until
every byte is in; the kernel takes a shared lock before it maps the file
(rlm_kernel.runtime.load_context), so it waits only if it gets there first. The write can
then run alongside what does not need it: the container's creation and the kernel's boot
(a 100 MB str: 25-120 ms of writing here), or the execute that tells a pooled kernel to load it.

    pending = PendingWrite.create(path, text)   # the file exists, sized and locked
    ...                                         # start the kernel, send the execute
    pending.finish()                            # on a worker thread: write, unlock
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
    def create(cls, path: Path, text: str, *, sized: bool = True) -> PendingWrite:
        """Create `path` (never following or reusing what is there), locked. `sized`: at
        its final size already, which the container's memory limit follows (a non-ASCII
        str is then encoded here; an ASCII one, as all JSON rlm writes is, needs no
        encoding to know it)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            # Never waits: a kernel can open a file in its own directory as soon as it
            # exists, and a lock it took first would otherwise hang the host.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data: str | bytes = text
            if sized:
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
        data, self._data = self._data, b""  # `data` keeps a str alive while its view is used
        try:
            with _utf8_view(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(self._fd, view[written:])
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            raise
        finally:
            os.close(self._fd)  # releases the lock


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
