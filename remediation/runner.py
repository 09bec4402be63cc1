"""Run one playbook through ansible-runner: a private_data_dir per run, artifacts kept, no secrets in them.

ansible-runner writes the extravars (env/extravars, the command line) and the whole process environment
(artifacts/<ident>/command) in plain text under the private_data_dir, and the playbook's output
(stdout, job_events/). So, by name: extravars are checked to be non-secret by the callers
(policy.extravar_problem), every environment variable whose name suggests a secret is blanked for the
child, and the vault password travels only as a file path on the command line. And by value (a
`screen.Screen` of the known secret values): a run whose extravars hold a known secret is refused,
every environment variable holding one is blanked, the playbook's output is masked before it is written
(ansible-runner's own stdout file and event data are off: `stdout` is written from the masked events),
and after the run every file under the run dir is checked, masked if need be, and named in the result.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import COLLECTIONS, ROOT
from .screen import Screen, secret_name

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
    screened: tuple = ()     # files under the run dir in which a known secret had to be masked afterwards

    @property
    def ok(self):
        return self.status == "successful" and self.rc == 0

    def describe(self):
        return self.error or f"status {self.status}, rc {self.rc}"


def safe_env(environ=None, screen=None):
    """Blank (not just omit: runner copies os.environ) every variable that looks like a secret by its name
    or holds a known secret value (a password in a URL, a token under an innocent name).

    *_FILE variables hold a path, not the secret, and are kept (unless their value is a known secret).
    """
    environ = os.environ if environ is None else environ
    screen = screen or Screen()
    return {k: "" for k, v in environ.items() if secret_name(k) or screen.hit(v)}


def secret_extravar(extravars, screen):
    """The name of the first extravar whose value holds a known secret, or None."""
    return next((k for k, v in (extravars or {}).items() if screen and screen.hit(v)), None)


class _MaskedOutput:
    """ansible-runner's event handler: masks each event before runner writes it, and writes `stdout`."""

    def __init__(self, stdout_path, screen):
        self.path, self.screen = Path(stdout_path), screen

    def __call__(self, event):
        masked = self.screen.mask(event)
        event.clear()
        event.update(masked)
        text = event.get("stdout")
        if text:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return True  # runner writes job_events/<n>-<uuid>.json from the masked event


def run_playbook(playbook, *, run_dir, ident, inventory, limit=None, extravars=None, check=False,
                 vault_password_file=None, timeout=None, actor=None, screen=None):
    """Run `playbook` with ansible-runner in `run_dir` (created; must not exist). Never raises for a failed run."""
    import ansible_runner  # lazy: `status` and `--help` stay fast

    started = time.monotonic()
    run_dir = Path(run_dir)
    screen = screen or Screen()
    try:
        for path, what in ((playbook, "playbook"), (inventory, "inventory")):
            # runner would treat a missing inventory path as inline inventory text: check first
            if not Path(path).is_file():
                raise FileNotFoundError(f"{what} {path} does not exist")
        leak = secret_extravar(extravars, screen)
        if leak:  # refused before anything is written: runner stores extravars in plain text
            raise ValueError(f"extravar {leak} holds a known secret value; credentials travel only by vault")
        run_dir.mkdir(parents=True)
        cmdline = ["--check"] if check else []
        if limit:
            cmdline += ["--limit", limit]
        if vault_password_file:
            cmdline += ["--vault-password-file", str(vault_password_file)]
        envvars = {
            **safe_env(screen=screen),
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
            extravars=dict(extravars or {}), envvars=envvars, quiet=True, timeout=timeout,
            # the playbook's output reaches disk only through _MaskedOutput: no raw stdout file, and no
            # task results in the events (the callback's partial files would hold them unmasked)
            suppress_output_file=True, omit_event_data=True,
            event_handler=_MaskedOutput(run_dir / "artifacts" / ident / "stdout", screen))
        return RunResult(result.status, result.rc, round(time.monotonic() - started, 2), result.config.artifact_dir,
                         screened=tuple(screen.sweep(run_dir)))
    except Exception as err:  # a run that cannot start is a failed decision, not a crashed service
        screened = tuple(screen.sweep(run_dir)) if run_dir.is_dir() else ()
        return RunResult("error", None, round(time.monotonic() - started, 2), None,
                         screen.text(f"{type(err).__name__}: {err}"), screened)
