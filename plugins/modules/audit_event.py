#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Documentation for the audit_event action (plugins/action/audit_event.py does the work
on the control node; there is nothing to run on the target)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: audit_event
short_description: Append a line to the audit log on the control node
version_added: "0.1.0"
description:
  - Appends one JSON object per call to O(path) (JSON lines), under an exclusive file lock,
    with C(ts) (UTC), C(who) (E(QT_AUDIT_ACTOR), else E(SUDO_USER), else the user running Ansible),
    C(host), C(action), C(result), C(check_mode) and C(details).
  - Fields in O(details) whose name suggests a secret (secret, api_key, password, token, signature)
    are masked. Returns C(changed=false) because the log is a record, not managed state; it writes
    in check mode too (marked C(check_mode=true)).
options:
  path:
    description: The audit log file on the control node.
    type: path
    required: true
  action:
    description: What was done or decided, e.g. C(restart_executor) or C(diagnose).
    type: str
    required: true
  result:
    description: The outcome, e.g. C(restarted), C(skipped_healthy), C(refused_exchange_ban).
    type: str
  details:
    description: Anything else worth keeping (verdict, ids, durations); never secrets.
    type: dict
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record the decision
  quantum.runbooks.audit_event:
    path: reports/audit.jsonl
    action: restart_executor
    result: skipped_healthy
    details: {verdict: HEALTHY}
"""

RETURN = r"""
record:
  description: The line written.
  type: dict
  returned: success
path:
  description: Absolute path of the audit log.
  type: str
  returned: success
"""
