# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Base of the collection's action plugins that work on the control node only."""
from __future__ import annotations

from ansible.plugins.action import ActionBase


class ControllerOnly(ActionBase):
    """No connection, nothing runs on the target, safe in check mode. Subclasses implement
    ``work(args, task_vars) -> dict`` (merged into the result); raise AnsibleActionFail to fail."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def work(self, args, task_vars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self.work(self._task.args, task_vars or {}))
        return result
