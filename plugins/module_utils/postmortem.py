# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The "Execution Stuck" post-mortem from evidence: pure functions, no Ansible, no I/O.

* ``read_audit`` / ``diagnoses_from``: the audit log's JSON lines and the diagnosis reports, garbage skipped
  and counted;
* ``find_window``: the incident - first failing diagnosis (minus a lookback, to see the first symptom) to
  the first HEALTHY diagnosis after a mitigation or rollback (or now), or the window an operator gives;
* ``compose``: the runbook's six fields, the timeline and the chart's series, from that evidence plus the
  executor's log events, the exchange's income history and the open positions;
* ``render_blocks`` / ``render_document`` / ``merge_document``: the Markdown, whose generated parts sit
  between ``<!-- qt:generated:<name> begin/end -->`` markers so a rerun replaces them and keeps every
  human edit outside;
* ``choose_file``: never overwrite - the same incident id updates its file, another incident of the same
  day gets ``-2``, ``-3``.

Kept importable by Python 3.8+ (the write module runs it on the target host).
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone

from ansible_collections.quantum.runbooks.plugins.module_utils.positions import amount
from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import (
    between,
    duration,
    iso,
    parse_time,
    when,
)

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
NOT_IN_TIMELINE = ("postmortem",)
ORDER_SENT = ("ORDER_SUBMIT",)
ORDER_ANSWERS = ("ORDER_RESPONSE", "ORDER_ERROR")
MAX_LISTED_ORDERS = 200
MAX_TIMELINE = 300
BUCKETS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 60
INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")
CONFIRM = "> **Confirm:** "

# ---------------------------------------------------------------- prevention, one entry per verdict code
# Reviewed suggestions for the human to keep, edit or strike. Keys: every code verdict.py can produce.
PREVENTION = {
    "OPERATOR_STOPPED": [
        "Write down in the stop's reason why trading was stopped and who may resume it; resume with "
        "resume_trading.yml only once that cause is cleared.",
        "Silence the executor alerts while a stop is in force, so a deliberate stop pages no one.",
    ],
    "TRADING_MODE_MISMATCH": [
        "Change the trading mode only with rollback.yml, which recreates the executor and verifies the running "
        "container; `docker compose restart` does not re-read `.env`.",
        "Alert when the running executor's mode differs from `.env` (diagnose reports it first).",
    ],
    "ENV_UNREADABLE": [
        "Run the diagnosis as the stack's owner (become `qt`), so `.env` can be compared with the running executor.",
    ],
    "EVENT_BUS_DOWN": [
        "Redis with persistence (AOF) and a restart policy; a memory limit with headroom so the streams are never "
        "evicted.",
        "Alert on Redis PING / `redis_up == 0` directly, before the order alerts fire.",
    ],
    "NO_SIGNALS": [
        "Alert on the age of the last entry of `quantum:stream:intent` well before NoOrdersSubmitted's 15 min.",
        "A health check on the ai-engine's data feed, so a silent feed is a finding of its own.",
    ],
    "EXECUTOR_DOWN": [
        "Restart policy `unless-stopped` for the executor, with an alert on every unplanned exit.",
        "Find the exit cause (exit code, OOM in the timeline's evidence) and fix it: memory limit, crash bug.",
    ],
    "EXECUTOR_HUNG": [
        "A liveness check on the heartbeat that restarts a hung executor (heartbeat every 5 s, act at 20 s).",
        "Hard timeouts on every blocking call (Redis, HTTP) so a hang becomes an error that is logged.",
    ],
    "GATE_BLOCKED": [
        "Execution-policy changes reviewed as code, with a dry run against recent intents before they apply.",
        "Alert on the share of GATE_BLOCKED intents, not only on missing orders.",
    ],
    "BINANCE_IP_BANNED": [
        "Every client on this IP honours `X-MBX-USED-WEIGHT-1M` and `Retry-After`; one poller per IP, websockets for "
        "live updates.",
        "Alert at 80 % of the 2400/min weight budget, before the 429 that leads to the ban.",
    ],
    "BINANCE_RATE_LIMITED": [
        "Lower the request weight (fewer polls, `symbol` on every open-orders call) and back off on 429.",
        "Alert at 80 % of the 2400/min weight budget.",
    ],
    "BINANCE_UNREACHABLE": [
        "Connect and read timeouts on every exchange call, and reconcile unknown outcomes by clientOrderId.",
        "Alert on OrderSubmitWithoutResponse within a minute; watch the network path and the exchange status.",
    ],
    "CLOCK_SKEW": [
        "NTP (chrony) on the host, with an alert when the offset passes 500 ms.",
        "Sign with the exchange's server time offset (python-binance `timestamp_offset`).",
    ],
    "BINANCE_AUTH_REJECTED": [
        "Key rotation and IP-whitelist changes follow a checklist ending in a signed canary call.",
        "Keys per trading mode in the vault (playbooks/rollback.yml), never edited by hand in .env.",
    ],
    "ORDERS_STUCK_AT_EXCHANGE": [
        "Binance's countdownCancelAll as a dead-man switch "
        "(mitigate_cancel_stuck_orders.yml -e arm_countdown_cancel=true).",
        "Time in force (GTD/IOC) on strategy orders so nothing rests for long; alert on open orders older than 5 min.",
    ],
    "ORDERS_LOST_ON_RESTART": [
        "Reconcile in-flight orders by clientOrderId at executor start (the ids are deterministic already).",
    ],
    "ENV_DRIFT": [
        "Manage .env as state (playbooks/rollback.yml, dotenv_keys) and verify the running container after changes.",
    ],
    "TRACE_INCOMPLETE": [
        "Ship every service's logs to Loki so one correlation id shows the whole flow.",
    ],
    "INCONCLUSIVE": [
        "Make every check runnable from the automation host (Docker socket, network path to Redis and Binance).",
    ],
    HEALTHY: [
        "No failing verdict in the window: describe the cause by hand and add a check that would have found it.",
    ],
}


# ---------------------------------------------------------------- evidence on the control node

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
    if incident_id is not None and not INCIDENT_ID.match(incident_id):
        raise ValueError("incident_id must be 1-80 letters, digits, '.', '_', ':' or '-', got %r" % incident_id)
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


# ---------------------------------------------------------------- the six fields

def root_cause(diagnoses):
    """The failing verdicts in the window, in order of first appearance, with the evidence of the first
    diagnosis that named each; plus the other findings seen."""
    verdicts, others = {}, {}
    for d in diagnoses:
        if not failing(d):
            continue
        entry = verdicts.get(d["verdict"])
        if entry is None:
            f = next((f for f in d["findings"] if f.get("code") == d["verdict"]), {})
            entry = verdicts[d["verdict"]] = {
                "code": d["verdict"], "summary": f.get("summary"), "step": f.get("step"),
                "evidence": list(f.get("evidence") or []), "first_seen": d["ts"], "last_seen": d["ts"],
                "diagnoses": 0, "source": d["source"]}
        entry["diagnoses"] += 1
        entry["last_seen"] = d["ts"]
        for f in d["findings"]:
            if f.get("code") not in verdicts and f.get("code") != d["verdict"]:
                others.setdefault(f["code"], {"code": f["code"], "summary": f.get("summary"), "step": f.get("step"),
                                              "evidence": list(f.get("evidence") or [])[:3]})
    for code in verdicts:
        others.pop(code, None)
    ordered = sorted(verdicts.values(), key=lambda v: v["first_seen"])
    return {"primary": ordered[0]["code"] if ordered else None, "verdicts": ordered,
            "other_findings": sorted(others.values(), key=lambda o: o["code"])}


def _events_in(logs, start, end, names):
    return [e for e in (logs or {}).get("recent_events") or []
            if e.get("event") in names and between(e.get("_log_ts"), start, end)]


def _unanswered_in(logs, start, end):
    out = []
    for key, how in (("lost_on_restart", "lost_on_restart"), ("unanswered", "unanswered")):
        for u in (logs or {}).get(key) or []:
            if between(u.get("_log_ts"), start, end):
                out.append(dict(u, how=how))
    return sorted(out, key=lambda u: u["_log_ts"])


def first_symptom(logs, window, detected_ts):
    """When it started: the first ORDER_SUBMIT that got no answer or an ORDER_ERROR (at its submit time),
    else the last order before the orders stopped (NoOrdersSubmitted; the first GATE_BLOCKED after it when
    the gate stopped them), all between the window start and detection; else unknown (the first failing
    diagnosis stands in)."""
    lo, hi = window["start"], detected_ts if detected_ts is not None else window["end"]
    found = [(u["_log_ts"], {"ts": u["_log_ts"], "kind": "unanswered_submit", "correlation_id": u.get("correlation_id"),
                             "text": "first ORDER_SUBMIT without an answer (correlation_id %s, %s)"
                                     % (u.get("correlation_id"), u.get("symbol"))})
             for u in _unanswered_in(logs, lo, hi)]
    submitted = {e.get("correlation_id"): e["_log_ts"] for e in _events_in(logs, lo - 3600, hi, ORDER_SENT)}
    for e in _events_in(logs, lo, hi, ("ORDER_ERROR",)):
        cid = e.get("correlation_id")
        since = submitted.get(cid, e["_log_ts"])
        text = "first ORDER_SUBMIT answered by ORDER_ERROR %s after %s (correlation_id %s)" % (
            e.get("error_code"), duration(e["_log_ts"] - since), cid)
        found.append((since, {"ts": since, "kind": "order_error", "correlation_id": cid, "text": text}))
    if found:
        return min(found, key=lambda f: f[0])[1]
    orders = _events_in(logs, lo, hi, ("ORDER_SUBMIT", "ORDER_RESPONSE", "WOULD_SUBMIT"))
    if orders:
        last = orders[-1]
        blocked = _events_in(logs, last["_log_ts"], hi, ("GATE_BLOCKED",))
        if blocked:
            b = blocked[0]
            return {"ts": b["_log_ts"], "kind": "gate_blocked", "correlation_id": b.get("correlation_id"),
                    "text": "first GATE_BLOCKED after the last order (%s, correlation_id %s)"
                            % (b.get("reason"), b.get("correlation_id"))}
        return {"ts": last["_log_ts"], "kind": "last_order", "correlation_id": last.get("correlation_id"),
                "text": "last order before the orders stopped (NoOrdersSubmitted): %s, correlation_id %s"
                        % (last.get("event"), last.get("correlation_id"))}
    anchor = window.get("first_failing") or {}
    return {"ts": anchor.get("ts"), "kind": "unknown", "correlation_id": None,
            "text": "no order event in the executor's logs before detection: the first failing diagnosis stands in"}


def detection(window, audit, diagnoses, symptom):
    """First alert or first failing diagnosis, whichever came first, and how long after the symptom."""
    candidates = [(r["ts"], "alert %s" % alert_name(r)) for r in audit if is_alert(r)]
    candidates += [(d["ts"], "diagnosis %s" % d["verdict"]) for d in diagnoses if failing(d)][:1]
    if not candidates:
        return {"ts": None, "by": None, "duration_s": None}
    ts, by = min(candidates)
    since = symptom.get("ts")
    return {"ts": ts, "by": by, "duration_s": ts - since if since is not None else None}


def resolution(window, audit, detected):
    """The first HEALTHY diagnosis after a mitigation or rollback, and the mitigations before it."""
    done = window.get("resolved_by")
    cutoff = done["ts"] if done else window["end"]
    mitigations = [{"ts": r["ts"], "action": r["action"], "result": r["result"]} for r in audit
                   if is_mitigation(r) and r["ts"] <= cutoff]
    resolved = window["end_kind"] in ("healthy_after_mitigation", "healthy_without_mitigation") or (
        window["end_kind"] == "given" and done is not None)
    ts = done["ts"] if done else None
    return {"ts": ts, "resolved": resolved, "end_kind": window["end_kind"], "mitigations": mitigations,
            "duration_s": ts - detected["ts"] if ts is not None and detected.get("ts") is not None else None,
            "by": done["source"] if done else None}


def orders_affected(logs, audit, window, logs_error=None):
    """Orders submitted without an answer, cancelled (the cancel mitigation's audit records) or errored in
    the window, one row per order (by correlation id, else client order id)."""
    lo, hi = window["start"], window["end"]
    submits = {}
    for e in _events_in(logs, lo - 3600, hi, ORDER_SENT):  # an order cancelled in the window may be older
        submits[e.get("correlation_id")] = e
    by_client = {e.get("client_order_id"): cid for cid, e in submits.items() if e.get("client_order_id")}
    rows = {}

    def row(cid, client_id=None, symbol=None):
        key = cid or "client:%s" % client_id
        sub = submits.get(cid) or {}
        found = rows.setdefault(key, {"correlation_id": cid, "client_order_id": client_id or sub.get("client_order_id"),
                                      "symbol": symbol or sub.get("symbol"), "submitted_at": sub.get("_log_ts"),
                                      "how": [], "order_id": None, "error_code": None, "kinds": []})
        found["symbol"] = found["symbol"] or symbol
        found["client_order_id"] = found["client_order_id"] or client_id
        return found

    for u in _unanswered_in(logs, lo, hi):
        r = row(u.get("correlation_id"), symbol=u.get("symbol"))
        r["submitted_at"] = r["submitted_at"] or u["_log_ts"]
        r["how"].append("no answer, lost on restart" if u["how"] == "lost_on_restart" else "no answer")
        r["kinds"].append(u["how"])
    for e in _events_in(logs, lo, hi, ("ORDER_ERROR",)):
        r = row(e.get("correlation_id"), e.get("client_order_id"))
        r["how"].append("error %s" % e.get("error_code"))
        r["error_code"] = e.get("error_code")
        r["kinds"].append("errored")
    for rec in audit:
        if rec["action"] != "cancel_stuck_orders" or not is_mitigation(rec):
            continue
        for o in rec["details"].get("orders") or []:
            if not isinstance(o, dict) or o.get("outcome") != "cancelled":
                continue
            client_id = o.get("clientOrderId")
            r = row(by_client.get(client_id), client_id, o.get("symbol"))
            r["how"].append("cancelled (orderId %s)" % o.get("orderId"))
            r["order_id"] = o.get("orderId")
            r["kinds"].append("cancelled")
    # each order counts once per kind (a re-sent intent may error twice); an order can be of two kinds
    counts = {k: sum(1 for r in rows.values() if k in r["kinds"])
              for k in ("unanswered", "lost_on_restart", "cancelled", "errored")}
    listed = sorted(rows.values(), key=lambda r: (r["submitted_at"] is None, r["submitted_at"] or 0,
                                                  str(r["correlation_id"] or r["client_order_id"])))
    logged = sum((logs or {}).get("event_counts", {}).get(n, 0) for n in ("ORDER_SUBMIT", "ORDER_RESPONSE",
                                                                          "ORDER_ERROR", "GATE_BLOCKED",
                                                                          "WOULD_SUBMIT"))
    return {"count": len(rows), "counts": counts, "orders": listed[:MAX_LISTED_ORDERS],
            "listed_all": len(listed) <= MAX_LISTED_ORDERS,
            "logs": "unavailable: %s" % logs_error if logs_error else (
                "complete" if len((logs or {}).get("recent_events") or []) >= logged else
                "truncated: only the last %d order events were read" % len(logs.get("recent_events") or []))}


def signed(value):
    """'+1.5', '-0.2' or '0' for a decimal string; anything else as it is."""
    number = amount(value)
    if number is None:
        return str(value)
    text = format(number.normalize(), "f") if number != 0 else "0"
    return text if text.startswith("-") or text == "0" else "+" + text


def pnl(income, positions, window, audit):
    """PnL in the window from the income module's result and the open positions (or why it is unknown)."""
    income = income or {}
    rollbacks = [r for r in audit if r["action"] == "rollback" and is_mitigation(r)]
    base = {"start": window["start"], "end": window["end"], "warnings": []}
    if rollbacks:
        base["warnings"].append("the trading mode changed in the window (%s): the income was read with the "
                                "executor's current settings, which may be another account"
                                % ", ".join("%s->%s" % (r["details"].get("mode_from"), r["details"].get("mode_to"))
                                            for r in rollbacks))
    if income.get("status") not in ("ok", "partial"):
        reason = income.get("reason") or income.get("msg") or "the income history was not read"
        if income.get("skipped"):
            reason = "the exchange was not asked (postmortem_exchange=false)"
        return dict(base, status="unknown", reason=reason, net={}, by_type={}, by_symbol={}, records=None,
                    positions=None, personality=income.get("personality"), endpoint=income.get("endpoint"))
    if income.get("status") == "partial":
        base["warnings"].append("partial: %s" % income.get("reason"))
    out = dict(base, status=income["status"], reason=income.get("reason"), net=income.get("net") or {},
               by_type=income.get("totals_by_type") or {}, by_symbol=income.get("totals_by_symbol") or {},
               records=income.get("count"), personality=income.get("personality"), endpoint=income.get("endpoint"))
    positions = positions or {}
    out["positions_now"] = window["end_kind"] == "now"
    if positions.get("skipped") or not positions:
        out["positions"] = None
        out["positions_reason"] = "the exchange shows only current positions, not those of the window"
    elif positions.get("failed") or positions.get("positions") is None:
        out["positions"] = None
        out["positions_reason"] = positions.get("msg") or positions.get("summary") or "positions not read"
    else:
        out["positions"] = [{k: p.get(k) for k in ("symbol", "side", "positionAmt", "entryPrice", "markPrice",
                                                   "unRealizedProfit")} for p in positions["positions"]]
    return out


def prevention(root):
    """Suggestions from the reviewed table for the verdicts (and other findings) seen."""
    codes = [v["code"] for v in root["verdicts"]] + [o["code"] for o in root["other_findings"]]
    codes = [c for c in codes if c in PREVENTION] or [HEALTHY]
    return [{"code": c, "items": list(PREVENTION[c])} for c in codes]


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
    for e in _events_in(logs, lo, hi, ORDER_SENT + ORDER_ANSWERS):
        i = min(n - 1, int((e["_log_ts"] - lo) // bucket))
        out["submitted" if e["event"] == "ORDER_SUBMIT" else "answered"][i] += 1
        if e["event"] == "ORDER_ERROR":
            out["errors"][i] += 1
    return out


def compose(evidence, logs=None, income=None, positions=None, logs_error=None):
    """The whole post-mortem as data: the six fields, timeline, series and warnings."""
    window, diagnoses, audit = evidence["window"], evidence["diagnoses"], evidence["audit"]
    root = root_cause(diagnoses)
    first_diag = next((d["ts"] for d in diagnoses if failing(d)), None)
    detected = detection(window, audit, diagnoses, {})
    symptom = first_symptom(None if logs_error else logs, window, detected["ts"] or first_diag)
    detected = detection(window, audit, diagnoses, symptom)
    resolved = resolution(window, audit, detected)
    warnings = []
    if evidence["skipped"]["audit_lines"]:
        warnings.append("%d audit log lines were unreadable and skipped" % evidence["skipped"]["audit_lines"])
    if evidence["skipped"]["reports"]:
        warnings.append("%d diagnosis reports were unreadable and skipped" % evidence["skipped"]["reports"])
    orders = orders_affected(None if logs_error else logs, audit, window, logs_error)
    if orders["logs"] != "complete":
        warnings.append("executor logs %s" % orders["logs"])
    marks = [{"ts": detected["ts"], "label": "detected"}, {"ts": resolved["ts"], "label": "resolved"}]
    return {
        "incident_id": window["incident_id"], "host": evidence["host"], "date": window["date"], "window": window,
        "root_cause": root, "symptom": symptom, "detection": detected, "resolution": resolved, "orders": orders,
        "pnl": pnl(income, positions, window, audit), "prevention": prevention(root),
        "timeline": timeline(diagnoses, audit, symptom, detected),
        "series": series(None if logs_error else logs, window, marks), "warnings": warnings,
    }


# ---------------------------------------------------------------- one line per field

def field_lines(pm):
    """The six fields in one line each (the play's summary)."""
    root, det, res, orders, money = pm["root_cause"], pm["detection"], pm["resolution"], pm["orders"], pm["pnl"]
    first = root["verdicts"][0] if root["verdicts"] else None
    causes = ", ".join(v["code"] for v in root["verdicts"])
    c = orders["counts"]
    return [
        "1. Root cause: %s" % ("%s - %s%s" % (first["code"], first["summary"] or "see evidence",
                                              " (also %s)" % causes if len(root["verdicts"]) > 1 else "")
                               if first else "no failing verdict in the window - fill in by hand"),
        "2. Detection time: %s after the first symptom (%s -> %s, by %s)" % (
            duration(det["duration_s"]), when(pm["symptom"]["ts"]), when(det["ts"]), det["by"] or "nothing"),
        "3. Resolution time: %s" % ("%s after detection (%s, after %s)" % (
            duration(res["duration_s"]), when(res["ts"]),
            ", ".join("%s %s" % (m["action"], m["result"]) for m in res["mitigations"]) or "no recorded mitigation")
            if res["resolved"] else "not resolved (no HEALTHY diagnosis after a mitigation yet)"),
        "4. Orders affected: %d (%d without answer, %d lost on restart, %d cancelled, %d errored)%s" % (
            orders["count"], c["unanswered"], c["lost_on_restart"], c["cancelled"], c["errored"],
            "" if orders["logs"] == "complete" else "; logs %s" % orders["logs"]),
        "5. PnL impact: %s" % (money_text(money) if money["status"] != "unknown" else "unknown - %s" % money["reason"]),
        "6. Prevention: %s" % "; ".join("%s: %d suggestions" % (p["code"], len(p["items"])) for p in pm["prevention"]),
    ]


def money_text(money):
    net = ", ".join("%s %s" % (signed(v), a) for a, v in sorted(money["net"].items())) or "0"
    parts = ", ".join("%s %s" % (t, ", ".join("%s %s" % (signed(v), a) for a, v in sorted(by.items())))
                      for t, by in sorted(money["by_type"].items()))
    return "net %s in the window from %d income records%s%s" % (
        net, money["records"] or 0, " (%s)" % parts if parts else "",
        "; PARTIAL" if money["status"] == "partial" else "")


# ---------------------------------------------------------------- Markdown

BLOCKS = ("summary", "root_cause", "detection", "resolution", "orders_affected", "pnl_impact", "prevention",
          "timeline", "chart")
TITLES = {
    "root_cause": "1. Root cause", "detection": "2. Detection time", "resolution": "3. Resolution time",
    "orders_affected": "4. Orders affected", "pnl_impact": "5. PnL impact", "prevention": "6. Prevention",
    "timeline": "Timeline", "chart": "Orders submitted vs answered",
}
HUMAN_PROMPT = {
    "root_cause": "Why did it happen (deploy, config change, upstream outage)? Confirm or correct the verdict.",
    "detection": "Confirm the first symptom and when a human was paged.",
    "resolution": "Confirm what fixed it and when trading was normal again.",
    "orders_affected": "Confirm the list against the exchange; note any order re-placed by hand.",
    "pnl_impact": "Confirm the figures with finance; add the cost of missed trades if relevant.",
    "prevention": "Keep, edit or strike the suggestions; add owners and due dates.",
}
CHART_TOKEN = "@@QT_CHART_FILE@@"
_BEGIN = "<!-- qt:generated:%s begin -->"
_END = "<!-- qt:generated:%s end -->"
_ID_LINE = re.compile(r"<!-- qt:postmortem incident_id=([A-Za-z0-9._:-]+) -->")


def _safe(text):
    """Evidence text inside our Markdown: no marker can be forged, no table broken."""
    return str(text).replace("<!--", "&lt;!--").replace("-->", "--&gt;").replace("\r", " ").replace("\n", " ")


def _cell(text):
    return _safe("" if text is None else text).replace("|", "\\|")


def _md_root(pm):
    root = pm["root_cause"]
    if not root["verdicts"]:
        return "**Prefilled:** no failing diagnosis in the window - the cause must be written by hand."
    lines = []
    for i, v in enumerate(root["verdicts"]):
        head = "**Prefilled:** " if i == 0 else "Then: "
        seen = "1 diagnosis at %s" % when(v["first_seen"]) if v["diagnoses"] == 1 else \
            "%d diagnoses from %s to %s" % (v["diagnoses"], when(v["first_seen"]), when(v["last_seen"]))
        lines.append("%s`%s` - %s (runbook %s); the primary verdict of %s (`%s`)." % (
            head, v["code"], _safe(v["summary"] or "no summary recorded"), _safe(v["step"] or "step unknown"),
            seen, _safe(v["source"])))
        lines += ["", "Evidence:", ""] + ["- %s" % _safe(e) for e in v["evidence"][:8]] + [""] if v["evidence"] \
            else ["", "Evidence: only the finding codes were recorded (audit log).", ""]
    if root["other_findings"]:
        lines.append("Also found: " + "; ".join("`%s` %s" % (o["code"], _safe(o["summary"] or ""))
                                                for o in root["other_findings"]) + ".")
    return "\n".join(lines).strip()


def _md_detection(pm):
    s, d = pm["symptom"], pm["detection"]
    return "\n".join([
        "**Prefilled:** %s after the first symptom." % duration(d["duration_s"]), "",
        "- First symptom: %s - %s" % (when(s["ts"]), _safe(s["text"])),
        "- Detected: %s - %s" % (when(d["ts"]), _safe(d["by"] or "not detected")),
    ])


def _md_resolution(pm):
    r = pm["resolution"]
    if r["resolved"]:
        head = "**Prefilled:** %s after detection; HEALTHY again at %s (`%s`)." % (
            duration(r["duration_s"]), when(r["ts"]), _safe(r["by"]))
    elif r["end_kind"] == "given":
        head = "**Prefilled:** no HEALTHY diagnosis after a mitigation before the given end (%s)." % \
            when(pm["window"]["end"])
    else:
        head = "**Prefilled:** not resolved when this was written (no HEALTHY diagnosis after a mitigation)."
    lines = [head, ""]
    if r["end_kind"] == "healthy_without_mitigation":
        lines += ["No mitigation or rollback was recorded: it recovered on its own, or was fixed by hand.", ""]
    lines += ["- %s - %s: %s" % (when(m["ts"]), m["action"], m["result"]) for m in r["mitigations"]] or \
        ["- no mitigation or rollback in the audit log"]
    return "\n".join(lines)


def _md_orders(pm):
    o = pm["orders"]
    c = o["counts"]
    lines = ["**Prefilled:** %d orders - %d submitted without an answer, %d lost on an executor restart, "
             "%d cancelled, %d errored." % (o["count"], c["unanswered"], c["lost_on_restart"], c["cancelled"],
                                            c["errored"])]
    if o["logs"] != "complete":
        lines += ["", "Executor logs %s: the count may be low." % _safe(o["logs"])]
    if o["orders"]:
        lines += ["", "| correlation id | symbol | client order id | submitted | what happened |",
                  "|---|---|---|---|---|"]
        lines += ["| %s | %s | %s | %s | %s |" % (_cell(r["correlation_id"]), _cell(r["symbol"]),
                                                  _cell(r["client_order_id"]), when(r["submitted_at"]),
                                                  _cell("; ".join(r["how"]))) for r in o["orders"]]
        if not o["listed_all"]:
            lines += ["", "Only the first %d are listed." % MAX_LISTED_ORDERS]
    return "\n".join(lines)


def _md_pnl(pm):
    m = pm["pnl"]
    span = "from %s to %s UTC" % (when(m["start"]), when(m["end"]))
    if m["status"] == "unknown":
        lines = ["**Prefilled:** unknown - %s." % _safe(m["reason"]), "",
                 "Fill in by hand from the exchange's income history (`GET /fapi/v1/income`) %s." % span]
    else:
        lines = ["**Prefilled:** %s." % _safe(money_text(m)), ""]
        if m["by_type"]:
            lines += ["| income type | amount |", "|---|---|"] + [
                "| %s | %s |" % (_cell(t), ", ".join("%s %s" % (signed(v), a) for a, v in sorted(by.items())))
                for t, by in sorted(m["by_type"].items())] + [""]
        if m["by_symbol"]:
            lines += ["By symbol: " + "; ".join("%s %s" % (s or "(none)", ", ".join(
                "%s %s" % (signed(v), a) for a, v in sorted(by.items()))) for s, by in sorted(m["by_symbol"].items())),
                ""]
        lines += ["Includes: every income record the exchange booked for the account %s (`%s`, %s) - "
                  "realized PnL of fills, commissions, funding fees and any other income type above. The window "
                  "also covers normal trading before the first symptom." % (
                      span, m["personality"] or "?", _safe(m["endpoint"] or "?")),
                  "Excludes: unrealized PnL of open positions (at the mark price, below when read), the "
                  "opportunity cost of orders that never reached the exchange, and fills after the window."]
        if m["positions"] is None:
            lines += ["", "Open positions: not read (%s)." % _safe(m.get("positions_reason"))]
        elif m["positions"]:
            lines += ["", "Open positions %s: " % ("now" if m["positions_now"] else "when written (after the window)")
                      + "; ".join("%s %s %s, uPnL %s" % (
                          p["symbol"], p["side"], p["positionAmt"], signed(p["unRealizedProfit"]))
                          for p in m["positions"])]
        else:
            lines += ["", "Open positions %s: none." % ("now" if m["positions_now"] else "when written")]
    lines += [""] + ["Warning: %s." % _safe(w) for w in m["warnings"]] if m["warnings"] else []
    return "\n".join(lines)


def _md_prevention(pm):
    lines = ["**Prefilled** from the reviewed table (keyed to the verdict):", ""]
    for p in pm["prevention"]:
        lines += ["- [ ] `%s`: %s" % (p["code"], item) for item in p["items"]]
    return "\n".join(lines)


def _md_timeline(pm):
    rows = ["| time (UTC) | kind | event | who |", "|---|---|---|---|"]
    rows += ["| %s | %s | %s | %s |" % (when(t["ts"]), t["kind"], _cell(t["text"]), _cell(t.get("who") or ""))
             for t in pm["timeline"]]
    return "\n".join(rows) if pm["timeline"] else "No diagnosis or audit record in the window."


def _md_chart(pm):
    s = pm["series"]
    return "\n".join([
        "![Orders submitted vs answered](%s)" % CHART_TOKEN, "",
        "Per %s from %s: %d ORDER_SUBMIT, %d answered (ORDER_RESPONSE or ORDER_ERROR, %d errors)." % (
            duration(s["bucket_s"]), when(s["start"]), sum(s["submitted"]), sum(s["answered"]), sum(s["errors"])),
    ])


def _md_summary(pm):
    w = pm["window"]
    rows = [
        "# Post-mortem: Execution Stuck - %s" % pm["date"], "",
        "| | |", "|---|---|",
        "| Incident id | `%s` |" % pm["incident_id"],
        "| Host | %s |" % _cell(pm["host"]),
        "| Window (UTC) | %s to %s (%s) |" % (when(w["start"]), when(w["end"]), duration(w["end"] - w["start"])),
        "| Window from | %s%s |" % ("operator" if w["anchor_kind"] == "given" else "first failing diagnosis",
                                    " minus %s lookback" % duration(w["lookback_s"]) if w["lookback_s"] else ""),
        "| Window to | %s |" % {"healthy_after_mitigation": "first HEALTHY diagnosis after a mitigation",
                                "healthy_without_mitigation": "first HEALTHY diagnosis (no mitigation recorded)",
                                "given": "operator", "now": "now (not resolved)"}[w["end_kind"]],
        "| Status | DRAFT - prefilled from evidence; every field needs a human's confirmation |",
    ]
    rows += ["", "In one line each:", ""] + ["- %s" % _safe(line) for line in field_lines(pm)]
    rows += [""] + ["Warning: %s." % _safe(w) for w in pm["warnings"]] if pm["warnings"] else []
    return "\n".join(rows)


RENDER = {"summary": _md_summary, "root_cause": _md_root, "detection": _md_detection, "resolution": _md_resolution,
          "orders_affected": _md_orders, "pnl_impact": _md_pnl, "prevention": _md_prevention,
          "timeline": _md_timeline, "chart": _md_chart}


def render_blocks(pm, chart_error=None):
    """{block name: Markdown} - the generated parts, without their markers."""
    blocks = {name: RENDER[name](pm) for name in BLOCKS}
    if chart_error:
        blocks["chart"] = "No chart: %s." % _safe(chart_error)
    return blocks


def _wrap(name, text):
    return "%s\n%s\n%s" % (_BEGIN % name, text.strip("\n"), _END % name)


def render_document(blocks, incident_id, chart_file):
    """A new post-mortem: the generated blocks, each field followed by a place for the human."""
    parts = ["<!-- qt:postmortem incident_id=%s -->" % incident_id,
             "<!-- Generated by playbooks/postmortem.yml. A rerun for this incident id rewrites only the text "
             "between qt:generated markers; write outside them (or delete a block's markers to keep it as "
             "yours). -->", "", _wrap("summary", blocks["summary"]), ""]
    for name in BLOCKS[1:]:
        parts += ["## %s" % TITLES[name], "", _wrap(name, blocks[name]), ""]
        if name in HUMAN_PROMPT:
            parts += [CONFIRM + HUMAN_PROMPT[name], "", "_Human notes:_", ""]
    parts += ["## Follow-up actions", "", "- [ ] (owner, due date)", ""]
    return "\n".join(parts).replace(CHART_TOKEN, chart_file)


def incident_of(text):
    """The incident id recorded at the top of a post-mortem, or None."""
    match = _ID_LINE.search(text[:4096])
    return match.group(1) if match else None


def merge_document(existing, blocks, chart_file):
    """(new text, blocks kept as the human's): every generated block of ``existing`` replaced, the rest
    (human edits) untouched. A block whose markers were removed (or broken) belongs to the human now."""
    text, kept = existing, []
    for name in BLOCKS:
        begin, end = _BEGIN % name, _END % name
        i = text.find(begin)
        j = text.find(end, i + len(begin)) if i >= 0 else -1
        if i < 0 or j < 0 or text.count(begin) != 1:
            kept.append(name)
            continue
        text = text[:i] + _wrap(name, blocks[name].replace(CHART_TOKEN, chart_file)) + text[j + len(end):]
    return text, kept


FILE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})_%s(?:-(\d+))?\.md$" % KIND)
MAX_SAME_DAY = 99


def choose_file(date, incident_id, existing):
    """(file name, is it the incident's own file). ``existing``: {name: first bytes of its text} of the
    post-mortems in the directory. The incident's own file wins; else the first free name of ``date``:
    ``<date>_execution_stuck.md``, then ``-2``, ``-3``... Never an existing file of another incident."""
    for name in sorted(existing):
        if FILE_RE.match(name) and incident_of(existing[name] or "") == incident_id:
            return name, True
    for n in range(1, MAX_SAME_DAY + 1):
        name = "%s_%s%s.md" % (date, KIND, "" if n == 1 else "-%d" % n)
        if name not in existing and chart_name(name) not in existing:
            return name, False
    raise ValueError("%d post-mortems on %s already: clean up the directory" % (MAX_SAME_DAY, date))


def chart_name(md_name):
    """The chart beside a post-mortem: the same name with .png."""
    return md_name[:-3] + ".png" if md_name.endswith(".md") else md_name + ".png"
