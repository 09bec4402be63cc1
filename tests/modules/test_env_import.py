"""playbooks/env_import.yml for real (ansible-playbook, local connection, a temp project and inventory; no lab):
the import of a hand-kept .env is written vault-encrypted, or not at all."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SECRET = f"sk-{secrets.token_hex(12)}"
ENV_TEXT = (
    "# hand-kept\nBINANCE_USE_TESTNET=false\nBINANCE_API_KEY=ak-plain-1\n"
    f"BINANCE_API_SECRET='{SECRET}'\nLOG_LEVEL=INFO\nPAPER_TRADING=false\n"
)
WANT = {"BINANCE_USE_TESTNET": "false", "BINANCE_API_KEY": "ak-plain-1", "BINANCE_API_SECRET": SECRET,
        "LOG_LEVEL": "INFO", "PAPER_TRADING": "false"}


@pytest.fixture
def site(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(ENV_TEXT)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"quantum_trader": {"hosts": {"qt1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "qt_project_dir": str(project)}}}}}}))
    password = tmp_path / "vault-pass"
    password.write_text(secrets.token_hex(16) + "\n")
    password.chmod(0o600)
    return {"inventory": inventory, "password": password, "dest": tmp_path / "imports" / "qt1.yml",
            "tmp": tmp_path}


def env_import(site, *extra, **env):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    run_env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}", **env)
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(site["inventory"]), "playbooks/env_import.yml",
           "-e", f"env_import_dest={site['dest']}", *extra]
    res = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=180)
    return res.returncode, res.stdout + res.stderr


def decrypt(path, password):
    res = subprocess.run([str(VENV_BIN / "ansible-vault"), "view", "--vault-password-file", str(password), str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return yaml.safe_load(res.stdout)


def test_import_is_written_vault_encrypted_and_decrypts_to_every_value_in_order(site):
    rc, out = env_import(site, "-e", f"env_import_vault_password_file={site['password']}")
    assert rc == 0, out
    written = site["dest"].read_text()
    assert written.startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    assert SECRET not in written and "ak-plain-1" not in written and "BINANCE_API_SECRET" not in written
    assert site["dest"].stat().st_mode & 0o777 == 0o600
    assert SECRET not in out and "ak-plain-1" not in out
    assert "Wrote 5 keys" in out and "vault-encrypted" in out
    values = decrypt(site["dest"], site["password"])["trading_mode_env_values"]
    assert values == WANT and list(values) == list(WANT)  # every key, compose's value, file order


def test_the_vault_password_file_may_come_from_ansible_vault_password_file(site):
    rc, out = env_import(site, ANSIBLE_VAULT_PASSWORD_FILE=str(site["password"]))
    assert rc == 0, out
    assert decrypt(site["dest"], site["password"])["trading_mode_env_values"] == WANT


def test_without_a_vault_password_file_nothing_is_written(site):
    rc, out = env_import(site)
    assert rc != 0
    assert "only vault-encrypted: pass -e env_import_vault_password_file=FILE" in out
    assert not site["dest"].exists() and not site["dest"].parent.exists()
    assert SECRET not in out


def test_a_vault_password_file_that_is_not_there_is_named(site):
    missing = site["tmp"] / "no-such-file"
    rc, out = env_import(site, "-e", f"env_import_vault_password_file={missing}")
    assert rc != 0 and f"env_import_vault_password_file: {missing} is not a file" in out
    assert not site["dest"].exists()


def test_the_playbook_never_writes_plain_text():
    """No task of the play may write the values with copy/template (the old way): the one write is encrypted."""
    plays = yaml.safe_load((ROOT / "playbooks" / "env_import.yml").read_text())
    tasks = [t for play in plays for t in play["tasks"]]
    assert not [t["name"] for t in tasks if {"ansible.builtin.copy", "ansible.builtin.template", "copy",
                                            "template"} & set(t)]
    writer = next(t for t in tasks if "ansible.builtin.command" in t)
    assert writer["no_log"] is True and "encrypt" in json.dumps(writer["ansible.builtin.command"])
