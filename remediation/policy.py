"""The remediation policy: which verdict may start which mitigation automatically, and the guard rails.

Loaded from YAML, validated with errors that name the bad key, then frozen. `Policy.plan` is the pure
verdict -> mitigation mapping (no I/O), table-tested in tests/remediation/test_policy.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

# The verdict codes come from the collection (paths.py put it on sys.path): no copy to drift.
from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import VERDICTS

from .audit import looks_secret
from .paths import from_root

__all__ = ["VERDICTS", "Policy", "Plan", "PolicyError", "parse", "load", "extravar_problem"]

# A human's decision is in force (the emergency stop), or which money is at stake is in doubt (the
# running executor's mode is not .env's): no policy may map these to a mitigation, and a decision on
# them is a refusal that says what a human would run.
OPERATOR_STOPPED = "OPERATOR_STOPPED"
TRADING_MODE_MISMATCH = "TRADING_MODE_MISMATCH"
HUMAN_ONLY = {
    OPERATOR_STOPPED: "an emergency stop is a human's decision and only a human ends it "
                      "(resume_trading.yml -e confirm=RESUME)",
    TRADING_MODE_MISMATCH: "which trading mode is right is a human's call (rollback.yml -e trading_mode=<mode>)",
}
# Set only by `qt-remediate run PLAYBOOK --override-emergency-stop` (a human, audited); never by a policy,
# an alert, a replay or EDA.
OVERRIDE_VAR = "qt_override_emergency_stop"
# While the exchange bans or rate-limits us, anything that restarts or calls it makes the ban longer.
BAN_CODES = ("BINANCE_IP_BANNED", "BINANCE_RATE_LIMITED")
# Stopping trading and switching modes are a human's call (the runbook's quick fix 3 and rollbacks).
NEVER_AUTOMATIC = re.compile(r"^(emergency_stop|resume_trading|env_import|rollback.*)\.ya?ml$")
PLAYBOOK_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.ya?ml$")
HOST_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DEFAULTS = {
    "version": 1,
    "dry_run": False,
    "inventory": "inventory/lab.yml",
    "vault_password_file": None,
    "diagnose_playbook": "diagnose.yml",
    "playbook_dir": "playbooks",
    # the runbook's two alerts, and alerts/'s ExecutorMetricsDown: a down or hung executor has no metrics,
    # so only that one fires (it inhibits the other two); diagnose decides in every case
    "alerts": ["OrderSubmitWithoutResponse", "NoOrdersSubmitted", "ExecutorMetricsDown"],
    "host_label": "qt_host",
    "default_host": "lab",
    "dedupe_window_minutes": 10,
    "breaker": {"max_mitigations": 3, "window_minutes": 30, "notify_url": None, "notify_timeout_s": 5},
    "run_timeout_s": 900,
    # A verdict is evidence about a moment: older than the alerts' own time scale (the shortest `for:`
    # in alerts/execution_stuck.rules.yml, ExecutorMetricsDown's 2m) it is not acted on. A number, or
    # per alert: {default: 2, NoOrdersSubmitted: 5}.
    "max_report_age_minutes": 2,
    # Files whose values are secrets (Ansible Vault, decrypted with vault_password_file, or plain YAML):
    # every value in them is kept out of run artifacts and the audit (besides the inventory's own
    # group_vars/host_vars vault files, which are always read). Missing files are skipped.
    "secret_files": ["lab/run/vault/credentials.yml"],
    "mitigations": {
        "EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml"},
        "EXECUTOR_HUNG": {"playbook": "mitigate_restart_executor.yml"},
        "ORDERS_STUCK_AT_EXCHANGE": {"playbook": "mitigate_cancel_stuck_orders.yml",
                                     "extravars": {"confirm": True}, "enabled": False},
    },
}


class PolicyError(ValueError):
    """A policy file that must not be used; the message names the file and the key."""


@dataclass(frozen=True)
class Mitigation:
    playbook: str
    extravars: dict = field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True)
class Plan:
    """What to do about one verdict: a playbook to run, or None and why not."""
    playbook: str | None
    extravars: dict
    reason: str
    refused: bool = False       # a human's decision or a human's call stands in the way (not just "nothing to do")


@dataclass(frozen=True)
class Policy:
    source: str
    dry_run: bool
    inventory: Path
    vault_password_file: Path | None
    diagnose_playbook: Path
    playbook_dir: Path
    alerts: tuple
    host_label: str
    default_host: str
    dedupe_window_s: float
    breaker_max: int
    breaker_window_s: float
    run_timeout_s: int
    max_report_age_s: float
    mitigations: dict
    max_report_age_by_alert: dict = field(default_factory=dict)
    notify_url: str | None = None
    notify_timeout_s: float = 5
    secret_files: tuple = ()

    def playbook_path(self, name):
        return self.playbook_dir / name

    def report_age_limit_s(self, alert=None):
        """How old a diagnosis may be and still be acted on (per alert, else the default)."""
        return self.max_report_age_by_alert.get(alert, self.max_report_age_s)

    def plan(self, verdict, retry_after_s=None):
        """Map a diagnosis verdict ({primary, findings, recommended}) to at most one mitigation."""
        primary = verdict.get("primary")
        codes = {f.get("code") for f in verdict.get("findings") or [] if isinstance(f, dict)} | {primary}
        banned = [c for c in BAN_CODES if c in codes]
        wait = f"; Retry-After {retry_after_s} s" if retry_after_s else ""
        ban = Plan(None, {}, f"exchange_ban: {' and '.join(banned)}{wait}; no automatic mitigation while the "
                             "exchange bans or rate-limits (a restart makes it longer)")
        # A human's stop and a mode mismatch are refusals whatever else the diagnosis found (they rank
        # first in the verdict's precedence; look at every finding all the same).
        if OPERATOR_STOPPED in codes:
            return Plan(None, {}, f"operator_stopped: emergency stop in force since {_stopped_since(verdict)}: "
                                  "no automatic restart (resume with resume_trading.yml -e confirm=RESUME)",
                        refused=True)
        if TRADING_MODE_MISMATCH in codes:
            return Plan(None, {}, f"trading_mode_mismatch: needs a human: {_mode_command(verdict)}", refused=True)
        if primary == "HEALTHY":
            return Plan(None, {}, "healthy: nothing to do")
        if primary in BAN_CODES:
            return ban
        mitigation = self.mitigations.get(primary)
        if mitigation is None:
            hint = (verdict.get("recommended") or {}).get("action") or "see the runbook"
            return Plan(None, {}, f"no_automatic_mitigation: {primary} needs a human ({hint})")
        if not mitigation.enabled:
            return Plan(None, {}, f"disabled_by_policy: {primary} -> {mitigation.playbook} "
                                  f"(mitigations.{primary}.enabled is false)")
        if banned:  # EXECUTOR_* outrank a ban in the verdict's precedence: look at every finding
            return ban
        return Plan(mitigation.playbook, dict(mitigation.extravars), f"verdict {primary} -> {mitigation.playbook}")


def _finding(verdict, code):
    return next((f for f in verdict.get("findings") or [] if isinstance(f, dict) and f.get("code") == code), {})


def _stopped_since(verdict):
    """When the stop was engaged: the finding's facts, else its summary ("... at <since>")."""
    stop = _finding(verdict, OPERATOR_STOPPED)
    since = (stop.get("facts") or {}).get("since") if isinstance(stop.get("facts"), dict) else None
    if not since:
        match = re.search(r" at (\S.*)$", str(stop.get("summary") or ""))
        since = match.group(1) if match else None
    return since or "an unknown time"


def _mode_command(verdict):
    """The report's recommended command (rollback to .env's mode), or the same built from the finding."""
    recommended = verdict.get("recommended") if isinstance(verdict.get("recommended"), dict) else {}
    if verdict.get("primary") == TRADING_MODE_MISMATCH and recommended.get("command"):
        return recommended["command"]
    facts = _finding(verdict, TRADING_MODE_MISMATCH).get("facts") or {}
    mode = facts.get("dotenv_mode") if isinstance(facts, dict) else None
    return f"rollback.yml -e trading_mode={mode or '<the mode in .env>'} (or revert .env to the running mode)"


def _merge(defaults, data):
    out = dict(defaults)
    out.update(data)
    return out


class _Checker:
    def __init__(self, source):
        self.source = source

    def fail(self, key, msg):
        raise PolicyError(f"{self.source}: {key}: {msg}")

    def typed(self, value, key, types, what):
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            self.fail(key, f"must be {what}, got {type(value).__name__} {value!r}")
        return value

    def number(self, value, key, minimum):
        self.typed(value, key, (int, float), "a number")
        if value < minimum:
            self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def known(self, mapping, allowed, prefix=""):
        for key in mapping:
            if key not in allowed:
                self.fail(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(allowed))})")


def _tuple(types):
    return types if isinstance(types, tuple) else (types,)


def parse(data, source="policy"):
    """Validate a policy mapping (as loaded from YAML) and return a Policy."""
    c = _Checker(source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        c.fail("(top level)", f"must be a mapping, got {type(data).__name__}")
    c.known(data, DEFAULTS)
    p = _merge(DEFAULTS, data)
    if p["version"] != 1:
        c.fail("version", f"only version 1 is known, got {p['version']!r}")
    c.typed(p["dry_run"], "dry_run", bool, "true or false")
    for key in ("inventory", "diagnose_playbook", "playbook_dir", "host_label", "default_host"):
        if not isinstance(p[key], str) or not p[key]:
            c.fail(key, f"must be a non-empty string, got {p[key]!r}")
    if p["vault_password_file"] is not None and not isinstance(p["vault_password_file"], str):
        c.fail("vault_password_file", "must be a path (the file holding the password, never the password)")
    if not HOST_NAME.match(p["default_host"]):
        c.fail("default_host", f"not an inventory host name: {p['default_host']!r}")
    c.typed(p["alerts"], "alerts", list, "a list of alert names")
    for i, name in enumerate(p["alerts"]):
        c.typed(name, f"alerts[{i}]", str, "an alert name")
    dedupe = c.number(p["dedupe_window_minutes"], "dedupe_window_minutes", 0)
    breaker = c.typed(p["breaker"], "breaker", dict, "a mapping")
    c.known(breaker, DEFAULTS["breaker"], "breaker.")
    breaker = _merge(DEFAULTS["breaker"], breaker)
    c.typed(breaker["max_mitigations"], "breaker.max_mitigations", int, "an integer")
    c.number(breaker["max_mitigations"], "breaker.max_mitigations", 1)
    c.number(breaker["window_minutes"], "breaker.window_minutes", 1)
    c.number(p["run_timeout_s"], "run_timeout_s", 1)
    max_age, max_age_by_alert = _report_age(c, p["max_report_age_minutes"], p["alerts"])
    notify_url = breaker["notify_url"]
    if notify_url is not None and not _http_url(notify_url):
        c.fail("breaker.notify_url", "must be an http:// or https:// URL")  # never echo it: it may hold a token
    c.number(breaker["notify_timeout_s"], "breaker.notify_timeout_s", 1)
    c.typed(p["secret_files"], "secret_files", list, "a list of paths")
    for i, name in enumerate(p["secret_files"]):
        if not isinstance(name, str) or not name:
            c.fail(f"secret_files[{i}]", f"must be a path, got {name!r}")
    playbook_dir = from_root(p["playbook_dir"])
    mitigations = _mitigations(c, p["mitigations"], playbook_dir)
    return Policy(
        source=source, dry_run=p["dry_run"], inventory=from_root(p["inventory"]),
        vault_password_file=from_root(p["vault_password_file"]) if p["vault_password_file"] else None,
        diagnose_playbook=from_root(p["diagnose_playbook"]), playbook_dir=playbook_dir,
        alerts=tuple(p["alerts"]), host_label=p["host_label"], default_host=p["default_host"],
        dedupe_window_s=dedupe * 60.0, breaker_max=breaker["max_mitigations"],
        breaker_window_s=breaker["window_minutes"] * 60.0, run_timeout_s=int(p["run_timeout_s"]),
        max_report_age_s=max_age, max_report_age_by_alert=max_age_by_alert, mitigations=mitigations,
        notify_url=notify_url, notify_timeout_s=float(breaker["notify_timeout_s"]),
        secret_files=tuple(from_root(f) for f in p["secret_files"]))


def _http_url(value):
    if not isinstance(value, str) or re.search(r"\s", value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _report_age(c, raw, alerts):
    """max_report_age_minutes: a number, or {default: N, <alert name>: N, ...}; returns seconds."""
    key = "max_report_age_minutes"
    if not isinstance(raw, dict):
        return c.number(raw, key, 0.5) * 60.0, {}
    default = c.number(raw.get("default", DEFAULTS[key]), f"{key}.default", 0.5) * 60.0
    per_alert = {}
    for name, minutes in raw.items():
        if name == "default":
            continue
        if name not in alerts:
            c.fail(f"{key}.{name}", f"not one of the policy's alerts ({', '.join(alerts)})")
        per_alert[name] = c.number(minutes, f"{key}.{name}", 0.5) * 60.0
    return default, per_alert


def _mitigations(c, raw, playbook_dir):
    c.typed(raw, "mitigations", dict, "a mapping verdict -> {playbook, extravars, enabled}")
    out = {}
    for verdict, entry in raw.items():
        key = f"mitigations.{verdict}"
        if verdict not in VERDICTS:
            c.fail(key, f"unknown verdict (known: {', '.join(VERDICTS)})")
        if verdict == "HEALTHY":
            c.fail(key, "a healthy system is never mitigated")
        if verdict in HUMAN_ONLY:
            c.fail(key, f"never automatic: {HUMAN_ONLY[verdict]}")
        if isinstance(entry, str):
            entry = {"playbook": entry}
        c.typed(entry, key, dict, "a playbook name or {playbook, extravars, enabled}")
        c.known(entry, ("playbook", "extravars", "enabled"), f"{key}.")
        name = entry.get("playbook")
        if not isinstance(name, str) or not PLAYBOOK_NAME.match(name):
            c.fail(f"{key}.playbook", f"must be a file name in playbook_dir ({playbook_dir}), got {name!r}")
        if NEVER_AUTOMATIC.match(name):
            c.fail(f"{key}.playbook", f"{name} is never automatic: emergency stop and rollbacks need a human "
                                      "(qt-remediate run PLAYBOOK with its confirm variable)")
        if not (playbook_dir / name).is_file():
            c.fail(f"{key}.playbook", f"{playbook_dir / name} does not exist")
        extravars = entry.get("extravars") or {}
        c.typed(extravars, f"{key}.extravars", dict, "a mapping")
        for var, value in extravars.items():
            problem = extravar_problem(var, value) or (
                "only `qt-remediate run PLAYBOOK --override-emergency-stop` (a human, audited) sets it"
                if var == OVERRIDE_VAR else None)
            if problem:
                c.fail(f"{key}.extravars.{var}", problem)
        enabled = c.typed(entry.get("enabled", True), f"{key}.enabled", bool, "true or false")
        out[verdict] = Mitigation(name, dict(extravars), enabled)
    return out


def extravar_problem(name, value):
    """ansible-runner writes extravars in plain text under the run dir: plain, non-secret values only."""
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        return f"not a variable name: {name!r}"
    if looks_secret(name):
        return ("looks like a secret; extravars are stored in plain text in the run's artifacts "
                "(use the vault and --vault-password-file)")
    if not isinstance(value, (str, int, float, bool)):
        return f"must be a string, number or boolean, got {type(value).__name__}"
    return None


def load(path):
    """Read and validate a policy file; PolicyError with a clear message on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(f"{path}: cannot read the policy: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    return parse(data, str(path))
