"""rlm's kernel started by Jupyter tools from an installed kernelspec."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from rlm.notebook import kernelspec
from rlm.notebook.cli import kernel as kernel_cli
from rlm.sandbox.engine import get_engine
from rlm.sandbox.rundir import OWNER_LABEL, owner_id
from tests.cli.conftest import invoke
from tests.processes import until

pytestmark = pytest.mark.container

HANDLER = "tests.notebook.handlers:echo_handler"


def our_containers() -> list[str]:
    """This process's containers (other processes on the machine start their own)."""
    containers = get_engine().client.containers.list(
        all=True, sparse=True, filters={"label": f"{OWNER_LABEL}={owner_id()}"}
    )
    return [c.id for c in containers]


def container_exists(container_id: str) -> bool:
    # A listing, not a get: Podman answers a get during removal with a 500.
    found = get_engine().client.containers.list(all=True, sparse=True, filters={"id": container_id})
    return bool(found)


@pytest.fixture
def jupyter_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernelspecs go to a private prefix that Jupyter searches."""
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    return tmp_path


@pytest.fixture
def installed(jupyter_prefix: Path) -> Iterator[str]:
    context = jupyter_prefix / "doc.txt"
    context.write_text("The launch code is 4417.")
    context.chmod(0o644)
    jupyter_prefix.chmod(0o755)
    kernelspec.install(
        "rlm-test", prefix=str(jupyter_prefix), context_file=str(context), handler=HANDLER
    )
    yield "rlm-test"


def run(client, code: str, timeout: float = 60) -> dict:  # type: ignore[no-untyped-def]
    outputs: list[str] = []
    reply = client.execute_interactive(
        code,
        timeout=timeout,
        output_hook=lambda msg: (
            outputs.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None
        ),
    )
    return {
        "status": reply["content"]["status"],
        "stdout": "".join(outputs),
        "content": reply["content"],
    }


def test_cli_installs_lists_and_removes(jupyter_prefix: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        kernel_cli,
        [
            "install",
            "--name",
            "nb",
            "--prefix",
            str(jupyter_prefix),
            "--backend",
            "ollama",
            "--model",
            "qwen3-coder:32b",
        ],
    )
    assert result.exit_code == 0, result.output
    spec = json.loads((jupyter_prefix / "share/jupyter/kernels/nb/kernel.json").read_text())
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "rlm-container"
    assert provisioner["config"]["handler_config"] == {
        "backend": "ollama",
        "model": "qwen3-coder:32b",
    }
    assert "nb" in KernelSpecManager().find_kernel_specs()
    listed = runner.invoke(kernel_cli, ["list"])
    assert "nb" in listed.output
    bad = runner.invoke(
        kernel_cli, ["install", "--backend", "nope", "--prefix", str(jupyter_prefix)]
    )
    assert bad.exit_code == 2 and "unknown backend" in bad.output
    assert runner.invoke(kernel_cli, ["remove", "nb"]).exit_code == 0


def test_setup_errors_exit_2_with_one_line(jupyter_prefix: Path) -> None:
    missing = invoke(["kernel", "remove", "no-such-kernel"])
    assert missing.exit_code == 2
    assert "no rlm kernelspec named 'no-such-kernel'" in missing.stderr
    args = ["kernel", "install", "--prefix", str(jupyter_prefix), "--context-file", "/nope"]
    no_context = invoke(args)
    assert no_context.exit_code == 2
    assert no_context.stderr.strip().endswith("context file /nope does not exist")


def test_kernel_manager_round_trip_interrupt_restart_shutdown(installed: str) -> None:
    manager = KernelManager(kernel_name=installed)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        container_id = manager.provisioner.container.id  # type: ignore[union-attr]
        assert container_id in our_containers()
        first = run(client, "print(CONTEXT)\nprint(llm_query('hello'))")
        assert first["stdout"] == "The launch code is 4417.\necho: hello\n"
        if os.getuid() == 0:  # sealed under a rootful engine, for Jupyter's clients too
            sealed = run(client, "open('/run/rlm/filler', 'w')")
            assert sealed["content"]["ename"] == "PermissionError"

        # Interrupt a running cell from the client.
        msg_id = client.execute("import time\nwhile True: time.sleep(0.01)")
        time.sleep(1.0)
        manager.interrupt_kernel()
        while True:
            reply = client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"

        # A restart leaves a working kernel, with fresh state and callbacks still served.
        run(client, "x = 1")
        manager.restart_kernel(now=True)
        client.wait_for_ready(timeout=60)
        after = run(client, "print('x' in globals(), llm_query('again'))")
        assert after["stdout"] == "False echo: again\n"
        assert container_id not in our_containers()
        container_id = manager.provisioner.container.id  # type: ignore[union-attr]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert container_id not in our_containers()


def test_nbclient_runs_a_notebook(installed: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("len(CONTEXT)"),
        nbformat.v4.new_code_cell("print(llm_query_batched(['a', 'b']))"),
        nbformat.v4.new_code_cell("set_context(['x', 'y'])\nprint(CONTEXT[1])"),
    ]
    before = set(our_containers())
    NotebookClient(notebook, kernel_name=installed, timeout=60).execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert outputs[0][0]["data"]["text/plain"] == "24"
    assert outputs[1][0]["text"] == "['echo: a', 'echo: b']\n"
    assert outputs[2][0]["text"] == "y\n"
    assert set(our_containers()) <= before


def test_a_backend_without_its_key_starts_and_fails_at_llm_query(
    jupyter_prefix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    args = ["install", "--name", "keyless", "--prefix", str(jupyter_prefix)]
    result = CliRunner().invoke(kernel_cli, [*args, "--backend", "anthropic"])
    assert result.exit_code == 0, result.output
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("print(6 * 7)"),
        nbformat.v4.new_code_cell("llm_query('hi')"),
    ]
    NotebookClient(notebook, kernel_name="keyless", timeout=60, allow_errors=True).execute()
    assert notebook.cells[0].outputs[0]["text"] == "42\n"
    error = notebook.cells[1].outputs[0]
    assert error["ename"] == "LLMQueryError"
    assert "set ANTHROPIC_API_KEY in the environment of the Jupyter server" in error["evalue"]


CONSOLE_SCRIPT = """
import sys
from jupyter_client import KernelManager

manager = KernelManager(kernel_name=sys.argv[1])
manager.start_kernel()
client = manager.client()
client.start_channels()
client.wait_for_ready(timeout=60)
print(manager.provisioner.container.id, manager.provisioner.run_dir, flush=True)
client.shutdown()  # what jupyter console's `exit` sends; shutdown_kernel is never called
sys.stdin.read()
client.stop_channels()
"""


def test_a_kernel_shut_down_by_message_leaves_nothing(installed: str) -> None:
    """As jupyter console's `exit`: the container goes when the kernel ends, and the run
    directory when the client's process ends."""
    # A run base of its own, where no other process's sweep removes what it leaves.
    run_base = Path(tempfile.mkdtemp(prefix="rlm-"))
    console = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, installed],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RLM_RUN_BASE": str(run_base)},
    )
    assert console.stdin is not None and console.stdout is not None
    try:
        container_id, run_dir = console.stdout.readline().split()
        assert until(lambda: not container_exists(container_id))
        assert console.poll() is None  # while the client still runs
    finally:
        console.stdin.close()
        console.wait(60)
    assert until(lambda: not Path(run_dir).exists())
    shutil.rmtree(run_base, ignore_errors=True)


def test_rebinding_context_in_a_notebook_is_reverted_and_said_once(
    jupyter_prefix: Path,
) -> None:
    kernelspec.install("reserved", prefix=str(jupyter_prefix), handler=HANDLER)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("CONTEXT = 5"),
        nbformat.v4.new_code_cell("print(repr(CONTEXT))\nCONTEXT = 6"),
        nbformat.v4.new_code_cell("set_context('new')\nprint(CONTEXT)"),
    ]
    NotebookClient(notebook, kernel_name="reserved", timeout=60).execute()
    said, again, replaced = (cell.outputs for cell in notebook.cells)
    assert [output["name"] for output in said] == ["stderr"]
    assert said[0]["text"].startswith("rlm: reserved name(s) restored: CONTEXT.")
    assert "set_context(value)" in said[0]["text"]
    assert again == [nbformat.v4.new_output("stream", name="stdout", text="''\n")]
    assert replaced[0]["text"] == "new\n"
