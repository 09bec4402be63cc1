"""The production path on the lab: a trading host reached over real SSH (lab/sshhost.py), as the
on-call account that becomes qt, with a bare system Python until playbooks/prepare_host.yml ran.

inventory/lab-ssh.yml and inventory/lab.yml drive the same containers and project directory, so
the verdicts must agree. The clear-error cases use extra inventory hosts (same SSH host, broken on
purpose in one variable each) and never touch the lab itself.
"""
import grp
import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("qt_owns_the_project")]  # one owner, as in production

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"
SSH_DIR = ROOT / "lab" / "run" / "ssh"
BIN = Path(sys.executable).parent
FIX = "playbooks/prepare_host.yml"
VENV_PYTHON = "/home/qt/.local/share/qt-runbooks/venv/bin/python"


def playbook(inventory, name, *extra, timeout=300):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    start = time.monotonic()
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), name, *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout, check=False)
    res.seconds = time.monotonic() - start
    return res


def recap(res, host):
    """{'ok': n, 'changed': n, 'failed': n, ...} of one host's PLAY RECAP line."""
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith(host + " ") and "ok=" in ln)
    return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}


def diagnose(inventory, report_dir, *extra):
    res = playbook(inventory, "diagnose.yml", "-e", f"diagnose_report_dir={report_dir}", *extra)
    assert "Traceback" not in res.stdout + res.stderr
    return res


def report(report_dir, host):
    return json.loads((Path(report_dir) / host / "diagnosis-latest.json").read_text())


def ssh(*command):
    return subprocess.run(["ssh", "-i", str(SSH_DIR / "id_oncall"), "-p", "12222", "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}", "-o", "IdentitiesOnly=yes",
                           "oncall@127.0.0.1", *command], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def prepared(lab_session):
    """The SSH host after prepare_host.yml (as a user would: the default virtualenv)."""
    res = playbook("inventory/lab-ssh.yml", FIX)
    assert res.returncode == 0, res.stdout[-3000:]
    assert f"ansible_python_interpreter: {VENV_PYTHON}" in res.stdout
    return res


@pytest.fixture
def broken_inventory(tmp_path):
    """lab-ssh plus hosts broken in one variable each (paths made absolute: the file lives in tmp_path)."""
    text = (ROOT / "inventory" / "lab-ssh.yml").read_text().replace("{{ inventory_dir }}/..", str(ROOT))
    inv = yaml.safe_load(text)
    group = inv["all"]["children"]["quantum_trader"]
    good = group["hosts"]["lab-ssh"]
    group["hosts"].update({
        "lab-ssh-bare": dict(good, ansible_python_interpreter="/usr/bin/python3"),
        "lab-ssh-novenv": dict(good, ansible_python_interpreter="/home/qt/.local/share/qt-runbooks/nope/bin/python"),
        "lab-ssh-nodir": dict(good, qt_project_dir="/nonexistent/quantum_trader"),
        "lab-ssh-nobecome": dict(good, ansible_become=False, ansible_python_interpreter="/usr/bin/python3"),
    })
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def test_the_host_looks_like_production(lab):
    qt, oncall = pwd.getpwnam("qt"), pwd.getpwnam("oncall")
    assert "qt" in grp.getgrnam("docker").gr_mem and "oncall" not in grp.getgrnam("docker").gr_mem
    assert RUN_DIR.stat().st_uid == qt.pw_uid
    env = (RUN_DIR / ".env").stat()
    assert (env.st_uid, stat.S_IMODE(env.st_mode)) == (qt.pw_uid, 0o600)
    assert ssh("whoami").stdout.strip() == "oncall"
    assert ssh("sudo", "-n", "-u", "qt", "whoami").stdout.strip() == "qt"
    assert ssh("sudo", "-n", "true").returncode != 0, "oncall must not become root"
    assert ssh("cat", str(RUN_DIR / ".env")).returncode != 0, "oncall must not read .env itself"
    assert ssh("docker", "ps").returncode != 0, "oncall must not reach Docker itself"
    assert ssh("sudo", "-n", "-u", "qt", "docker", "compose", "--project-directory", str(RUN_DIR), "ps", "-q").stdout
    assert oncall.pw_uid != qt.pw_uid
    pinned = (SSH_DIR / "known_hosts").read_text()
    assert pinned.startswith("[127.0.0.1]:12222 ssh-ed25519 ")
    for path in [*(ROOT / "inventory").glob("*.yml"), *(ROOT / "docs").glob("*.md"), ROOT / "lab" / "sshhost.py"]:
        assert "StrictHostKeyChecking=no" not in path.read_text(), path


def test_prepare_host_check_changes_nothing_then_installs_once(lab):
    """A fresh virtualenv: --check installs nothing, the run installs, the rerun changes nothing."""
    name = f".local/share/qt-runbooks/test-{uuid.uuid4().hex[:8]}"
    venv = f"/home/qt/{name}"  # the role is given ~/...: the become user's home, not oncall's
    extra = ("-e", f"prepare_host_venv=~/{name}")
    try:
        check = playbook("inventory/lab-ssh.yml", FIX, "--check", *extra)
        assert check.returncode == 0, check.stdout[-3000:]
        assert recap(check, "lab-ssh")["changed"] > 0  # it says it would install
        assert ssh("sudo", "-n", "-u", "qt", "test", "-e", venv).returncode != 0, "--check made the virtualenv"
        first = playbook("inventory/lab-ssh.yml", FIX, *extra)
        assert first.returncode == 0, first.stdout[-3000:]
        assert recap(first, "lab-ssh")["changed"] > 0
        again = playbook("inventory/lab-ssh.yml", FIX, *extra)
        assert again.returncode == 0 and recap(again, "lab-ssh")["changed"] == 0, again.stdout[-3000:]
        check = playbook("inventory/lab-ssh.yml", FIX, "--check", *extra)
        assert check.returncode == 0 and recap(check, "lab-ssh")["changed"] == 0, check.stdout[-3000:]
        code = "import requests; print(requests.__version__)"
        libs = ssh("sudo", "-n", "-u", "qt", f"{venv}/bin/python", "-c", shlex.quote(code))
        assert libs.stdout.split() == ["2.34.2"], libs.stderr
    finally:
        ssh("sudo", "-n", "-u", "qt", "rm", "-rf", venv)


def test_a_half_prepared_host_gets_one_clear_line_per_gap(lab, prepared, broken_inventory, tmp_path):
    res = diagnose(broken_inventory, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]  # a report for every host, the good one unaffected
    assert report(tmp_path, "lab-ssh")["verdict"]["primary"] == "HEALTHY"
    # the checks need no Python library: the bare system Python diagnoses like the prepared venv
    assert report(tmp_path, "lab-ssh-bare")["verdict"]["primary"] == "HEALTHY"
    for host, words in {"lab-ssh-novenv": ["has no Python at /home/qt/.local/share/qt-runbooks/nope/bin/python", FIX],
                        "lab-ssh-nobecome": ["oncall cannot talk to Docker", "ansible_become: true"]}.items():
        verdict = report(tmp_path, host)["verdict"]
        assert verdict["primary"] == "INCONCLUSIVE", host
        (evidence,) = verdict["findings"][0]["evidence"]  # said once, not once per check
        assert all(w in evidence for w in words), evidence
    # the fix for a missing interpreter is prepare_host; for an account that cannot reach Docker, becoming qt
    assert report(tmp_path, "lab-ssh-novenv")["verdict"]["recommended"]["command"] == (
        f"ansible-playbook -i {broken_inventory} {FIX}")
    assert FIX not in str(report(tmp_path, "lab-ssh-nobecome")["verdict"]["recommended"])
    nodir = report(tmp_path, "lab-ssh-nodir")["verdict"]
    (env,) = [f for f in nodir["findings"] if f["code"] == "ENV_UNREADABLE"]
    assert env["evidence"] == ["the project directory /nonexistent/quantum_trader does not exist on this host "
                               "(qt_project_dir)"]


def test_prepare_host_names_each_gap(lab, prepared, broken_inventory):
    res = playbook(broken_inventory, FIX, "--check", "--limit", "lab-ssh-nodir,lab-ssh-nobecome")
    assert res.returncode != 0 and "Traceback" not in res.stdout
    out = res.stdout
    assert "lab-ssh-nodir is not ready: project directory /nonexistent/quantum_trader does not exist" in out
    for line in ("oncall cannot talk to Docker (permission denied on /var/run/docker.sock)",
                 "`docker compose` does not work for oncall",
                 f"oncall cannot read {RUN_DIR}/.env (owner qt, mode 0600)",
                 f"project directory {RUN_DIR} belongs to qt, not oncall"):
        assert line in out, line
