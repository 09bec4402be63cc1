"""The decision path with a fake runner: every verdict x firing/resolved x duplicate x breaker x ban, plus
persistence across restarts, locks, the breaker's trip and reset, and the audit records."""
import itertools
import json
import os
import subprocess
import sys
import threading

import pytest
from alert_payload import alert, payload
from kit import FakeRunner

from remediation.alertmanager import parse
from remediation.engine import Engine
from remediation.policy import VERDICTS
from remediation.state import StateStore

# What the policy does with a firing alert's verdict (the kit's policy enables cancelling stuck orders).
MITIGATION = {"EXECUTOR_DOWN": "mitigate_restart_executor.yml", "EXECUTOR_HUNG": "mitigate_restart_executor.yml",
              "ORDERS_STUCK_AT_EXCHANGE": "mitigate_cancel_stuck_orders.yml"}
NO_MITIGATION = {"HEALTHY": "healthy", "BINANCE_RATE_LIMITED": "exchange_ban", "BINANCE_IP_BANNED": "exchange_ban"}
REFUSED = {"OPERATOR_STOPPED": "operator_stopped", "TRADING_MODE_MISMATCH": "trading_mode_mismatch"}


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def engine(kit, runner, clock=None, policy=None, **kwargs):
    clock = clock or Clock()
    runner.clock = clock
    return Engine(policy or kit.policy(), kit.reports, runner=runner, clock=clock, **kwargs)


def handle(eng, *alerts):
    return eng.handle(parse(payload(*alerts)))


def expected(verdict, status, duplicate, breaker_open, ban):
    """The spec, in order of precedence: (result, reason prefix, mitigation playbook or None, diagnose runs?)."""
    if status == "resolved":
        return "skipped", "resolved", None, False
    if breaker_open:
        return "breaker_open", "breaker_open", None, False
    if duplicate:
        return "skipped", "duplicate", None, False
    if verdict in REFUSED:  # before the ban: a human's stop is the first thing to say
        return "refused", REFUSED[verdict], None, True
    if verdict in MITIGATION and ban:
        return "skipped", "exchange_ban", None, True
    if verdict in MITIGATION:
        return "ran", "verdict", MITIGATION[verdict], True
    return "skipped", NO_MITIGATION.get(verdict, "no_automatic_mitigation"), None, True


CASES = list(itertools.product(VERDICTS, ["firing", "resolved"], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("verdict, status, duplicate, breaker_open, ban", CASES)
def test_decision_table(kit, verdict, status, duplicate, breaker_open, ban):
    findings = [verdict] + (["BINANCE_RATE_LIMITED"] if ban else [])
    runner = FakeRunner(verdict, findings)
    eng = engine(kit, runner)
    if duplicate:  # the same fingerprint already started a run (healthy then, so nothing was mitigated)
        first = engine(kit, FakeRunner("HEALTHY"), clock=eng.clock)
        assert handle(first, alert(fingerprint="f00d"))[0].result == "skipped"
    if breaker_open:
        with eng.store.transaction() as st:
            st["breaker"] = {"open": True, "opened_at": "2026-11-28T00:00:00Z", "why": "test"}
    audit_before = len(kit.decisions())

    [d] = handle(eng, alert(fingerprint="f00d", status=status))

    result, reason, playbook, diagnosed = expected(verdict, status, duplicate, breaker_open, ban)
    assert (d.result, d.reason.split(":")[0].split(" ")[0]) == (result, reason), d.reason
    runs = (["diagnose"] if diagnosed else []) + (["mitigate"] if playbook else [])
    assert [c["ident"] for c in runner.calls] == runs
    if playbook:
        assert runner.mitigations[0]["playbook"] == playbook and runner.mitigations[0]["limit"] == "lab"
        assert runner.mitigations[0]["extravars"].get("confirm") is (True if "cancel" in playbook else None)
    assert d.verdict == (verdict if diagnosed else None)
    # every decision, ran or skipped, is one audit line with the reason
    records = kit.decisions()[audit_before:]
    assert len(records) == 1 and records[0]["result"] == result and records[0]["details"]["reason"] == d.reason
    assert records[0]["details"]["fingerprint"] == "f00d" and records[0]["host"] == "lab"


def test_other_alerts_are_not_handled_and_hosts_come_from_the_label(kit):
    runner = FakeRunner("EXECUTOR_HUNG")
    eng = engine(kit, runner)
    decisions = handle(eng, alert("aa01", name="DiskFull"), alert("aa02", qt_host="trader-2"),
                       alert("aa03", qt_host="bad host!"))
    assert [(d.result, d.reason.split(":")[0], d.host) for d in decisions] == [
        ("skipped", "not_handled", "lab"), ("ran", "verdict EXECUTOR_HUNG -> mitigate_restart_executor.yml",
                                            "trader-2"), ("skipped", "bad_host", None)]
    assert [c["limit"] for c in runner.calls] == ["trader-2", "trader-2"]


def test_one_run_per_host_per_payload(kit):
    """Two alerts for one host in one payload: one diagnosis covers both; the second is skipped as locked."""
    runner = FakeRunner("EXECUTOR_HUNG")
    decisions = handle(engine(kit, runner), alert("bb01"), alert("bb02", name="NoOrdersSubmitted"))
    assert [d.result for d in decisions] == ["ran", "skipped"] and decisions[1].reason.startswith("locked")
    assert len(runner.mitigations) == 1


def test_dedupe_window_expires(kit):
    clock, runner = Clock(), FakeRunner("EXECUTOR_HUNG")
    eng = engine(kit, runner, clock)
    assert handle(eng, alert("cc01"))[0].result == "ran"
    clock.t += 9 * 60
    assert handle(eng, alert("cc01"))[0].reason.startswith("duplicate")
    clock.t += 2 * 60                                  # 11 min after the first: a new incident
    assert handle(eng, alert("cc01"))[0].result == "ran"
    assert len(runner.mitigations) == 2


def test_breaker_trips_after_n_mitigations_in_m_minutes_and_holds_until_reset(kit):
    clock, runner = Clock(), FakeRunner("EXECUTOR_DOWN")
    eng = engine(kit, runner, clock)
    results = []
    for i in range(5):
        clock.t += 60
        results.append(handle(eng, alert(f"dd0{i}"))[0])
    assert [d.result for d in results] == ["ran", "ran", "ran", "breaker_open", "breaker_open"]
    assert results[3].reason.startswith("breaker_open: page a human (3 automatic mitigations in 30 min")
    assert len(runner.mitigations) == 3
    assert len(runner.calls) == 3 + 4     # the 4th still diagnosed; the 5th was refused before diagnosing
    clock.t += 3600                        # time alone does not close it: a human must
    assert handle(eng, alert("dd09"))[0].result == "breaker_open"
    eng.reset_breaker()
    assert handle(eng, alert("dd10"))[0].result == "ran"
    reset = [json.loads(x) for x in kit.audit_log.read_text().splitlines() if "remediation_breaker" in x]
    assert reset[0]["result"] == "reset" and reset[0]["details"]["was"]["open"] is True


def test_mitigations_outside_the_window_do_not_count(kit):
    clock, runner = Clock(), FakeRunner("EXECUTOR_DOWN")
    eng = engine(kit, runner, clock)
    for i in range(6):
        clock.t += 11 * 60                  # 3 in 30 min never happens at this pace
        assert handle(eng, alert(f"ee0{i}"))[0].result == "ran"


def test_dry_run_runs_everything_in_check_mode_and_does_not_count(kit):
    runner = FakeRunner("EXECUTOR_HUNG")
    eng = engine(kit, runner, policy=kit.policy(dry_run=True))
    for i in range(5):
        assert handle(eng, alert(f"ff0{i}"))[0].result == "ran"
    assert all(c["check"] for c in runner.calls) and len(runner.mitigations) == 5
    assert eng.store.peek()["mitigations"] == [] and not eng.store.peek()["breaker"]["open"]
    assert all(r["check_mode"] for r in kit.decisions())


def test_failed_runs_are_failed_decisions(kit):
    runner = FakeRunner("EXECUTOR_HUNG", ok=False)
    [d] = handle(engine(kit, runner), alert("ab01"))
    assert d.result == "failed" and d.reason.startswith("mitigation_failed: status failed, rc 2") and d.rc == 2


def test_state_survives_a_restart(kit):
    """A new engine (as after a service restart) and a new process see the same dedupe and breaker."""
    runner = FakeRunner("EXECUTOR_DOWN")
    eng = Engine(kit.policy(breaker={"max_mitigations": 1, "window_minutes": 30}), kit.reports, runner=runner)
    assert [d.result for d in handle(eng, alert("ac01")) + handle(eng, alert("ac02"))] == ["ran", "breaker_open"]

    restarted = Engine(kit.policy(), kit.reports, runner=runner)
    assert handle(restarted, alert("ac01"))[0].reason.startswith("breaker_open")
    with restarted.store.transaction() as st:
        assert "ac01" in st["dedupe"] and "ac02" in st["dedupe"]

    out = kit.cli("breaker", "status")
    assert out.returncode == 0 and "breaker: OPEN since" in out.stdout
    status = json.loads(kit.cli("status", "--json").stdout)
    assert status["breaker"]["open"] and len(status["mitigations"]) == 1
    assert kit.cli("breaker", "reset").returncode == 0
    assert handle(Engine(kit.policy(), kit.reports, runner=runner), alert("ac03"))[0].result == "ran"


def test_a_corrupt_state_file_refuses_instead_of_forgetting(kit):
    (kit.reports / "remediation").mkdir(parents=True)
    (kit.reports / "remediation" / "state.json").write_text("{not json")
    out = kit.cli("alert", "--payload", "-", stdin=json.dumps(payload()))
    assert out.returncode == 2 and "state.json is corrupt" in out.stderr and len(out.stderr.splitlines()) == 1


def test_the_host_lock_stops_a_second_run_in_another_engine(kit):
    """Two services/CLIs on one host: the second run is refused while the first holds the lock."""
    slow = FakeRunner("EXECUTOR_HUNG")
    slow.gate = threading.Event()
    first = Engine(kit.policy(), kit.reports, runner=slow)
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("d", handle(first, alert("ad01"))))
    worker.start()
    assert slow.started.wait(10)
    other = FakeRunner("EXECUTOR_HUNG")
    [second] = handle(Engine(kit.policy(), kit.reports, runner=other), alert("ad02"))
    slow.gate.set()
    worker.join(10)
    assert second.result == "skipped" and second.reason.startswith("locked: another run holds the lock for lab")
    assert other.calls == [] and out["d"][0].result == "ran"
    assert StateStore(kit.reports / "remediation").peek()["running"] == {}     # released


def test_the_host_lock_works_across_processes(kit):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from remediation.state import StateStore; "
         f"lock = StateStore({str(kit.reports / 'remediation')!r}).host_lock('lab'); "
         "print(lock.acquire(), flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        runner = FakeRunner("EXECUTOR_HUNG")
        [d] = handle(engine(kit, runner), alert("ae01"))
        assert d.reason.startswith("locked") and runner.calls == []
    finally:
        holder.stdin.close()
        holder.wait(10)
    runner = FakeRunner("EXECUTOR_HUNG")
    assert handle(engine(kit, runner), alert("ae02"))[0].result == "ran"   # the kernel released it


def test_a_ban_during_an_executor_outage_is_audited_with_retry_after(kit):
    runner = FakeRunner("EXECUTOR_DOWN", ["EXECUTOR_DOWN", "BINANCE_IP_BANNED"])
    runner.retry_after_s = 90
    [d] = handle(engine(kit, runner), alert("af01"))
    assert d.result == "skipped" and d.verdict == "EXECUTOR_DOWN" and runner.mitigations == []
    assert kit.decisions()[0]["details"]["reason"].startswith("exchange_ban: BINANCE_IP_BANNED; Retry-After 90 s;")


# --- a human's stop and a mode mismatch: refused, audited ------------------------------------------


def test_an_emergency_stop_is_refused_in_one_line_even_during_a_ban(kit):
    runner = FakeRunner("OPERATOR_STOPPED", ["BINANCE_IP_BANNED"])
    runner.extra_findings = [{"code": "OPERATOR_STOPPED", "summary": "trading stopped by an operator at "
                              "2026-12-03T09:58:00Z", "facts": {"since": "2026-12-03T09:58:00Z"}}]
    [d] = handle(engine(kit, runner), alert("ba01", name="ExecutorMetricsDown"))
    assert (d.result, d.verdict) == ("refused", "OPERATOR_STOPPED") and runner.mitigations == []
    assert d.reason == ("operator_stopped: emergency stop in force since 2026-12-03T09:58:00Z: no automatic "
                        "restart (resume with resume_trading.yml -e confirm=RESUME)")
    [record] = kit.decisions()
    assert record["result"] == "refused" and record["details"]["reason"] == d.reason


def test_a_mode_mismatch_is_refused_with_the_command_a_human_would_run(kit):
    runner = FakeRunner("TRADING_MODE_MISMATCH")
    command = "ansible-playbook -i inventory/lab.yml playbooks/rollback.yml -e trading_mode=paper"
    runner.recommended = {"action": "apply .env", "playbook": "rollback.yml", "command": command}
    [d] = handle(engine(kit, runner), alert("ba02"))
    assert d.result == "refused" and runner.mitigations == []
    assert d.reason == f"trading_mode_mismatch: needs a human: {command}"


def test_only_a_human_override_passes_the_override_variable(kit):
    from remediation.policy import OVERRIDE_VAR
    runner = FakeRunner()
    eng = engine(kit, runner, trigger="manual")
    playbook = kit.pb / "mitigate_restart_executor.yml"
    d = eng.run_explicit(playbook, "lab", {}, override=True)
    assert d.result == "ran" and runner.calls[-1]["extravars"][OVERRIDE_VAR] is True
    assert d.override_by and "--override-emergency-stop" in d.reason
    [record] = kit.decisions()
    assert record["details"]["override_by"] == d.override_by and record["who"] != "qt-remediate/manual"
    d = eng.run_explicit(playbook, "lab", {})
    assert OVERRIDE_VAR not in runner.calls[-1]["extravars"] and d.override_by is None
    with pytest.raises(ValueError, match="--override-emergency-stop"):   # smuggled in without the flag
        eng.run_explicit(playbook, "lab", {OVERRIDE_VAR: True})


# --- verdicts expire fast ---------------------------------------------------------------------------


def test_a_stale_diagnosis_is_taken_again_before_acting(kit):
    runner = FakeRunner("EXECUTOR_HUNG")
    runner.report_age_by_ident = {"diagnose": 5 * 60, "rediagnose": 0}    # a slow first diagnose
    [d] = handle(engine(kit, runner), alert("ca01"))
    assert [c["ident"] for c in runner.calls] == ["diagnose", "rediagnose", "mitigate"] and d.result == "ran"
    assert d.evidence.startswith("stale diagnosis generated 5 min ago (limit 2 min); diagnosed again: "
                                 "diagnosis generated 0 s ago")
    assert kit.decisions()[0]["details"]["evidence"] == d.evidence


def test_a_diagnosis_that_stays_stale_is_refused(kit):
    runner = FakeRunner("EXECUTOR_HUNG")
    runner.report_age_s = 10 * 60
    [d] = handle(engine(kit, runner), alert("ca02"))
    assert [c["ident"] for c in runner.calls] == ["diagnose", "rediagnose"] and runner.mitigations == []
    assert d.result == "refused" and d.reason.startswith("stale_report: stale diagnosis generated 10 min ago")
    assert d.reason.endswith("nothing is done on old evidence")


def test_the_age_bound_is_per_alert(kit):
    policy = kit.policy(max_report_age_minutes={"default": 2, "NoOrdersSubmitted": 15})
    runner = FakeRunner("EXECUTOR_HUNG")
    runner.report_age_s = 10 * 60
    [slow] = handle(engine(kit, runner, policy=policy), alert("cb01", name="NoOrdersSubmitted"))
    assert slow.result == "ran" and slow.evidence.startswith("diagnosis generated 10 min ago (limit 15 min)")
    runner = FakeRunner("EXECUTOR_HUNG")
    runner.report_age_s = 10 * 60
    [fast] = handle(engine(kit, runner, policy=policy), alert("cb02", name="OrderSubmitWithoutResponse"))
    assert fast.result == "refused" and runner.mitigations == []


def test_a_stale_ci_report_is_diagnosed_again_or_refused(kit):
    from datetime import datetime, timezone
    clock = Clock()
    old = {"host": "lab", "generated_at": datetime.fromtimestamp(clock() - 20 * 60, timezone.utc)
           .strftime("%Y-%m-%dT%H:%M:%SZ"), "verdict": {"primary": "EXECUTOR_DOWN", "findings": []}}
    runner = FakeRunner("GATE_BLOCKED")                          # the system changed since the CI report
    d = engine(kit, runner, clock).from_report(old, "lab", source="report ci.json")
    assert [c["ident"] for c in runner.calls] == ["diagnose"] and d.verdict == "GATE_BLOCKED"
    assert d.result == "skipped" and d.reason.startswith("no_automatic_mitigation: GATE_BLOCKED")
    assert d.evidence.startswith("stale report ci.json generated 20 min ago (limit 2 min); diagnosed again")

    broken = FakeRunner("EXECUTOR_DOWN")
    broken.error = "FileNotFoundError: inventory /nope does not exist"
    d = engine(kit, broken, clock).from_report(old, "lab", source="report ci.json")
    assert d.result == "failed" and broken.mitigations == []
    assert d.reason.startswith("stale_report: stale report ci.json generated 20 min ago (limit 2 min); "
                               "diagnosing again failed (diagnose_failed: FileNotFoundError")
    fresh = dict(old, generated_at=datetime.fromtimestamp(clock() - 30, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    runner = FakeRunner()
    d = engine(kit, runner, clock).from_report(fresh, "lab", source="report ci.json")
    assert [c["ident"] for c in runner.calls] == ["mitigate"] and d.result == "ran"
    assert d.evidence == "report ci.json generated 30 s ago (limit 2 min)"


# --- a crash loses nothing ----------------------------------------------------------------------------


def test_a_fingerprint_counts_as_seen_only_once_its_run_has_ended(kit):
    slow = FakeRunner("EXECUTOR_HUNG")
    slow.gate = threading.Event()
    eng = engine(kit, slow)
    [job] = eng.triage(parse(payload(alert("da01"))))
    worker = threading.Thread(target=eng.execute, args=(job,))
    worker.start()
    assert slow.started.wait(10)
    state = eng.store.peek()
    assert "da01" in state["inflight"] and "da01" not in state["dedupe"]      # running: not "seen" yet
    assert state["inflight"]["da01"]["started"] and state["inflight"]["da01"]["pid"] == os.getpid()
    [dup] = eng.triage(parse(payload(alert("da01"))))
    assert dup.result == "skipped" and dup.reason.startswith(f"duplicate: run {job.run_id} for this fingerprint "
                                                             "is running")
    slow.gate.set()
    worker.join(10)
    state = eng.store.peek()
    assert "da01" not in state["inflight"] and state["dedupe"]["da01"]["run_id"] == job.run_id


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def test_a_run_whose_process_died_is_audited_interrupted_and_the_next_copy_acted_on(kit):
    store = StateStore(kit.reports / "remediation")
    with store.transaction() as st:      # what a SIGKILLed service leaves behind
        st["inflight"]["db01"] = {"ts": Clock()() - 30, "run_id": "20270115T080000Z-dead01", "alert":
                                  "OrderSubmitWithoutResponse", "host": "lab", "trigger": "webhook",
                                  "pid": dead_pid(), "pid_start": 1, "started": Clock()() - 29}
        st["running"]["lab"] = {"run_id": "20270115T080000Z-dead01", "pid": dead_pid(), "since": 1}
    runner = FakeRunner("EXECUTOR_HUNG")
    eng = engine(kit, runner)
    [interrupted] = eng.recover()
    assert interrupted.result == "interrupted" and interrupted.run_id == "20270115T080000Z-dead01"
    assert interrupted.reason.startswith("interrupted: run 20270115T080000Z-dead01 (webhook, pid ")
    assert "never ended" in interrupted.reason
    assert eng.store.peek()["inflight"] == {} and eng.store.peek()["running"] == {}
    assert eng.recover() == []                                           # once
    [d] = handle(eng, alert("db01"))
    assert d.result == "ran" and [c["ident"] for c in runner.calls] == ["diagnose", "mitigate"]
    assert [(r["result"], r["details"]["fingerprint"]) for r in kit.decisions()] == [
        ("interrupted", "db01"), ("ran", "db01")]


def test_without_a_restart_the_next_copy_finds_the_dead_run_itself(kit):
    """EDA runs `qt-remediate alert` per payload: no service start, so triage reaps too."""
    with StateStore(kit.reports / "remediation").transaction() as st:
        st["inflight"]["dc01"] = {"ts": 1, "run_id": "r-dead", "alert": "NoOrdersSubmitted", "host": "lab",
                                  "trigger": "eda", "pid": dead_pid()}
    [d] = handle(engine(kit, FakeRunner("HEALTHY")), alert("dc01", name="NoOrdersSubmitted"))
    assert d.result == "skipped" and d.reason.startswith("healthy")
    assert [r["result"] for r in kit.decisions()] == ["interrupted", "skipped"]


def test_a_live_owner_is_never_reaped(kit):
    with StateStore(kit.reports / "remediation").transaction() as st:
        st["inflight"]["dd01"] = {"ts": Clock()(), "run_id": "r-live", "alert": "NoOrdersSubmitted", "host": "h9",
                                  "trigger": "webhook", "pid": os.getpid(), "pid_start": None}
    eng = engine(kit, FakeRunner())
    assert eng.recover() == []
    [d] = handle(eng, alert("dd01"))
    assert d.reason.startswith("duplicate: run r-live for this fingerprint is queued")


def test_an_error_in_a_run_ends_it_audited(kit):
    class Broken(FakeRunner):
        def __call__(self, *args, **kwargs):
            raise RuntimeError("boom")
    eng = engine(kit, Broken())
    [job] = eng.triage(parse(payload(alert("de01"))))
    d = eng.execute(job)
    assert d.result == "failed" and d.reason == "error: RuntimeError: boom"
    state = eng.store.peek()
    assert state["inflight"] == {} and "de01" in state["dedupe"] and eng.busy_hosts() == []


# --- secrets by value in the audit --------------------------------------------------------------------


def test_the_audit_never_holds_a_known_secret_value(kit):
    token = "tok-" + "9" * 30
    runner = FakeRunner("EXECUTOR_HUNG")
    runner.error = f"ConnectionError: http://user:{token}@proxy:3128 refused"
    eng = engine(kit, runner, secret_values=(token,))
    [d] = handle(eng, alert("df01"))
    assert d.result == "failed" and token not in d.reason and "********" in d.reason
    assert token not in kit.audit_log.read_text()


def test_a_secret_the_net_had_to_mask_is_reported(kit):
    from remediation.runner import RunResult

    class Leaky(FakeRunner):
        def __call__(self, playbook, **kwargs):
            result = super().__call__(playbook, **kwargs)
            return RunResult(result.status, result.rc, result.duration_s, result.artifacts,
                             screened=("artifacts/diagnose/fact_cache/lab",))
    handle(engine(kit, Leaky("HEALTHY")), alert("dg01"))
    lines = [json.loads(x) for x in kit.audit_log.read_text().splitlines()]
    [screen] = [x for x in lines if x["action"] == "remediation_screen"]
    assert screen["result"] == "masked" and screen["details"]["files"] == ["artifacts/diagnose/fact_cache/lab"]
