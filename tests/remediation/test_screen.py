"""Secrets screened by value (issue 14): a known secret value never reaches a run's private_data_dir or the
audit, whatever name it hides under. The end-to-end test runs a real playbook through ansible-runner and
scans every file it left; the unit tests say which values count as known."""
import json
import os
import secrets
import stat

import pytest
import yaml
from alert_payload import alert, payload

from remediation.policy import parse
from remediation.runner import safe_env
from remediation.screen import MASK, Screen, known_secrets

ECHO = """---
- name: Echo everything a playbook can see
  hosts: all
  gather_facts: false
  tasks:
    - name: An extravar
      ansible.builtin.debug:
        msg: "note={{ note }}"
    - name: The environment, under innocent names
      ansible.builtin.debug:
        msg: "innocent={{ lookup('ansible.builtin.env', 'INNOCENT_VAR') }} proxy={{ lookup('ansible.builtin.env',
              'PROXY_URL') }}"
    - name: A value from the vault (group_vars/all/vault.yml beside this playbook)
      ansible.builtin.debug:
        msg: "vaulted={{ vaulted_key }}"
    - name: The vault password itself
      ansible.builtin.debug:
        msg: "vault_password={{ lookup('ansible.builtin.file', vault_pass_file) }}"
"""


def encrypt(text, password):
    from ansible.parsing.vault import VaultLib, VaultSecret
    return VaultLib([("default", VaultSecret(password.encode()))]).encrypt(text)


def every_file(kit):
    return [p for p in [*(kit.reports / "remediation").rglob("*"), kit.audit_log] if p.is_file()]


def test_no_known_secret_value_reaches_an_artifact_or_the_audit_under_any_name(kit, tmp_path):
    token, hmac_secret, api_secret, url_password, vault_password, vaulted = (secrets.token_hex(20)
                                                                             for _dummy in range(6))
    known = {"token": token, "hmac": hmac_secret, "api": api_secret, "url": url_password, "vault": vault_password,
             "vaulted": vaulted}
    vault_file = tmp_path / "vault-pass"
    vault_file.write_text(vault_password + "\n")
    vault_file.chmod(0o600)
    (kit.pb / "group_vars" / "all").mkdir(parents=True)
    (kit.pb / "group_vars" / "all" / "vault.yml").write_bytes(encrypt(f"vaulted_key: {vaulted}\n", vault_password))
    (kit.pb / "echo.yml").write_text(ECHO)
    env = kit.env(QT_REMEDIATE_TOKEN=token, QT_REMEDIATE_HMAC_SECRET=hmac_secret, BINANCE_API_SECRET=api_secret,
                  INNOCENT_VAR=api_secret, PROXY_URL=f"http://ops:{url_password}@127.0.0.1:9/")

    # 1. a known secret under an innocent extravar name: refused before anything is written
    out = kit.cli("run", "echo.yml", "-e", f"note={token}", "-e", f"vault_pass_file={vault_file}",
                  "--vault-password-file", vault_file, env=env)
    assert out.returncode == 2 and "-e note: the value is a known secret" in out.stderr, out.stderr
    assert token not in out.stdout + out.stderr and every_file(kit) == []

    # 2. the playbook really sees the vault and the environment, and prints them: nothing of it is written
    out = kit.cli("run", "echo.yml", "-e", "note=hello", "-e", f"vault_pass_file={vault_file}",
                  "--vault-password-file", vault_file, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    [record] = kit.decisions()
    stdout = (kit.reports / "remediation" / "runs" / record["details"]["run_id"] / "run" / "artifacts" / "run"
              / "stdout").read_text()
    assert '"msg": "note=hello"' in stdout
    assert f'"msg": "vaulted={MASK}"' in stdout and f'"msg": "vault_password={MASK}"' in stdout   # seen, masked
    assert '"msg": "innocent= proxy="' in stdout            # blanked for the child: the playbook got nothing

    # 3. a policy's extravar holding a known secret (validation only sees names): the run is refused
    kit.set_verdict("EXECUTOR_HUNG")
    kit.write_policy(mitigations={"EXECUTOR_HUNG": {"playbook": "mitigate_restart_executor.yml",
                                                    "extravars": {"ticket": hmac_secret}}})
    out = kit.cli("alert", "--payload", "-", "--vault-password-file", vault_file,
                  stdin=json.dumps(payload(alert("5ec1"))), env=env)
    assert out.returncode == 1 and "mitigation_failed: ValueError: extravar ticket holds a known secret" in out.stdout
    assert kit.marks_present() == []

    scanned = every_file(kit)
    assert len(scanned) > 20
    for path in scanned:                              # env/, artifacts/ (command, stdout, job_events/), audit
        data = path.read_bytes()
        for what, value in known.items():
            assert value.encode() not in data, f"the {what} secret leaked into {path}"
    lines = [json.loads(x) for x in kit.audit_log.read_text().splitlines()]
    assert not [x for x in lines if x["action"] == "remediation_screen"], "the prevention missed something"


# --- which values are known ----------------------------------------------------------------------------


def policy(tmp_path, **data):
    inventory = tmp_path / "inventory" / "hosts.yml"
    inventory.parent.mkdir(exist_ok=True)
    inventory.write_text("all: {hosts: {lab: {}}}\n")
    return parse({"inventory": str(inventory), "secret_files": [], "mitigations": {}, **data})


def test_known_values_from_the_environment():
    p = parse({"secret_files": []})
    screen = known_secrets(p, environ={
        "BINANCE_API_SECRET": "s3cr3t-api-value", "MY_TOKEN": "token-value-123", "SHORT_PASSWORD": "abc",
        "QT_TOKEN_FILE": "/run/secrets/token-file-path", "REDIS_URL": "redis://:redis%40pass-99@redis:6379/0",
        "PASSWORD_STORE_DIR": "/tmp", "HOME": "/root", "LANG": "C.UTF-8"})
    assert set(screen.values) == {"s3cr3t-api-value", "token-value-123", "redis%40pass-99", "redis@pass-99"}


def test_known_values_from_the_vault_password_and_vault_files(tmp_path):
    password = "vault-password-0123"
    pass_file = tmp_path / "vault-pass"
    pass_file.write_text(password + "\n")
    secret_file = tmp_path / "credentials.yml"
    secret_file.write_bytes(encrypt("creds:\n  testnet: {KEY: testnet-key-0001, SECRET: testnet-secret-0001}\n",
                                    password))
    plain = tmp_path / "plain.yml"
    plain.write_text("webhook_token: plain-token-value-1\nport: 5000\n")
    p = policy(tmp_path, vault_password_file=str(pass_file), secret_files=[str(secret_file), str(plain),
                                                                           str(tmp_path / "missing.yml")])
    group_vars = p.inventory.parent / "group_vars" / "quantum_trader"
    group_vars.mkdir(parents=True)
    (group_vars / "vault.yml").write_bytes(encrypt("vault_binance_api_secret: group-vault-secret\n", password))
    inline = encrypt("inline-vaulted-secret", password).decode()
    (group_vars / "main.yml").write_text("binance_host: fapi.binance.com\napi_secret: !vault |\n"
                                         + "".join(f"  {line}\n" for line in inline.splitlines()))
    screen = known_secrets(p, environ={})
    assert set(screen.values) == {password, "testnet-key-0001", "testnet-secret-0001", "plain-token-value-1",
                                  "group-vault-secret", "inline-vaulted-secret"}   # not fapi.binance.com, not 5000

    pass_file.chmod(pass_file.stat().st_mode | stat.S_IXUSR)   # a password *script*: never run by us
    assert set(known_secrets(p, environ={}).values) == {"plain-token-value-1"}
    pass_file.chmod(0o600)
    pass_file.write_text("the-wrong-password\n")
    assert set(known_secrets(p, environ={}).values) == {"the-wrong-password", "plain-token-value-1"}


def test_notify_url_and_extra_values_are_known(tmp_path):
    p = policy(tmp_path, breaker={"notify_url": "https://hooks.example.org/services/T0/B0/abcdefgh"})
    screen = known_secrets(p, environ={}, extra=("serve-token-0123456789", None))
    assert set(screen.values) == {"https://hooks.example.org/services/T0/B0/abcdefgh", "serve-token-0123456789"}


def test_screen_masks_text_data_and_files(tmp_path):
    screen = Screen(["abc-secret-1", 'quote"secret\\2', "x"])
    assert screen.values == ('quote"secret\\2', "abc-secret-1")                 # "x" is too short to mask
    assert screen.mask({"a": ["see abc-secret-1", 3, ("abc-secret-1",)], "abc-secret-1": None}) == \
        {"a": [f"see {MASK}", 3, (MASK,)], MASK: None}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "event.json").write_text(json.dumps({"stdout": 'quote"secret\\2 and abc-secret-1'}))
    (tmp_path / "clean").write_text("nothing here")
    assert screen.sweep(tmp_path) == ["sub/event.json"]
    assert json.loads((tmp_path / "sub" / "event.json").read_text()) == {"stdout": f"{MASK} and {MASK}"}
    assert screen.sweep(tmp_path) == []


def test_safe_env_blanks_by_name_and_by_value():
    screen = Screen(["shared-secret-value"])
    env = {"API_TOKEN": "x", "QT_TOKEN_FILE": "/path", "INNOCENT": "shared-secret-value", "PROXY":
           "http://u:shared-secret-value@p:3128", "PATH": "/usr/bin"}
    assert safe_env(env, screen) == {"API_TOKEN": "", "INNOCENT": "", "PROXY": ""}


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_vault_password_file_is_read_whatever_its_mode(tmp_path, mode):
    pass_file = tmp_path / "vp"
    pass_file.write_text("pw-0123456789\n")
    pass_file.chmod(mode)
    assert "pw-0123456789" in known_secrets(policy(tmp_path, vault_password_file=str(pass_file)), environ={}).values


def test_the_secret_files_setting_defaults_to_the_labs_vault():
    assert [str(p).rsplit("/", 4)[-4:] for p in parse({}).secret_files] == [["lab", "run", "vault", "credentials.yml"]]
    assert yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "..", "remediation",
                                            "policy.example.yml")))["secret_files"] == ["lab/run/vault/credentials.yml"]
