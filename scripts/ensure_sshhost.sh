#!/usr/bin/env bash
# Make sure the lab's SSH trading host can be set up (lab/sshhost.py, run by `labctl up`):
# sshd (openssh-server), sudo (the on-call account becomes qt) and setfacl (acl: how Ansible
# hands its temporary files to qt when becoming an unprivileged user). As root on Debian it
# installs the missing packages; otherwise it says what to do. Idempotent: nothing is installed
# when all are there. It never starts a service: labctl runs its own sshd on 127.0.0.1.
set -euo pipefail
# A root shell's PATH may lack sbin: dpkg (run by apt-get) needs ldconfig/start-stop-daemon there.
export PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

declare -A pkg_of=([/usr/sbin/sshd]=openssh-server [/usr/bin/sudo]=sudo [/usr/bin/setfacl]=acl)
missing=()
for tool in "${!pkg_of[@]}"; do
  [ -x "$tool" ] || missing+=("${pkg_of[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${EUID}" != 0 ]; then  # not id(1): it may be a broken stub
  echo "missing Debian packages: ${missing[*]}. As root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "missing: ${missing[*]} and no apt-get: install them with this system's package manager" >&2
  exit 1
fi

echo "installing ${missing[*]} (Debian packages, for the lab's SSH host)..."
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# policy-rc.d 101: the package's own sshd service is not started (labctl runs its own on 127.0.0.1).
rc_d=/usr/sbin/policy-rc.d
own_rc_d=
if [ ! -e "$rc_d" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$rc_d"; chmod 755 "$rc_d"; own_rc_d=1
fi
status=0
{ apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; } >"$log" 2>&1 || status=$?
[ -n "$own_rc_d" ] && rm -f "$rc_d"
if [ "$status" != 0 ]; then
  tail -20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
for tool in "${!pkg_of[@]}"; do
  [ -x "$tool" ] || { echo "$tool still missing after the install" >&2; exit 1; }
done
echo "ssh host packages: $(/usr/sbin/sshd -V 2>&1 | head -1), $(sudo -V | head -1)"
