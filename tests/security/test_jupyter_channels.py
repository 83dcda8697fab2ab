"""The Jupyter channels: huge, junk, mistyped and many-frame messages from the kernel.

Each ends with a clear error for the execute (or a clean cap), the host's event loop free,
and the sandbox usable, restarted if it had to be.
"""

from __future__ import annotations

import asyncio

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.sandbox.test_callbacks import peak_rss_kib, reset_peak_rss_kib
from tests.security.conftest import QUICK, still_works

pytestmark = [pytest.mark.container, pytest.mark.security, pytest.mark.asyncio(loop_scope="module")]

HUGE = 70_000_000  # characters: over the host's 64 MiB message cap
SEND = "k = get_ipython().kernel\nparent = k.get_parent()\n"


async def ticks_during(work: asyncio.Future) -> int:
    """Run `work` while counting 50 ms ticks of the event loop: a blocked loop counts none."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0.05)
        ticks += 1
    return ticks


@pytest.mark.rootless
async def test_huge_stdout_is_capped(box: Sandbox) -> None:
    result = await box.execute(f"print('o' * {HUGE})")
    assert result.error is None
    assert len(result.stdout) <= box.limits.output_chars and result.dropped_chars > 0


@pytest.mark.rootless
async def test_huge_result_is_capped(box: Sandbox) -> None:
    """A bare `CONTEXT` as the last line over a large document."""
    result = await box.execute(f"'r' * {HUGE}")
    assert result.error is None, result.error
    assert sum(map(len, result.results)) <= box.limits.output_chars and result.dropped_chars > 0
    await still_works(box)


@pytest.mark.rootless
async def test_huge_display_is_capped(box: Sandbox) -> None:
    result = await box.execute(f"display('d' * {HUGE})")
    assert result.error is None, result.error
    assert sum(map(len, result.results)) <= box.limits.output_chars and result.dropped_chars > 0
    await still_works(box)


@pytest.mark.rootless
async def test_huge_rich_display_is_dropped(box: Sandbox) -> None:
    result = await box.execute(
        f"display({{'text/plain': 'a picture', 'image/png': 'A' * {HUGE}}}, raw=True)"
    )
    assert result.error is None, result.error
    assert result.results == ["a picture"]
    await still_works(box)


@pytest.mark.rootless
async def test_huge_exception_message_is_capped(box: Sandbox) -> None:
    result = await box.execute(f"raise ValueError('e' * {HUGE})")
    assert result.error is not None and result.error.name == "ValueError"
    assert len(result.error.value) <= box.limits.output_chars
    assert len(result.error.traceback) <= 2 * box.limits.output_chars
    await still_works(box)


@pytest.mark.rootless
async def test_final_over_the_cap_is_refused_clearly(box: Sandbox) -> None:
    """FINAL(CONTEXT) over a huge document: a clear error the model can act on."""
    result = await box.execute(f"FINAL('f' * {HUGE})")
    assert result.final is None
    assert result.error is not None and "FINAL" in result.error.value
    await still_works(box)


@pytest.mark.rootless
async def test_forged_reply_over_the_cap_restarts_without_blocking_the_host() -> None:
    async with Sandbox("x", limits=QUICK) as sandbox:
        work = asyncio.ensure_future(
            sandbox.execute(f"get_ipython().kernel.runtime.final = 'x' * {HUGE}", timeout=10)
        )
        ticks = await ticks_during(work)
        result = work.result()
        assert ticks > 0
        assert result.error is not None and result.restarted and result.final is None
        await still_works(sandbox)
        await still_works(sandbox)


@pytest.mark.rootless
async def test_forged_iopub_message_over_the_cap_restarts_the_kernel() -> None:
    async with Sandbox("x", limits=QUICK) as sandbox:
        result = await sandbox.execute(
            SEND + f"k.session.send(k.iopub_socket, 'stream',"
            f" {{'name': 'stdout', 'text': 'x' * {HUGE}}}, parent=parent)\n"
            "import time; time.sleep(1)",
            timeout=10,
        )
        assert result.error is not None and result.restarted
        await still_works(sandbox)


@pytest.mark.rootless
async def test_junk_frames_on_iopub_are_dropped(box: Sandbox) -> None:
    dropped = box.messages_dropped
    result = await box.execute(
        SEND + "for frames in ([b'junk'], [b'', b'<IDS|MSG>'], [b'x', b'<IDS|MSG>', b'sig',"
        " b'{', b'}', b'{', b'{']):\n    k.iopub_socket.send_multipart(frames)\n"
        "import time; time.sleep(0.2)\nprint('after junk')"
    )
    assert result.error is None, result.error
    assert result.stdout == "after junk\n"
    assert box.messages_dropped - dropped == 3
    await still_works(box)


@pytest.mark.rootless
async def test_mistyped_signed_iopub_messages_are_dropped(box: Sandbox) -> None:
    """The kernel can read its own key: it can sign anything, of any shape."""
    dropped = box.messages_dropped
    result = await box.execute(
        SEND + "import json\n"
        "def signed(msg_type, content, parent_header=parent):\n"
        "    m = k.session.msg(msg_type, {}, parent=parent)\n"
        "    parts = [json.dumps(x, default=str).encode()\n"
        "             for x in (m['header'], parent_header, m['metadata'], content)]\n"
        "    k.iopub_socket.send_multipart([b'x', b'<IDS|MSG>', k.session.sign(parts), *parts])\n"
        "signed('stream', {'name': 'stdout', 'text': 12345})\n"
        "signed('stream', [1, 2])\n"
        "signed('stream', {'name': 'stdout', 'text': 'x'}, parent_header=['not', 'a', 'dict'])\n"
        "signed('execute_result', {'data': {'text/plain': 7}})\n"
        "signed('display_data', {'data': None})\n"
        "signed('error', {'ename': 1, 'evalue': None, 'traceback': 'tb'})\n"
        "import time; time.sleep(0.2)\nprint('typed')"
    )
    assert result.stdout.endswith("typed\n"), result
    assert box.messages_dropped - dropped == 2  # the list content and the list parent
    await still_works(box)


MiB_IN_KIB = 1024


@pytest.mark.rootless
@pytest.mark.parametrize(
    ("channel", "frames", "limit_kib"),
    [
        # 2 M empty frames: libzmq alone held about 123 MiB of them.
        ("iopub", "[b''] * 2_000_000", 48 * MiB_IN_KIB),
        # Sixteen frames under the per-frame cap, 960 MiB in all: the host holds the first.
        ("iopub", "[b'x' * 60 * 2**20] * 16", 192 * MiB_IN_KIB),
        # stdin: never read by the host, so its bound matters as much.
        ("stdin", "[b''] * 2_000_000", 48 * MiB_IN_KIB),
    ],
)
async def test_a_message_over_the_frame_or_byte_bound_is_dropped_unbuffered(
    channel: str, frames: str, limit_kib: int
) -> None:
    """One message the host would have had to hold whole: the relay drops its connection,
    the execute ends in a restart, and the host's peak memory barely moves."""
    send = (
        f"k.iopub_socket.send_multipart({frames}, copy=False)"
        if channel == "iopub"  # the ROUTER needs the host's identity, the shell's too
        else f"k.stdin_socket.send_multipart(k._parent_ident['shell'] + {frames}, copy=False)"
    )
    async with Sandbox("x", limits=QUICK) as sandbox:
        # From a fresh baseline: this process's peak so far would hide any growth.
        peak_before = reset_peak_rss_kib()
        result = await sandbox.execute(SEND + send + "\nimport time; time.sleep(30)", timeout=60)
        grown = peak_rss_kib() - peak_before
        assert grown < limit_kib, f"the host's peak grew {grown / 1024:.0f} MiB"
        assert result.restarted and not result.timed_out, result
        assert result.error is not None and "1,024 frames" in result.error.value
        await still_works(sandbox)


@pytest.mark.rootless
async def test_messages_near_the_bounds_still_arrive(box: Sandbox) -> None:
    """A frame of 60 MiB, and a message of 900 buffers: both within the relay's bounds."""
    result = await box.execute(
        SEND + "def out(text, **kwargs):\n"
        "    k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': text},"
        " parent=parent, **kwargs)\n"
        "out('b', buffers=[b''] * 900)\nout('a' * 60 * 2**20)\n"
        "import time; time.sleep(0.5)"
    )
    assert result.error is None and not result.restarted, result.error
    # Both arrived: the second capped (which only the host does to what arrives).
    assert result.stdout.startswith("ba") and result.dropped_chars > 0, result.stdout[:10]
    await still_works(box)
