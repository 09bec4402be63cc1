"""playbooks/rollback.yml on the lab: the runbook's rollbacks as managed .env state.

Each test leaves the lab's .env and executor as it found them (the `pristine_env` fixture).
"""
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "lab" / "run" / "quantum_trader"
ENV = PROJECT / ".env"
VAULT_PASS = ROOT / "lab" / "run" / "vault" / "vault-pass"
EXECUTOR = "quantum_auto_executor"


def rollback(mode, *extra, audit=None, timeout=240):
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", "playbooks/rollback.yml",
           "--vault-password-file", str(VAULT_PASS), "-e", f"trading_mode={mode}", *extra]
    if audit:
        cmd += ["-e", f"qt_audit_log={audit}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def container():
    """(container id, {env}) of the running executor."""
    out = json.loads(subprocess.run(["docker", "inspect", EXECUTOR], capture_output=True, text=True,
                                    check=False).stdout)[0]
    return out["Id"], dict(e.split("=", 1) for e in out["Config"]["Env"])


def sim_orders():
    """Orders each simulator personality has received so far."""
    with urllib.request.urlopen("http://127.0.0.1:18099/_sim/state", timeout=5) as resp:
        state = json.loads(resp.read())
    return {name: c["orders_total"] for name, c in state["personalities"].items()}


def backups():
    return sorted(PROJECT.glob(".env.*.bak"))


def compose(*args):
    return subprocess.run(["docker", "compose", "--project-directory", str(PROJECT), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def wait_healthy(timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", EXECUTOR],
                             capture_output=True, text=True, check=False).stdout.strip()
        if out == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError("executor not healthy")


@pytest.fixture
def pristine_env(lab):
    """The lab's .env and executor as they were, whatever the test did."""
    before = ENV.read_bytes()
    old_backups = set(backups())
    yield before
    ENV.write_bytes(before)
    ENV.chmod(0o600)
    for extra in set(backups()) - old_backups:
        extra.unlink()
    compose("up", "-d", "--no-deps", "auto-executor")  # recreates only if .env differs from the container
    wait_healthy()


def assert_changed(res, n):
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert f"changed={n}" in res.stdout, res.stdout[-4000:]


def test_runbook_paper_rollback_does_nothing_but_ours_works(pristine_env, tmp_path):
    """Runbook: echo PAPER_TRADING=true >> .env; docker compose restart -> still trading. Ours -> paper."""
    cid, env = container()
    assert env["PAPER_TRADING"] == "false"
    with ENV.open("a") as f:  # the runbook's own commands
        f.write("PAPER_TRADING=true\n")
    assert compose("restart", "auto-executor").returncode == 0
    wait_healthy()
    assert container()[1]["PAPER_TRADING"] == "false"  # restart never re-reads .env: the rollback did nothing

    audit = tmp_path / "audit.jsonl"
    res = rollback("paper", audit=audit)
    assert_changed(res, 2)  # .env (duplicate collapsed) and the recreate
    orders_after_recreate = sim_orders()
    new_cid, env = container()
    assert new_cid != cid and env["PAPER_TRADING"] == "true"
    text = ENV.read_text()
    assert text.count("PAPER_TRADING=") == 1 and "PAPER_TRADING=true" in text
    assert "Executor now in paper mode" in res.stdout
    time.sleep(3)  # intents keep coming every second: none may reach the exchange
    assert sim_orders() == orders_after_recreate
    record = json.loads(audit.read_text().splitlines()[-1])
    assert (record["action"], record["result"]) == ("rollback", "mode_changed")
    assert record["details"]["mode_from"] == "testnet" and record["details"]["mode_to"] == "paper"

    n_backups = len(backups())
    res = rollback("paper", audit=audit)  # idempotent: nothing to write, nothing to recreate
    assert_changed(res, 0)
    assert container()[0] == new_cid and len(backups()) == n_backups
    assert json.loads(audit.read_text().splitlines()[-1])["result"] == "already_in_mode"


def test_live_needs_confirmation_and_check_diff_masks_the_keys(pristine_env, lab_keys):
    """(Live -> testnet for real is the Molecule scenario rollback_testnet.)"""
    cid = container()[0]
    res = rollback("live")
    assert res.returncode != 0 and "confirm=LIVE" in res.stdout
    res = rollback("live", "-e", "confirm=LIVE", "--check", "--diff")  # the plan: keys change, masked
    assert res.returncode == 0, res.stdout[-4000:]
    assert "-BINANCE_USE_TESTNET=true" in res.stdout and "+BINANCE_USE_TESTNET=false" in res.stdout
    assert "+BINANCE_API_SECRET=******** (changed)" in res.stdout  # that it changes, never to what
    assert not any(v in res.stdout + res.stderr for v in lab_keys.values() if len(v) > 20)
    assert ENV.read_bytes() == pristine_env and container()[0] == cid


def test_failed_verification_restores_the_backup(pristine_env, tmp_path):
    """Keys the exchange rejects: no order is answered, so the old .env comes back."""
    owner = (ENV.stat().st_uid, ENV.stat().st_gid, ENV.stat().st_mode)  # qt's 0600 (lab/sshhost.py)
    creds = tmp_path / "bad.json"
    creds.write_text(json.dumps({"trading_mode_credentials": {"live": {
        "BINANCE_API_KEY": "rejected-key", "BINANCE_API_SECRET": "rejected-secret"}}}))
    audit = tmp_path / "audit.jsonl"
    res = rollback("live", "-e", "confirm=LIVE", "-e", f"@{creds}", "-e", "trading_mode_ready_timeout_s=8",
                   audit=audit)
    assert res.returncode != 0
    assert "Restored" in res.stdout, res.stdout[-4000:]
    assert ENV.read_bytes() == pristine_env
    assert (ENV.stat().st_uid, ENV.stat().st_gid, ENV.stat().st_mode) == owner  # even when run as root
    assert container()[1]["BINANCE_USE_TESTNET"] == "true"
    assert json.loads(audit.read_text().splitlines()[-1])["result"] == "failed_restored"
    assert "rejected-secret" not in res.stdout + audit.read_text()


def test_templated_ownership_after_import_renders_the_same_settings(pristine_env, tmp_path):
    """env_import.yml captures every other key; the template then changes only the managed ones."""
    dest = tmp_path / "env_values.yml"
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", "playbooks/env_import.yml",
           "-e", f"env_import_dest={dest}", "-e", f"env_import_vault_password_file={VAULT_PASS}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout[-3000:]
    # vault-encrypted on disk (the keys are in it); the rollback below reads it with the vault password
    assert dest.stat().st_mode & 0o777 == 0o600 and dest.read_text().startswith("$ANSIBLE_VAULT;")
    plain = subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "view", "--vault-password-file",
                            str(VAULT_PASS), str(dest)], capture_output=True, text=True, timeout=60, check=False).stdout
    assert "BINANCE_FUTURES_URL" in plain
    res = rollback("paper", "-e", "trading_mode_env_ownership=templated", "-e", f"@{dest}", "--check", "--diff")
    assert res.returncode == 0, res.stdout[-4000:]  # compose's oracle: only managed keys change
    assert "+PAPER_TRADING=true" in res.stdout and "managed by Ansible" in res.stdout
    assert ENV.read_bytes() == pristine_env
