"""The remediation policy: which verdict may start which mitigation automatically, and the guard rails.

Loaded from YAML, validated with errors that name the bad key, then frozen. `Policy.plan` is the pure
verdict -> mitigation mapping (no I/O), table-tested in tests/remediation/test_policy.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .audit import looks_secret
from .paths import from_root

VERDICTS = (
    "HEALTHY", "EXECUTOR_DOWN", "EXECUTOR_HUNG", "GATE_BLOCKED", "EVENT_BUS_DOWN", "NO_SIGNALS",
    "BINANCE_UNREACHABLE", "BINANCE_RATE_LIMITED", "BINANCE_IP_BANNED", "BINANCE_AUTH_REJECTED", "CLOCK_SKEW",
    "ORDERS_STUCK_AT_EXCHANGE", "INCONCLUSIVE",
)
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
    "breaker": {"max_mitigations": 3, "window_minutes": 30},
    "run_timeout_s": 900,
    "max_report_age_minutes": 15,
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

    def playbook_path(self, name):
        return self.playbook_dir / name

    def plan(self, verdict, retry_after_s=None):
        """Map a diagnosis verdict ({primary, findings, recommended}) to at most one mitigation."""
        primary = verdict.get("primary")
        codes = {f.get("code") for f in verdict.get("findings") or [] if isinstance(f, dict)} | {primary}
        banned = [c for c in BAN_CODES if c in codes]
        wait = f"; Retry-After {retry_after_s} s" if retry_after_s else ""
        ban = Plan(None, {}, f"exchange_ban: {' and '.join(banned)}{wait}; no automatic mitigation while the "
                             "exchange bans or rate-limits (a restart makes it longer)")
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
    c.number(p["max_report_age_minutes"], "max_report_age_minutes", 1)
    playbook_dir = from_root(p["playbook_dir"])
    mitigations = _mitigations(c, p["mitigations"], playbook_dir)
    return Policy(
        source=source, dry_run=p["dry_run"], inventory=from_root(p["inventory"]),
        vault_password_file=from_root(p["vault_password_file"]) if p["vault_password_file"] else None,
        diagnose_playbook=from_root(p["diagnose_playbook"]), playbook_dir=playbook_dir,
        alerts=tuple(p["alerts"]), host_label=p["host_label"], default_host=p["default_host"],
        dedupe_window_s=dedupe * 60.0, breaker_max=breaker["max_mitigations"],
        breaker_window_s=breaker["window_minutes"] * 60.0, run_timeout_s=int(p["run_timeout_s"]),
        max_report_age_s=p["max_report_age_minutes"] * 60.0, mitigations=mitigations)


def _mitigations(c, raw, playbook_dir):
    c.typed(raw, "mitigations", dict, "a mapping verdict -> {playbook, extravars, enabled}")
    out = {}
    for verdict, entry in raw.items():
        key = f"mitigations.{verdict}"
        if verdict not in VERDICTS:
            c.fail(key, f"unknown verdict (known: {', '.join(VERDICTS)})")
        if verdict == "HEALTHY":
            c.fail(key, "a healthy system is never mitigated")
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
            problem = extravar_problem(var, value)
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
