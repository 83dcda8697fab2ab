"""The context a kernel gets from the host: a sealed memfd, written once, read-only to it.

The host writes a serialized context into a memfd while the kernel boots (or while it is
told to load it), seals it against any change, and hands it over on the callback channel
(CallbackServer.offer); the kernel maps it and decodes it once. Nothing lands on disk.

Not a file: on a VM that hands freed memory back to its host (free page reporting, as
here), a file's page cache takes fresh 2 MB blocks that the host faults in again: 10 MB
took 17-22 ms instead of 2-3 ms in a third of writes made seconds apart, 100 MB up to
223 ms (median 50 ms). A memfd's pages come one at a time: 10 MB in 4-5 ms and 100 MB in
39-45 ms, every time.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import sys

if sys.implementation.name == "cpython":
    _as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8AndSize
    _as_utf8.argtypes = [ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t)]
    _as_utf8.restype = ctypes.c_void_p


SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def sealed_copy(data: str | bytes) -> int:
    """A read-only descriptor of a memfd holding `data` in UTF-8, sealed: whoever gets it
    can neither change nor grow it, even by reopening it for writing (the kernel it goes
    to is untrusted, and its pages are charged to the host)."""
    fd = os.memfd_create("rlm-context", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with _utf8_view(data) as view:  # `data` keeps a str alive while its view is used
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        # Read-only, not the memfd's own read-write descriptor: Linux before 6.7 refuses
        # a shared mapping of a write-sealed memfd through a writable descriptor, even a
        # read-only mapping (the kernel maps it so).
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


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
