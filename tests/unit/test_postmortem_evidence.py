"""module_utils/postmortem_evidence.py: the audit log and the diagnosis reports read (garbage skipped and
counted), what a record means, and the incident window - from fixtures, no lab."""
import json

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_evidence as pm
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import (
    HOST,
    T0,
    evidence,
    incident_fixture,
)


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


def test_alerts_detect_resolved_ones_do_not():
    def rec(action, details, check_mode=False):
        return {"ts": T0, "action": action, "result": "skipped", "check_mode": check_mode, "details": details}
    assert pm.is_alert(rec("remediation_decision", {"alert": "NoOrdersSubmitted", "reason": "duplicate"}, True))
    resolved = {"alert": "NoOrdersSubmitted", "reason": "resolved: a resolved alert never starts a mitigation"}
    assert not pm.is_alert(rec("remediation_decision", resolved))
    assert not pm.is_alert(rec("remediation_decision", {"alert": None, "reason": "manual run"}))
    assert not pm.is_alert(rec("alert", {"alertname": "OrderSubmitWithoutResponse", "status": "resolved"}))
    assert pm.alert_name(rec("alert", {"alertname": "OrderSubmitWithoutResponse"})) == "OrderSubmitWithoutResponse"
