# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The "Execution Stuck" post-mortem's evidence on the control node: pure functions, no Ansible, no I/O.

* ``read_audit`` / ``diagnoses_from``: the audit log's JSON lines and the diagnosis reports, garbage skipped
  and counted;
* ``failing`` / ``is_mitigation`` / ``is_alert``: what a diagnosis or an audit record means for the incident;
* ``find_window``: the incident - first failing diagnosis (minus a lookback, to see the first symptom) to
  the first HEALTHY diagnosis after a mitigation or rollback (or now), or the window an operator gives;
* ``collect``: the window and the diagnoses and audit records in it (what the ``postmortem_evidence``
  action returns).

Kept importable by Python 3.8+ (the write module checks the incident id with it on the target host).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import between, iso, parse_time

HEALTHY, INCONCLUSIVE = "HEALTHY", "INCONCLUSIVE"
KIND = "execution_stuck"
# Audit results that changed something on the system (check-mode records never count).
MITIGATIONS = {
    "restart_executor": ("restarted", "restarted_not_ready"),
    "cancel_stuck_orders": ("cancelled", "partial"),
    "emergency_stop": ("stopped", "incomplete"),
    "rollback": ("mode_changed", "reapplied"),
}
# Audit actions that record an alert (the remediation service also names the alert in its decisions).
ALERT_ACTIONS = ("alert", "alert_received", "alert_firing", "alertmanager_alert")
INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")


def incident_id_problem(incident_id):
    """Why ``incident_id`` cannot name an incident (it goes into a file's first line), or None."""
    if INCIDENT_ID.match(incident_id):
        return None
    return "incident_id must be 1-80 letters, digits, '.', '_', ':' or '-', got %r" % incident_id


def read_audit(lines, host=None):
    """(records, skipped): the audit log's records (of ``host`` when given), time-ordered and normalised
    (``ts`` in epoch seconds); lines that are not a JSON object with a valid ``ts`` and ``action`` are
    skipped and counted."""
    records, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ts = parse_time(rec["ts"])
            action = rec["action"]
            if not isinstance(action, str) or not action:
                raise ValueError("no action")
        except (ValueError, TypeError, KeyError):
            skipped += 1
            continue
        if host is not None and rec.get("host") not in (None, host):
            continue
        details = rec.get("details") if isinstance(rec.get("details"), dict) else {}
        records.append({"ts": ts, "action": action, "result": rec.get("result"),
                        "check_mode": bool(rec.get("check_mode")), "who": rec.get("who"), "details": details})
    records.sort(key=lambda r: r["ts"])
    return records, skipped


def _basename(path):
    return str(path or "").replace("\\", "/").rsplit("/", 1)[-1]


def diagnoses_from(reports, audit):
    """(diagnoses, skipped): one entry per diagnosis - {ts, verdict, findings, source} - from the report files
    (``reports``: [{name, report}], ``report`` the parsed JSON or None when unreadable) and the audit log's
    ``diagnose`` records (whose report file is missing: finding codes only). The audit record's time is
    preferred (microseconds, written just after the report)."""
    audited = {}
    for rec in audit:
        if rec["action"] == "diagnose" and not rec["check_mode"]:
            audited.setdefault(_basename(rec["details"].get("report")) or None, []).append(rec)
    out, skipped, seen = [], 0, set()
    for item in reports:
        report, name = item.get("report"), item.get("name")
        try:
            verdict = report["verdict"]
            primary = verdict["primary"]
            findings = [f for f in verdict.get("findings") or [] if isinstance(f, dict) and f.get("code")]
            ts = parse_time(report["generated_at"])
        except (TypeError, KeyError, ValueError):
            skipped += 1
            continue
        recs = audited.get(name) or []
        out.append({"ts": recs[0]["ts"] if recs else ts, "verdict": primary, "findings": findings, "source": name})
        seen.add(name)
    for name, recs in audited.items():
        if name in seen:
            continue
        for rec in recs:
            codes = rec["details"].get("findings") or []
            out.append({"ts": rec["ts"], "verdict": rec.get("result") or INCONCLUSIVE, "source": name or "audit log",
                        "findings": [{"code": str(c)} for c in codes if isinstance(c, str)]})
    out.sort(key=lambda d: d["ts"])
    return out, skipped


def failing(diagnosis):
    return diagnosis["verdict"] not in (HEALTHY, INCONCLUSIVE)


def is_mitigation(rec):
    return not rec["check_mode"] and rec["result"] in MITIGATIONS.get(rec["action"], ())


def is_alert(rec):
    """An alert that fired (a resolved alert detects nothing)."""
    details = rec["details"]
    if rec["action"] not in ALERT_ACTIONS and not (rec["action"] == "remediation_decision" and details.get("alert")):
        return False
    # qt-remediate records a resolved alert as skipped with the reason "resolved: ..."
    return str(details.get("status") or "").lower() != "resolved" and \
        not str(details.get("reason") or "").lower().startswith("resolved")


def alert_name(rec):
    alert = rec["details"].get("alert")
    if isinstance(alert, dict):
        alert = alert.get("alertname") or alert.get("name") or (alert.get("labels") or {}).get("alertname")
    return str(alert or rec["details"].get("alertname") or rec["result"] or "alert")


def _incidents(diagnoses, audit, merge_gap_s):
    """Incidents in time order: {first, diagnoses, mitigations, end (diagnosis or None), end_kind}.

    A failing diagnosis opens one; the first HEALTHY diagnosis after a mitigation closes it. A HEALTHY
    diagnosis without a mitigation closes it only if no failing one follows within ``merge_gap_s`` (flapping
    is one incident)."""
    events = [(d["ts"], 1, "diag", d) for d in diagnoses] + [(r["ts"], 0, "mit", r) for r in audit
                                                             if is_mitigation(r)]
    events.sort(key=lambda e: (e[0], e[1]))
    done, cur = [], None
    for ts, _dummy, kind, item in events:
        if kind == "mit":
            if cur is not None:
                cur["mitigations"].append(item)
            continue
        if failing(item):
            if cur is not None and cur["quiet"] is not None and ts - cur["quiet"]["ts"] > merge_gap_s:
                done.append(dict(cur, end=cur["quiet"], end_kind="healthy_without_mitigation"))
                cur = None
            if cur is None:
                cur = {"first": item, "diagnoses": [], "mitigations": [], "quiet": None}
            cur["quiet"] = None
            cur["diagnoses"].append(item)
        elif item["verdict"] == HEALTHY and cur is not None:
            if cur["mitigations"]:
                done.append(dict(cur, end=item, end_kind="healthy_after_mitigation"))
                cur = None
            elif cur["quiet"] is None:
                cur["quiet"] = item
    if cur is not None:
        ended = cur["quiet"] is not None
        done.append(dict(cur, end=cur["quiet"], end_kind="healthy_without_mitigation" if ended else "now"))
    return done


class NoIncident(Exception):
    """No failing diagnosis to anchor the incident on."""


def default_incident_id(anchor):
    return "%s-%s" % (KIND, datetime.fromtimestamp(anchor, timezone.utc).strftime("%Y%m%dT%H%M%SZ"))


def find_window(diagnoses, audit, now, lookback_s=900, start=None, end=None, merge_gap_s=900, incident_id=None):
    """The incident window and its anchor. ``start``/``end`` (epoch) are the operator's; otherwise the
    most recent incident of the diagnoses (see ``_incidents``), beginning ``lookback_s`` before its first
    failing diagnosis. Raises NoIncident or ValueError."""
    if start is not None and end is not None and end <= start:
        raise ValueError("incident_end must be after incident_start")
    if end is not None and start is None:
        raise ValueError("incident_end needs incident_start")
    scope = [d for d in diagnoses if start is None or d["ts"] >= start]
    found = _incidents(scope, [r for r in audit if start is None or r["ts"] >= start], merge_gap_s)
    if start is not None:
        inc = found[0] if found else None
        if inc is not None and end is not None and inc["first"]["ts"] > end:
            inc = None
        anchor, anchor_kind, w_start = start, "given", start
    elif found:
        inc = found[-1]
        anchor, anchor_kind = inc["first"]["ts"], "first failing diagnosis"
        w_start = anchor - max(0, lookback_s)
        before = found[-2]["end"] if len(found) > 1 else None
        if before is not None and before["ts"] >= w_start:  # the lookback stops after the previous incident
            w_start = min(anchor, before["ts"] + 0.001)
    else:
        raise NoIncident("no failing diagnosis in %d diagnoses: run diagnose.yml, or pass incident_start "
                         "(and incident_end)" % len(diagnoses))
    if end is not None:
        w_end, end_kind = end, "given"
        resolved_by = inc["end"] if inc and inc["end"] and inc["end"]["ts"] <= end else None
    elif inc is not None and inc["end"] is not None:
        w_end, end_kind, resolved_by = inc["end"]["ts"], inc["end_kind"], inc["end"]
    else:
        w_end, end_kind, resolved_by = max(now, w_start), "now", None
    problem = incident_id_problem(incident_id) if incident_id is not None else None
    if problem:
        raise ValueError(problem)
    return {
        "start": w_start, "end": w_end, "anchor": anchor, "anchor_kind": anchor_kind, "end_kind": end_kind,
        "lookback_s": 0 if anchor_kind == "given" else lookback_s,
        "first_failing": inc["first"] if inc else None, "resolved_by": resolved_by,
        "incident_id": incident_id or default_incident_id(anchor),
        "date": datetime.fromtimestamp(anchor, timezone.utc).strftime("%Y-%m-%d"),
    }


def collect(audit_lines, reports, host, now, lookback_s=900, merge_gap_s=900, start=None, end=None,
            incident_id=None):
    """Everything the control node knows about the incident: its window, the diagnoses and the audit
    records in it, and what was skipped as unreadable."""
    audit, skipped_lines = read_audit(audit_lines, host)
    diagnoses, skipped_reports = diagnoses_from(reports, audit)
    window = find_window(diagnoses, audit, now, lookback_s, start, end, merge_gap_s, incident_id)
    lo, hi = window["start"], window["end"]
    return {
        "window": dict(window, start_iso=iso(lo), end_iso=iso(hi)),
        "diagnoses": [d for d in diagnoses if between(d["ts"], lo, hi)],
        "audit": [r for r in audit if between(r["ts"], lo, hi) and r["action"] != "diagnose"],
        "skipped": {"audit_lines": skipped_lines, "reports": skipped_reports},
        "host": host,
    }
