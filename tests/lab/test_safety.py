"""Automation never undoes a human's safety action (issue 13), on the lab: the real playbooks and
qt-remediate against a real emergency stop."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from alert_payload import alert, payload
from sim_process import free_port

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXECUTOR = "quantum_auto_executor"


def playbook(name, *extra, audit=None, timeout=300):
    cmd = [str(BIN / "ansible-playbook"), "-i", "inventory/lab.yml", name, *extra]
    if audit:
        cmd += ["-e", f"qt_audit_log={audit}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def running():
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", EXECUTOR], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() == "true"


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def latest_verdict():
    return json.loads((ROOT / "reports" / "lab" / "diagnosis-latest.json").read_text())


def am_json(url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"}, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager (Debian package) on a free loopback port, routing to nobody."""
    if not shutil.which("prometheus-alertmanager"):
        pytest.fail("prometheus-alertmanager missing: run `make prometheus` (scripts/ensure_prometheus.sh)")
    port = free_port()
    (tmp_path / "am.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    proc = subprocess.Popen(["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            am_json(url + "/api/v2/status")
            break
        except OSError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def executor_alert_state(am):
    """Post the alert a stopped executor fires, as Prometheus would; its state in Alertmanager."""
    am_json(am + "/api/v2/alerts", [{"labels": {"alertname": "ExecutorMetricsDown", "qt_host": "lab"},
                                     "annotations": {}}])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alerts = am_json(am + "/api/v2/alerts?filter=alertname%3D%22ExecutorMetricsDown%22")
        if alerts:
            return alerts[0]["status"]["state"]
        time.sleep(0.2)
    raise AssertionError("Alertmanager never listed the posted alert")


def silences(am):
    return [x for x in am_json(am + "/api/v2/silences") if x["status"]["state"] == "active"]


@pytest.fixture
def stopped(lab, tmp_path, alertmanager):
    """An operator's emergency stop (alerts silenced in a real Alertmanager), released again at the end
    whatever the test did."""
    audit = tmp_path / "audit.jsonl"
    am = ["-e", f"qt_alertmanager_url={alertmanager}"]
    res = playbook("playbooks/emergency_stop.yml", "-e", "confirm=ABORT", *am, audit=audit)
    assert res.returncode == 0 and not running(), res.stdout[-3000:]
    assert "silenced in Alertmanager until resume" in res.stdout
    yield audit, alertmanager
    playbook("playbooks/resume_trading.yml", "-e", "confirm=RESUME", *am, audit=audit)


def test_a_stop_is_sticky_for_diagnose_restart_rollback_and_remediation(stopped, fault, tmp_path):
    audit, am = stopped
    # a deliberate stop pages no one: the executor's alerts for this host are silenced, once
    [silence] = silences(am)
    assert silence["createdBy"].startswith("qt-runbooks emergency_stop.yml")
    assert executor_alert_state(am) == "suppressed"
    again = playbook("playbooks/emergency_stop.yml", "-e", "confirm=ABORT", "-e", f"qt_alertmanager_url={am}",
                     audit=audit)
    assert again.returncode == 0 and "already silenced" in again.stdout and len(silences(am)) == 1

    res = playbook("diagnose.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    verdict = latest_verdict()["verdict"]
    assert verdict["primary"] == "OPERATOR_STOPPED", verdict
    assert "stopped by an operator at 20" in res.stdout and "resume_trading.yml" in res.stdout
    assert "mitigate_restart_executor" not in json.dumps(verdict["recommended"])

    for extra in ([], ["-e", "force=true"]):  # not even a forced restart undoes the stop
        res = playbook("playbooks/mitigate_restart_executor.yml", *extra, audit=audit)
        assert res.returncode != 0 and "Not restarting: trading stopped by an operator at" in res.stdout
        assert not running()
    res = playbook("playbooks/rollback.yml", "-e", "trading_mode=testnet", "--vault-password-file",
                   "lab/run/vault/vault-pass", audit=audit)
    assert res.returncode != 0 and "Not touching the executor: trading was stopped by an operator" in res.stdout
    assert not running()
    refused = [r for r in records(audit) if r["result"] == "refused_emergency_stop"]
    assert [r["action"] for r in refused] == ["restart_executor", "restart_executor", "rollback"]

    # the alert that a stopped executor fires (no metrics) reaches the remediation: no restart
    body = payload(alert("5afe5afe5afe5afe", name="ExecutorMetricsDown", qt_host="lab"))
    env = dict(os.environ, QT_REPORTS_DIR=str(tmp_path / "remediation"), PATH=f"{BIN}:{os.environ['PATH']}")
    res = subprocess.run([str(BIN / "qt-remediate"), "alert", "--payload", "-"], input=json.dumps(body),
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    assert "OPERATOR_STOPPED" in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-2000:]
    assert not running()
    runs = [r for r in records(tmp_path / "remediation" / "audit.jsonl") if r["action"] == "restart_executor"]
    assert runs == []

    # a human's explicit override in that command restarts into the stop (the switch still blocks orders)
    res = playbook("playbooks/mitigate_restart_executor.yml", "-e", "qt_override_emergency_stop=true", audit=audit)
    assert res.returncode == 0 and running(), res.stdout[-3000:]
    assert playbook("diagnose.yml").returncode == 0 and latest_verdict()["verdict"]["primary"] == "OPERATOR_STOPPED"

    # resume: the silence is expired, and the next alert for a hung executor is acted on again
    res = playbook("playbooks/resume_trading.yml", "-e", "confirm=RESUME", "-e", f"qt_alertmanager_url={am}",
                   audit=audit)
    assert res.returncode == 0, res.stdout[-3000:]
    assert silences(am) == [] and executor_alert_state(am) == "active"
    fault("executor_hang")
    body = payload(alert("5afe5afe5afe0002", name="ExecutorMetricsDown", qt_host="lab"))
    res = subprocess.run([str(BIN / "qt-remediate"), "alert", "--payload", "-"], input=json.dumps(body),
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    runs = [r for r in records(tmp_path / "remediation" / "audit.jsonl") if r["action"] == "restart_executor"]
    assert [r["result"] for r in runs] == ["restarted"], runs


def test_diagnose_says_which_mode_really_trades_when_env_and_the_executor_disagree(lab, tmp_path):
    """The runbook's own rollback (`echo PAPER_TRADING=true >> .env; docker compose restart`) leaves the
    executor live: the verdict must say so first, never 'Nothing to do'."""
    env_file = ROOT / "lab" / "run" / "quantum_trader" / ".env"
    before = env_file.read_bytes()
    try:
        env_file.write_bytes(before + b"\nPAPER_TRADING=true\n")
        subprocess.run(["docker", "compose", "--project-directory", str(env_file.parent), "restart",
                        "auto-executor"], check=True, capture_output=True, timeout=120)
        res = playbook("diagnose.yml")
        assert res.returncode == 0, res.stdout[-3000:]
        verdict = latest_verdict()["verdict"]
        assert verdict["primary"] == "TRADING_MODE_MISMATCH", verdict
        assert "VERDICT: TRADING_MODE_MISMATCH - the running executor trades " in res.stdout
        assert "Nothing to do" not in res.stdout
        assert verdict["recommended"]["command"].endswith("playbooks/rollback.yml -e trading_mode=paper")
    finally:
        env_file.write_bytes(before)


def test_an_emergency_stop_step_that_fails_does_not_stop_the_later_steps_and_says_incomplete(fault, tmp_path):
    """Redis is down: step 1 (the kill switch in Redis) fails, the executor is still stopped and the
    orders cancelled, and the run ends INCOMPLETE saying why - never COMPLETE."""
    audit = tmp_path / "audit.jsonl"
    fault("no_signals", "redis_down")
    control = "http://127.0.0.1:18099/_sim/orders"
    am_json(control, {"symbol": "BTCUSDT", "quantity": "0.01", "price": "50000", "age_s": 60,
                      "client_order_id": "manual-desk-es"})
    try:
        res = playbook("playbooks/emergency_stop.yml", "-e", "confirm=ABORT", audit=audit)
        assert res.returncode != 0, res.stdout[-3000:]
        assert "EMERGENCY STOP INCOMPLETE" in res.stdout and "The emergency stop is INCOMPLETE" in res.stdout
        assert "state: kill switch OFF, executor stopped" in res.stdout, res.stdout[-3000:]
        assert not running()
        assert not [o for o in am_json(control + "?personality=testnet") if o["status"] == "NEW"]
        [record] = [r for r in records(audit) if r["action"] == "emergency_stop"]
        steps = record["details"]["steps"]
        assert record["result"] == "incomplete"
        assert (steps["kill_switch"]["ok"], steps["stop_executor"]["ok"], steps["cancel_orders"]["ok"]) == \
            (False, True, True), steps
    finally:
        fault("healthy")
        playbook("playbooks/resume_trading.yml", "-e", "confirm=RESUME", audit=audit)
