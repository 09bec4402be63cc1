#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Documentation for the postmortem_evidence action (plugins/action/postmortem_evidence.py does the work
on the control node; there is nothing to run on the target)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: postmortem_evidence
short_description: Find the incident window in the audit log and the diagnosis reports (control node)
version_added: "0.1.0"
description:
  - Reads the audit log (JSON lines, M(quantum.runbooks.audit_event)) and the stamped diagnosis reports
    C(<reports_dir>/<host>/diagnosis-<UTC>.json) on the control node. Unreadable lines and reports are skipped
    and counted (the post-mortem shows the count).
  - Without O(incident_start) the incident is the most recent one - it begins at the first failing diagnosis
    (any verdict but C(HEALTHY) / C(INCONCLUSIVE)), and the window starts O(lookback_s) earlier (never before
    the previous incident's end) so the first symptom is in it; it ends at the first C(HEALTHY) diagnosis after a
    mitigation or rollback (a real C(restart_executor), C(cancel_stuck_orders), C(emergency_stop) or C(rollback)
    record; check-mode records never count), else at a C(HEALTHY) diagnosis not followed by a failing one
    within O(merge_gap_s), else now.
  - With O(incident_start) (and optionally O(incident_end)) the operator's window is used as given.
  - Reads only; runs in check mode too. Fails with one line when there is no failing diagnosis to anchor on,
    or a time is not ISO 8601.
options:
  audit_log:
    description: The audit log on the control node (a missing file is an empty log).
    type: path
    required: true
  reports_dir:
    description: Base directory of the diagnosis reports (the host's reports are in C(<reports_dir>/<host>/)).
    type: path
    required: true
  host:
    description: Whose records and reports; default the inventory host.
    type: str
  incident_start:
    description: Window start, ISO 8601 (UTC when no zone is given); default found as described.
    type: str
  incident_end:
    description: Window end, ISO 8601; needs O(incident_start).
    type: str
  incident_id:
    description: The incident's id; default C(execution_stuck-<UTC time of the first failing diagnosis>) (or of
      O(incident_start)).
    type: str
  lookback_s:
    description: Seconds before the first failing diagnosis in which to look for the first symptom.
    type: float
    default: 900
  merge_gap_s:
    description: A failing diagnosis within this many seconds of a HEALTHY one without a mitigation continues the
      same incident (flapping).
    type: float
    default: 900
  max_reports:
    description: Read at most this many of the newest reports (all within an hour of O(incident_start) and
      O(incident_end) when they are given).
    type: int
    default: 1000
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Find the incident
  quantum.runbooks.postmortem_evidence:
    audit_log: reports/audit.jsonl
    reports_dir: reports
  register: incident
"""

RETURN = r"""
evidence:
  description:
    - C(window) - C(start), C(end) (epoch seconds), C(start_iso), C(end_iso), C(anchor), C(anchor_kind),
      C(end_kind) (C(healthy_after_mitigation), C(healthy_without_mitigation), C(given) or C(now)),
      C(lookback_s), C(first_failing), C(resolved_by), C(incident_id), C(date).
    - C(diagnoses) and C(audit) (records other than C(diagnose)) in the window, time-ordered;
      C(skipped) - C(audit_lines), C(reports) unreadable; C(host).
  type: dict
  returned: success
summary:
  description: One line - incident id, window, how it ends, counts.
  type: str
  returned: success
reports_read:
  description: Number of report files read.
  type: int
  returned: success
"""
