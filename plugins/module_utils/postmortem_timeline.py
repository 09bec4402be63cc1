# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The post-mortem's timeline and chart series, and the executor's log events in a span: pure functions,
no Ansible, no I/O.

* ``events_in`` / ``unanswered_in``: the executor's order events (``container_logs``' result) in a span;
* ``timeline``: diagnoses, mitigations, rollbacks, remediation decisions and alerts, in time order;
* ``series``: orders submitted vs answered per bucket (what ``postmortem_chart`` draws).
"""
from __future__ import annotations

import math

from ansible_collections.quantum.runbooks.plugins.module_utils.postmortem_evidence import is_alert, is_mitigation
from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import between

NOT_IN_TIMELINE = ("postmortem",)
ORDER_SENT = ("ORDER_SUBMIT",)
ORDER_ANSWERS = ("ORDER_RESPONSE", "ORDER_ERROR")
MAX_TIMELINE = 300
BUCKETS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 60


def events_in(logs, start, end, names):
    return [e for e in (logs or {}).get("recent_events") or []
            if e.get("event") in names and between(e.get("_log_ts"), start, end)]


def unanswered_in(logs, start, end):
    out = []
    for key, how in (("lost_on_restart", "lost_on_restart"), ("unanswered", "unanswered")):
        for u in (logs or {}).get(key) or []:
            if between(u.get("_log_ts"), start, end):
                out.append(dict(u, how=how))
    return sorted(out, key=lambda u: u["_log_ts"])


def timeline(diagnoses, audit, symptom, detected):
    """Diagnoses, mitigations, rollbacks, remediation decisions and alerts, in time order."""
    rows = []
    if symptom.get("ts") is not None and symptom["kind"] != "unknown":
        rows.append({"ts": symptom["ts"], "kind": "symptom", "text": symptom["text"]})
    for d in diagnoses:
        codes = [f["code"] for f in d["findings"] if f.get("code") != d["verdict"]]
        rows.append({"ts": d["ts"], "kind": "diagnosis", "text": "diagnose: %s%s (%s)" % (
            d["verdict"], "; also %s" % ", ".join(codes) if codes else "", d["source"])})
    for r in audit:
        if r["action"] in NOT_IN_TIMELINE:
            continue
        kind = "alert" if is_alert(r) else "mitigation" if is_mitigation(r) else "decision" if \
            r["action"] == "remediation_decision" else "record"
        text = "%s: %s%s" % (r["action"], r["result"], _details_text(r))
        if r["check_mode"]:
            text += " (check mode: a plan, nothing changed)"
        rows.append({"ts": r["ts"], "kind": kind, "text": text, "who": r.get("who")})
    rows.sort(key=lambda x: x["ts"])
    if len(rows) > MAX_TIMELINE:
        half = MAX_TIMELINE // 2
        rows = rows[:half] + [{"ts": rows[half]["ts"], "kind": "omitted",
                               "text": "... %d entries omitted ..." % (len(rows) - 2 * half)}] + rows[-half:]
    return rows


def _details_text(rec):
    d = rec["details"]
    if rec["action"] == "cancel_stuck_orders":
        done = [o for o in d.get("orders") or [] if isinstance(o, dict) and o.get("outcome") == "cancelled"]
        return " - %d orders cancelled" % len(done)
    if rec["action"] == "rollback":
        return " - %s -> %s" % (d.get("mode_from"), d.get("mode_to"))
    if rec["action"] == "restart_executor":
        return " - verdict before: %s" % (d.get("verdict_before") or d.get("verdict"))
    if rec["action"] == "remediation_decision" or is_alert(rec):
        parts = ["%s=%s" % (k, d[k]) for k in ("alert", "verdict", "playbook", "reason") if d.get(k)]
        return " - " + ", ".join(str(p) for p in parts) if parts else ""
    return ""


def series(logs, window, marks=()):
    """Orders submitted vs answered (ORDER_RESPONSE + ORDER_ERROR) per bucket over the window."""
    lo, hi = window["start"], window["end"]
    span = max(hi - lo, 1.0)
    bucket = next((b for b in BUCKETS_S if math.ceil(span / b) <= MAX_BUCKETS), BUCKETS_S[-1])
    n = max(1, int(math.ceil(span / bucket)))
    out = {"start": lo, "bucket_s": bucket, "submitted": [0] * n, "answered": [0] * n, "errors": [0] * n,
           "marks": [m for m in marks if m.get("ts") is not None and lo <= m["ts"] <= hi]}
    for e in events_in(logs, lo, hi, ORDER_SENT + ORDER_ANSWERS):
        i = min(n - 1, int((e["_log_ts"] - lo) // bucket))
        out["submitted" if e["event"] == "ORDER_SUBMIT" else "answered"][i] += 1
        if e["event"] == "ORDER_ERROR":
            out["errors"][i] += 1
    return out
