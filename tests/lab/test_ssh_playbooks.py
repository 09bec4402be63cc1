"""Every playbook over SSH (issue 12): the on-call account, become qt, the venv prepare_host.yml made,
against the same lab containers and project as inventory/lab.yml. Each result is compared with the
local run or with the lab's own state; `.env` and the files the playbooks write stay qt's."""
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from alert_payload import alert, payload

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("qt_owns_the_project")]  # one owner, as in production

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"
ENV = RUN_DIR / ".env"
SSH_INV, LOCAL_INV = "inventory/lab-ssh.yml", "inventory/lab.yml"
VAULT = ["--vault-password-file", str(ROOT / "lab" / "run" / "vault" / "vault-pass")]
CONTROL = "http://127.0.0.1:18099"
EXECUTOR = "quantum_auto_executor"
FAULTS = json.loads(subprocess.run([sys.executable, str(ROOT / "lab" / "labctl"), "faults"], capture_output=True,
                                   text=True, check=True).stdout)


def command(inventory, name, *extra):
    return [str(BIN / "ansible-playbook"), "-i", inventory, name, *extra]


def playbook(inventory, name, *extra, timeout=300):
    res = subprocess.run(command(inventory, name, *extra), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-3000:]
    return res


def both(name, *extra, timeout=300):
    """The same playbook over SSH and locally, side by side: {inventory: result}."""
    procs = {inv: subprocess.Popen(command(inv, name, *extra), cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for inv in (SSH_INV, LOCAL_INV)}
    return {inv: proc.communicate(timeout=timeout)[0] for inv, proc in procs.items()}


def verdict(report_dir, host):
    return json.loads((report_dir / host / "diagnosis-latest.json").read_text())


def control(path, body=None):
    req = urllib.request.Request(CONTROL + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def open_orders():
    return {o["clientOrderId"] for o in control("/_sim/orders?personality=testnet")
            if o["status"] in ("NEW", "PARTIALLY_FILLED")}


def running():
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", EXECUTOR], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() == "true"


def owner_and_mode(path):
    st = path.stat()
    return st.st_uid, stat.S_IMODE(st.st_mode)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def prepared(lab_session):
    res = playbook(SSH_INV, "playbooks/prepare_host.yml")
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.fixture(scope="module")
def qt_uid():
    return ENV.stat().st_uid


@pytest.mark.parametrize("fault_name", sorted(FAULTS))
def test_every_fault_gets_the_local_verdict_over_ssh(prepared, fault, fault_name, tmp_path):
    fault(fault_name)
    out = both("diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}")
    ssh, local = verdict(tmp_path, "lab-ssh")["verdict"], verdict(tmp_path, "lab")["verdict"]
    assert ssh["primary"] == local["primary"] == FAULTS[fault_name], out[SSH_INV][-3000:]
    assert ssh["missing_checks"] == local["missing_checks"]  # SSH loses no check
    # The same codes; not the same list: under a fault that grows with time (binance_timeout) a second
    # check may also report it in one run and not yet in the other, read a moment earlier.
    assert {f["code"] for f in ssh["findings"]} == {f["code"] for f in local["findings"]}


def test_the_correlation_trace_over_ssh(prepared, fault, tmp_path):
    fault("binance_timeout")  # check 4 picks the oldest unanswered order itself
    out = both("diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}")
    traces = [verdict(tmp_path, host)["checks"]["trace"]["evidence"] for host in ("lab-ssh", "lab")]
    assert all(t.get("auto_selected") and t.get("timeline") for t in traces), out[SSH_INV][-3000:]
    assert "ORDER_SUBMIT" in [e["event"] for e in traces[0]["timeline"]]


def test_restart_over_ssh_brings_a_hung_executor_back(prepared, fault, tmp_path):
    audit = tmp_path / "audit.jsonl"
    fault("executor_hang")
    res = playbook(SSH_INV, "playbooks/mitigate_restart_executor.yml", "-e", f"qt_audit_log={audit}")
    assert res.returncode == 0, res.stdout[-3000:]
    [restart] = [r for r in records(audit) if r["action"] == "restart_executor"]
    assert (restart["host"], restart["result"]) == ("lab-ssh", "restarted")


def test_cancel_over_ssh_cancels_ours_and_keeps_the_manual_order(prepared, fault, tmp_path):
    fault("stuck_orders", "no_signals")
    for symbol, price, cid in (("BTCUSDT", "50000", "manual-desk-ssh"), ("ETHUSDT", "2500", "qtx-ssh-eth")):
        control("/_sim/orders", {"symbol": symbol, "quantity": "0.01", "price": price, "age_s": 900,
                                 "client_order_id": cid})
    res = playbook(SSH_INV, "playbooks/mitigate_cancel_stuck_orders.yml", "--check", "--diff")
    assert res.returncode == 0 and "qtx-ssh-eth" in open_orders(), res.stdout[-3000:]
    res = playbook(SSH_INV, "playbooks/mitigate_cancel_stuck_orders.yml", "-e", "confirm=true",
                   "-e", f"qt_audit_log={tmp_path / 'audit.jsonl'}")
    assert res.returncode == 0, res.stdout[-3000:]
    left = open_orders()
    assert "qtx-ssh-eth" not in left and "manual-desk-ssh" in left
    assert not [cid for cid in left if cid.startswith("qtx-")]


def test_emergency_stop_and_resume_over_ssh(prepared, lab, qt_uid, tmp_path):
    audit = ["-e", f"qt_audit_log={tmp_path / 'audit.jsonl'}"]
    policy = RUN_DIR / "config" / "execution_policy.json"
    try:
        res = playbook(SSH_INV, "playbooks/emergency_stop.yml", "-e", "confirm=ABORT", *audit)
        assert res.returncode == 0 and "EMERGENCY STOP COMPLETE" in res.stdout, res.stdout[-3000:]
        assert not running() and policy.stat().st_uid == qt_uid
        res = playbook(SSH_INV, "diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}")
        assert verdict(tmp_path, "lab-ssh")["verdict"]["primary"] == "OPERATOR_STOPPED", res.stdout[-3000:]
        res = playbook(SSH_INV, "playbooks/mitigate_restart_executor.yml", *audit)
        assert res.returncode != 0 and "Not restarting: trading stopped by an operator" in res.stdout
    finally:
        res = playbook(SSH_INV, "playbooks/resume_trading.yml", "-e", "confirm=RESUME", *audit)
    assert res.returncode == 0 and running(), res.stdout[-3000:]
    assert policy.stat().st_uid == qt_uid
    res = playbook(SSH_INV, "diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}")
    assert verdict(tmp_path, "lab-ssh")["verdict"]["primary"] == "HEALTHY", res.stdout[-3000:]


def test_rollback_over_ssh_to_each_mode_keeps_env_qts_and_0600(prepared, lab, qt_uid):
    before = ENV.read_bytes()
    try:
        for mode, extra in (("paper", []), ("live", ["-e", "confirm=LIVE"]), ("testnet", [])):
            res = playbook(SSH_INV, "playbooks/rollback.yml", "-e", f"trading_mode={mode}", *extra, *VAULT)
            assert res.returncode == 0, res.stdout[-3000:]
            assert f"Executor now in {mode} mode" in res.stdout, res.stdout[-3000:]
            assert owner_and_mode(ENV) == (qt_uid, 0o600)
            assert all(owner_and_mode(b) == (qt_uid, 0o600) for b in RUN_DIR.glob(".env.*.bak"))
    finally:
        ENV.write_bytes(before)  # in place: owner and mode stay
        subprocess.run(["docker", "compose", "--project-directory", str(RUN_DIR), "up", "-d", "--no-deps",
                        "--wait", "auto-executor"], capture_output=True, timeout=180, check=False)


def test_postmortem_over_ssh_is_written_on_the_host_and_copied_back(prepared, fault, qt_uid, tmp_path):
    fault("binance_timeout")
    playbook(SSH_INV, "diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}")
    res = playbook(SSH_INV, "playbooks/postmortem.yml", "-e", f"qt_reports_dir={tmp_path}")
    assert res.returncode == 0, res.stdout[-3000:]
    on_host = sorted((RUN_DIR / "RUNBOOKS" / "postmortems").glob("*.md"), key=lambda p: p.stat().st_mtime)
    assert on_host and on_host[-1].stat().st_uid == qt_uid
    copies = list((tmp_path / "lab-ssh" / "postmortems").glob("*.md"))
    assert [c.name for c in copies] == [on_host[-1].name]
    assert copies[0].read_bytes() == on_host[-1].read_bytes()


def test_qt_remediate_with_the_ssh_inventory_restarts_a_hung_executor(prepared, fault, tmp_path):
    fault("executor_hang")
    body = payload(alert("55b055b055b00001", name="ExecutorMetricsDown", qt_host="lab-ssh"))
    env = dict(os.environ, QT_REPORTS_DIR=str(tmp_path), PATH=f"{BIN}:{os.environ['PATH']}")
    res = subprocess.run([str(BIN / "qt-remediate"), "alert", "-i", SSH_INV, "--payload", "-"],
                         input=json.dumps(body), capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    audit = records(tmp_path / "audit.jsonl")
    assert [(r["host"], r["result"]) for r in audit if r["action"] == "restart_executor"] == [("lab-ssh", "restarted")]
    assert running()
