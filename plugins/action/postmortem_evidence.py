# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The post-mortem's evidence on the control node: the audit log and the diagnosis reports, and the
incident window found in them (logic in module_utils/postmortem_evidence.py). Reads only."""
from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone

from ansible.errors import AnsibleActionFail

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_evidence, timestamps
from ansible_collections.quantum.runbooks.plugins.plugin_utils.controller_action import ControllerOnly

# Documentation: plugins/modules/postmortem_evidence.py (ansible-doc reads it there).

REPORT_NAME = re.compile(r"^diagnosis-(\d{8}T\d{6}Z)\.json$")
SLACK_S = 3600  # reports named up to an hour outside an operator's window are still read


def report_files(folder, start=None, end=None, limit=1000):
    """The stamped diagnosis reports in ``folder``, oldest first: those near the operator's window, else
    the newest ``limit`` (diagnosis-latest.json repeats one of them)."""
    try:
        names = sorted(n for n in os.listdir(folder) if REPORT_NAME.match(n))
    except OSError:
        return []
    if start is not None:
        def stamp(name):
            moment = datetime.strptime(REPORT_NAME.match(name).group(1), "%Y%m%dT%H%M%SZ")
            return moment.replace(tzinfo=timezone.utc).timestamp()
        names = [n for n in names if start - SLACK_S <= stamp(n) <= (end or time.time()) + SLACK_S]
    return names[-limit:]


def load_reports(folder, names):
    out = []
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                report = json.load(handle)
        except (OSError, ValueError):
            report = None
        out.append({"name": name, "report": report if isinstance(report, dict) else None})
    return out


def audit_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle
    except FileNotFoundError:
        return


def _time_arg(args, name):
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        return timestamps.parse_time(value)
    except ValueError as err:
        raise AnsibleActionFail("%s: %s (use ISO 8601 UTC, for example 2026-11-28T12:29:37Z)" % (name, err)) from None


def find_incident(args, default_host):
    """The action's result from its arguments: the evidence, or AnsibleActionFail with one line."""
    host = args.get("host") or default_host
    audit_log = os.path.abspath(os.path.expanduser(str(args.get("audit_log") or "")))
    reports_dir = os.path.abspath(os.path.expanduser(str(args.get("reports_dir") or "")))
    start, end = _time_arg(args, "incident_start"), _time_arg(args, "incident_end")
    folder = os.path.join(reports_dir, str(host))
    names = report_files(folder, start, end, int(args.get("max_reports") or 1000))
    try:
        evidence = postmortem_evidence.collect(audit_lines(audit_log), load_reports(folder, names), host, time.time(),
                                               lookback_s=float(args.get("lookback_s", 900)),
                                               merge_gap_s=float(args.get("merge_gap_s", 900)), start=start, end=end,
                                               incident_id=args.get("incident_id") or None)
    except (postmortem_evidence.NoIncident, ValueError) as err:
        raise AnsibleActionFail("no post-mortem: %s (reports read from %s, audit log %s)"
                                % (err, folder, audit_log)) from None
    w = evidence["window"]
    return {"changed": False, "evidence": evidence, "reports_read": len(names), "reports_dir": folder,
            "audit_log": audit_log, "summary": "incident %s: %s to %s (%s), %d diagnoses, %d audit records" % (
                w["incident_id"], w["start_iso"], w["end_iso"], w["end_kind"], len(evidence["diagnoses"]),
                len(evidence["audit"]))}


class ActionModule(ControllerOnly):
    def work(self, args, task_vars):
        return find_incident(args, task_vars.get("inventory_hostname"))
