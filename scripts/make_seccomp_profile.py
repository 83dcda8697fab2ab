"""Write rlm's seccomp profile (rlm/sandbox/seccomp.json) from Podman's default profile.

Podman's default (containers-common's seccomp.json) allows keyctl, unshare, setns, mount and
clone with any namespace flag: enough for code in a sandbox to read a host user's keyring or
make itself uid 0 of a user namespace with every capability. rlm's kernel needs none of that.
This keeps Podman's list and its architecture map and changes only these:

- refused (EPERM): the kernel keyring (keyctl, add_key, request_key), new or joined
  namespaces (unshare, setns), mounts (mount, umount2, pivot_root, fsopen and the other new
  mount calls) and inotify, whose instances count against a per-uid limit shared with the host;
- clone only without CLONE_NEW* flags, as in Docker's default profile; clone3, whose flags
  seccomp cannot read, fails with ENOSYS so that glibc falls back to clone.

Run it again when containers-common changes:
    python scripts/make_seccomp_profile.py [/usr/share/containers/seccomp.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SOURCE = "/usr/share/containers/seccomp.json"
TARGET = Path(__file__).resolve().parent.parent / "rlm" / "sandbox" / "seccomp.json"
EPERM, ENOSYS = 1, 38
REFUSED = {
    "keyctl", "add_key", "request_key",
    "unshare", "setns",
    "mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick",
    "inotify_init", "inotify_init1", "inotify_add_watch",
}  # fmt: skip
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
# | CLONE_NEWNET: clone may make none of them.
CLONE_NAMESPACE_FLAGS = 0x7E020000


def harden(profile: dict) -> dict:
    rules = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in REFUSED | {"clone", "clone3"}]
        if names:
            rules.append({**rule, "names": names})
    rules += [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}],
            "comment": "rlm: threads and processes, no new namespaces",
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
         "comment": "rlm: its flags are out of seccomp's reach; glibc falls back to clone"},
        {"names": sorted(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
         "comment": "rlm: keyrings, namespaces, mounts and inotify are refused"},
    ]  # fmt: skip
    return {**profile, "syscalls": rules}


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else SOURCE
    profile = harden(json.loads(Path(source).read_text()))
    TARGET.write_text(json.dumps(profile, indent=1) + "\n")
    print(f"wrote {TARGET} from {source}")


if __name__ == "__main__":
    main()
