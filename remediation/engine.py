"""The one decision path: alert -> (resolved? handled? breaker? duplicate? host busy?) -> diagnose -> verdict
-> (fresh?) -> policy -> (human's stop? ban? breaker?) -> mitigation. Used by `serve`, `alert`, `replay`, the
EDA rulebook (through `alert`) and `run`. Every final decision is appended to the audit log.

A fingerprint is "in flight" from triage until its run ends, and "seen" (dedupe) only then; a run whose
process died (serve SIGKILLed mid-run) is found by its dead owner, audited as `interrupted`, and the next
copy of the alert is acted on.
"""
from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from . import audit
from .policy import HOST_NAME, OVERRIDE_VAR, VERDICTS
from .runner import run_playbook
from .screen import known_secrets
from .state import StateStore, owner_alive, prune, this_process

BREAKER_REASON = "breaker_open: page a human"
# Final results of a decision (audit `result`, metrics label); `queued` is only ever an interim answer.
RESULTS = ("ran", "failed", "skipped", "refused", "breaker_open", "interrupted")
RUN_STATUSES = ("successful", "failed", "timeout", "canceled", "error")
SCREEN_TTL_S = 30


@dataclass(frozen=True)
class Decision:
    alert: str | None
    fingerprint: str | None
    host: str | None
    result: str                 # queued, or one of RESULTS
    reason: str
    verdict: str | None = None
    playbook: str | None = None
    run_id: str | None = None
    rc: int | None = None
    duration_s: float | None = None
    artifacts: str | None = None
    evidence: str | None = None       # the diagnosis acted on: how old, and whether it was taken again
    override_by: str | None = None    # run PLAYBOOK --override-emergency-stop: the local user who asked

    def as_dict(self):
        return asdict(self)


def new_run_id():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Counters:
    """This process's decisions and playbook runs, for GET /metrics (the audit log is the full record)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.decisions = Counter({r: 0 for r in RESULTS})
        self.runs = Counter()

    def decision(self, result):
        with self._lock:
            self.decisions[result] += 1

    def run(self, step, status):
        with self._lock:
            self.runs[(step, status)] += 1

    def snapshot(self):
        with self._lock:
            return dict(self.decisions), dict(self.runs)


class Engine:
    def __init__(self, policy, reports_dir, *, store=None, runner=run_playbook, check=False, replay=False,
                 trigger="cli", who=None, clock=time.time, secret_values=()):
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
        self.secret_values = tuple(v for v in secret_values if v)  # serve's token and HMAC secret (gone from env)
        self.counters = Counters()
        self._pending = set()           # hosts with a queued or running job in this process
        self._pending_lock = threading.Lock()
        self._screen, self._screen_at = None, 0.0
        self._screen_lock = threading.Lock()
        self._notifiers = []

    # -- secrets ---------------------------------------------------------------------------------------
    def screen(self, fresh=False):
        """The known secret values (screen.py), rebuilt for every run and at least every SCREEN_TTL_S:
        a vault file may appear after the service started (labctl writes the lab's)."""
        with self._screen_lock:
            if fresh or self._screen is None or time.monotonic() - self._screen_at > SCREEN_TTL_S:
                self._screen = known_secrets(self.policy, extra=self.secret_values)
                self._screen_at = time.monotonic()
            return self._screen

    # -- audit ---------------------------------------------------------------------------------------
    def _final(self, decision, **changes):
        screen = self.screen()
        decision = Decision(**screen.mask(replace(decision, **changes).as_dict()))
        details = {k: v for k, v in decision.as_dict().items() if k not in ("host", "result")}
        details.update(alert=decision.alert, trigger=self.trigger)
        if self.replay:
            details["replay"] = True
        audit.write(self.audit_log, audit.DECISION, decision.result, decision.host, self.check, details, self.who)
        self.counters.decision(decision.result)
        return decision

    # -- crash recovery --------------------------------------------------------------------------------
    def _reap(self, st):
        """Remove in-flight and running entries whose process is gone; the in-flight ones are returned."""
        dead = {fp: e for fp, e in st["inflight"].items() if not owner_alive(e)}
        for fp in dead:
            del st["inflight"][fp]
        for host, run in list(st["running"].items()):
            if not owner_alive(run):
                del st["running"][host]
        return dead

    def _audit_interrupted(self, dead):
        out = []
        if self.replay:  # a throwaway copy of the state: the real service records it when it starts
            return out
        for fp, e in sorted(dead.items(), key=lambda item: item[1].get("ts", 0)):
            d = Decision(e.get("alert"), fp, e.get("host"), "interrupted",
                         f"interrupted: run {e.get('run_id')} ({e.get('trigger')}, pid {e.get('pid')}) was "
                         f"{'started' if e.get('started') else 'queued'} at {_iso(e.get('ts', 0))} and never "
                         "ended: its process stopped; the next copy of this alert is acted on",
                         run_id=e.get("run_id"), playbook=e.get("playbook"))
            out.append(self._final(d))
        return out

    def recover(self):
        """At start: runs left in flight by a process that died are audited as interrupted."""
        with self.store.transaction() as st:
            dead = self._reap(st)
        return self._audit_interrupted(dead)

    def _end(self, job):
        """The run of a queued alert ended (whatever its result): its fingerprint counts as seen from now."""
        if not job.fingerprint or not job.run_id:
            return
        with self.store.transaction() as st:
            entry = st["inflight"].get(job.fingerprint)
            if entry and entry.get("run_id") == job.run_id:
                del st["inflight"][job.fingerprint]
                st["dedupe"][job.fingerprint] = {"ts": self.clock(), "run_id": job.run_id, "alert": job.alert,
                                                 "host": job.host, "started": entry.get("ts")}

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
        dead = {}
        try:
            with self.store.transaction() as st, self._pending_lock:
                prune(st, now, self.policy.dedupe_window_s, self.policy.breaker_window_s)
                dead = self._reap(st)
                running = st["inflight"].get(alert.fingerprint)
                seen = st["dedupe"].get(alert.fingerprint)
                if st["breaker"].get("open"):
                    outcome = ("breaker_open", f"{BREAKER_REASON} (open since {st['breaker'].get('opened_at')}; "
                                               "qt-remediate breaker reset)")
                elif running:
                    outcome = ("skipped", f"duplicate: run {running.get('run_id')} for this fingerprint is "
                                          f"{'running' if running.get('started') else 'queued'} "
                                          f"(since {now - running.get('ts', now):.0f} s)")
                elif seen:
                    outcome = ("skipped", f"duplicate: fingerprint seen {now - seen['ts']:.0f} s ago "
                                          f"(run {seen.get('run_id')} ended then, window "
                                          f"{self.policy.dedupe_window_s / 60:g} min)")
                elif host in self._pending:
                    outcome = ("skipped", f"locked: a run for {host} is already queued or running")
                else:
                    run_id = new_run_id()
                    st["inflight"][alert.fingerprint] = {"ts": now, "run_id": run_id, "alert": alert.name,
                                                         "host": host, "trigger": self.trigger, **this_process()}
                    self._pending.add(host)
                    return replace(d, run_id=run_id, reason="queued: diagnose first")
        finally:
            self._audit_interrupted(dead)
        return self._final(d, result=outcome[0], reason=outcome[1])

    # -- step 2: execute (diagnose, then maybe one mitigation) ---------------------------------------
    def execute(self, job):
        try:
            return self._locked(job, self._diagnose_and_mitigate)
        except Exception as err:  # audited, and the fingerprint ends: an error must not look like a crash
            return self._final(job, result="failed", reason=f"error: {type(err).__name__}: {err}")
        finally:
            try:
                self._end(job)
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
                                          **this_process()}
                if job.fingerprint in st["inflight"] and st["inflight"][job.fingerprint].get("run_id") == job.run_id:
                    st["inflight"][job.fingerprint]["started"] = self.clock()
            return work(job)
        finally:
            with self.store.transaction() as st:
                st["running"].pop(job.host, None)
            lock.release()

    def _run(self, playbook, job, step, extravars):
        if OVERRIDE_VAR in extravars and not job.override_by:  # only run_explicit, for a human, sets it
            raise ValueError(f"{OVERRIDE_VAR} is only for `qt-remediate run PLAYBOOK --override-emergency-stop`")
        result = self.runner(
            playbook, run_dir=self.runs_dir / job.run_id / step, ident=step, inventory=self.policy.inventory,
            limit=job.host, extravars={**extravars, "qt_audit_log": str(self.audit_log)}, check=self.check,
            vault_password_file=self.policy.vault_password_file, timeout=self.policy.run_timeout_s, actor=self.who,
            screen=self.screen(fresh=True))
        self.counters.run(step, result.status)
        if not self.replay:
            with self.store.transaction() as st:
                st["last_run"] = {"ts": self.clock(), "run_id": job.run_id, "host": job.host, "step": step,
                                  "status": result.status, "rc": result.rc}
        if result.screened:  # the net caught something the prevention missed: say where, loudly
            audit.write(self.audit_log, "remediation_screen", "masked", job.host, self.check,
                        {"run_id": job.run_id, "step": step, "files": list(result.screened),
                         "reason": "a known secret value was written under the run dir and has been masked"},
                        self.who)
        return result

    def _diagnose(self, job, step="diagnose"):
        """Run diagnose for this job: (job, report, None), or (job, None, why not)."""
        report_dir = self.runs_dir / job.run_id / step / "report"
        result = self._run(self.policy.diagnose_playbook, job, step, {"diagnose_report_dir": str(report_dir)})
        job = replace(job, playbook=self.policy.diagnose_playbook.name, rc=result.rc,
                      duration_s=round((job.duration_s or 0) + result.duration_s, 2), artifacts=result.artifacts)
        if not result.ok:
            return job, None, f"diagnose_failed: {result.describe()}"
        try:
            return job, read_report(report_dir / job.host / "diagnosis-latest.json"), None
        except ReportError as err:
            return job, None, f"no_verdict: {err}"

    def _diagnose_and_mitigate(self, job):
        job, report, problem = self._diagnose(job)
        if problem:
            return self._final(job, result="failed", reason=problem)
        return self._mitigate(job, report, source="diagnosis")

    def _mitigate(self, job, report, source, rediagnose=True, stale=None):
        """Act on a report only while it is fresh (the alert's bound); an old one is diagnosed again, once."""
        limit = self.policy.report_age_limit_s(job.alert)
        age = self.clock() - _epoch(report.get("generated_at"))
        evidence = f"{source} generated {_span(age)} ago (limit {_span(limit)})"
        if stale:
            evidence = f"{stale}; diagnosed again: {evidence}"
        verdict = report["verdict"]
        if age > limit:
            if not rediagnose:
                return self._final(job, result="refused", verdict=verdict["primary"], evidence=evidence,
                                   reason=f"stale_report: {evidence}; nothing is done on old evidence")
            step = "rediagnose" if (self.runs_dir / job.run_id / "diagnose").exists() else "diagnose"
            job, fresh, problem = self._diagnose(job, step)
            note = f"stale {evidence}"
            if problem:
                return self._final(job, result="failed", verdict=verdict["primary"],
                                   evidence=f"{note}; diagnosing again failed",
                                   reason=f"stale_report: {note}; diagnosing again failed ({problem}): nothing done")
            return self._mitigate(job, fresh, source="diagnosis", rediagnose=False, stale=note)
        job = replace(job, verdict=verdict["primary"], evidence=evidence)
        plan = self.policy.plan(verdict, retry_after_s=_retry_after(report))
        if not plan.playbook:
            return self._final(job, result="refused" if plan.refused else "skipped", reason=plan.reason)
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
                st["breaker"] = {"open": True, "opened_at": _iso(now), "opened_ts": now, "why": why,
                                 "run_id": job.run_id, "host": job.host}
                opened = dict(st["breaker"])
            else:
                st["mitigations"].append({"ts": now, "host": job.host, "playbook": job.playbook,
                                          "run_id": job.run_id})
                return None
        self._notify(opened)
        return f"{BREAKER_REASON} ({opened['why']}; qt-remediate breaker reset)"

    # -- telling a human -------------------------------------------------------------------------------
    def _notify(self, breaker):
        """POST the opened breaker to the policy's breaker.notify_url, in the background (never blocks)."""
        if not self.policy.notify_url or self.replay:
            return
        body = {"event": "breaker_open", "service": "qt-remediate", "node": socket.gethostname(),
                "opened_at": breaker["opened_at"], "why": breaker["why"], "run_id": breaker["run_id"],
                "host": breaker["host"], "reset": "qt-remediate breaker reset",
                "text": f"qt-remediate on {socket.gethostname()}: circuit breaker OPEN since {breaker['opened_at']} "
                        f"({breaker['why']}); automatic remediation is stopped. A human: qt-remediate status, "
                        "then qt-remediate breaker reset"}
        thread = threading.Thread(target=self._post, args=(body,), name="qt-remediate-notify", daemon=True)
        thread.start()
        self._notifiers.append(thread)

    def _post(self, body):
        url, headers = _split_credentials(self.policy.notify_url)
        details = {"url": redacted_url(self.policy.notify_url), "run_id": body["run_id"]}
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "qt-remediate", **headers})
        try:
            with urllib.request.urlopen(request, timeout=self.policy.notify_timeout_s) as answer:
                result, details["status"] = "notified", answer.status
        except urllib.error.HTTPError as err:
            result, details["status"] = "notify_failed", err.code
        except (OSError, ValueError) as err:  # URLError, timeouts, refused connections
            result, details["error"] = "notify_failed", type(err).__name__ + ": " + str(getattr(err, "reason", err))
        try:
            audit.write(self.audit_log, "remediation_breaker", result, body["host"], False,
                        self.screen().mask(details), self.who)
        except OSError:
            pass

    def wait_notifications(self, timeout):
        """For the one-shot commands: let a breaker notification finish before the process exits."""
        deadline = time.monotonic() + timeout
        for thread in self._notifiers:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- other entry points --------------------------------------------------------------------------
    def from_report(self, report, host=None, source="report"):
        """`run --verdict-from-diagnosis`: a CI job diagnosed already; decide and mitigate from its report
        while it is fresh, else diagnose again first (and refuse when that fails)."""
        host = host or report.get("host")
        job = Decision(None, None, host, "queued", "", run_id=new_run_id())
        with self.store.transaction() as st:
            if st["breaker"].get("open"):
                return self._final(job, result="breaker_open", verdict=report["verdict"]["primary"],
                                   reason=f"{BREAKER_REASON} (qt-remediate breaker reset)")
        return self._locked(job, lambda j: self._mitigate(j, report, source=source))

    def run_explicit(self, playbook, host, extravars, override=False):
        """`run PLAYBOOK`: a human or CI asked for this playbook; lock and audit, no breaker (not automatic).

        override: `--override-emergency-stop`, a human overriding the stop for this one run (the playbook
        gets qt_override_emergency_stop=true); the audit names the local user who asked.
        """
        job = Decision(None, None, host, "queued", f"requested: {playbook.name}", playbook=playbook.name,
                       run_id=new_run_id())
        if override:
            user = local_user()
            extravars = {**extravars, OVERRIDE_VAR: True}
            job = replace(job, override_by=user, reason=f"requested: {playbook.name} with --override-emergency-stop "
                                                        f"by {user}: the emergency stop is overridden for this run")
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


def local_user():
    """The person at the keyboard: the sudo user, else the login name of the real uid (not QT_AUDIT_ACTOR)."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (sudo as {name})" if sudo and sudo != name else name


def _split_credentials(url):
    """urllib ignores user:password in a URL: send it as Basic auth, and the URL without it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    pair = f"{parts.username or ''}:{parts.password or ''}".encode()
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def redacted_url(url):
    """Scheme and host only: a webhook URL's path, query or user part is often its credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"


def _span(seconds):
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


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
