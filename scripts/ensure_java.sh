#!/usr/bin/env bash
# Make sure a Java runtime >= 17 is on PATH: ansible-rulebook (rulebooks/, tests/remediation/test_eda.py)
# runs its rules engine (Drools) in a JVM and needs Java 17 or later. As root on Debian it installs
# openjdk-17-jre-headless (default-jre-headless where 17 is not packaged); otherwise it says what to do.
# Idempotent: nothing is installed when a Java >= 17 is there.
set -euo pipefail

java_major() {  # `openjdk version "17.0.15" ...` -> 17 ("1.8.0" -> 1)
  java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1
}
if command -v java >/dev/null && [ "$(java_major)" -ge 17 ] 2>/dev/null; then
  exit 0
fi
if [ "${EUID:-$(id -u)}" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing: Java >= 17 (for ansible-rulebook). As root on Debian: apt-get install -y --no-install-recommends openjdk-17-jre-headless" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
pkg=openjdk-17-jre-headless
echo "installing $pkg (Debian package; ansible-rulebook needs Java >= 17)..."
if ! { apt-get update -qq \
       && { apt-cache show "$pkg" >/dev/null 2>&1 || pkg=default-jre-headless; } \
       && apt-get install -y -qq --no-install-recommends "$pkg"; } >"$log" 2>&1; then
  tail -20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
hash -r
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  echo "java >= 17 still missing after installing $pkg" >&2
  exit 1
fi
echo "java: $(java -version 2>&1 | head -1)"
