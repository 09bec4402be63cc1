# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Append one JSON line to the audit log on the control node (who, when, what, result)."""
from __future__ import annotations

import fcntl
import getpass
import json
import os
from datetime import datetime, timezone

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Documentation: plugins/modules/audit_event.py (ansible-doc reads it there).

SECRET_WORDS = ("secret", "api_key", "apikey", "password", "token", "signature")


def scrub(value):
    """Drop any field whose name suggests a secret: an audit log is read by many people."""
    if isinstance(value, dict):
        return {k: ("********" if any(w in str(k).lower() for w in SECRET_WORDS) else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        path, action = args.get("path"), args.get("action")
        if not path or not action:
            raise AnsibleActionFail("audit_event needs 'path' and 'action'")
        record = {
            "ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "who": os.environ.get("QT_AUDIT_ACTOR") or os.environ.get("SUDO_USER") or getpass.getuser(),
            "host": task_vars.get("inventory_hostname"),
            "action": action,
            "result": args.get("result"),
            "check_mode": bool(self._task.check_mode),
            "details": scrub(args.get("details") or {}),
        }
        path = os.path.abspath(os.path.expanduser(str(path)))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # concurrent runs append whole lines
                handle.write(json.dumps(record, default=str) + "\n")
        except OSError as err:
            raise AnsibleActionFail(f"cannot append to the audit log {path}: {err}") from err
        result.update(changed=False, record=record, path=path)
        return result
