# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The diagnosis report of one host: its record (what the Markdown, the JSON, the audit and the fleet table
read) and the lines the on-call reads at the end of the play. Pure: the report role calls it through filters,
one Python call instead of a template per field."""
from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import STEPS

CHECKS = ("executor", "binance", "event_bus", "trace")
VERDICT_FIELDS = ("primary", "findings", "recommended", "missing_checks", "thresholds")


def check_summaries(results, findings, started_at):
    """Per check: status, the runbook step, its evidence (the raw result) and how long it took."""
    out, previous = {}, float(started_at)
    for name in CHECKS:
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


def record(host, verdict, results, started_at, now):
    """The report of `host`: when (UTC), how long since `started_at`, the verdict and each check's summary."""
    return {
        "host": host,
        "generated_at": datetime.fromtimestamp(float(now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(float(now) - float(started_at), 2),
        "verdict": {k: verdict.get(k) for k in VERDICT_FIELDS},
        "checks": check_summaries(results or {}, verdict.get("findings") or [], started_at),
    }


def summary(report, path):
    """The play's last words for this host: the verdict and its summary, up to 4 lines of its evidence, the
    other findings, what to do next (and the command), and where the report is."""
    verdict = report["verdict"]
    findings, primary = verdict.get("findings") or [], verdict.get("primary")
    first = next((f for f in findings if f.get("code") == primary), {})
    others = []
    for f in findings:
        if f.get("code") != primary and f.get("code") not in others:
            others.append(f.get("code"))
    recommended = verdict.get("recommended") or {}
    return (["VERDICT: %s%s" % (primary, (" - " + first["summary"]) if first.get("summary") else "")]
            + ["  - %s" % e for e in (first.get("evidence") or [])[:4]]
            + ["other findings: " + (", ".join(others) or "none"), "next: %s" % recommended.get("action")]
            + (["run:  " + recommended["command"]] if recommended.get("command") else [])
            + ["report: " + path])
