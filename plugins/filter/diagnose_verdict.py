# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Filters that turn check results into the diagnosis (logic in module_utils/check_results.py, verdict.py and
report.py)."""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils import report
from ansible_collections.quantum.runbooks.plugins.module_utils.check_results import (
    check_result,
    executor_result,
    probe_slice,
    trace_result,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import decide, fleet_rows, fleet_table

# Documentation: one <filter name>.yml per filter beside this file (this file is named after the first;
# Galaxy lists each plugin file as a filter).


def diagnose_verdict(checks, thresholds=None, inventory="inventory/lab.yml", available_playbooks=None):
    return decide(checks or {}, thresholds or {}, inventory, available_playbooks)


def diagnosis_report(verdict, results, host, started_at, now):
    return report.record(host, verdict, results, started_at, now)


def diagnosis_summary(diagnosis, path):
    return report.summary(diagnosis, path)


def executor_health_result(read, finished_at):
    return executor_result(read, finished_at)


def correlation_trace_result(read, requested_id, finished_at, loki=None, loki_url=""):
    return trace_result(read, requested_id, finished_at, loki, loki_url)


def fleet_verdicts(reports):
    return fleet_rows(reports)


class FilterModule:
    def filters(self):
        return {"diagnose_verdict": diagnose_verdict, "fleet_verdicts": fleet_verdicts, "fleet_table": fleet_table,
                "probe_slice": probe_slice, "executor_health_result": executor_health_result,
                "check_result": check_result, "correlation_trace_result": correlation_trace_result,
                "diagnosis_report": diagnosis_report, "diagnosis_summary": diagnosis_summary}
