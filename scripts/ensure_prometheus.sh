#!/usr/bin/env bash
# Make sure promtool, prometheus, prometheus-alertmanager and amtool are on PATH (the alert
# rule tests and the end-to-end alert test need them). As root on Debian it installs the
# packages `prometheus` and `prometheus-alertmanager` when one is missing; otherwise it says
# what to do. Idempotent: nothing is installed when all four are there.
# It never starts a service: the test starts its own servers on loopback. Should the
# package scripts start one anyway (a host where policy-rc.d allows it), it is stopped.
set -euo pipefail

missing=()
for tool in promtool prometheus prometheus-alertmanager amtool; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${EUID:-$(id -u)}" != 0 ]; then
  echo "missing: ${missing[*]}. As root: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "missing: ${missing[*]} and no apt-get: install Prometheus and Alertmanager with this system's package manager" >&2
  exit 1
fi

echo "installing prometheus and prometheus-alertmanager (Debian packages; missing: ${missing[*]})..."
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager; } >"$log" 2>&1; then
  tail -20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"

# The packages ship services that listen on all interfaces (9090, 9093, 9094): keep them off.
for unit in prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
    systemctl stop "$unit" || true
  elif command -v service >/dev/null && service "$unit" status >/dev/null 2>&1; then
    service "$unit" stop >/dev/null 2>&1 || true
  fi
done

for tool in promtool prometheus prometheus-alertmanager amtool; do
  command -v "$tool" >/dev/null || { echo "$tool still missing after the install" >&2; exit 1; }
done
echo "prometheus: $(promtool --version 2>&1 | head -1)"
echo "alertmanager: $(amtool --version 2>&1 | head -1)"
