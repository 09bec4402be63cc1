"""The one decision path: alert -> (resolved? handled? breaker? duplicate? host busy?) -> diagnose -> verdict
-> policy -> (ban? breaker?) -> mitigation. Used by `serve`, `alert`, `replay`, the EDA rulebook (through
`alert`) and `run`. Every final decision is appended to the audit log.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from . import audit
from .policy import HOST_NAME, VERDICTS
from .runner import run_playbook
from .state import StateStore, prune

BREAKER_REASON = "breaker_open: page a human"


@dataclass(frozen=True)
class Decision:
    alert: str | None
    fingerprint: str | None
    host: str | None
    result: str                 # queued, ran, failed, skipped, breaker_open
    reason: str
    verdict: str | None = None
    playbook: str | None = None
    run_id: str | None = None
    rc: int | None = None
    duration_s: float | None = None
    artifacts: str | None = None

    def as_dict(self):
        return asdict(self)


def new_run_id():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Engine:
    def __init__(self, policy, reports_dir, *, store=None, runner=run_playbook, check=False, replay=False,
                 trigger="cli", who=None, clock=time.time):
        self.policy = policy
        self.reports = Path(reports_dir)
        self.audit_log = self.reports / "audit.jsonl"
        self.runs_dir = self.reports / "remediation" / "runs"
        self.store = store or StateStore(self.reports / "remediation")
        self.runner = runner
        self.check = bool(check or replay or policy.dry_run)
        self.replay = replay
        self.trigger = trigger
        self.who = who or audit.actor_for(trigger)
        self.clock = clock
        self._pending = set()           # hosts with a queued or running job in this process
        self._pending_lock = threading.Lock()

    # -- audit ---------------------------------------------------------------------------------------
    def _final(self, decision, **changes):
        decision = replace(decision, **changes)
        details = {k: v for k, v in decision.as_dict().items() if k not in ("host", "result")}
        details.update(alert=decision.alert, trigger=self.trigger)
        if self.replay:
            details["replay"] = True
        audit.write(self.audit_log, audit.DECISION, decision.result, decision.host, self.check, details, self.who)
        return decision

    # -- step 1: triage (fast, no playbook) ----------------------------------------------------------
    def triage(self, alerts):
        """Decide for each alert whether it starts a run. Skips are final (audited); queued ones need execute()."""
        return [self._triage_one(a) for a in alerts]

    def _triage_one(self, alert):
        host = alert.labels.get(self.policy.host_label) or self.policy.default_host
        d = Decision(alert.name, alert.fingerprint, host, "queued", "")
        if alert.status == "resolved":
            return self._final(d, result="skipped", reason="resolved: a resolved alert never starts a mitigation")
        if alert.name not in self.policy.alerts:
            return self._final(d, result="skipped", reason=f"not_handled: {alert.name} is not in the policy's alerts")
        if not HOST_NAME.match(host):
            return self._final(d, host=None, result="skipped",
                               reason=f"bad_host: label {self.policy.host_label} is not an inventory host name")
        now = self.clock()
        with self.store.transaction() as st, self._pending_lock:
            prune(st, now, self.policy.dedupe_window_s, self.policy.breaker_window_s)
            seen = st["dedupe"].get(alert.fingerprint)
            if st["breaker"].get("open"):
                outcome = ("breaker_open", f"{BREAKER_REASON} (open since {st['breaker'].get('opened_at')}; "
                                           "qt-remediate breaker reset)")
            elif seen:
                outcome = ("skipped", f"duplicate: fingerprint seen {now - seen['ts']:.0f} s ago "
                                      f"(run {seen.get('run_id')}, window {self.policy.dedupe_window_s / 60:g} min)")
            elif host in self._pending:
                outcome = ("skipped", f"locked: a run for {host} is already queued or running")
            else:
                run_id = new_run_id()
                st["dedupe"][alert.fingerprint] = {"ts": now, "run_id": run_id, "alert": alert.name, "host": host}
                self._pending.add(host)
                return replace(d, run_id=run_id, reason="queued: diagnose first")
        return self._final(d, result=outcome[0], reason=outcome[1])

    # -- step 2: execute (diagnose, then maybe one mitigation) ---------------------------------------
    def execute(self, job):
        try:
            return self._locked(job, self._diagnose_and_mitigate)
        finally:
            with self._pending_lock:
                self._pending.discard(job.host)

    def busy_hosts(self):
        with self._pending_lock:
            return sorted(self._pending)

    def handle(self, alerts):
        """Triage, then execute each queued alert in order (the CLI's synchronous path)."""
        return [self.execute(d) if d.result == "queued" else d for d in self.triage(alerts)]

    def _locked(self, job, work):
        lock = self.store.host_lock(job.host)
        if not lock.acquire():
            return self._final(job, result="skipped", reason=f"locked: another run holds the lock for {job.host}")
        try:
            with self.store.transaction() as st:
                st["running"][job.host] = {"run_id": job.run_id, "since": self.clock(), "alert": job.alert,
                                          "pid": os.getpid()}
            return work(job)
        finally:
            with self.store.transaction() as st:
                st["running"].pop(job.host, None)
            lock.release()

    def _run(self, playbook, job, step, extravars):
        return self.runner(
            playbook, run_dir=self.runs_dir / job.run_id / step, ident=step, inventory=self.policy.inventory,
            limit=job.host, extravars={**extravars, "qt_audit_log": str(self.audit_log)}, check=self.check,
            vault_password_file=self.policy.vault_password_file, timeout=self.policy.run_timeout_s, actor=self.who)

    def _diagnose_and_mitigate(self, job):
        report_dir = self.runs_dir / job.run_id / "diagnose" / "report"
        result = self._run(self.policy.diagnose_playbook, job, "diagnose", {"diagnose_report_dir": str(report_dir)})
        job = replace(job, playbook=self.policy.diagnose_playbook.name, rc=result.rc,
                      duration_s=result.duration_s, artifacts=result.artifacts)
        if not result.ok:
            return self._final(job, result="failed", reason=f"diagnose_failed: {result.describe()}")
        try:
            report = read_report(report_dir / job.host / "diagnosis-latest.json")
        except ReportError as err:
            return self._final(job, result="failed", reason=f"no_verdict: {err}")
        return self._mitigate(job, report)

    def _mitigate(self, job, report):
        verdict = report["verdict"]
        job = replace(job, verdict=verdict["primary"])
        plan = self.policy.plan(verdict, retry_after_s=_retry_after(report))
        if not plan.playbook:
            return self._final(job, result="skipped", reason=plan.reason)
        job = replace(job, playbook=plan.playbook)
        if not self.check:  # a dry run changes nothing, so it does not count towards the breaker
            refused = self._count_mitigation(job)
            if refused:
                return self._final(job, result="breaker_open", reason=refused)
        result = self._run(self.policy.playbook_path(plan.playbook), job, "mitigate", plan.extravars)
        # duration: diagnose (if this path ran it) + mitigation, what the alert cost end to end
        job = replace(job, rc=result.rc, duration_s=round((job.duration_s or 0) + result.duration_s, 2),
                      artifacts=result.artifacts)
        if result.ok:
            return self._final(job, result="ran", reason=plan.reason)
        return self._final(job, result="failed", reason=f"mitigation_failed: {result.describe()}")

    def _count_mitigation(self, job):
        """Record one automatic mitigation; trip the breaker instead when the window is full."""
        now = self.clock()
        with self.store.transaction() as st:
            prune(st, now, self.policy.dedupe_window_s, self.policy.breaker_window_s)
            if st["breaker"].get("open"):
                return f"{BREAKER_REASON} (open since {st['breaker'].get('opened_at')})"
            if len(st["mitigations"]) >= self.policy.breaker_max:
                why = (f"{len(st['mitigations'])} automatic mitigations in "
                       f"{self.policy.breaker_window_s / 60:g} min (limit {self.policy.breaker_max})")
                st["breaker"] = {"open": True, "opened_at": _iso(now), "why": why, "run_id": job.run_id}
                return f"{BREAKER_REASON} ({why}; qt-remediate breaker reset)"
            st["mitigations"].append({"ts": now, "host": job.host, "playbook": job.playbook, "run_id": job.run_id})
        return None

    # -- other entry points --------------------------------------------------------------------------
    def from_report(self, report, host=None):
        """`run --verdict-from-diagnosis`: a CI job diagnosed already; decide and mitigate from its report."""
        host = host or report.get("host")
        job = Decision(None, None, host, "queued", "", run_id=new_run_id())
        age = self.clock() - _epoch(report.get("generated_at"))
        if age > self.policy.max_report_age_s:
            return self._final(job, result="skipped", verdict=report["verdict"]["primary"],
                               reason=f"stale_report: generated {age / 60:.0f} min ago "
                                      f"(limit {self.policy.max_report_age_s / 60:g}); run diagnose.yml again")
        with self.store.transaction() as st:
            if st["breaker"].get("open"):
                return self._final(job, result="breaker_open", verdict=report["verdict"]["primary"],
                                   reason=f"{BREAKER_REASON} (qt-remediate breaker reset)")
        return self._locked(job, lambda j: self._mitigate(j, report))

    def run_explicit(self, playbook, host, extravars):
        """`run PLAYBOOK`: a human or CI asked for this playbook; lock and audit, no breaker (not automatic)."""
        job = Decision(None, None, host, "queued", f"requested: {playbook.name}", playbook=playbook.name,
                       run_id=new_run_id())
        if playbook == self.policy.diagnose_playbook:  # CI: where `run --verdict-from-diagnosis` reads it
            extravars = {"diagnose_report_dir": str(self.reports), **extravars}

        def work(j):
            result = self._run(playbook, j, "run", extravars)
            j = replace(j, rc=result.rc, duration_s=result.duration_s, artifacts=result.artifacts)
            if result.ok:
                return self._final(j, result="ran")
            return self._final(j, result="failed", reason=f"run_failed: {result.describe()}")
        return self._locked(job, work)

    def reset_breaker(self):
        with self.store.transaction() as st:
            was = dict(st["breaker"])
            st["breaker"] = {"open": False}
            st["mitigations"] = []
        audit.write(self.audit_log, "remediation_breaker", "reset", None, False, {"was": was}, self.who)
        return was


class ReportError(ValueError):
    pass


def read_report(path):
    """A diagnosis report (roles/diagnose_report) with a known verdict, or ReportError."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist (is the host in the inventory?)") from None
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: cannot read the report: {err}") from None
    verdict = report.get("verdict") if isinstance(report, dict) else None
    if not isinstance(verdict, dict) or verdict.get("primary") not in VERDICTS:
        raise ReportError(f"{path}: no known verdict.primary")
    if not isinstance(verdict.get("findings", []), list):
        raise ReportError(f"{path}: verdict.findings is not a list")
    return report


def _retry_after(report):
    """Binance's Retry-After as the diagnosis saw it (checks.binance.evidence), for the audit reason."""
    evidence = ((report.get("checks") or {}).get("binance") or {}).get("evidence") or {}
    return evidence.get("retry_after_s") if isinstance(evidence, dict) else None


def _iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp):
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0  # unknown age counts as stale
