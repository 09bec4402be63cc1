"""playbooks/mitigate_restart_executor.yml on the lab: runbook quick fix 1, done safely (the hung
executor: check, restart, idempotence, HEALTHY verdict, is the Molecule scenario molecule/restart_executor)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_run import run_module

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml",
            "playbooks/mitigate_restart_executor.yml"]


def restart(*extra, audit=None):
    extra = (*extra, "-e", f"qt_audit_log={audit}") if audit else extra
    return subprocess.run([*PLAYBOOK, *extra], cwd=ROOT, capture_output=True, text=True, timeout=180)


def audited(path):
    """(action, result) of each restart decision in the audit log."""
    return [(r["action"], r["result"]) for r in map(json.loads, path.read_text().splitlines())
            if r["action"] == "restart_executor"]


def started_at():
    out = subprocess.run(["docker", "inspect", "-f", "{{json .State}}", "quantum_auto_executor"],
                         capture_output=True, text=True).stdout
    state = json.loads(out)
    return state["StartedAt"], state["Status"], state.get("Health", {}).get("Status")


def test_healthy_executor_is_left_alone(lab, tmp_path):
    before = started_at()
    res = restart(audit=tmp_path / "audit.jsonl")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "changed=0" in res.stdout and "no restart" in res.stdout
    assert started_at() == before
    assert audited(tmp_path / "audit.jsonl") == [("restart_executor", "skipped_healthy")]


def test_crashed_executor_is_started_again(fault):
    fault("executor_crash")
    res = restart()
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Executor restarted and working" in res.stdout
    # The playbook ran the health check itself; Docker's own status may still say "starting".
    assert started_at()[1] == "running"


@pytest.mark.parametrize("ban,verdict,wait", [("binance_418", "BINANCE_IP_BANNED", "Wait 120 s"),
                                               ("binance_429", "BINANCE_RATE_LIMITED", "Wait 30 s")])
def test_refuses_to_restart_into_an_ip_ban_or_a_rate_limit(fault, tmp_path, ban, verdict, wait):
    fault("executor_hang", ban)
    before = started_at()
    res = restart(audit=tmp_path / "audit.jsonl")
    assert res.returncode != 0
    assert f"Not restarting: Binance reports {verdict}" in res.stdout
    assert wait in res.stdout         # the simulator's Retry-After
    assert started_at() == before
    assert audited(tmp_path / "audit.jsonl") == [("restart_executor", "refused_exchange_ban")]


def test_a_restart_that_does_not_bring_the_executor_back_says_so_and_audits_it(fault, tmp_path):
    """The gate blocks every intent, so no fresh intent is ever answered after the restart: the rescue
    shows the last events, audits restarted_not_ready and fails."""
    fault("gate_block")
    res = restart("-e", "force=true", "-e", "restart_executor_ready_timeout_s=8", audit=tmp_path / "audit.jsonl")
    assert res.returncode != 0
    assert "The executor is not working 8 s after the restart." in res.stdout
    assert "GATE_BLOCKED" in res.stdout  # the last order events name why
    assert audited(tmp_path / "audit.jsonl") == [("restart_executor", "restarted_not_ready")]


def test_force_restarts_a_healthy_executor(lab):
    before = started_at()
    res = restart("-e", "force=true")
    assert res.returncode == 0, res.stdout[-3000:]
    assert started_at()[0] != before[0]


def test_container_ready_names_the_stage_that_never_came(lab):
    since = time.time()
    res, _ = run_module("container_ready", {"name": "quantum_no_such_container", "since_ts": since, "timeout": 1})
    assert res["failed"] and res["stage"] == "running" and "not running" in res["msg"]
    # Redis runs but never logs a PREFLIGHT: the log stage times out, with what was awaited.
    res, _ = run_module("container_ready", {"name": "quantum_redis", "since_ts": since, "timeout": 2})
    assert res["failed"] and res["stage"] == "log" and not res["wait"]["met"]
    assert "no PREFLIGHT and ORDER_RESPONSE or WOULD_SUBMIT logged" in res["msg"]
    assert 2 <= res["waited_s"] < 4  # bounded by the timeout, even though Redis keeps quiet


def test_container_ready_returns_when_the_line_is_written(lab):
    res, _ = run_module("container_ready", {"name": "quantum_auto_executor", "since_ts": time.time() - 600,
                                            "wait_for_any": ["ORDER_RESPONSE"], "timeout": 30})
    assert not res.get("failed"), res
    assert res["stage"] == "ready" and res["wait"]["met"] and res["health_check"]["rc"] == 0
    assert res["event_counts"]["ORDER_RESPONSE"] > 0 and res["waited_s"] < 5
