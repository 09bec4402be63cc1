# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Write report files on the control node, atomically, without a module round trip.

Reports are output, not managed state: the action always returns changed=False
and writes in check mode too.
"""
from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail

from ansible_collections.quantum.runbooks.plugins.plugin_utils.controller_action import ControllerOnly

# Documentation: plugins/modules/write_report.py (ansible-doc reads it there).


class ActionModule(ControllerOnly):
    def work(self, args, task_vars):
        target, files = args.get("dir"), args.get("files")
        if not target or not isinstance(files, dict):
            raise AnsibleActionFail("write_report needs 'dir' and a dict 'files'")
        mode = int(str(args.get("mode", "0644")), 8)
        target = os.path.abspath(os.path.expanduser(str(target)))
        paths = []
        try:
            os.makedirs(target, exist_ok=True)
            for name, content in files.items():
                if os.path.basename(name) != name:
                    raise AnsibleActionFail(f"file name must not contain a directory: {name}")
                fd, tmp_path = tempfile.mkstemp(dir=target, prefix=f".{name}.")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(str(content))
                os.chmod(tmp_path, mode)
                os.replace(tmp_path, os.path.join(target, name))
                paths.append(os.path.join(target, name))
        except OSError as err:
            raise AnsibleActionFail(f"cannot write the report in {target}: {err}") from err
        return dict(changed=False, paths=paths)
