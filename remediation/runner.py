"""Run one playbook through ansible-runner: a private_data_dir per run, artifacts kept, no secrets in them.

ansible-runner writes the extravars (env/extravars) and the whole process environment
(artifacts/<ident>/command) in plain text under the private_data_dir. So: extravars are checked to be
non-secret by the callers (policy.check_extravar), every environment variable whose name suggests a
secret is blanked for the child, and the vault password travels only as a file path on the command line.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import COLLECTIONS, ROOT

SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|CREDENTIAL|PRIVATE_KEY|HMAC", re.I)
# Set by an outer ansible-runner (the EDA rulebook runs us inside one); inherited, they make our
# ansible-playbook load the other venv's callback and fail. Blanked so our runner sets its own.
OUTER_RUNNER_ENV = ("ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_STDOUT_CALLBACK", "ORIGINAL_STDOUT_CALLBACK",
                    "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION", "AWX_ISOLATED_DATA_DIR",
                    "AD_HOC_COMMAND_ID", "ANSIBLE_LOAD_CALLBACK_PLUGINS")


@dataclass(frozen=True)
class RunResult:
    status: str          # ansible-runner's: successful, failed, timeout, canceled; or error (did not start)
    rc: int | None
    duration_s: float
    artifacts: str | None
    error: str | None = None

    @property
    def ok(self):
        return self.status == "successful" and self.rc == 0

    def describe(self):
        return self.error or f"status {self.status}, rc {self.rc}"


def safe_env(environ=None):
    """Blank (not just omit: runner copies os.environ) every variable that looks like a secret.

    *_FILE variables hold a path, not the secret, and are kept.
    """
    environ = os.environ if environ is None else environ
    return {k: "" for k in environ if SECRET_ENV.search(k) and not k.upper().endswith("_FILE")}


def run_playbook(playbook, *, run_dir, ident, inventory, limit=None, extravars=None, check=False,
                 vault_password_file=None, timeout=None, actor=None):
    """Run `playbook` with ansible-runner in `run_dir` (created; must not exist). Never raises for a failed run."""
    import ansible_runner  # lazy: `status` and `--help` stay fast

    started = time.monotonic()
    run_dir = Path(run_dir)
    try:
        for path, what in ((playbook, "playbook"), (inventory, "inventory")):
            # runner would treat a missing inventory path as inline inventory text: check first
            if not Path(path).is_file():
                raise FileNotFoundError(f"{what} {path} does not exist")
        run_dir.mkdir(parents=True)
        cmdline = ["--check"] if check else []
        if limit:
            cmdline += ["--limit", limit]
        if vault_password_file:
            cmdline += ["--vault-password-file", str(vault_password_file)]
        envvars = {
            **safe_env(),
            **{k: "" for k in OUTER_RUNNER_ENV if k in os.environ},
            # ansible-runner turns SSH host key checking off unless told; keep Ansible's default (on)
            "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            # absolute: ansible.cfg's ./.collections would resolve against the wrong directory elsewhere
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            # this venv's ansible-playbook first, whoever started us (an EDA venv, systemd, cron)
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
            "ANSIBLE_NOCOLOR": "1",
        }
        if actor:
            envvars["QT_AUDIT_ACTOR"] = actor
        result = ansible_runner.run(
            private_data_dir=str(run_dir), project_dir=str(ROOT), ident=ident, playbook=str(playbook),
            inventory=str(inventory), cmdline=shlex.join(cmdline) if cmdline else None,
            extravars=dict(extravars or {}), envvars=envvars, quiet=True, timeout=timeout)
        return RunResult(result.status, result.rc, round(time.monotonic() - started, 2), result.config.artifact_dir)
    except Exception as err:  # a run that cannot start is a failed decision, not a crashed service
        return RunResult("error", None, round(time.monotonic() - started, 2), None, f"{type(err).__name__}: {err}")
