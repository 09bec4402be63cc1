"""module_utils/postmortem.py: window detection, the six fields, timeline, Markdown and its merge with human
edits, file naming - from fixtures of audit lines, diagnosis reports and log events, no lab."""
import json
import re
from pathlib import Path

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem as pm
from ansible_collections.quantum.runbooks.plugins.module_utils import verdict

T0 = pm.parse_time("2026-11-28T12:00:00Z")
HOST = "lab"


def at(seconds):
    return pm.iso(T0 + seconds).replace("Z", ".250000Z")


def audit_line(seconds, action, result, details=None, check_mode=False, host=HOST):
    return json.dumps({"ts": at(seconds), "who": "oncall", "host": host, "action": action, "result": result,
                       "check_mode": check_mode, "details": details or {}})


def diag_line(seconds, verdict_code, name, codes=()):
    return audit_line(seconds, "diagnose", verdict_code, {"findings": list(codes),
                                                          "report": "/x/reports/lab/" + name})


def report(seconds, primary, findings=()):
    stamp = pm.iso(T0 + seconds)
    name = "diagnosis-%s.json" % stamp.replace("-", "").replace(":", "")
    return {"name": name, "report": {"generated_at": stamp, "duration_s": 3.0,
                                     "verdict": {"primary": primary, "findings": list(findings)}}}


HUNG = {"code": "EXECUTOR_HUNG", "check": "executor", "step": verdict.STEPS["executor"], "severity": "critical",
        "summary": "auto-executor is Up but not working", "evidence": ["health: unhealthy", "last log line 42 s ago"]}
SILENT = {"code": "BINANCE_UNREACHABLE", "check": "executor", "step": verdict.STEPS["executor"],
          "severity": "critical", "summary": "orders submitted without any answer", "evidence": ["1 ORDER_SUBMIT"]}
CANCELLED = {"summary": "cancelled 1", "orders": [
    {"symbol": "BTCUSDT", "orderId": 4000000042, "clientOrderId": "qtx-c3", "age_s": 610, "outcome": "cancelled",
     "final_status": "CANCELED", "position_opened": False},
    {"symbol": "ETHUSDT", "orderId": 4000000043, "clientOrderId": "qtx-old", "age_s": 700, "outcome": "already_gone",
     "final_status": "FILLED", "position_opened": True}]}


def incident_fixture():
    """A hung executor: alert at +100, diagnosis at +120, a cancel at +150 and a restart at +160, HEALTHY at +200."""
    a, b, c, d = report(10, "HEALTHY"), report(120, "EXECUTOR_HUNG", [HUNG, SILENT]), report(200, "HEALTHY"), \
        report(300, "HEALTHY")
    lines = [
        diag_line(10, "HEALTHY", a["name"]),
        "this is not JSON",
        json.dumps({"who": "x", "action": "diagnose"}),  # no ts
        "",
        audit_line(100, "remediation_decision", "ran", {"alert": "OrderSubmitWithoutResponse", "fingerprint": "ab12",
                                                        "verdict": "EXECUTOR_HUNG", "playbook": "diagnose.yml",
                                                        "reason": "policy: diagnose always", "run_id": "r1"}),
        diag_line(120, "EXECUTOR_HUNG", b["name"], ["EXECUTOR_HUNG", "BINANCE_UNREACHABLE"]),
        audit_line(130, "restart_executor", "would_restart", {"verdict": "EXECUTOR_HUNG"}, check_mode=True),
        audit_line(150, "cancel_stuck_orders", "cancelled", CANCELLED),
        audit_line(160, "restart_executor", "restarted", {"verdict_before": "EXECUTOR_HUNG"}),
        diag_line(200, "HEALTHY", c["name"]),
        audit_line(205, "restart_executor", "restarted", {}, host="other-host"),
        diag_line(300, "HEALTHY", d["name"]),
        audit_line(400, "postmortem", "created", {}),
    ]
    return lines, [a, b, c, d, {"name": "diagnosis-20261128T115900Z.json", "report": None}]


def ev(seconds, event, cid, **fields):
    return dict({"event": event, "correlation_id": cid, "_log_ts": T0 + seconds}, **fields)


def logs_fixture():
    events = [
        ev(20, "ORDER_SUBMIT", "c1", symbol="BTCUSDT", client_order_id="qtx-c1"),
        ev(21, "ORDER_RESPONSE", "c1", client_order_id="qtx-c1"),
        ev(40, "ORDER_SUBMIT", "c2", symbol="ETHUSDT", client_order_id="qtx-c2"),
        ev(45, "ORDER_SUBMIT", "c3", symbol="BTCUSDT", client_order_id="qtx-c3"),
        ev(46, "ORDER_RESPONSE", "c3", client_order_id="qtx-c3", exchange_status="NEW"),
        ev(50, "ORDER_SUBMIT", "c4", symbol="ETHUSDT", client_order_id="qtx-c4"),
        ev(51, "ORDER_ERROR", "c4", client_order_id="qtx-c4", error_code=-1003, http_status=429),
        ev(170, "ORDER_SUBMIT", "c5", symbol="BTCUSDT", client_order_id="qtx-c5"),
        ev(171, "ORDER_RESPONSE", "c5", client_order_id="qtx-c5"),
        ev(250, "ORDER_SUBMIT", "c6", symbol="BTCUSDT", client_order_id="qtx-c6"),
    ]
    return {"exists": True, "recent_events": events,
            "event_counts": {"ORDER_SUBMIT": 6, "ORDER_RESPONSE": 3, "ORDER_ERROR": 1, "HEARTBEAT": 50},
            "lost_on_restart": [{"correlation_id": "c2", "symbol": "ETHUSDT", "_log_ts": T0 + 40, "age_s": 1}],
            "unanswered": [{"correlation_id": "c6", "symbol": "BTCUSDT", "_log_ts": T0 + 250, "age_s": 1}]}


INCOME = {"status": "ok", "reason": None, "count": 3, "personality": "testnet", "endpoint": "http://sim/fapi",
          "net": {"USDT": "-1.25"}, "totals_by_type": {"COMMISSION": {"USDT": "-0.25"}, "REALIZED_PNL": {"USDT": "-1"}},
          "totals_by_symbol": {"BTCUSDT": {"USDT": "-1.25"}}}


def evidence(**over):
    lines, reports = incident_fixture()
    return pm.collect(lines, reports, HOST, T0 + 1000, **over)


# ---------------------------------------------------------------- evidence and window

def test_garbage_audit_lines_and_reports_are_skipped_and_counted():
    e = evidence()
    assert e["skipped"] == {"audit_lines": 2, "reports": 1}
    assert all(r["action"] != "diagnose" for r in e["audit"])
    assert "other-host" not in json.dumps(e) and [r["action"] for r in e["audit"]].count("restart_executor") == 2


def test_window_from_first_failing_diagnosis_to_healthy_after_mitigation():
    w = evidence(lookback_s=300)["window"]
    assert (w["anchor"], w["start"], w["end"]) == (T0 + 120.25, T0 + 120.25 - 300, T0 + 200.25)
    assert (w["anchor_kind"], w["end_kind"], w["incident_id"], w["date"]) == (
        "first failing diagnosis", "healthy_after_mitigation", "execution_stuck-20261128T120200Z", "2026-11-28")
    assert w["resolved_by"]["source"] == "diagnosis-20261128T120320Z.json"
    assert (w["start_iso"], w["end_iso"]) == ("2026-11-28T11:57:00Z", "2026-11-28T12:03:20Z")


def test_check_mode_records_are_no_mitigation():
    lines, reports = incident_fixture()
    lines = [ln for ln in lines if '"cancelled"' not in ln and '"restarted"' not in ln]  # only the would_restart
    w = pm.collect(lines, reports, HOST, T0 + 1000)["window"]
    # no real mitigation: the first HEALTHY closes it, flagged as recovered without one
    assert (w["end"], w["end_kind"]) == (T0 + 200.25, "healthy_without_mitigation")


def d(seconds, code):
    return {"ts": T0 + seconds, "verdict": code, "findings": [{"code": code}], "source": "s%d" % seconds}


def mit(seconds, action="restart_executor", result="restarted"):
    return {"ts": T0 + seconds, "action": action, "result": result, "check_mode": False, "details": {}}


def test_two_incidents_the_latest_wins_and_its_lookback_stops_at_the_previous_end():
    diags = [d(0, "GATE_BLOCKED"), d(60, "HEALTHY"), d(100, "CLOCK_SKEW"), d(200, "HEALTHY")]
    w = pm.find_window(diags, [mit(30, "rollback", "mode_changed"), mit(150)], now=T0 + 999, lookback_s=900)
    assert (w["anchor"], w["end"], w["end_kind"]) == (T0 + 100, T0 + 200, "healthy_after_mitigation")
    assert w["start"] == pytest.approx(T0 + 60.001)


def test_flapping_is_one_incident_a_long_quiet_spell_is_not():
    diags = [d(0, "EXECUTOR_HUNG"), d(60, "HEALTHY"), d(120, "EXECUTOR_HUNG"), d(180, "HEALTHY")]
    w = pm.find_window(diags, [], now=T0 + 999, lookback_s=0, merge_gap_s=600)
    assert (w["anchor"], w["end"], w["end_kind"]) == (T0, T0 + 180, "healthy_without_mitigation")
    w = pm.find_window(diags, [], now=T0 + 999, lookback_s=0, merge_gap_s=30)
    assert (w["anchor"], w["end"]) == (T0 + 120, T0 + 180)


def test_unresolved_incident_ends_now_and_inconclusive_opens_nothing():
    w = pm.find_window([d(0, "INCONCLUSIVE"), d(50, "BINANCE_IP_BANNED"), d(90, "INCONCLUSIVE")], [mit(60)],
                       now=T0 + 500, lookback_s=10)
    assert (w["anchor"], w["start"], w["end"], w["end_kind"], w["resolved_by"]) == (
        T0 + 50, T0 + 40, T0 + 500, "now", None)
    with pytest.raises(pm.NoIncident, match="no failing diagnosis in 2 diagnoses"):
        pm.find_window([d(0, "HEALTHY"), d(5, "INCONCLUSIVE")], [], now=T0)


def test_operator_window():
    diags = [d(0, "GATE_BLOCKED"), d(60, "HEALTHY"), d(100, "CLOCK_SKEW"), d(200, "HEALTHY")]
    w = pm.find_window(diags, [mit(150)], now=T0 + 999, start=T0 + 90, end=T0 + 400, incident_id="INC-42")
    assert (w["start"], w["end"], w["end_kind"], w["lookback_s"], w["incident_id"]) == (
        T0 + 90, T0 + 400, "given", 0, "INC-42")
    assert w["first_failing"]["verdict"] == "CLOCK_SKEW" and w["resolved_by"]["ts"] == T0 + 200
    w = pm.find_window(diags, [], now=T0 + 999, start=T0 + 90)
    assert (w["end"], w["end_kind"], w["incident_id"]) == (T0 + 200, "healthy_without_mitigation",
                                                           "execution_stuck-20261128T120130Z")
    with pytest.raises(ValueError, match="after"):
        pm.find_window(diags, [], now=T0, start=T0 + 10, end=T0 + 10)
    with pytest.raises(ValueError, match="needs incident_start"):
        pm.find_window(diags, [], now=T0, end=T0 + 10)
    with pytest.raises(ValueError, match="incident_id"):
        pm.find_window(diags, [], now=T0, incident_id="a b <!--")


# ---------------------------------------------------------------- the six fields

def compose(**over):
    args = dict(logs=logs_fixture(), income=INCOME, positions={"skipped": True})
    args.update(over)
    return pm.compose(evidence(lookback_s=300), **args)


def test_fields_from_the_evidence():
    p = compose()
    assert p["root_cause"]["primary"] == "EXECUTOR_HUNG"
    assert p["root_cause"]["verdicts"][0]["evidence"] == ["health: unhealthy", "last log line 42 s ago"]
    assert [o["code"] for o in p["root_cause"]["other_findings"]] == ["BINANCE_UNREACHABLE"]
    assert (p["symptom"]["kind"], p["symptom"]["ts"], p["symptom"]["correlation_id"]) == (
        "unanswered_submit", T0 + 40, "c2")
    assert (p["detection"]["ts"], p["detection"]["by"], p["detection"]["duration_s"]) == (
        T0 + 100.25, "alert OrderSubmitWithoutResponse", 60.25)
    r = p["resolution"]
    assert (r["ts"], r["resolved"], r["duration_s"]) == (T0 + 200.25, True, 100)
    assert [(m["action"], m["result"]) for m in r["mitigations"]] == [("cancel_stuck_orders", "cancelled"),
                                                                      ("restart_executor", "restarted")]
    o = p["orders"]
    assert (o["count"], o["counts"], o["logs"]) == (
        3, {"unanswered": 0, "lost_on_restart": 1, "cancelled": 1, "errored": 1}, "complete")
    assert [x["kinds"] for x in o["orders"]] == [["lost_on_restart"], ["cancelled"], ["errored"]]
    assert [(x["correlation_id"], x["symbol"], x["client_order_id"], x["how"]) for x in o["orders"]] == [
        ("c2", "ETHUSDT", "qtx-c2", ["no answer, lost on restart"]),
        ("c3", "BTCUSDT", "qtx-c3", ["cancelled (orderId 4000000042)"]),
        ("c4", "ETHUSDT", "qtx-c4", ["error -1003"])]
    assert [x["code"] for x in p["prevention"]] == ["EXECUTOR_HUNG", "BINANCE_UNREACHABLE"]
    assert pm.field_lines(p) == [
        "1. Root cause: EXECUTOR_HUNG - auto-executor is Up but not working",
        "2. Detection time: 1 min 00 s after the first symptom (2026-11-28 12:00:40 -> 2026-11-28 12:01:40, "
        "by alert OrderSubmitWithoutResponse)",
        "3. Resolution time: 1 min 40 s after detection (2026-11-28 12:03:20, after cancel_stuck_orders cancelled, "
        "restart_executor restarted)",
        "4. Orders affected: 3 (0 without answer, 1 lost on restart, 1 cancelled, 1 errored)",
        "5. PnL impact: net -1.25 USDT in the window from 3 income records (COMMISSION -0.25 USDT, "
        "REALIZED_PNL -1 USDT)",
        "6. Prevention: EXECUTOR_HUNG: 2 suggestions; BINANCE_UNREACHABLE: 2 suggestions",
    ]


def test_alerts_detect_resolved_ones_do_not():
    def rec(action, details, check_mode=False):
        return {"ts": T0, "action": action, "result": "skipped", "check_mode": check_mode, "details": details}
    assert pm.is_alert(rec("remediation_decision", {"alert": "NoOrdersSubmitted", "reason": "duplicate"}, True))
    resolved = {"alert": "NoOrdersSubmitted", "reason": "resolved: a resolved alert never starts a mitigation"}
    assert not pm.is_alert(rec("remediation_decision", resolved))
    assert not pm.is_alert(rec("remediation_decision", {"alert": None, "reason": "manual run"}))
    assert not pm.is_alert(rec("alert", {"alertname": "OrderSubmitWithoutResponse", "status": "resolved"}))
    assert pm.alert_name(rec("alert", {"alertname": "OrderSubmitWithoutResponse"})) == "OrderSubmitWithoutResponse"


def test_timeline_in_time_order_with_check_mode_marked():
    rows = compose()["timeline"]
    assert [(r["ts"] - T0, r["kind"]) for r in rows] == [
        (10.25, "diagnosis"), (40, "symptom"), (100.25, "alert"), (120.25, "diagnosis"), (130.25, "record"),
        (150.25, "mitigation"), (160.25, "mitigation"), (200.25, "diagnosis")]
    texts = [r["text"] for r in rows]
    assert texts[2].startswith("remediation_decision: ran - alert=OrderSubmitWithoutResponse, "
                               "verdict=EXECUTOR_HUNG, playbook=diagnose.yml")
    assert texts[3].startswith("diagnose: EXECUTOR_HUNG; also BINANCE_UNREACHABLE (diagnosis-")
    assert texts[4] == ("restart_executor: would_restart - verdict before: EXECUTOR_HUNG "
                        "(check mode: a plan, nothing changed)")
    assert texts[5] == "cancel_stuck_orders: cancelled - 1 orders cancelled" and rows[5]["who"] == "oncall"


def test_symptom_without_unanswered_submits():
    logs = logs_fixture()
    logs["lost_on_restart"] = []
    p = compose(logs=logs)
    assert (p["symptom"]["kind"], p["symptom"]["ts"]) == ("order_error", T0 + 50)  # its submit, not its error
    assert p["symptom"]["text"] == "first ORDER_SUBMIT answered by ORDER_ERROR -1003 after 1 s (correlation_id c4)"
    events = [e for e in logs["recent_events"] if e["event"] != "ORDER_ERROR"]
    events.append(ev(60, "GATE_BLOCKED", "c9", reason="NOTIONAL_ABOVE_LIMIT"))
    p = compose(logs=dict(logs, recent_events=events))
    assert (p["symptom"]["kind"], p["symptom"]["ts"]) == ("gate_blocked", T0 + 60)
    p = compose(logs=dict(logs, recent_events=[e for e in events if e["event"] != "GATE_BLOCKED"]))
    assert (p["symptom"]["kind"], p["symptom"]["ts"], p["symptom"]["correlation_id"]) == ("last_order", T0 + 50, "c4")
    p = compose(logs={"failed": True, "msg": "cannot reach Docker"}, logs_error="cannot read the logs: no docker")
    assert (p["symptom"]["kind"], p["symptom"]["ts"]) == ("unknown", T0 + 120.25)
    assert p["orders"]["count"] == 1 and p["orders"]["logs"] == "unavailable: cannot read the logs: no docker"
    assert "executor logs unavailable: cannot read the logs: no docker" in p["warnings"]


def test_an_order_counts_once_per_kind():
    logs = logs_fixture()
    logs["recent_events"] += [ev(55, "ORDER_SUBMIT", "c4", symbol="ETHUSDT", client_order_id="qtx-c4"),
                              ev(56, "ORDER_ERROR", "c4", client_order_id="qtx-c4", error_code=-1003)]
    logs["lost_on_restart"].append({"correlation_id": "c3", "symbol": "BTCUSDT", "_log_ts": T0 + 45})
    o = compose(logs=logs)["orders"]
    assert (o["count"], o["counts"]) == (3, {"unanswered": 0, "lost_on_restart": 2, "cancelled": 1, "errored": 1})
    assert [x["how"] for x in o["orders"]][1:] == [["no answer, lost on restart", "cancelled (orderId 4000000042)"],
                                                   ["error -1003", "error -1003"]]


def test_truncated_logs_are_said():
    logs = logs_fixture()
    logs["event_counts"]["ORDER_SUBMIT"] = 5000
    p = compose(logs=logs)
    assert p["orders"]["logs"] == "truncated: only the last 10 order events were read"
    assert pm.field_lines(p)[3].endswith("; logs truncated: only the last 10 order events were read")


def test_pnl_unknown_when_the_exchange_cannot_answer():
    p = compose(income={"status": "unknown", "reason": "IP banned by Binance (HTTP 418) for 120 s"})
    assert (p["pnl"]["status"], p["pnl"]["reason"]) == ("unknown", "IP banned by Binance (HTTP 418) for 120 s")
    assert pm.field_lines(p)[4] == "5. PnL impact: unknown - IP banned by Binance (HTTP 418) for 120 s"
    md = pm.render_blocks(p)["pnl_impact"]
    assert md.startswith("**Prefilled:** unknown - IP banned by Binance (HTTP 418) for 120 s.")
    assert "(`GET /fapi/v1/income`) from 2026-11-28 11:57:00 to 2026-11-28 12:03:20 UTC" in md
    p = compose(income={"skipped": True, "skip_reason": "Conditional result was False"})
    assert p["pnl"]["reason"] == "the exchange was not asked (postmortem_exchange=false)"
    p = compose(income={"failed": True, "msg": "no module named binance"})
    assert p["pnl"]["reason"] == "no module named binance"


def test_pnl_says_what_it_includes_and_warns_about_a_mode_change():
    lines, reports = incident_fixture()
    lines.insert(8, audit_line(140, "rollback", "mode_changed", {"mode_from": "live", "mode_to": "testnet"}))
    p = pm.compose(pm.collect(lines, reports, HOST, T0 + 1000, lookback_s=300), logs_fixture(), INCOME,
                   {"changed": False, "positions": [{"symbol": "BTCUSDT", "side": "LONG", "positionAmt": "0.01",
                                                     "unRealizedProfit": "-0.5"}]})
    md = pm.render_blocks(p)["pnl_impact"]
    assert "| COMMISSION | -0.25 USDT |" in md and "| REALIZED_PNL | -1 USDT |" in md
    assert "Includes: every income record" in md and "Excludes: unrealized PnL" in md
    assert "Open positions when written (after the window): BTCUSDT LONG 0.01, uPnL -0.5" in md
    assert "Warning: the trading mode changed in the window (live->testnet)" in md


def test_series_buckets():
    s = compose()["series"]
    assert (s["bucket_s"], len(s["submitted"])) == (10, 38)  # 380 s of window in <= 60 buckets
    assert (sum(s["submitted"]), sum(s["answered"]), sum(s["errors"])) == (5, 4, 1)  # c6 is after the window
    assert s["submitted"][int((40 + 179.75) // 10)] == 1  # c2, 219.75 s after the window's start
    assert [m["label"] for m in s["marks"]] == ["detected", "resolved"]


def test_every_verdict_code_has_a_prevention_entry():
    source = Path(verdict.__file__).read_text()
    codes = set(re.findall(r'finding\("([A-Z_]+)"', source)) | set(verdict.PRECEDENCE) | {"INCONCLUSIVE"}
    assert codes <= set(pm.PREVENTION)
    assert all(pm.PREVENTION[c] and all(isinstance(i, str) and i for i in pm.PREVENTION[c]) for c in pm.PREVENTION)
    assert pm.prevention({"verdicts": [], "other_findings": []}) == [{"code": "HEALTHY",
                                                                      "items": pm.PREVENTION["HEALTHY"]}]


# ---------------------------------------------------------------- Markdown, human edits, file names

def test_document_has_every_field_and_a_marked_block_each():
    blocks = pm.render_blocks(compose())
    doc = pm.render_document(blocks, "execution_stuck-20261128T120200Z", "2026-11-28_execution_stuck.png")
    assert doc.startswith("<!-- qt:postmortem incident_id=execution_stuck-20261128T120200Z -->\n")
    assert pm.incident_of(doc) == "execution_stuck-20261128T120200Z"
    for name in pm.BLOCKS:
        assert doc.count("<!-- qt:generated:%s begin -->" % name) == 1
        assert doc.count("<!-- qt:generated:%s end -->" % name) == 1
    for title in ("## 1. Root cause", "## 2. Detection time", "## 3. Resolution time", "## 4. Orders affected",
                  "## 5. PnL impact", "## 6. Prevention", "## Timeline"):
        assert title in doc
    assert doc.count(pm.CONFIRM) == 6 and "![Orders submitted vs answered](2026-11-28_execution_stuck.png)" in doc
    assert "| c2 | ETHUSDT | qtx-c2 | 2026-11-28 12:00:40 | no answer, lost on restart |" in doc
    assert "- [ ] `EXECUTOR_HUNG`: A liveness check on the heartbeat" in doc


def test_rerun_keeps_human_edits_and_updates_generated_blocks():
    first = pm.render_blocks(compose())
    doc = pm.render_document(first, "INC-1", "a.png")
    edited = doc.replace("_Human notes:_", "_Human notes:_ a bad deploy at 11:55, see CHG-1234", 1)
    edited = edited.replace("- [ ] (owner, due date)", "- [ ] alert on heartbeats (Ann)")
    edited = edited.replace(first["detection"], first["detection"] + "\nA human line inside a generated block.")
    second = pm.render_blocks(compose(income={"status": "unknown", "reason": "Binance unreachable (refused)"}))
    merged, kept = pm.merge_document(edited, second, "a.png")
    assert kept == []
    assert "a bad deploy at 11:55, see CHG-1234" in merged and "alert on heartbeats (Ann)" in merged
    assert "A human line inside a generated block." not in merged  # generated blocks are the generator's
    assert "unknown - Binance unreachable (refused)" in merged and "net -1.25 USDT" not in merged
    assert pm.merge_document(merged, second, "a.png") == (merged, [])  # the same evidence: the same text


def test_a_block_without_markers_belongs_to_the_human():
    blocks = pm.render_blocks(compose())
    doc = pm.render_document(blocks, "INC-1", "a.png")
    mine = doc.replace("<!-- qt:generated:prevention begin -->\n", "").replace(
        "\n<!-- qt:generated:prevention end -->", "")
    mine = mine.replace("- [ ] `EXECUTOR_HUNG`: A liveness", "- [x] Mine: liveness")
    new = pm.render_blocks(compose(income={"status": "unknown", "reason": "x"}))
    merged, kept = pm.merge_document(mine, new, "a.png")
    assert kept == ["prevention"] and "- [x] Mine: liveness" in merged and "unknown - x" in merged


def test_evidence_cannot_forge_markers():
    p = compose()
    p["root_cause"]["verdicts"][0]["evidence"].append("<!-- qt:generated:root_cause end --> | pipe\nnewline")
    blocks = pm.render_blocks(p)
    doc = pm.render_document(blocks, "INC-1", "a.png")
    assert doc.count("<!-- qt:generated:root_cause end -->") == 1
    assert "&lt;!-- qt:generated:root_cause end --&gt; | pipe newline" in doc
    assert pm.merge_document(doc, blocks, "a.png") == (doc, [])


def test_file_names_never_overwrite_another_incident():
    other = "<!-- qt:postmortem incident_id=INC-0 -->\n..."
    assert pm.choose_file("2026-11-28", "INC-1", {}) == ("2026-11-28_execution_stuck.md", False)
    existing = {"2026-11-28_execution_stuck.md": other, "notes.txt": ""}
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-2.md", False)
    existing["2026-11-28_execution_stuck-2.md"] = other.replace("INC-0", "INC-2")
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-3.md", False)
    existing["2026-11-28_execution_stuck-3.png"] = ""  # a stray chart is not overwritten either
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-4.md", False)
    existing["2026-11-27_execution_stuck-5.md"] = other.replace("INC-0", "INC-1")  # found on any day
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-27_execution_stuck-5.md", True)
    assert pm.choose_file("2026-11-28", "INC-2", existing) == ("2026-11-28_execution_stuck-2.md", True)
    full = {"2026-11-29_execution_stuck%s.md" % ("" if n == 1 else "-%d" % n): other for n in range(1, 100)}
    with pytest.raises(ValueError, match="99 post-mortems on 2026-11-29"):
        pm.choose_file("2026-11-29", "INC-1", full)
    assert pm.chart_name("2026-11-28_execution_stuck-2.md") == "2026-11-28_execution_stuck-2.png"


# ---------------------------------------------------------------- the chart (control node)

def test_chart_is_a_png_and_the_same_series_gives_the_same_bytes(monkeypatch):
    from ansible_collections.quantum.runbooks.plugins.action import postmortem_compose
    from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_chart

    p = compose()
    png = postmortem_chart.render_png(p["series"], "lab: INC-1")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == postmortem_chart.render_png(p["series"], "lab: INC-1")
    assert b"matplotlib" not in png  # no version stamp: unchanged evidence, unchanged file
    chart, error = postmortem_compose.draw(p, True)
    assert error is None and chart and postmortem_compose.draw(p, False) == (None, "disabled (postmortem_chart=false)")
    monkeypatch.setattr(postmortem_chart, "HAS_MATPLOTLIB", False)
    chart, error = postmortem_compose.draw(p, True)
    assert chart is None and error.startswith("RuntimeError: matplotlib is not installed on the control node")
    assert pm.render_blocks(p, error)["chart"] == "No chart: %s." % error
    quiet = compose(logs=dict(logs_fixture(), recent_events=[], event_counts={"HEARTBEAT": 9}))
    assert postmortem_compose.draw(quiet, True) == (None, "no order event in the window")
    assert postmortem_compose.logs_problem({"skipped": True}) == "the executor's logs were not read"
    assert postmortem_compose.logs_problem({"changed": False, "msg": "cannot reach Docker"}) == \
        "cannot read the executor's logs: cannot reach Docker"
    assert postmortem_compose.logs_problem({"exists": False}).startswith("the executor container does not exist")
