#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host for rlm (what `make setup` runs), as root, idempotently:
#   1. apt packages: podman runc uidmap slirp4netns debootstrap catatonit python3-venv make,
#      and chromium chromium-driver for the viewer's browser tests
#      (only those missing; apt-get update only when something is missing)
#   2. /etc/containers/containers.conf, only where Podman's defaults fail on this host
#      (cgroups v1/hybrid: crun refuses, use runc + cgroupfs; no CAP_SYS_RESOURCE: ulimits at or
#      below the host's). An existing file is kept; settings it lacks go to a drop-in,
#      /etc/containers/containers.conf.d/50-rlm.conf.
#   2b. subordinate ids for user `containers` in /etc/subuid and /etc/subgid (rootful Podman's
#      --userns=auto takes each kernel's user namespace from them), unless it has some already
#   3. `$PYTHON -m pip install -e '.[test]'` (PYTHON: python3; must be a venv or a
#      non-externally-managed interpreter)
#   4. the kernel image localhost/rlm-kernel:<version> (`make image BASE_IMAGE=...`), from:
#        RLM_BASE_IMAGE=local  -> `make base-image` (debootstrap, no registry needed)
#        RLM_BASE_IMAGE=<ref>  -> that image (pulled if absent)
#        unset (auto)          -> localhost/rlm-base:bookworm if present, else python:3.12-slim
#                                 if present or pullable within RLM_PULL_TIMEOUT s (20), else local
# SKIP_APT=1 skips step 1, SKIP_IMAGE=1 step 4.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
LOCAL_BASE=${LOCAL_BASE:-localhost/rlm-base:bookworm}
REMOTE_BASE=docker.io/library/python:3.12-slim
PULL_TIMEOUT=${RLM_PULL_TIMEOUT:-20}
APT_PACKAGES=(podman runc uidmap slirp4netns debootstrap catatonit python3-venv make
    chromium chromium-driver)

say() { printf '[setup-host] %s\n' "$*"; }
die() { printf '[setup-host] error: %s\n' "$*" >&2; exit 2; }
step() { printf '\n[setup-host] === %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages and writes /etc/containers)"

# --- 1. packages ------------------------------------------------------------------------------
step "packages"
if [ -n "${SKIP_APT:-}" ]; then
    say "SKIP_APT set: not checking apt packages"
else
    command -v apt-get >/dev/null || die "not a Debian/Ubuntu host (no apt-get); install ${APT_PACKAGES[*]} yourself and rerun with SKIP_APT=1"
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "already installed: ${APT_PACKAGES[*]}"
    else
        say "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get update -q
        timeout 900 apt-get install -y -q "${missing[@]}"
    fi
fi
command -v podman >/dev/null || die "podman is not installed"

# --- 2. containers.conf -----------------------------------------------------------------------
step "containers.conf"
CONF=/etc/containers/containers.conf
DROPIN=/etc/containers/containers.conf.d/50-rlm.conf
# What this host needs, as TOML lines per table; empty: Podman's defaults work.
need_containers=()
need_engine=()
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    say "cgroups v1/hybrid: crun fails here, use runc with the cgroupfs manager"
    need_engine+=('runtime = "runc"' 'cgroup_manager = "cgroupfs"')
fi
if [ ! -d /run/systemd/system ]; then
    say "no systemd: cgroupfs manager, events to a file"
    need_engine+=('cgroup_manager = "cgroupfs"' 'events_logger = "file"')
fi
cap_eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if (( (16#$cap_eff >> 24 & 1) == 0 )); then
    # Without CAP_SYS_RESOURCE root cannot raise limits: Podman's defaults (nofile 1048576)
    # are refused. Use the host's hard limits, capped like the shared notes' working values.
    nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
    say "no CAP_SYS_RESOURCE: default ulimits nofile=$nofile, nproc=$nproc"
    need_containers+=("default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]")
fi
# Keys already set by the existing configuration (main file and drop-ins) are left alone.
existing=$("$PYTHON" - "$CONF" /etc/containers/containers.conf.d <<'EOF' 2>/dev/null || true
import pathlib, sys, tomllib
paths = [pathlib.Path(sys.argv[1])] + sorted(pathlib.Path(sys.argv[2]).glob("*.conf"))
for p in paths:
    if p.is_file() and p.name != "50-rlm.conf":
        for table, values in tomllib.loads(p.read_text()).items():
            for key in values if isinstance(values, dict) else ():
                print(f"{table}.{key}")
EOF
)
render() {  # table, lines...: the lines whose keys are not set yet, deduplicated
    local table=$1; shift
    local line key seen=" "
    for line in "$@"; do
        key=${line%% =*}
        grep -Fqx "$table.$key" <<<"$existing" && continue
        [[ $seen == *" $key "* ]] && continue
        seen+="$key "
        echo "$line"
    done
}
body_containers=$(render containers "${need_containers[@]}")
body_engine=$(render engine "${need_engine[@]}")
content=""
[ -n "$body_containers" ] && content+=$'[containers]\n'"$body_containers"$'\n'
[ -n "$body_engine" ] && content+=$'[engine]\n'"$body_engine"$'\n'
if [ ${#need_containers[@]} -eq 0 ] && [ ${#need_engine[@]} -eq 0 ]; then
    say "Podman's defaults work on this host: no containers.conf written"
elif [ -z "$content" ]; then
    say "$CONF (and drop-ins) already set what this host needs: left as is"
else
    target=$CONF
    if [ -e "$CONF" ]; then
        target=$DROPIN   # never rewrite a file someone else made
        mkdir -p "$(dirname "$DROPIN")"
    fi
    header="# Written by rlm's scripts/setup-host.sh: what Podman needs on this host."
    if [ "$(cat "$target" 2>/dev/null)" = "$header"$'\n'"${content%$'\n'}" ]; then
        say "$target is up to date"
    else
        say "writing $target:"
        printf '%s\n%s' "$header" "$content" | tee "$target"
    fi
fi

# --- 2b. subordinate ids for rootful kernels' user namespaces ---------------------------------
step "subordinate ids for user namespaces"
# Far above the ranges useradd hands out (from 100000 up), so created users never overlap it.
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if grep -q '^containers:' "$f"; then
        say "$f already has a range for containers"
    else
        echo "containers:1000000000:1000000000" >>"$f"
        say "added containers:1000000000:1000000000 to $f"
    fi
done

# --- 3. the package ---------------------------------------------------------------------------
step "pip install -e '.[test]' ($PYTHON)"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
if "$PYTHON" - <<'EOF'
import pathlib, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
sys.exit(0 if not in_venv and (pathlib.Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED").exists() else 1)
EOF
then
    die "$PYTHON is externally managed (PEP 668): make a venv first, e.g. python3 -m venv .venv && . .venv/bin/activate"
fi
say "$("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
timeout 900 "$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
say "installed: $("$PYTHON" -m pip show rlm 2>/dev/null | awk '/^Version:/ {print "rlm", $2}')"

# --- 4. images --------------------------------------------------------------------------------
if [ -n "${SKIP_IMAGE:-}" ]; then
    say "SKIP_IMAGE set: not building images"; exit 0
fi
step "base image"
choice=${RLM_BASE_IMAGE:-auto}
case $choice in
local)
    base=$LOCAL_BASE ;;
auto)
    if podman image exists "$LOCAL_BASE"; then
        base=$LOCAL_BASE
    elif podman image exists "$REMOTE_BASE"; then
        base=$REMOTE_BASE
    else
        say "trying: podman pull $REMOTE_BASE (${PULL_TIMEOUT}s at most)"
        if timeout "$PULL_TIMEOUT" podman pull -q "$REMOTE_BASE" >/dev/null 2>&1; then
            base=$REMOTE_BASE
        else
            say "no registry reachable: building a local base image"
            base=$LOCAL_BASE
        fi
    fi ;;
*)
    base=$choice
    podman image exists "$base" || timeout 600 podman pull "$base" ;;
esac
if [ "$base" = "$LOCAL_BASE" ]; then
    timeout 900 make --no-print-directory base-image LOCAL_BASE="$LOCAL_BASE" PYTHON="$PYTHON"
fi
say "base image: $base"

step "kernel image"
timeout 1200 make --no-print-directory image BASE_IMAGE="$base" PYTHON="$PYTHON" ENGINE=podman
say "done: $(podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' --filter reference='localhost/rlm-kernel*' | head -3 | tr '\n' ' ')"
