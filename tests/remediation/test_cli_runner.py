"""qt-remediate as a command, with real ansible-runner runs of stub playbooks (tmp_path, no lab)."""
import http.client
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from alert_payload import alert, payload
from kit import QT_REMEDIATE

from remediation.cli import main


def run_dirs(kit):
    runs = kit.reports / "remediation" / "runs"
    return sorted(p for p in runs.glob("*/*") if p.is_dir()) if runs.exists() else []


def test_alert_diagnoses_then_mitigates_through_ansible_runner_with_no_secret_in_any_artifact(kit, tmp_path):
    kit.set_verdict("EXECUTOR_HUNG")
    token, api_secret, vault_pass = (secrets.token_hex(20) for _dummy in range(3))
    vault_file = tmp_path / "vault-pass"
    vault_file.write_text(vault_pass + "\n")
    vault_file.chmod(0o600)
    env = kit.env(QT_REMEDIATE_TOKEN=token, BINANCE_API_SECRET=api_secret, MY_SERVICE_PASSWORD=api_secret)

    out = kit.cli("alert", "--payload", "-", "--vault-password-file", vault_file, stdin=json.dumps(payload()), env=env)

    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ran          lab OrderSubmitWithoutResponse verdict=EXECUTOR_HUNG "
                                 "playbook=mitigate_restart_executor.yml")
    assert kit.marks_present() == ["mitigate_restart_executor-lab"]
    dirs = run_dirs(kit)
    assert [d.name for d in dirs] == ["diagnose", "mitigate"]           # one private_data_dir per run
    for d in dirs:                                                      # artifacts kept, status/rc recorded
        art = d / "artifacts" / d.name
        assert (art / "status").read_text() == "successful" and (art / "rc").read_text() == "0"
        command = json.loads((art / "command").read_text())
        assert command["command"][command["command"].index("--vault-password-file") + 1] == str(vault_file)
        assert command["env"]["ANSIBLE_COLLECTIONS_PATH"].endswith(".collections")
        assert command["env"]["BINANCE_API_SECRET"] == "" and command["env"]["QT_REMEDIATE_TOKEN"] == ""
    # the scan: every file ansible-runner wrote (env/, artifacts/ incl. job_events and command) and the audit log
    scanned = 0
    for path in [*(kit.reports / "remediation" / "runs").rglob("*"), kit.audit_log]:
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for secret in (token, api_secret, vault_pass):
                assert secret.encode() not in data, f"a secret leaked into {path}"
    assert scanned > 20
    # the playbook's own audit line (action plugin) and the decision line share one record format
    lines = [json.loads(x) for x in kit.audit_log.read_text().splitlines()]
    assert [(x["action"], x["result"]) for x in lines] == [("diagnose", "EXECUTOR_HUNG"),
                                                           ("remediation_decision", "ran")]
    assert set(lines[0]) == set(lines[1]) == {"ts", "who", "host", "action", "result", "check_mode", "details"}
    assert lines[0]["who"] == lines[1]["who"] == "qt-remediate/alert"
    details = lines[1]["details"]
    assert details["verdict"] == "EXECUTOR_HUNG" and details["fingerprint"] == "a1b2c3d4e5f60718"
    assert details["artifacts"] == str(dirs[1] / "artifacts" / "mitigate") and details["rc"] == 0

    status = kit.cli("status")
    assert status.returncode == 0
    table = status.stdout.splitlines()
    assert table[0] == "breaker: closed (1 recent automatic mitigations)"
    assert table[1].split() == ["TIME", "HOST", "TRIGGER", "ALERT/VERDICT", "ACTION", "RESULT", "DUR", "RC",
                                "REASON", "/", "RUN"]
    row = table[2].split()
    assert row[2:8] == ["lab", "alert", "OrderSubmitWithoutResponse/EXECUTOR_HUNG", "mitigate_restart_executor.yml",
                        "ran", row[7]] and row[7].endswith("s") and row[8] == "0"
    assert table[-1] == f"latest artifacts: {dirs[1] / 'artifacts' / 'mitigate'}"


def test_replay_check_runs_every_playbook_in_check_mode_and_leaves_state_alone(kit, tmp_path):
    kit.set_verdict("EXECUTOR_DOWN")
    state_dir = kit.reports / "remediation"
    state_dir.mkdir(parents=True)
    state = {"version": 1, "running": {}, "breaker": {"open": False},
             "dedupe": {"beef01": {"ts": time.time(), "run_id": "r1", "alert": "NoOrdersSubmitted", "host": "lab"}},
             "mitigations": [{"ts": time.time(), "host": "lab", "playbook": "mitigate_restart_executor.yml"}]}
    (state_dir / "state.json").write_text(json.dumps(state))
    before = (state_dir / "state.json").read_bytes(), os.stat(state_dir / "state.json").st_mtime_ns
    stored = tmp_path / "alert.json"
    stored.write_text(json.dumps(payload(alert("c0ffee01"), alert("beef01", name="NoOrdersSubmitted", qt_host="h2"))))

    out = kit.cli("replay", stored, "--check", "--json")

    assert out.returncode == 0, out.stderr
    decisions = json.loads(out.stdout)
    assert [(d["result"], d["reason"].split(":")[0]) for d in decisions] == [
        ("ran", "verdict EXECUTOR_DOWN -> mitigate_restart_executor.yml"), ("skipped", "duplicate")]
    assert kit.marks_present() == []                                   # check mode changed nothing
    for d in run_dirs(kit):
        assert "--check" in json.loads((d / "artifacts" / d.name / "command").read_text())["command"]
    assert ((state_dir / "state.json").read_bytes(), os.stat(state_dir / "state.json").st_mtime_ns) == before
    assert not (state_dir / "locks").exists()
    records = kit.decisions()    # skips are final at triage, so the duplicate is logged first
    assert [(r["result"], r["check_mode"], r["details"]["replay"]) for r in records] == [
        ("skipped", True, True), ("ran", True, True)]

    refused = kit.cli("replay", stored)
    assert refused.returncode == 2 and "add --check" in refused.stderr


def test_run_playbook_explicitly_with_confirm_vars(kit):
    out = kit.cli("run", "playbooks/mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "--limit", "lab")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ran          lab mitigate_cancel_stuck_orders.yml - requested")
    assert (kit.marks / "mitigate_cancel_stuck_orders-lab").read_text() == "confirm=true\n"
    [record] = kit.decisions()
    assert record["details"]["trigger"] == "manual" and record["who"] != "qt-remediate/manual"


def report(verdict, age_min=0, host="lab"):
    stamp = datetime.now(timezone.utc) - timedelta(minutes=age_min)
    return {"host": host, "generated_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verdict": {"primary": verdict, "findings": [{"code": verdict}], "recommended": {"action": "x"}},
            "checks": {"binance": {"status": "ok"}}}


def test_run_verdict_from_diagnosis(kit, tmp_path):
    path = tmp_path / "diagnosis-latest.json"
    path.write_text(json.dumps(report("EXECUTOR_DOWN")))
    out = kit.cli("run", "--verdict-from-diagnosis", "--report", path, "--check")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["ran", "lab", "mitigate_restart_executor.yml"]
    assert kit.marks_present() == []                                   # --check

    # an old report is never acted on: diagnosed again (the stub says HEALTHY now), and the output says so
    path.write_text(json.dumps(report("EXECUTOR_DOWN", age_min=60)))
    out = kit.cli("run", "--verdict-from-diagnosis", "--report", path)
    assert out.returncode == 0, out.stderr
    first, evidence = out.stdout.splitlines()[:2]
    assert first.split()[:5] == ["skipped", "lab", "diagnose.yml", "verdict=HEALTHY", "-"]
    assert evidence.strip().startswith(f"evidence: stale report {path} generated 60 min ago (limit 2 min); "
                                       "diagnosed again: diagnosis generated ")
    assert kit.marks_present() == []
    # ... or refused when it cannot diagnose again (the host is gone from the inventory: the run fails)
    kit.set_verdict("EXECUTOR_DOWN", host="elsewhere")
    out = kit.cli("run", "--verdict-from-diagnosis", "--report", path)
    assert out.returncode == 1 and "stale_report: stale report" in out.stdout
    assert "diagnosing again failed (diagnose_failed:" in out.stdout and kit.marks_present() == []
    # the CI pair (.github/workflows/remediate.yml): diagnose writes <reports>/<host>/diagnosis-latest.json,
    # --verdict-from-diagnosis reads it there
    kit.set_verdict("GATE_BLOCKED")
    assert kit.cli("run", "diagnose.yml", "--limit", "lab").returncode == 0
    out = kit.cli("run", "--verdict-from-diagnosis")
    assert out.returncode == 0 and "no_automatic_mitigation: GATE_BLOCKED needs a human" in out.stdout
    records = kit.decisions()
    assert [r["result"] for r in records] == ["ran", "skipped", "failed", "ran", "skipped"]
    assert records[1]["details"]["evidence"].startswith(f"stale report {path} generated 60 min ago")


def test_a_human_overrides_the_emergency_stop_only_explicitly_and_audited(kit):
    out = kit.cli("run", "mitigate_restart_executor.yml", "--override-emergency-stop")
    assert out.returncode == 0, out.stderr
    assert "with --override-emergency-stop by " in out.stdout
    assert (kit.marks / "mitigate_restart_executor-lab").read_text() == "confirm=\noverride=True\n"
    [record] = kit.decisions()
    assert record["details"]["override_by"] == pwd.getpwuid(os.getuid()).pw_name
    extravars = (kit.reports / "remediation" / "runs" / record["details"]["run_id"] / "run" / "env" / "extravars")
    assert yaml.safe_load(extravars.read_text())["qt_override_emergency_stop"] is True
    out = kit.cli("run", "mitigate_restart_executor.yml")           # without the flag: no override
    assert out.returncode == 0 and (kit.marks / "mitigate_restart_executor-lab").read_text() == "confirm=\n"


@pytest.mark.parametrize("args, stdin, message", [
    (["alert", "--payload", "-"], "{not json", "body: not JSON"),
    (["alert", "--payload", "-"], json.dumps({"version": "3"}), "version: must be \"4\""),
    (["alert", "--payload", "/nonexistent.json"], None, "cannot read the payload /nonexistent.json"),
    (["alert"], None, "the following arguments are required: --payload"),
    (["run"], None, "give either PLAYBOOK or --verdict-from-diagnosis"),
    (["run", "nope.yml"], None, "unknown playbook 'nope.yml'"),
    (["run", "mitigate_restart_executor.yml", "-e", "binance_api_secret=x"], None, "looks like a secret"),
    (["run", "mitigate_restart_executor.yml", "-e", "novalue"], None, "expected KEY=VALUE"),
    (["run", "mitigate_restart_executor.yml", "--limit", "a,b"], None, "--limit must name one inventory host"),
    (["run", "--verdict-from-diagnosis", "--report", "/nonexistent.json"], None, "does not exist"),
    (["alert", "--payload", "-", "-i", "/nonexistent/inv.yml"], json.dumps(payload()), "inventory /nonexistent"),
    (["status", "--limit", "x"], None, "invalid int value"),
    (["run", "mitigate_restart_executor.yml", "-e", "qt_override_emergency_stop=true"], None,
     "use --override-emergency-stop"),
    (["run", "--verdict-from-diagnosis", "--override-emergency-stop"], None, "for PLAYBOOK only"),
    (["alert", "--payload", "-", "--override-emergency-stop"], json.dumps(payload()), "unrecognized arguments"),
    (["replay", "x.json", "--check", "--override-emergency-stop"], None, "unrecognized arguments"),
    (["serve", "--override-emergency-stop"], None, "unrecognized arguments"),
    (["frobnicate"], None, "invalid choice"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_recorded(kit, args, stdin, message):
    out = kit.cli(*args, stdin=stdin)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr
    assert not kit.audit_log.exists() and run_dirs(kit) == []


def test_bad_policy_is_one_line_naming_the_key(kit):
    kit.write_policy(mitigations={"EXECUTOR_DOWN": "emergency_stop.yml"})
    out = kit.cli("policy", "check")
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "mitigations.EXECUTOR_DOWN.playbook: emergency_stop.yml is never automatic" in out.stderr
    kit.write_policy()
    out = kit.cli("policy", "check")
    assert out.returncode == 0 and "ORDERS_STUCK_AT_EXCHANGE -> mitigate_cancel_stuck_orders.yml -e confirm=True" \
        in out.stdout


def test_serve_refuses_weak_or_exposed_tokens(kit, tmp_path):
    token = tmp_path / "token"
    token.write_text("s" * 40)
    token.chmod(0o644)
    out = kit.cli("serve", "--port", "0", "--token-file", token)
    assert out.returncode == 2 and "chmod 600" in out.stderr
    out = kit.cli("serve", "--port", "0", env=kit.env(QT_REMEDIATE_TOKEN="abc123xyz"))
    assert out.returncode == 2 and "too short" in out.stderr and "abc123xyz" not in out.stderr
    out = kit.cli("serve", "--port", "0")
    assert out.returncode == 2 and "serve needs a token" in out.stderr


@pytest.mark.parametrize("command", ["run", "serve", "alert", "replay", "status", "breaker", "policy"])
def test_help_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith(f"usage: qt-remediate {command}") and len(out) > 300


def test_serve_as_a_process_answers_and_stops_cleanly_on_sigterm(kit, tmp_path):
    token = secrets.token_hex(16)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(QT_REMEDIATE), "serve", "--port", str(port), "--token-file", str(token_file)],
                            env=kit.env(), stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on http://127.0.0.1:" in proc.stderr.readline()
        body = json.dumps(payload(alert(status="resolved"))).encode()
        for auth, code in ((None, 401), (f"Bearer {token}", 202)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/alert", body=body, headers={"Authorization": auth} if auth else {})
            assert conn.getresponse().status == code
            conn.close()
        assert [r["details"]["reason"].split(":")[0] for r in kit.decisions()] == ["resolved"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _dummy, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopping" in err and token not in err
