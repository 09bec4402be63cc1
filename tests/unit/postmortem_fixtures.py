"""The post-mortem's test evidence, shared by the tests of its module_utils: an incident's audit lines and
diagnosis reports, the executor's log events and the income - fixtures, no lab."""
import json

from ansible_collections.quantum.runbooks.plugins.module_utils import (
    postmortem_evidence,
    postmortem_fields,
    timestamps,
    verdict,
)

T0 = timestamps.parse_time("2026-11-28T12:00:00Z")
HOST = "lab"


def at(seconds):
    return timestamps.iso(T0 + seconds).replace("Z", ".250000Z")


def audit_line(seconds, action, result, details=None, check_mode=False, host=HOST):
    return json.dumps({"ts": at(seconds), "who": "oncall", "host": host, "action": action, "result": result,
                       "check_mode": check_mode, "details": details or {}})


def diag_line(seconds, verdict_code, name, codes=()):
    return audit_line(seconds, "diagnose", verdict_code, {"findings": list(codes),
                                                          "report": "/x/reports/lab/" + name})


def report(seconds, primary, findings=()):
    stamp = timestamps.iso(T0 + seconds)
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
    return postmortem_evidence.collect(lines, reports, HOST, T0 + 1000, **over)


def compose(**over):
    args = dict(logs=logs_fixture(), income=INCOME, positions={"skipped": True})
    args.update(over)
    return postmortem_fields.compose(evidence(lookback_s=300), **args)
