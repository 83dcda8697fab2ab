"""The container keeps model-written code away from the network, the host and resources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlm.sandbox.engine import get_engine
from rlm.sandbox.limits import MiB, SandboxLimits
from rlm.sandbox.sandbox import Sandbox

pytestmark = [pytest.mark.container, pytest.mark.rootless]


async def test_network_is_unreachable(container_sandbox: Sandbox) -> None:
    result = await container_sandbox.execute(
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))"
    )
    assert result.error is not None
    assert result.error.name in {"OSError", "TimeoutError", "ConnectionRefusedError"}
    interfaces = await container_sandbox.execute(
        "import os; print(sorted(os.listdir('/sys/class/net')))"
    )
    assert interfaces.stdout.strip() == "['lo']"


async def test_root_filesystem_is_read_only(container_sandbox: Sandbox) -> None:
    result = await container_sandbox.execute("open('/opt/evil', 'w').write('x')")
    assert result.error is not None and result.error.name in {"OSError", "PermissionError"}
    tmp = await container_sandbox.execute(
        "open('/tmp/ok', 'w').write('fine'); print(open('/tmp/ok').read())"
    )
    assert tmp.ok and tmp.stdout.strip() == "fine"


async def test_runs_as_non_root_without_capabilities(container_sandbox: Sandbox) -> None:
    result = await container_sandbox.execute(
        "import os\n"
        "print(os.getuid())\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0])"
    )
    uid, cap_eff, no_new_privs = result.stdout.split()
    assert uid != "0"
    assert int(cap_eff, 16) == 0
    assert no_new_privs == "1"


async def test_host_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-host-key")
    async with Sandbox("x") as box:
        result = await box.execute("import os; print(sorted(os.environ))")
    assert "ANTHROPIC_API_KEY" not in result.stdout
    assert result.ok


async def test_fork_loop_hits_the_process_limit() -> None:
    limits = SandboxLimits(pids=32)
    async with Sandbox("x", limits=limits) as box:
        result = await box.execute(
            "import subprocess\n"
            "procs = []\n"
            "try:\n"
            "    for _ in range(200):\n"
            "        procs.append(subprocess.Popen(['sleep', '30']))\n"
            "except (OSError, BlockingIOError) as exc:\n"
            "    print('stopped after', len(procs), type(exc).__name__)\n"
            "for p in procs:\n"
            "    p.kill()",
            timeout=60,
        )
        assert "stopped after" in result.stdout, result
        started = int(result.stdout.split()[2])
        assert started < 32
        # The kernel survives and still answers.
        assert (await box.execute("print('alive')")).stdout.strip() == "alive"


async def test_memory_hog_is_stopped_and_reported() -> None:
    limits = SandboxLimits(memory_bytes=512 * MiB)
    async with Sandbox("x", limits=limits) as box:
        await box.execute("keep = 'still here'")
        result = await box.execute("hog = bytearray(2 * 1024**3)", timeout=60)
        assert result.error is not None
        if result.restarted:
            # A cgroup limit: the kernel was killed, and we say so.
            assert "out of memory" in result.error.value
            assert (await box.execute("print(1 + 1)")).stdout.strip() == "2"
        else:
            # An address-space rlimit (rootless on cgroups v1): Python raises MemoryError.
            assert result.error.name == "MemoryError"
            assert (await box.execute("print(keep)")).stdout.strip() == "still here"


async def test_symlinks_planted_by_the_kernel_are_not_followed(tmp_path: Path) -> None:
    """The kernel owns its socket directory; the host must never write through its links."""
    sentinel = tmp_path / "host-file"
    sentinel.write_text("untouched")
    limits = SandboxLimits(interrupt_grace=1.0)
    async with Sandbox("x", limits=limits) as box:
        planted = await box.execute(
            "import os\n"
            # Its own sockets (which the host unlinks and reconnects to on a restart), the
            # callback socket, and the names of the host's own files next door.
            "names = [n for n in os.listdir('/run/rlm')]\n"
            "names += ['kernel.json', 'kernel.container.json', 'callback.json', 'owner']\n"
            "for name in names:\n"
            "    path = os.path.join('/run/rlm', name)\n"
            "    if os.path.lexists(path):\n"
            "        os.remove(path)\n"
            f"    os.symlink({str(sentinel)!r}, path)\n"
            "print(sorted(os.listdir('/run/rlm')))"
        )
        # A sealed directory (rootful engine) refuses the links; otherwise they exist.
        assert planted.ok or planted.error.name == "PermissionError", planted.error
        # A restart makes the host rewrite the kernel's connection details.
        stuck = await box.execute(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n    time.sleep(0.05)",
            timeout=1.0,
        )
        assert stuck.restarted
        # The host listens afresh where the kernel removed its socket: the new kernel got
        # its context over the channel.
        assert (await box.execute("print(CONTEXT)")).stdout == "x\n"
    assert sentinel.read_text() == "untouched"


async def test_kernel_cannot_fill_the_host_disk_through_its_socket_directory() -> None:
    if os.getuid() != 0:
        pytest.skip("rootless: the kernel runs as the directory's owner (your own uid)")
    async with Sandbox("x", limits=SandboxLimits(interrupt_grace=1.0)) as box:
        result = await box.execute("open('/run/rlm/filler', 'wb').write(b'x' * 1024)")
        assert result.error is not None and result.error.name == "PermissionError"
        # After a restart the new kernel can still create its sockets, then is sealed again.
        stuck = await box.execute(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n    time.sleep(0.05)",
            timeout=1.0,
        )
        assert stuck.restarted
        again = await box.execute("open('/run/rlm/filler', 'wb')")
        assert again.error is not None and again.error.name == "PermissionError"


async def test_raw_output_cannot_fill_the_engine_log_or_the_error() -> None:
    async with Sandbox("x") as box:
        flood = await box.execute(
            "import os\nfor _ in range(40):\n    os.write(1, b'L' * 1_000_000 + b'\\n')"
        )
        assert flood.ok, flood.error
        container = get_engine().client.containers.get(box.container_id)
        assert len(container.logs()) < 5 * 1024**2  # 40 MB written, the log kept bounded
        died = await box.execute("import os\nos.write(2, b'E' * 20_000_000 + b'\\n')\nos._exit(3)")
        assert died.restarted and died.error is not None
        assert "exited with code 3" in died.error.value
        assert len(died.error.value) < 5000
        assert (await box.execute("print('back')")).stdout == "back\n"
