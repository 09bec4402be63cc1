"""The decision path with a fake runner: every verdict x firing/resolved x duplicate x breaker x ban, plus
persistence across restarts, locks, the breaker's trip and reset, and the audit records."""
import itertools
import json
import subprocess
import sys
import threading

import pytest
from kit import FakeRunner, alert, payload

from remediation.alertmanager import parse
from remediation.engine import Engine
from remediation.policy import VERDICTS
from remediation.state import StateStore

# What the policy does with a firing alert's verdict (the kit's policy enables cancelling stuck orders).
MITIGATION = {"EXECUTOR_DOWN": "mitigate_restart_executor.yml", "EXECUTOR_HUNG": "mitigate_restart_executor.yml",
              "ORDERS_STUCK_AT_EXCHANGE": "mitigate_cancel_stuck_orders.yml"}
NO_MITIGATION = {"HEALTHY": "healthy", "BINANCE_RATE_LIMITED": "exchange_ban", "BINANCE_IP_BANNED": "exchange_ban"}


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def engine(kit, runner, clock=None, **kwargs):
    return Engine(kit.policy(), kit.reports, runner=runner, clock=clock or Clock(), **kwargs)


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
    eng = Engine(kit.policy(dry_run=True), kit.reports, runner=runner, clock=Clock())
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
