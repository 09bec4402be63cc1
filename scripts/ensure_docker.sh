#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. As root on Debian it
# installs docker.io and starts dockerd when none runs; otherwise it says what to do.
set -euo pipefail
LOG=${DOCKERD_LOG:-/var/log/qt-dockerd.log}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin  # dockerd is in sbin

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "${EUID:-$(id -u)}" != 0 ]; then
  echo "No Docker engine answers and we are not root: start Docker (or add yourself to the docker group) and retry." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "installing docker.io (Debian package)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/dev/null
fi
if ! command -v docker >/dev/null; then
  echo "docker CLI missing after installing docker.io" >&2
  exit 1
fi
echo "starting dockerd (log: $LOG)..."
# setsid: the daemon outlives this shell and make's process group.
setsid nohup dockerd --host unix:///var/run/docker.sock >"$LOG" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "dockerd is up"; exit 0; }
  sleep 1
done
echo "dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -20 "$LOG" >&2
exit 1
