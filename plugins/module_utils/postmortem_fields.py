# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The "Execution Stuck" post-mortem as data: the runbook's six fields, the timeline and the chart's series,
composed from the evidence (``postmortem_evidence.collect``) plus the executor's log events, the exchange's
income history and the open positions. Pure functions, no Ansible, no I/O.

* ``compose``: the whole post-mortem (what ``postmortem_render`` turns into Markdown);
* ``root_cause`` / ``first_symptom`` / ``detection`` / ``resolution`` / ``orders_affected`` / ``pnl`` /
  ``prevention``: one field each; ``PREVENTION`` is the reviewed table of suggestions.
"""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.postmortem_evidence import (
    HEALTHY,
    alert_name,
    failing,
    is_alert,
    is_mitigation,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.postmortem_timeline import (
    ORDER_SENT,
    events_in,
    series,
    timeline,
    unanswered_in,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import duration

MAX_LISTED_ORDERS = 200

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


def first_symptom(logs, window, detected_ts):
    """When it started: the first ORDER_SUBMIT that got no answer or an ORDER_ERROR (at its submit time),
    else the last order before the orders stopped (NoOrdersSubmitted; the first GATE_BLOCKED after it when
    the gate stopped them), all between the window start and detection; else unknown (the first failing
    diagnosis stands in)."""
    lo, hi = window["start"], detected_ts if detected_ts is not None else window["end"]
    found = [(u["_log_ts"], {"ts": u["_log_ts"], "kind": "unanswered_submit", "correlation_id": u.get("correlation_id"),
                             "text": "first ORDER_SUBMIT without an answer (correlation_id %s, %s)"
                                     % (u.get("correlation_id"), u.get("symbol"))})
             for u in unanswered_in(logs, lo, hi)]
    submitted = {e.get("correlation_id"): e["_log_ts"] for e in events_in(logs, lo - 3600, hi, ORDER_SENT)}
    for e in events_in(logs, lo, hi, ("ORDER_ERROR",)):
        cid = e.get("correlation_id")
        since = submitted.get(cid, e["_log_ts"])
        text = "first ORDER_SUBMIT answered by ORDER_ERROR %s after %s (correlation_id %s)" % (
            e.get("error_code"), duration(e["_log_ts"] - since), cid)
        found.append((since, {"ts": since, "kind": "order_error", "correlation_id": cid, "text": text}))
    if found:
        return min(found, key=lambda f: f[0])[1]
    orders = events_in(logs, lo, hi, ("ORDER_SUBMIT", "ORDER_RESPONSE", "WOULD_SUBMIT"))
    if orders:
        last = orders[-1]
        blocked = events_in(logs, last["_log_ts"], hi, ("GATE_BLOCKED",))
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
    for e in events_in(logs, lo - 3600, hi, ORDER_SENT):  # an order cancelled in the window may be older
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

    for u in unanswered_in(logs, lo, hi):
        r = row(u.get("correlation_id"), symbol=u.get("symbol"))
        r["submitted_at"] = r["submitted_at"] or u["_log_ts"]
        r["how"].append("no answer, lost on restart" if u["how"] == "lost_on_restart" else "no answer")
        r["kinds"].append(u["how"])
    for e in events_in(logs, lo, hi, ("ORDER_ERROR",)):
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
