"""module_utils/postmortem_fields.py: the six fields from the evidence, the executor's log events, the
income and the positions - from fixtures, no lab."""
import re
from pathlib import Path

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_fields as pm
from ansible_collections.quantum.runbooks.plugins.module_utils import (
    postmortem_render,
    verdict,
)
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import (
    T0,
    compose,
    ev,
    logs_fixture,
)


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
    assert postmortem_render.field_lines(p) == [
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
    assert postmortem_render.field_lines(p)[3].endswith("; logs truncated: only the last 10 order events were read")


def test_pnl_unknown_when_the_exchange_cannot_answer():
    p = compose(income={"status": "unknown", "reason": "IP banned by Binance (HTTP 418) for 120 s"})
    assert (p["pnl"]["status"], p["pnl"]["reason"]) == ("unknown", "IP banned by Binance (HTTP 418) for 120 s")
    assert postmortem_render.field_lines(p)[4] == "5. PnL impact: unknown - IP banned by Binance (HTTP 418) for 120 s"
    md = postmortem_render.render_blocks(p)["pnl_impact"]
    assert md.startswith("**Prefilled:** unknown - IP banned by Binance (HTTP 418) for 120 s.")
    assert "(`GET /fapi/v1/income`) from 2026-11-28 11:57:00 to 2026-11-28 12:03:20 UTC" in md
    p = compose(income={"skipped": True, "skip_reason": "Conditional result was False"})
    assert p["pnl"]["reason"] == "the exchange was not asked (postmortem_exchange=false)"
    p = compose(income={"failed": True, "msg": "no module named binance"})
    assert p["pnl"]["reason"] == "no module named binance"


def test_every_verdict_code_has_a_prevention_entry():
    source = Path(verdict.__file__).read_text()
    codes = set(re.findall(r'finding\("([A-Z_]+)"', source)) | set(verdict.PRECEDENCE) | {"INCONCLUSIVE"}
    assert codes <= set(pm.PREVENTION)
    assert all(pm.PREVENTION[c] and all(isinstance(i, str) and i for i in pm.PREVENTION[c]) for c in pm.PREVENTION)
    assert pm.prevention({"verdicts": [], "other_findings": []}) == [{"code": "HEALTHY",
                                                                      "items": pm.PREVENTION["HEALTHY"]}]
