#!/usr/bin/env bash
# Build a minimal Debian base image without a registry: debootstrap a rootfs and import it.
# Used where no registry is reachable; elsewhere the Containerfile's default python:3.12-slim works.
set -euo pipefail
IMAGE=${1:-localhost/rlm-base:bookworm}
ENGINE=${ENGINE:-$(command -v podman || command -v docker)}
SUITE=${SUITE:-bookworm}
# Take the mirror this host already uses rather than hard-coding one.
MIRROR=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
: "${MIRROR:?no Debian mirror found in /etc/apt; set MIRROR=}"
command -v debootstrap >/dev/null || { echo "debootstrap is not installed: apt-get install -y debootstrap" >&2; exit 2; }

if "$ENGINE" image exists "$IMAGE" 2>/dev/null; then
    echo "base image $IMAGE already present"; exit 0
fi
ROOTFS=$(mktemp -d /var/tmp/rlm-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap $SUITE from $MIRROR (about a minute)..."
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
    "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -cf - . | "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
