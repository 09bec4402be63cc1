"""rulebooks/execution_stuck.yml end to end on loopback: ansible-rulebook's built-in webhook -> run_playbook ->
`qt-remediate alert` -> the same decision path (stub playbooks through ansible-runner) -> the audit log.

Needs ansible-rulebook in .venv/eda (scripts/setup_venv.sh) and Java >= 17 (scripts/ensure_java.sh, which
`make test` runs). Under `make test` (QT_REQUIRE_TOOLS=1, also with CI set) a missing one fails the test;
run on its own, pytest skips it and says why."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alert_payload import alert, payload
from kit import ROOT
from waiting import wait_for

EDA_BIN = Path(sys.prefix) / "eda" / "bin"  # the eda venv beside the one running pytest (scripts/setup_venv.sh)
RULEBOOK = EDA_BIN / "ansible-rulebook"


def java_major():
    """The major version of the `java` on PATH (8 for 1.8), or None."""
    java = shutil.which("java")
    if not java:
        return None
    res = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'version "(?:1\.)?(\d+)', res.stderr + res.stdout)
    return int(match.group(1)) if match else None


def tools_required():
    return bool(os.environ.get("QT_REQUIRE_TOOLS") or os.environ.get("CI"))


@pytest.fixture
def eda_tools():
    """ansible-rulebook and Java >= 17, or a skip (a failure under `make test`) that says what is missing."""
    missing = []
    if not RULEBOOK.exists():
        missing.append(f"ansible-rulebook in {RULEBOOK.parent} (scripts/setup_venv.sh, `make venv`)")
    major = java_major()
    if major is None or major < 17:
        found = "no java on PATH" if major is None else f"java {major} on PATH"
        missing.append(f"Java >= 17 ({found}; as root: scripts/ensure_java.sh)")
    if missing:
        message = "needs " + " and ".join(missing)
        if tools_required():
            pytest.fail(f"{message}; QT_REQUIRE_TOOLS/CI is set, so a missing tool fails the run")
        pytest.skip(message)


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


def test_rulebook_hands_alertmanager_payloads_to_the_same_decision_path(eda_tools, kit, tmp_path):
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
        wait_for("ansible-rulebook's webhook", listening, 60)

        body = json.dumps(payload(alert("eda0001"))).encode()
        assert post(port, body, "wrong-" + token) == 401
        assert post(port, body, token) == 200
        wait_for("a decision in the audit log", kit.decisions, 90, lambda: f"rulebook log:\n{log.read_text()[-3000:]}")

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


# --------------------------------------------------------------------- a missing tool under `make test`

def run_this_test_without_java(tmp_path, **env):
    """This file's rulebook test in a child pytest whose PATH has no java: (exit code, output)."""
    run_env = {k: v for k, v in os.environ.items() if k not in ("QT_REQUIRE_TOOLS", "CI")}
    run_env.update(PATH=str(tmp_path), **env)  # an empty directory: no java
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsfE",
                          f"{__file__}::test_rulebook_hands_alertmanager_payloads_to_the_same_decision_path"],
                         cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
    return res.returncode, res.stdout


def test_without_java_the_rulebook_test_fails_under_make_test_and_skips_otherwise(tmp_path):
    code, out = run_this_test_without_java(tmp_path, QT_REQUIRE_TOOLS="1")
    assert code == 1 and "Failed: needs Java >= 17 (no java on PATH" in out, out[-2000:]  # an error at set-up
    code, out = run_this_test_without_java(tmp_path)
    assert code == 0 and "1 skipped" in out and "needs Java >= 17 (no java on PATH" in out, out[-2000:]


def test_make_test_requires_the_tools_and_installs_java(tmp_path):
    """`make test` exports QT_REQUIRE_TOOLS=1 to everything it runs, and its set-up installs Java. Read from the
    Makefile without running it: the `test` recipe is replaced by an echo, `system` is a dry run."""
    probe = tmp_path / "probe.mk"
    probe.write_text("test:\n\t@echo QT_REQUIRE_TOOLS=$$QT_REQUIRE_TOOLS\n")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_REQUIRE_TOOLS", "MAKEFLAGS", "MFLAGS")}
    res = subprocess.run(["make", "--no-print-directory", "-f", "Makefile", "-f", str(probe), "test"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.stdout.strip() == "QT_REQUIRE_TOOLS=1", res.stdout + res.stderr
    dry = subprocess.run(["make", "--no-print-directory", "-n", "system", "WITH_PROMETHEUS=1", "BASE_IMAGE=x"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "scripts/ensure_java.sh" in dry.stdout.split(), dry.stdout + dry.stderr
