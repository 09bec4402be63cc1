"""module_utils/postmortem_timeline.py: the timeline in time order and the chart's series - from fixtures,
no lab."""
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import (
    T0,
    compose,
)


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


def test_series_buckets():
    s = compose()["series"]
    assert (s["bucket_s"], len(s["submitted"])) == (10, 38)  # 380 s of window in <= 60 buckets
    assert (sum(s["submitted"]), sum(s["answered"]), sum(s["errors"])) == (5, 4, 1)  # c6 is after the window
    assert s["submitted"][int((40 + 179.75) // 10)] == 1  # c2, 219.75 s after the window's start
    assert [m["label"] for m in s["marks"]] == ["detected", "resolved"]
