# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Append one JSON line to the audit log on the control node (who, when, what, result)."""
from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.quantum.runbooks.plugins.module_utils.audit import append, make_record
from ansible_collections.quantum.runbooks.plugins.plugin_utils.controller_action import ControllerOnly

# Documentation: plugins/modules/audit_event.py (ansible-doc reads it there).
# The record format and the secret masking live in module_utils/audit.py (shared with qt-remediate).


class ActionModule(ControllerOnly):
    def work(self, args, task_vars):
        path, action = args.get("path"), args.get("action")
        if not path or not action:
            raise AnsibleActionFail("audit_event needs 'path' and 'action'")
        record = make_record(action, args.get("result"), task_vars.get("inventory_hostname"),
                             self._task.check_mode, args.get("details"))
        try:
            path = append(path, record)
        except OSError as err:
            raise AnsibleActionFail(f"cannot append to the audit log {path}: {err}") from err
        return dict(changed=False, record=record, path=path)
