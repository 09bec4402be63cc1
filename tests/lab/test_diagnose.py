"""diagnose.yml on the lab: read-only, secret-free, bounded, usable from CI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", "diagnose.yml"]


def diagnose(tmp_path, *extra, timeout=120):
    res = subprocess.run([*PLAYBOOK, "-e", f"diagnose_report_dir={tmp_path}", *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout, check=False)
    report = tmp_path / "lab" / "diagnosis-latest.json"
    return res, json.loads(report.read_text()) if report.exists() else None


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30, check=False).stdout.strip()


def lab_state():
    """What diagnose must not change: containers, streams, consumer groups, open orders."""
    return {
        "containers": sh("docker ps -a --filter name=quantum_ --format '{{.Names}} {{.ID}} {{.State}}' | sort"),
        "xlen": [sh(f"docker exec quantum_redis redis-cli XLEN quantum:stream:{s}") for s in ("intent", "execution")],
        "pending": sh("docker exec quantum_redis redis-cli XPENDING quantum:stream:intent executor"),
        "orders": sh("curl -s http://127.0.0.1:18099/_sim/orders?personality=testnet"),
    }


def test_diagnose_changes_nothing(fault, tmp_path):
    fault("no_signals", "stuck_orders")  # a still lab (no new intents) with an order resting at the exchange
    before = lab_state()
    assert json.loads(before["orders"]), "the lab should have an open order for this test"
    res, report = diagnose(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "changed=0" in res.stdout and "failed=0" in res.stdout
    assert lab_state() == before
    assert report["verdict"]["primary"] == "NO_SIGNALS"
    assert "ORDERS_STUCK_AT_EXCHANGE" in [f["code"] for f in report["verdict"]["findings"]]


def test_no_secret_in_output_or_reports_even_with_vvv(lab, lab_keys, tmp_path):
    res, report = diagnose(tmp_path, "-vvv")
    assert res.returncode == 0, res.stdout[-3000:]
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    for name in ("SIM_TESTNET_API_KEY", "SIM_TESTNET_API_SECRET"):
        assert lab_keys[name] not in res.stdout + res.stderr, f"{name} leaked to the output"
        assert lab_keys[name] not in written, f"{name} leaked to the report"
    assert report["verdict"]["primary"] == "HEALTHY"


def test_check_mode_still_diagnoses_and_reports(lab, tmp_path):
    res, report = diagnose(tmp_path, "--check")
    assert res.returncode == 0, res.stdout[-3000:]
    assert report["verdict"]["primary"] == "HEALTHY"
    assert {c["status"] for c in report["checks"].values()} <= {"ok", "skipped"}


def test_fail_on_unhealthy_gives_a_nonzero_exit_and_still_a_report(fault, tmp_path):
    fault("gate_block")
    res, report = diagnose(tmp_path, "-e", "diagnose_fail_on_unhealthy=true")
    assert res.returncode != 0
    assert report["verdict"]["primary"] == "GATE_BLOCKED"
    assert "VERDICT: GATE_BLOCKED" in res.stdout


def test_bounded_when_the_exchange_hangs(fault, tmp_path):
    """Every probe has a timeout: diagnose completes (the speed target is in bench/diagnose.py)."""
    fault("binance_timeout")
    res, report = diagnose(tmp_path, timeout=90)  # subprocess.TimeoutExpired would fail the test
    assert res.returncode == 0, res.stdout[-3000:]
    assert report["verdict"]["primary"] == "BINANCE_UNREACHABLE"


def test_trace_of_a_given_correlation_id(lab, tmp_path):
    line = sh("docker logs quantum_auto_executor --tail 50 2>&1 | grep ORDER_RESPONSE | tail -1")
    cid = json.loads(line)["correlation_id"]
    res, report = diagnose(tmp_path, "-e", f"correlation_id={cid}")
    trace = report["checks"]["trace"]["evidence"]
    assert trace["correlation_id"] == cid and trace["complete"]
    events = [e["event"] for e in trace["timeline"]]
    assert events.index("INTENT_PUBLISHED") < events.index("ORDER_SUBMIT") < events.index("ORDER_RESPONSE")
    assert {e["service"] for e in trace["timeline"]} == {"quantum_ai_engine", "quantum_auto_executor"}


def test_unreachable_host_still_gets_a_report(tmp_path):
    inventory = tmp_path / "down.yml"
    inventory.write_text(
        "all:\n  children:\n    quantum_trader:\n      hosts:\n        down-host:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: 1\n          ansible_connection: ssh\n"
        "          ansible_ssh_common_args: -o ConnectTimeout=3\n")
    cmd = [*PLAYBOOK[:1], "-i", str(inventory), "diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    report = json.loads((tmp_path / "down-host" / "diagnosis-latest.json").read_text())
    assert report["verdict"]["primary"] == "INCONCLUSIVE", res.stdout[-3000:]
    assert len(report["verdict"]["missing_checks"]) == 3
    assert all("unreachable" in c["evidence"]["check_error"] for c in report["checks"].values())
    assert "VERDICT: INCONCLUSIVE" in res.stdout


def test_check_4_always_reports_like_checks_1_to_3(lab, tmp_path):
    """A trace that cannot run (here: its Docker socket does not exist) is recorded in the report like any
    check's error; the three checks the verdict needs still decide it, and the diagnosis ends with a report."""
    probe = {"containers": ["quantum_ai_engine", "quantum_auto_executor"], "correlation_id": "0f0f0f0f-trace-me",
             "docker_host": "unix:///nonexistent/docker.sock"}
    res, report = diagnose(tmp_path, "-e", "correlation_id=0f0f0f0f-trace-me",
                           "-e", json.dumps({"correlation_trace_probe": probe}))
    assert res.returncode == 0 and report is not None, res.stdout[-3000:]
    trace = report["checks"]["trace"]
    assert trace["status"] == "error" and "/nonexistent/docker.sock" in trace["evidence"]["check_error"], trace
    assert trace["evidence"]["correlation_id"] == "0f0f0f0f-trace-me"
    assert report["verdict"]["primary"] == "HEALTHY" and report["checks"]["executor"]["status"] == "ok"
    text = "".join(p.read_text() for p in (tmp_path / "lab").glob("diagnosis-*.md"))
    assert "### 4. Trace of 0f0f0f0f-trace-me" in text and "Could not run:" in text, text[-2000:]


def test_a_fleet_ends_with_one_table_worst_first_and_one_fleet_report(fault, tmp_path):
    """Two hosts on the hung lab and one that does not answer: the run ends with one table, the hung hosts
    first (with the command to run), the blind one after them, and a fleet report beside the per-host ones."""
    fault("executor_hang")
    lab = "ansible_connection: local, ansible_python_interpreter: '{{ ansible_playbook_python }}'"
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        "all:\n  children:\n    quantum_trader:\n      hosts:\n"
        f"        lab-b: {{{lab}}}\n        lab-a: {{{lab}}}\n"
        "        down-host: {ansible_host: 127.0.0.1, ansible_port: 1, ansible_connection: ssh,"
        " ansible_ssh_common_args: -o ConnectTimeout=3}\n"
        f"      vars: {{qt_project_dir: '{ROOT}/lab/run/quantum_trader',"
        " qt_binance_futures_url: 'http://127.0.0.1:18080/fapi',"
        " qt_binance_futures_testnet_url: 'http://127.0.0.1:18081/fapi',"
        " diagnose_verdict_no_signal_after_s: 6, diagnose_verdict_unanswered_after_s: 5}\n")
    res = subprocess.run([*PLAYBOOK[:1], "-i", str(inventory), "diagnose.yml", "-e", f"diagnose_report_dir={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    fleet = json.loads((tmp_path / "fleet-latest.json").read_text())["hosts"]
    assert [(r["host"], r["verdict"]) for r in fleet] == [
        ("lab-a", "EXECUTOR_HUNG"), ("lab-b", "EXECUTOR_HUNG"), ("down-host", "INCONCLUSIVE")], res.stdout[-3000:]
    assert fleet[0]["next"].startswith("ansible-playbook") and "mitigate_restart_executor" in fleet[0]["next"]
    for host in ("lab-a", "lab-b", "down-host"):  # the per-host reports are still there
        assert (tmp_path / host / "diagnosis-latest.md").exists()
    # The table is the run's last word before the recap, printed once.
    table = res.stdout[res.stdout.rindex("Fleet (worst first)"):res.stdout.index("PLAY RECAP")]
    assert res.stdout.count("Fleet (worst first)") == 1
    assert [line.split('"')[1].split()[:2] for line in table.splitlines() if '"lab-' in line or '"down-' in line] == [
        ["lab-a", "EXECUTOR_HUNG"], ["lab-b", "EXECUTOR_HUNG"], ["down-host", "INCONCLUSIVE"]]
    assert "| lab-a | EXECUTOR_HUNG |" in (tmp_path / "fleet-latest.md").read_text()
