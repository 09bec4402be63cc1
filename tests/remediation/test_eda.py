"""rulebooks/execution_stuck.yml end to end on loopback: ansible-rulebook's built-in webhook -> run_playbook ->
`qt-remediate alert` -> the same decision path (stub playbooks through ansible-runner) -> the audit log."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kit import ROOT, alert, payload

EDA_BIN = ROOT / ".venv" / "eda" / "bin"
RULEBOOK = EDA_BIN / "ansible-rulebook"

pytestmark = pytest.mark.skipif(
    not RULEBOOK.exists() or not shutil.which("java"),
    reason="needs ansible-rulebook in .venv/eda (scripts/setup_venv.sh) and Java >= 17 "
           "(apt-get install -y openjdk-17-jre-headless)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/alert", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_rulebook_hands_alertmanager_payloads_to_the_same_decision_path(kit, tmp_path):
    kit.set_verdict("HEALTHY")      # one diagnose run is enough here; test_cli_runner covers mitigations
    port, token = free_port(), secrets.token_hex(16)
    eda_vars = tmp_path / "eda-vars.yml"
    eda_vars.write_text(f"webhook_port: {port}\nwebhook_token: {token}\n")
    eda_vars.chmod(0o600)
    env = kit.env(PATH=os.pathsep.join([str(EDA_BIN), str(Path(sys.executable).parent), os.environ["PATH"]]))
    log = tmp_path / "rulebook.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(RULEBOOK), "-r", "rulebooks/execution_stuck.yml", "-i", "rulebooks/inventory.yml",
                                 "--vars", str(eda_vars)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def listening():
            assert proc.poll() is None, f"ansible-rulebook exited:\n{log.read_text()[-2000:]}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 60, "ansible-rulebook's webhook")

        body = json.dumps(payload(alert("eda0001"))).encode()
        assert post(port, body, "wrong-" + token) == 401
        assert post(port, body, token) == 200
        wait_for(lambda: kit.decisions(), 90, f"a decision in the audit log; rulebook log:\n{log.read_text()[-3000:]}")

        [decision] = kit.decisions()
        assert (decision["result"], decision["details"]["reason"]) == ("skipped", "healthy: nothing to do")
        assert decision["details"]["fingerprint"] == "eda0001" and decision["details"]["verdict"] == "HEALTHY"
        assert decision["details"]["run_id"] and decision["who"] == "qt-remediate/eda"
        assert token not in log.read_text()
        # one decision path, one state: the same alert through the CLI (or serve) is now a duplicate
        again = kit.cli("alert", "--payload", "-", stdin=body.decode())
        assert again.returncode == 0 and "duplicate: fingerprint seen" in again.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)      # its own session: the JVM and any playbook go with it
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
