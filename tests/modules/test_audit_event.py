"""The audit log: one JSON line per call, who/when/what, secrets masked, check mode marked."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).parent / "ansible")


def audit(tmp_path, args, *extra, actor="oncall-alice"):
    cmd = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-e",
           f"ansible_python_interpreter={sys.executable}", "-m", "quantum.runbooks.audit_event", "-a", args, *extra]
    env = {"PATH": "/usr/bin:/bin", "QT_AUDIT_ACTOR": actor, "HOME": str(Path.home())}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_lines_are_appended_with_who_when_what_and_secrets_masked(tmp_path):
    log = tmp_path / "sub" / "audit.jsonl"
    details = json.dumps({"order_ids": [1, 2], "api_secret": "s3cr3t-value", "nested": {"token": "t0k3n"}})
    args = json.dumps({"path": str(log), "action": "cancel_stuck_orders", "result": "cancelled",
                       "details": json.loads(details)})
    assert audit(tmp_path, args).returncode == 0
    assert audit(tmp_path, json.dumps({"path": str(log), "action": "diagnose", "result": "HEALTHY"}),
                 "--check").returncode == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["action"], x["result"], x["check_mode"]) for x in lines] == [
        ("cancel_stuck_orders", "cancelled", False), ("diagnose", "HEALTHY", True)]
    first = lines[0]
    assert first["who"] == "oncall-alice" and first["host"] == "localhost" and first["ts"].endswith("Z")
    assert first["details"]["order_ids"] == [1, 2]
    assert first["details"]["api_secret"] == "********" and first["details"]["nested"]["token"] == "********"
    assert "s3cr3t-value" not in log.read_text() and "t0k3n" not in log.read_text()


def test_missing_arguments_fail_clearly(tmp_path):
    res = audit(tmp_path, json.dumps({"path": str(tmp_path / "a.jsonl")}))
    assert res.returncode != 0 and "audit_event needs 'path' and 'action'" in res.stdout
