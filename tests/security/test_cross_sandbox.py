"""Cross-sandbox: two kernels of one host share nothing they could talk or spy through."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import ROOTFUL, output

pytestmark = [pytest.mark.container, pytest.mark.security, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def other() -> AsyncIterator[Sandbox]:
    async with Sandbox("the other sandbox's secret") as sandbox:
        yield sandbox


@pytest.mark.rootless
async def test_processes_of_the_other_are_invisible(box: Sandbox, other: Sandbox) -> None:
    listing = await output(
        box,
        "import os\nseen = []\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n        seen.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
        "    except OSError:\n        pass\nprint(len(seen), any(b'secret' in c for c in seen))",
    )
    count, leaked = listing.split()
    assert int(count) < 10 and leaked == "False"


@pytest.mark.rootless
async def test_shared_memory_and_tmp_are_private(box: Sandbox, other: Sandbox) -> None:
    await output(other, "for p in ('/dev/shm/drop', '/tmp/drop'):\n    open(p, 'w').write('hi')")
    seen = await output(
        box, "import os; print(os.path.exists('/dev/shm/drop'), os.path.exists('/tmp/drop'))"
    )
    assert seen == "False False"


@pytest.mark.rootless
async def test_the_other_run_directory_is_unreachable(box: Sandbox, other: Sandbox) -> None:
    assert other.run_dir is not None
    paths = [str(other.run_dir), str(other.run_dir / "k" / "callback")]
    assert await output(box, f"import os; print([os.path.exists(p) for p in {paths!r}])") == (
        "[False, False]"
    )


async def test_each_kernel_has_its_own_host_uid(box: Sandbox, other: Sandbox) -> None:
    """Rootful: per-uid limits and keyrings are not shared between sandboxes."""
    if not ROOTFUL:
        pytest.skip("rootless: both kernels run as your own uid (keep-id)")
    code = (
        "import os\nm = open('/proc/self/uid_map').read().split()\nprint(int(m[1]) + os.getuid())"
    )
    assert await output(box, code) != await output(other, code)
