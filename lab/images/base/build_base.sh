#!/usr/bin/env bash
# Build the lab's base image without a registry: debootstrap a minimal Debian
# bookworm and `docker import` it. Skipped when the image already exists.
# Users with a registry can skip this and pass BASE_IMAGE=python:3.11-slim.
set -euo pipefail

IMAGE="${1:-qt-lab-base:bookworm-1}"
PACKAGES="python3,python3-venv,python3-pip,redis-server,curl,ca-certificates,procps"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  if [ "${EUID:-$(id -u)}" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing debootstrap..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) >/dev/null
  else
    echo "debootstrap is missing: apt-get install -y debootstrap (or set BASE_IMAGE=python:3.11-slim)" >&2
    exit 1
  fi
fi

# The machine's own Debian mirror, never a hard-coded host.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/{print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }

rootfs=$(mktemp -d /tmp/qt-lab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror (about a minute)..."
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  echo "debootstrap failed; last lines of $rootfs.log:" >&2
  tail -20 "$rootfs.log" >&2
  exit 1
}
rm -f "$rootfs.log"
# Keep the image small: no apt lists or caches.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
echo "base image $IMAGE built"
