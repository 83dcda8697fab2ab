"""The context a kernel gets: a sealed memfd, offered on the callback channel at every start."""

from __future__ import annotations

import asyncio
import fcntl
import json
import mmap
import os
import threading

import pytest

from rlm.errors import SandboxError
from rlm.sandbox import sandbox as sandbox_module
from rlm.sandbox.callback import CallbackServer
from rlm.sandbox.context_write import SEALS, sealed_copy
from rlm.sandbox.pool import SandboxPool
from rlm.sandbox.rundir import base_dir
from rlm.sandbox.sandbox import Sandbox
from tests.conftest import RecordingHandler

ASCII = "plain text\n" * 1000
UNICODE = "caf\u00e9 \U0001f600 \ud800 end"  # a lone surrogate is written as it is


@pytest.mark.parametrize("text", [ASCII, UNICODE, ""])
def test_a_sealed_copy_holds_the_text_and_can_only_be_read(text: str) -> None:
    fd = sealed_copy(text)
    # What a kernel holding it might try: reopen it for writing, then write, grow, shrink,
    # map it writable or unseal it.
    writable = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    try:
        assert os.pread(fd, len(text) * 4 + 1, 0) == text.encode("utf-8", "surrogatepass")
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        with pytest.raises(PermissionError):
            os.pwrite(writable, b"x", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(writable, len(text) + 4096)
        if text:
            with pytest.raises(PermissionError):
                os.ftruncate(writable, 0)
            with pytest.raises(PermissionError):
                mmap.mmap(writable, 0, access=mmap.ACCESS_WRITE)
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:  # as the kernel maps it
                assert mapped[:4] == text.encode("utf-8", "surrogatepass")[:4]
        with pytest.raises(PermissionError):
            fcntl.fcntl(writable, fcntl.F_ADD_SEALS, 0)
    finally:
        os.close(writable)
        os.close(fd)


def test_a_str_subclass_is_written_as_its_text() -> None:
    class Text(str):
        pass

    fd = sealed_copy(Text(ASCII))
    try:
        assert os.pread(fd, 2 * len(ASCII), 0) == ASCII.encode()
    finally:
        os.close(fd)


@pytest.mark.container
@pytest.mark.rootless
async def test_a_kernel_that_asks_before_its_context_is_written_gets_all_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "0123456789abcdef" * 1_000_000 + "end"
    asked = threading.Event()
    take_offer = CallbackServer._take_offer

    async def noting(server: CallbackServer, token: object) -> tuple[str, int | None]:
        asked.set()
        return await take_offer(server, token)

    def late_copy(data: str | bytes) -> int:
        assert asked.wait(60), "the kernel never asked for its context"
        return sealed_copy(data)  # written only once the kernel waits for it

    monkeypatch.setattr(CallbackServer, "_take_offer", noting)
    monkeypatch.setattr(sandbox_module, "sealed_copy", late_copy)
    async with Sandbox(text) as box:
        result = await box.execute("print(len(CONTEXT), CONTEXT[-3:])")
    assert result.stdout.split() == [str(len(text)), "end"]


@pytest.mark.container
@pytest.mark.rootless
async def test_a_context_that_cannot_be_written_fails_the_start_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(data: str | bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sandbox_module, "sealed_copy", full)
    # Other tests' run directories in this process may still be there (a provisioner's
    # are removed when the process ends): only this start's must be gone.
    before = set(base_dir().glob(f"r{os.getpid()}-*"))
    box = Sandbox("some text")
    with pytest.raises(SandboxError, match=r"could not write the context.*No space left"):
        await box.start()
    assert box.run_dir is None and box.container_id is None
    assert set(base_dir().glob(f"r{os.getpid()}-*")) <= before


async def kernel_dies(box: Sandbox) -> None:
    result = await box.execute("import os; os._exit(1)")
    assert result.restarted, result.error


@pytest.mark.parametrize("context", ["started with this", {"a": ["json", "caf\u00e9"]}])
async def test_a_restarted_kernel_gets_its_context_again(runtime: str, context: object) -> None:
    async with Sandbox(context, runtime=runtime) as box:  # type: ignore[arg-type]
        await kernel_dies(box)
        result = await box.execute("print(json.dumps(CONTEXT))")
    assert result.stdout == json_line(context)


async def test_a_restarted_pooled_kernel_gets_the_context_it_loaded(runtime: str) -> None:
    """Not the pool's empty start context: the run's, loaded after the start."""
    async with SandboxPool(1, runtime=runtime) as pool:
        while pool.ready < 1:
            await asyncio.sleep(0.05)
        box = await pool.acquire(["the run's", "context"], RecordingHandler())
        try:
            await kernel_dies(box)
            result = await box.execute("print(json.dumps(CONTEXT))")
        finally:
            await box.close()
    assert result.stdout == json_line(["the run's", "context"])


async def test_a_sandbox_without_a_handler_has_the_channel_but_answers_no_llm_query() -> None:
    async with Sandbox("x", runtime="local") as box:
        await box.load_context("loaded")
        assert (await box.execute("print(CONTEXT)")).stdout == "loaded\n"
        result = await box.execute("llm_query('hi')")
    assert result.error is not None and result.error.name == "LLMQueryError"
    assert "this sandbox has no llm_query handler" in result.error.value


def json_line(value: object) -> str:
    return json.dumps(value) + "\n"
