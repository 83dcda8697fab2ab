"""Filesystem: a read-only root, small bounded scratch space, nothing of the host's."""

from __future__ import annotations

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import ROOTFUL, output, still_works

pytestmark = [pytest.mark.container, pytest.mark.security, pytest.mark.asyncio(loop_scope="module")]

FILL = """
import errno
try:
    with open({path!r}, 'wb') as f:
        for _ in range({mib}):
            f.write(b'x' * 1024**2)
            f.flush()
    print('filled')
except OSError as exc:
    print(errno.errorcode[exc.errno])
finally:
    import os
    if os.path.exists({path!r}):
        os.remove({path!r})
"""


@pytest.mark.rootless
async def test_root_is_read_only(box: Sandbox) -> None:
    result = await output(
        box,
        "import errno\ntry:\n    open('/opt/evil', 'w')\nexcept OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])",
    )
    assert result == "EROFS"


@pytest.mark.rootless
async def test_tmp_fills_up_with_enospc(box: Sandbox) -> None:
    assert await output(box, FILL.format(path="/tmp/filler", mib=400)) == "ENOSPC"
    await still_works(box)


@pytest.mark.rootless
async def test_var_tmp_is_bounded(box: Sandbox) -> None:
    """Podman's own /var/tmp has no size: filling it ended in an OOM kill."""
    result = await output(box, FILL.format(path="/var/tmp/filler", mib=400))
    assert result in {"ENOSPC", "EROFS", "ENOENT", "EACCES"}
    await still_works(box)


@pytest.mark.rootless
async def test_context_and_configuration_are_read_only(box: Sandbox) -> None:
    result = await output(
        box,
        "import errno, glob\nout = []\n"
        "for path in glob.glob('/run/rlm-context/*') + glob.glob('/run/rlm-config/*'):\n"
        "    try:\n        open(path, 'a')\n        out.append('writable ' + path)\n"
        "    except OSError as exc:\n        out.append(errno.errorcode[exc.errno])\n"
        "print(sorted(set(out)))",
    )
    # Not the kernel's files (EACCES) on a read-only mount (EROFS): either refuses.
    assert result in ("['EROFS']", "['EACCES']", "['EACCES', 'EROFS']"), result


@pytest.mark.rootless
async def test_no_setuid_or_setgid_programs(box: Sandbox) -> None:
    found = await output(
        box,
        "import os, stat\nfound = []\n"
        "for root in ('/usr', '/bin', '/sbin', '/opt', '/etc'):\n"
        "    for d, _, files in os.walk(root):\n"
        "        for name in files:\n"
        "            p = os.path.join(d, name)\n"
        "            try:\n                mode = os.lstat(p).st_mode\n"
        "            except OSError:\n                continue\n"
        "            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):\n"
        "                found.append(p)\nprint(found)",
    )
    assert found == "[]"


@pytest.mark.rootless
async def test_host_files_are_not_visible(box: Sandbox) -> None:
    found = await output(
        box,
        "import os\nhost = ('/work', '/root/.ssh', '/var/lib/containers', '/etc/containers')\n"
        "print([p for p in host if os.path.exists(p)])",
    )
    assert found == "[]"


async def test_socket_directory_is_sealed(box: Sandbox) -> None:
    if not ROOTFUL:
        pytest.skip("rootless: the kernel runs as the directory's owner")
    result = await output(
        box,
        "import errno\ntry:\n    open('/run/rlm/filler', 'wb')\nexcept OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])",
    )
    assert result == "EACCES"
