"""Network: the kernel has a loopback interface and nothing else."""

from __future__ import annotations

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import output

pytestmark = [
    pytest.mark.container,
    pytest.mark.rootless,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]


async def test_only_a_loopback_interface(box: Sandbox) -> None:
    assert await output(box, "import os; print(sorted(os.listdir('/sys/class/net')))") == "['lo']"


async def test_tcp_to_the_internet_fails(box: Sandbox) -> None:
    result = await output(
        box,
        "import socket\ns = socket.socket(); s.settimeout(2)\n"
        "print(s.connect_ex(('1.1.1.1', 443)))",
    )
    assert result != "0"


async def test_names_do_not_resolve(box: Sandbox) -> None:
    result = await output(
        box,
        "import socket\ntry:\n    socket.getaddrinfo('pypi.org', 443)\n    print('resolved')\n"
        "except OSError as exc:\n    print(type(exc).__name__)",
    )
    assert result == "gaierror"


async def test_udp_to_the_internet_fails(box: Sandbox) -> None:
    result = await output(
        box,
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    s.sendto(b'x', ('8.8.8.8', 53)); print('sent')\n"
        "except OSError as exc:\n    print(exc.errno)",
    )
    assert result != "sent"


async def test_no_engine_socket_inside(box: Sandbox) -> None:
    found = await output(
        box,
        "import os\nprint([p for p in ('/run/podman/podman.sock', '/var/run/docker.sock',"
        " '/run/docker.sock') if os.path.exists(p)])",
    )
    assert found == "[]"
