#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Documentation for the write_report action (plugins/action/write_report.py does the work
on the control node; there is nothing to run on the target)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: write_report
short_description: Write report files on the control node
version_added: "0.1.0"
description:
  - Writes each C(files) entry (name -> text) into C(dir) on the control node, atomically
    (temporary file + rename), creating C(dir) if needed. Returns C(changed=false) because a report
    is output, not managed state. Runs in check mode as well.
options:
  dir:
    description: Target directory on the control node.
    type: path
    required: true
  files:
    description: File name -> content.
    type: dict
    required: true
  mode:
    description: File mode.
    type: str
    default: "0644"
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the diagnosis
  quantum.runbooks.write_report:
    dir: reports/lab
    files:
      diagnosis-latest.json: "{{ report | to_nice_json }}"
"""

RETURN = r"""
paths:
  description: Absolute paths written.
  type: list
  elements: str
  returned: success
"""
