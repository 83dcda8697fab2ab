"""Privileges: no root, no capabilities, no keyring, no namespaces, no host account."""

from __future__ import annotations

import pwd

import pytest

from rlm.sandbox.sandbox import Sandbox
from tests.security.conftest import ROOTFUL, output

pytestmark = [
    pytest.mark.container,
    pytest.mark.rootless,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]

CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
SIGCHLD = 17
KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING = -4, -3
KEYCTL_GET_KEYRING_ID, KEYCTL_LINK = 0, 8


async def status_field(box: Sandbox, field: str) -> str:
    code = f"print([l.split()[1] for l in open('/proc/self/status') if l.startswith('{field}:')])"
    return (await output(box, code)).strip("[]'")


async def test_not_root(box: Sandbox) -> None:
    assert await output(box, "import os; print(os.getuid(), os.geteuid())") != "0 0"


async def test_no_capabilities(box: Sandbox) -> None:
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(await status_field(box, field), 16) == 0, field


async def test_no_new_privileges(box: Sandbox) -> None:
    assert await status_field(box, "NoNewPrivs") == "1"


async def test_seccomp_filter_is_on(box: Sandbox) -> None:
    assert await status_field(box, "Seccomp") == "2"


async def test_keyctl_is_refused(box: Sandbox) -> None:
    """The user keyring of a rootful kernel's uid was a host user's."""
    user, session = KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING
    result = await output(box, f"print(call('keyctl', {KEYCTL_GET_KEYRING_ID}, {user}, 0))")
    assert result == "EPERM"
    link = await output(box, f"print(call('keyctl', {KEYCTL_LINK}, {user}, {session}))")
    assert link == "EPERM"


async def test_add_key_is_refused(box: Sandbox) -> None:
    result = await output(
        box, f"print(call('add_key', b'user', b'planted', b'secret', 6, {KEY_SPEC_USER_KEYRING}))"
    )
    assert result == "EPERM"


async def test_request_key_is_refused(box: Sandbox) -> None:
    result = await output(box, "print(call('request_key', b'user', b'anything', None, 0))")
    assert result == "EPERM"


async def test_unshare_user_namespace_is_refused(box: Sandbox) -> None:
    assert await output(box, f"print(call('unshare', {CLONE_NEWUSER}))") == "EPERM"
    assert await output(box, f"print(call('unshare', {CLONE_NEWNS | CLONE_NEWNET}))") == "EPERM"


async def test_unshare_command_gets_no_root(box: Sandbox) -> None:
    result = await output(
        box,
        "import subprocess\n"
        "r = subprocess.run(['unshare', '-Urm', 'id', '-u'], capture_output=True, text=True)\n"
        "print(r.returncode, r.stdout.strip() or '-')",
    )
    assert result.split()[0] != "0" and result.split()[1] != "0"


async def test_clone_into_a_new_user_namespace_is_refused(box: Sandbox) -> None:
    result = await output(box, f"print(call('clone', {CLONE_NEWUSER | SIGCHLD}, 0, 0, 0, 0))")
    assert result in {"EPERM", "ENOSYS"}


async def test_setns_and_mount_are_refused(box: Sandbox) -> None:
    result = await output(
        box,
        "import os\nfd = os.open('/proc/self/ns/net', os.O_RDONLY)\n"
        "print(call('setns', fd, 0), call('mount', b'none', b'/tmp', b'tmpfs', 0, None))",
    )
    assert result == "EPERM EPERM"


async def test_kernel_uid_is_no_host_account(box: Sandbox) -> None:
    """Rootful: a user namespace maps the kernel's uid into a range no host user owns."""
    if not ROOTFUL:
        pytest.skip("rootless: the kernel runs as your own uid (keep-id), by design")
    uid, inside, outside = (
        await output(
            box, "import os; print(os.getuid(), *open('/proc/self/uid_map').read().split()[:2])"
        )
    ).split()
    assert int(inside) == 0 and int(outside) >= 65536, (inside, outside)
    host_uid = int(outside) + int(uid)
    with pytest.raises(KeyError):
        pwd.getpwuid(host_uid)
