"""How each check's role reads its slice of diagnose_probes, and the report built from the checks (pure)."""
from ansible_collections.quantum.runbooks.plugins.module_utils import report
from ansible_collections.quantum.runbooks.plugins.module_utils.check_results import (
    NOTHING_TO_TRACE,
    check_result,
    probe_slice,
    trace_result,
)


def test_a_slice_is_read_as_is_and_a_module_that_did_not_run_is_each_check_s_one_line():
    probes = {"executor": {"exists": True}, "binance": {"failed": True, "msg": "timed out after 3 s"}}
    assert probe_slice(probes, "executor") == {"exists": True}
    assert probe_slice(probes, "binance") == {"failed": True, "msg": "timed out after 3 s"}
    # the whole module failed (no Python, unreachable) or the playbook recorded why it could not run
    blocked = {"failed": True, "msg": "host unreachable: ssh: connect to host 10.0.0.9 port 22: timed out"}
    assert {probe_slice(blocked, name)["msg"] for name in ("executor", "binance", "event_bus", "trace")} == {
        blocked["msg"]}
    # a skipped module (a condition) says which probe did not run
    assert probe_slice({"skipped": True, "changed": False}, "event_bus") == {
        "failed": True, "msg": "the Redis probe did not run"}
    assert probe_slice(None, "trace")["msg"] == "the trace probe did not run"


def test_checks_2_and_3_keep_the_slice_or_say_why_not():
    assert check_result({"ping": True, "streams": {}}, 7.5) == {"ping": True, "streams": {}, "finished_at": 7.5}
    assert check_result({"failed": True, "msg": "refused"}, 7.5) == {"check_error": "refused", "finished_at": 7.5}


def test_check_4_builds_the_timeline_says_there_was_nothing_to_trace_or_that_it_could_not_run():
    cid = "c-1"
    read = {"correlation_id": cid, "auto_selected": True, "containers": {
        "quantum_ai_engine": {"correlation_matches": [
            {"correlation_id": cid, "event": "INTENT_PUBLISHED", "ts": "2026-12-03T10:00:00.000Z"}]},
        "quantum_auto_executor": {"correlation_matches": [
            {"correlation_id": cid, "event": "INTENT_RECEIVED", "ts": "2026-12-03T10:00:00.010Z"},
            {"correlation_id": cid, "event": "ORDER_SUBMIT", "ts": "2026-12-03T10:00:00.020Z"}]}}}
    loki = {"json": {"data": {"result": [{"values": [1, 2]}, {"values": [3]}]}}}
    out = trace_result(read, "", 9.0, loki, "http://loki:3100")
    assert [e["event"] for e in out["timeline"]] == ["INTENT_PUBLISHED", "INTENT_RECEIVED", "ORDER_SUBMIT"]
    assert out["first_missing_step"] == "ORDER_RESPONSE" and out["correlation_id"] == cid
    assert (out["auto_selected"], out["finished_at"], out["loki_matches"]) == (True, 9.0, 3)
    assert trace_result(read, "", 9.0)["loki_matches"] is None            # no Loki asked: no count
    assert trace_result(read, "", 9.0, {"skipped": True}, "http://loki:3100")["loki_matches"] == 0
    assert trace_result({"correlation_id": None}, "", 9.0) == {
        "correlation_id": None, "note": NOTHING_TO_TRACE, "finished_at": 9.0}
    assert trace_result({"failed": True, "msg": "no Docker"}, "c-2", 9.0) == {
        "correlation_id": "c-2", "check_error": "no Docker", "finished_at": 9.0}


def verdict(primary="EXECUTOR_HUNG", command="ansible-playbook -i inventory/lab.yml playbooks/x.yml"):
    findings = [
        {"code": primary, "check": "executor", "summary": "no log line for 300 s", "severity": "critical",
         "evidence": ["e1", "e2", "e3", "e4", "e5"]},
        {"code": "BINANCE_SLOW", "check": "binance", "summary": "slow", "evidence": []},
        {"code": "BINANCE_SLOW", "check": "binance", "summary": "slow again", "evidence": []}]
    return {"primary": primary, "findings": findings, "missing_checks": [], "thresholds": {"a": 1},
            "recommended": {"action": "Restart the executor.", "command": command}, "extra": "not in the report"}


def test_the_report_record_times_the_run_and_summarises_each_check():
    results = {"executor": {"status": "running", "finished_at": 101.5},
               "binance": {"check_error": "refused", "finished_at": 102.0},
               "event_bus": None, "trace": {"note": "nothing", "finished_at": 102.25}}
    out = report.record("lab", verdict(), results, 100.0, 1796328000.126)
    assert out["host"] == "lab" and out["generated_at"] == "2026-12-03T20:00:00Z"
    assert out["duration_s"] == round(1796328000.126 - 100.0, 2)
    assert set(out["verdict"]) == {"primary", "findings", "recommended", "missing_checks", "thresholds"}
    checks = out["checks"]
    assert (checks["executor"]["status"], checks["executor"]["findings"], checks["executor"]["duration_s"]) == (
        "finding", ["EXECUTOR_HUNG"], 1.5)
    assert checks["binance"]["status"] == "error" and checks["binance"]["duration_s"] == 0.5
    assert checks["event_bus"] == {"status": "skipped", "step": "3. Check Redis Event Bus", "evidence": None,
                                   "duration_s": None}
    assert checks["trace"]["status"] == "ok" and checks["trace"]["evidence"] == {"note": "nothing"}


def test_the_summary_is_the_verdict_four_lines_of_evidence_the_others_once_and_what_to_do():
    out = report.record("lab", verdict(), {}, 0, 1796328000)
    assert report.summary(out, "/r/lab/diagnosis-x.md") == [
        "VERDICT: EXECUTOR_HUNG - no log line for 300 s", "  - e1", "  - e2", "  - e3", "  - e4",
        "other findings: BINANCE_SLOW", "next: Restart the executor.",
        "run:  ansible-playbook -i inventory/lab.yml playbooks/x.yml", "report: /r/lab/diagnosis-x.md"]
    healthy = report.record("lab", {"primary": "HEALTHY", "findings": [],
                                    "recommended": {"action": "Nothing to do.", "command": None}}, {}, 0, 0)
    assert report.summary(healthy, "/r.md") == ["VERDICT: HEALTHY", "other findings: none",
                                                "next: Nothing to do.", "report: /r.md"]
