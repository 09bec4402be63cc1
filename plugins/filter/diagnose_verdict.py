# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Filters that turn check results into the diagnosis (logic in module_utils/verdict.py)."""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.check_results import executor_result
from ansible_collections.quantum.runbooks.plugins.module_utils.trace import timeline
from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import STEPS, decide, fleet_rows, fleet_table

# Documentation: one <filter name>.yml per filter beside this file (this file is named after the first;
# Galaxy lists each plugin file as a filter).


def diagnose_verdict(checks, thresholds=None, inventory="inventory/lab.yml", available_playbooks=None):
    return decide(checks or {}, thresholds or {}, inventory, available_playbooks)


def check_summaries(results, findings, started_at):
    """Per check: status, the runbook step, its evidence (the raw result) and how long it took."""
    out, previous = {}, float(started_at)
    for name in ("executor", "binance", "event_bus", "trace"):
        result = results.get(name)
        if not result:
            out[name] = {"status": "skipped", "step": STEPS[name], "evidence": None, "duration_s": None}
            continue
        finished = float(result.get("finished_at") or previous)
        codes = [f["code"] for f in findings if f["check"] == name]
        status = "error" if result.get("check_error") else "finding" if codes else "ok"
        out[name] = {"status": status, "step": STEPS[name], "findings": codes,
                     "duration_s": round(max(finished - previous, 0.0), 2),
                     "evidence": {k: v for k, v in result.items() if k != "finished_at"}}
        previous = finished
    return out


def executor_health_result(read, finished_at):
    return executor_result(read, finished_at)


def fleet_verdicts(reports):
    return fleet_rows(reports)


def correlation_timeline(events_by_service, correlation_id):
    return timeline(events_by_service, correlation_id)


class FilterModule:
    def filters(self):
        return {"diagnose_verdict": diagnose_verdict, "correlation_timeline": correlation_timeline,
                "check_summaries": check_summaries, "fleet_verdicts": fleet_verdicts,
                "fleet_table": fleet_table,
                "executor_health_result": executor_health_result}
