# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The audit log: one JSON line per decision or action (ts, who, host, action, result, check_mode, details).

Shared by the `audit_event` action plugin and the remediation service (`remediation/`), so both
write the same record the post-mortem reads. Plain Python, no Ansible.
"""
from __future__ import annotations

import fcntl
import getpass
import json
import os
from datetime import datetime, timezone

SECRET_WORDS = ("secret", "api_key", "apikey", "password", "token", "signature")
MASK = "********"


def looks_secret(name):
    return any(w in str(name).lower() for w in SECRET_WORDS)


def scrub(value):
    """Mask any field whose name suggests a secret: an audit log is read by many people."""
    if isinstance(value, dict):
        return {k: (MASK if looks_secret(k) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def actor():
    """Who acts: QT_AUDIT_ACTOR (set by automation), else the sudo user, else the login user."""
    return os.environ.get("QT_AUDIT_ACTOR") or os.environ.get("SUDO_USER") or getpass.getuser()


def make_record(action, result=None, host=None, check_mode=False, details=None, who=None):
    return {
        "ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "who": who or actor(),
        "host": host,
        "action": action,
        "result": result,
        "check_mode": bool(check_mode),
        "details": scrub(details or {}),
    }


def append(path, record):
    """Append one record as a whole line (exclusive lock: concurrent writers never interleave).

    Returns the absolute path; raises OSError when the log cannot be written.
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(record, default=str) + "\n")
    return path
