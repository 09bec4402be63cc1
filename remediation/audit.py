"""The audit log, in the same record format as the audit_event action (module_utils/audit.py)."""
from __future__ import annotations

import json
import os

from ansible_collections.quantum.runbooks.plugins.module_utils.audit import (
    actor,
    append,
    looks_secret,
    make_record,
    scrub,
)

__all__ = ["actor", "actor_for", "append", "looks_secret", "make_record", "scrub", "write", "read_decisions"]

DECISION = "remediation_decision"


def actor_for(trigger):
    """Automatic decisions are qt-remediate's (and so are the playbook lines they cause); `run` is the user's."""
    if os.environ.get("QT_AUDIT_ACTOR") or trigger == "manual":
        return actor()
    return f"qt-remediate/{trigger}"


def write(path, action, result, host, check_mode, details, who=None):
    record = make_record(action, result, host, check_mode, details, who=who)
    append(path, record)
    return record


def read_decisions(path, limit=20):
    """The last `limit` remediation decisions, oldest first (other actions in the log are skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if DECISION not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn line must not hide the rest
                if record.get("action") == DECISION:
                    out.append(record)
    except FileNotFoundError:
        return []
    return out[-limit:] if limit else out
