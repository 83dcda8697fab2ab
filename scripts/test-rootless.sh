#!/usr/bin/env bash
# Run the tests marked `rootless` as an unprivileged user with rootless Podman (what
# `make test-rootless` runs; `make test` runs it after the main suite when invoked as root).
#
# As root, idempotently: create the test user (default rlmtest) with subordinate ids, give it
# overlay storage before its first Podman use, a runtime dir (/run/user/<uid>), a venv made from
# Debian's /usr/bin/python3 in a world-readable place with rlm installed editable (from the repo
# if the user can read it, else from a copy), load the kernel image into the user's storage,
# then run `python -m pytest -m rootless -q` as that user and exit with pytest's status.
#
# Environment: RLM_TEST_USER (rlmtest), RLM_ROOTLESS_VENV (/opt/rlm-rootless-venv),
# RLM_ROOTLESS_SRC (/opt/rlm-rootless-src, used only when the repo is not readable by the user),
# RLM_IMAGE (localhost/rlm-kernel:<version>), RLM_ROOTLESS_TIMEOUT (pytest, seconds: 1500),
# HOST_PYTHON (/usr/bin/python3). Extra arguments are passed to pytest.
set -euo pipefail

TEST_USER=${RLM_TEST_USER:-rlmtest}
VENV=${RLM_ROOTLESS_VENV:-/opt/rlm-rootless-venv}
COPY_DIR=${RLM_ROOTLESS_SRC:-/opt/rlm-rootless-src}
HOST_PYTHON=${HOST_PYTHON:-/usr/bin/python3}
PYTEST_TIMEOUT=${RLM_ROOTLESS_TIMEOUT:-1500}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '[test-rootless] %s\n' "$*"; }
die() { printf '[test-rootless] error: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (it creates the user $TEST_USER)"
command -v podman >/dev/null || die "podman is not installed: run scripts/setup-host.sh"
[ -x "$HOST_PYTHON" ] || die "$HOST_PYTHON not found (apt-get install python3 python3-venv)"

# One run at a time on a host: runs share the user, its storage and the venv.
LOCK=/run/lock/rlm-test-rootless.lock
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
if ! flock -n 9; then
    say "another rootless test run holds $LOCK: waiting (20 min at most)"
    flock -w 1200 9 || die "timed out waiting for $LOCK"
fi

VERSION=$("$HOST_PYTHON" -c "import tomllib;print(tomllib.load(open('$REPO/pyproject.toml','rb'))['project']['version'])")
IMAGE=${RLM_IMAGE:-localhost/rlm-kernel:$VERSION}
podman image exists "$IMAGE" || die "kernel image $IMAGE not found: run \`make image\` (or scripts/setup-host.sh)"

# --- the user ---------------------------------------------------------------------------------
if ! id "$TEST_USER" >/dev/null 2>&1; then
    say "creating user $TEST_USER"
    useradd --create-home --shell /bin/bash "$TEST_USER"
fi
USER_UID=$(id -u "$TEST_USER")
USER_GID=$(id -g "$TEST_USER")
USER_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
# Rootless Podman needs subordinate ids; useradd adds them on Debian, older setups may not.
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if ! grep -q "^$TEST_USER:" "$f"; then
        start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$f")
        echo "$TEST_USER:$start:65536" >>"$f"
        say "added $TEST_USER:$start:65536 to $f"
    fi
done

RUNTIME_DIR=/run/user/$USER_UID
install -d -m 0755 /run/user
install -d -m 0700 -o "$USER_UID" -g "$USER_GID" "$RUNTIME_DIR"

# Everything the user runs goes through here: a clean environment (no DOCKER_HOST, no API
# keys, no root paths), its own HOME and XDG_RUNTIME_DIR.
as_user() {
    (cd "$USER_HOME" && runuser -u "$TEST_USER" -- env -i \
        HOME="$USER_HOME" USER="$TEST_USER" LOGNAME="$TEST_USER" SHELL=/bin/bash \
        PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
        XDG_RUNTIME_DIR="$RUNTIME_DIR" LANG=C.UTF-8 "$@") 9>&-
}
# (9>&-: the lock must not leak into long-lived processes such as Podman's pause process.)

# --- storage: overlay, set before the first image is stored -----------------------------------
CONF_DIR=$USER_HOME/.config/containers
if ! grep -qs '^driver *= *"overlay"' "$CONF_DIR/storage.conf"; then
    say "writing $CONF_DIR/storage.conf (driver = overlay)"
    install -d -m 0755 -o "$USER_UID" -g "$USER_GID" "$USER_HOME/.config" "$CONF_DIR"
    printf '[storage]\ndriver = "overlay"\n' >"$CONF_DIR/storage.conf"
    chown "$USER_UID:$USER_GID" "$CONF_DIR/storage.conf"
fi
driver=$(as_user timeout 60 podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
if [ "$driver" != overlay ]; then
    # Storage made before the config (vfs) keeps its driver: start it over.
    say "user storage uses '${driver:-?}', resetting it to overlay"
    as_user timeout 120 podman system reset --force >/dev/null
    driver=$(as_user timeout 60 podman info --format '{{.Store.GraphDriverName}}')
    [ "$driver" = overlay ] || die "rootless storage driver is '$driver', not overlay"
fi
say "user $TEST_USER (uid $USER_UID): rootless storage driver $driver"

# --- source and venv --------------------------------------------------------------------------
if as_user test -r "$REPO/pyproject.toml" -a -x "$REPO/rlm" -a -r "$REPO/rlm/__init__.py" \
    -a -x "$REPO/tests"; then
    SRC=$REPO
else
    say "$REPO is not readable by $TEST_USER: copying the tree to $COPY_DIR"
    rm -rf "$COPY_DIR.new"
    mkdir -p "$COPY_DIR.new"
    (cd "$REPO" && tar --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.venv -cf - .) \
        | tar -C "$COPY_DIR.new" -xf -
    rm -rf "$COPY_DIR"
    mv "$COPY_DIR.new" "$COPY_DIR"
    chmod -R a+rX "$COPY_DIR"
    SRC=$COPY_DIR
fi

# Reinstall only when the source path or the dependencies changed.
STAMP="$SRC|$(sha256sum "$SRC/pyproject.toml" | cut -c1-16)|$("$HOST_PYTHON" -V 2>&1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.rlm-stamp" 2>/dev/null)" != "$STAMP" ] \
    || ! "$VENV/bin/python" -c 'import rlm, pytest, ipykernel' 2>/dev/null; then
    say "installing rlm[test] from $SRC into $VENV (Debian's $HOST_PYTHON)"
    [ -x "$VENV/bin/python" ] || "$HOST_PYTHON" -m venv "$VENV"
    timeout 900 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        ${PIP_CERT:+--cert "$PIP_CERT"} -e "$SRC[test]"
    echo "$STAMP" >"$VENV/.rlm-stamp"
else
    say "reusing $VENV"
fi
chmod -R a+rX "$VENV"
# An editable install points at $SRC, whose egg-info pip just (re)wrote as root.
find "$SRC" -maxdepth 1 -name '*.egg-info' -exec chmod -R a+rX {} +
as_user python -c 'import rlm, sys; assert rlm.__file__.startswith(sys.argv[1]), rlm.__file__' \
    "$SRC" || die "the venv does not import rlm from $SRC"

# --- kernel image in the user's storage -------------------------------------------------------
want=$(podman image inspect --format '{{.Id}}' "$IMAGE")
have=$(as_user timeout 60 podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    say "loading $IMAGE (${want:0:12}) into $TEST_USER's storage"
    timeout 600 podman save "$IMAGE" | as_user timeout 600 podman load -q
    have=$(as_user podman image inspect --format '{{.Id}}' "$IMAGE")
    [ "$want" = "$have" ] || say "warning: loaded image id ${have:0:12} differs from ${want:0:12}"
else
    say "$IMAGE already in $TEST_USER's storage"
fi

# --- the tests --------------------------------------------------------------------------------
say "running: python -m pytest -m rootless -q $* (as $TEST_USER, in $SRC)"
status=0
# The user cannot write the (root-owned) tree: no .pytest_cache, no bytecode.
(cd "$SRC" && runuser -u "$TEST_USER" -- env -i \
    HOME="$USER_HOME" USER="$TEST_USER" LOGNAME="$TEST_USER" SHELL=/bin/bash \
    PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    XDG_RUNTIME_DIR="$RUNTIME_DIR" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 RLM_IMAGE="$IMAGE" \
    timeout --kill-after=30 "$PYTEST_TIMEOUT" \
    python -m pytest -m rootless -q -p no:cacheprovider "$@") 9>&- || status=$?
[ "$status" = 124 ] && say "pytest timed out after ${PYTEST_TIMEOUT}s"
say "rootless tests finished with status $status"
exit "$status"
