"""What a real jupyter_client sees of rlm's kernel: the messages Jupyter front ends use.

The kernel runs without ipykernel 7's shell-channel thread (so without subshells) and
without debugpy; these tests hold it to the protocol a front end relies on all the same.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from rlm.notebook import kernelspec


@pytest.fixture(
    scope="module", params=[pytest.param("container", marks=pytest.mark.container), "local"]
)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BlockingKernelClient]:
    prefix = tmp_path_factory.mktemp("jupyter")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    kernelspec.install("rlm-messages", prefix=str(prefix), runtime=request.param)
    manager = KernelManager(kernel_name="rlm-messages")
    manager.start_kernel()
    kernel_client = manager.client()
    kernel_client.start_channels()
    try:
        kernel_client.wait_for_ready(timeout=60)
        kernel_client.manager = manager  # type: ignore[attr-defined]
        kernel_client.runtime = request.param  # type: ignore[attr-defined]
        yield kernel_client
    finally:
        kernel_client.stop_channels()
        manager.shutdown_kernel(now=True)
        monkeypatch.undo()


def execute(client: BlockingKernelClient, code: str) -> tuple[dict[str, Any], list[dict]]:
    """The reply and every IOPub message of one execute, in order, up to its idle status."""
    msg_id = client.execute(code)
    messages = []
    while True:
        msg = client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while (reply := client.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
        pass
    return reply["content"], messages


def of_type(messages: list[dict], msg_type: str) -> list[dict]:
    return [msg["content"] for msg in messages if msg["msg_type"] == msg_type]


def test_kernel_info_has_no_subshells_and_no_debugger_in_the_image(
    client: BlockingKernelClient,
) -> None:
    client.kernel_info()
    info = client.get_shell_msg(timeout=30)["content"]
    assert info["status"] == "ok"
    assert info["implementation"] == "rlm"
    assert "kernel subshells" not in info.get("supported_features", [])
    if client.runtime == "container":  # type: ignore[attr-defined]
        assert not info.get("debugger")


def test_a_result_comes_between_busy_and_idle(client: BlockingKernelClient) -> None:
    reply, messages = execute(client, "6 * 7")
    assert reply["status"] == "ok"
    types = [msg["msg_type"] for msg in messages]
    assert types == ["status", "execute_input", "execute_result", "status"]
    assert messages[0]["content"]["execution_state"] == "busy"
    result = of_type(messages, "execute_result")[0]
    assert result["data"]["text/plain"] == "42"
    assert result["execution_count"] == reply["execution_count"]


def test_streams_displays_and_errors(client: BlockingKernelClient) -> None:
    _, printed = execute(client, "print('hi')\ndisplay(3)")
    assert of_type(printed, "stream") == [{"name": "stdout", "text": "hi\n"}]
    assert of_type(printed, "display_data")[0]["data"]["text/plain"] == "3"

    reply, failed = execute(client, "1 / 0")
    assert reply["status"] == "error" and reply["ename"] == "ZeroDivisionError"
    assert of_type(failed, "error")[0]["ename"] == "ZeroDivisionError"


def test_magics_and_top_level_await(client: BlockingKernelClient) -> None:
    _, timed = execute(client, "%time y = 2")
    assert "Wall time" in "".join(m["text"] for m in of_type(timed, "stream"))

    reply, awaited = execute(client, "import asyncio\nawait asyncio.sleep(0, 'awaited')")
    assert reply["status"] == "ok"
    assert of_type(awaited, "execute_result")[0]["data"]["text/plain"] == "'awaited'"


def test_ipython_syntax_is_still_transformed(client: BlockingKernelClient) -> None:
    _, shelled = execute(client, "!echo from-a-shell")
    assert "from-a-shell" in "".join(m["text"] for m in of_type(shelled, "stream"))
    _, assigned = execute(client, "listing = !echo a b\nlisting.n")
    assert of_type(assigned, "execute_result")[0]["data"]["text/plain"] == "'a b'"
    helped, _ = execute(client, "len?")
    assert [payload["source"] for payload in helped["payload"]] == ["page"]
    _, plain = execute(client, "print('%d%%' % 5 if 1 != 2 else '?')")
    assert of_type(plain, "stream") == [{"name": "stdout", "text": "5%\n"}]


def test_the_kernel_runs_without_a_shell_channel_thread(client: BlockingKernelClient) -> None:
    _, messages = execute(client, "import threading\nsorted(t.name for t in threading.enumerate())")
    names = of_type(messages, "execute_result")[0]["data"]["text/plain"]
    assert "IOPub" in names and "Shell channel" not in names


def replies(client: BlockingKernelClient, msg_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The execute_reply of each of `msg_ids`, whatever order they come in."""
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(msg_ids):
        reply = client.get_shell_msg(timeout=30)
        if (parent := reply["parent_header"].get("msg_id")) in msg_ids:
            found[parent] = reply
    return found


def test_requests_queued_behind_a_failure_are_aborted(client: BlockingKernelClient) -> None:
    # Sent together, so the second and third wait in the kernel while the first fails.
    ids = [client.execute("import time\ntime.sleep(0.3)\n1 / 0")]
    ids += [client.execute("aborted_one = 1"), client.execute("aborted_two = 1")]
    got = replies(client, ids)
    assert [got[i]["content"]["status"] for i in ids] == ["error", "aborted", "aborted"]
    # Only what was queued then: the next request runs, and nothing above had.
    reply, messages = execute(client, "'aborted_one' in globals() or 'aborted_two' in globals()")
    assert reply["status"] == "ok"
    assert of_type(messages, "execute_result")[0]["data"]["text/plain"] == "False"
    # The same behind a cell with top-level `await`, which ipykernel's own dispatch runs.
    ids = [client.execute("import asyncio\nawait asyncio.sleep(0.3)\n1 / 0")]
    ids += [client.execute("aborted_three = 1"), client.execute("1 + 1")]
    got = replies(client, ids)
    assert [got[i]["content"]["status"] for i in ids] == ["error", "aborted", "aborted"]
    assert execute(client, "'aborted_three' in globals()")[0]["status"] == "ok"
    # Without stop_on_error, the queue goes on.
    ids = [client.execute("1 / 0", stop_on_error=False), client.execute("ran = 1")]
    got = replies(client, ids)
    assert [got[i]["content"]["status"] for i in ids] == ["error", "ok"]


def test_requests_stay_in_order_behind_an_awaiting_cell(client: BlockingKernelClient) -> None:
    ids = [client.execute("import asyncio\nawait asyncio.sleep(0.3)\nfirst = 1")]
    ids += [client.execute("second = first + 1"), client.execute("second")]
    got = replies(client, ids)
    assert [got[i]["content"]["status"] for i in ids] == ["ok", "ok", "ok"]
    counts = [got[i]["content"]["execution_count"] for i in ids]
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_input_reaches_the_front_end(client: BlockingKernelClient) -> None:
    msg_id = client.execute("name = input('name? ')", allow_stdin=True)
    request = client.get_stdin_msg(timeout=30)
    assert request["msg_type"] == "input_request"
    assert request["parent_header"]["msg_id"] == msg_id
    assert request["content"]["prompt"] == "name? "
    client.input("ada")
    assert replies(client, [msg_id])[msg_id]["content"]["status"] == "ok"
    _, messages = execute(client, "name")
    assert of_type(messages, "execute_result")[0]["data"]["text/plain"] == "'ada'"


def test_output_of_a_thread_started_by_a_cell(client: BlockingKernelClient) -> None:
    code = (
        "import threading\n"
        "worker = threading.Thread(target=print, args=('from a thread',))\n"
        "worker.start(); worker.join()"
    )
    reply, messages = execute(client, code)
    assert reply["status"] == "ok"
    assert "from a thread" in "".join(m["text"] for m in of_type(messages, "stream"))


def test_a_forked_child_can_print(client: BlockingKernelClient) -> None:
    # The child inherits the kernel's output machinery (and its locks) from a process
    # whose other threads are gone: it must neither hang nor break the kernel.
    code = (
        "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print('from the child', flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)[1]"
    )
    reply, messages = execute(client, code)
    assert reply["status"] == "ok"
    assert of_type(messages, "execute_result")[0]["data"]["text/plain"] == "0"
    assert execute(client, "print('after')")[0]["status"] == "ok"


def test_headers_of_the_kernels_messages(client: BlockingKernelClient) -> None:
    msg_id = client.execute("x = 1")
    reply = replies(client, [msg_id])[msg_id]
    statuses = []
    while len(statuses) < 2:
        msg = client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status":
            statuses.append(msg)
    # (jupyter_client checked every signature: an unsigned or ill-signed one never arrives.)
    for msg in (reply, *statuses):
        assert msg["header"]["session"] == reply["header"]["session"]
        assert msg["header"]["version"] and msg["header"]["username"]
        assert msg["header"]["date"].tzinfo is not None  # parsed back by jupyter_client
    ids = {msg["header"]["msg_id"] for msg in (reply, *statuses)}
    assert len(ids) == 3
    assert reply["metadata"]["status"] == "ok" and "started" in reply["metadata"]


def test_a_request_that_arrives_while_the_kernel_answers_is_read(
    client: BlockingKernelClient,
) -> None:
    """A second request landing while the kernel sends its reply to the first must still be
    read. The image before the lean request loop sent replies around tornado's ZMQStream,
    whose edge-triggered wake-up that send could consume: pairs sent 1-2 ms apart left it
    deaf for good, about once in 150 pairs here."""
    pace = random.Random(14)
    for pair in range(400):
        first = client.kernel_info()
        time.sleep(pace.uniform(0, 0.003))
        second = client.execute("z = 1", silent=True) if pair % 2 else client.kernel_info()
        answered = {client.get_shell_msg(timeout=10)["parent_header"]["msg_id"] for _ in "12"}
        assert answered == {first, second}, f"pair {pair}"
