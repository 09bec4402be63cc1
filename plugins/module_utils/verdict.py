# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Findings and the one verdict of "Execution Stuck": pure functions, no Ansible.

Each runbook check turns its evidence into findings (`*_findings`); `decide`
picks the primary cause by a fixed precedence and names the next action.
"""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import CLOCK_SKEW_CODE, CREDENTIAL_CODES
from ansible_collections.quantum.runbooks.plugins.module_utils.trading_mode import trading_mode_of

STEPS = {
    "executor": "1. Check Auto-Executor Health",
    "binance": "2. Check Binance API Connectivity",
    "event_bus": "3. Check Redis Event Bus",
    "trace": "4. Trace Specific Order by correlation_id",
}

# The most upstream cause wins: the bus carries the signals, the signals feed
# the executor, the executor's gate decides what reaches the exchange, and the
# exchange can refuse the connection, the rate, the clock, the key, then fill.
PRECEDENCE = (
    # What a human did on purpose, and which money is really at stake, come before any fault:
    # automation must never undo an emergency stop, and "paper" on disk while live orders go out
    # is never "nothing to do".
    "OPERATOR_STOPPED",
    "TRADING_MODE_MISMATCH",
    "EVENT_BUS_DOWN",
    "NO_SIGNALS",
    "EXECUTOR_DOWN",
    "EXECUTOR_HUNG",
    "GATE_BLOCKED",
    "BINANCE_IP_BANNED",
    "BINANCE_RATE_LIMITED",
    "BINANCE_UNREACHABLE",
    "CLOCK_SKEW",
    "BINANCE_AUTH_REJECTED",
    "ORDERS_STUCK_AT_EXCHANGE",
)

# Every verdict `decide` can return (remediation imports this list; it keeps no copy).
VERDICTS = PRECEDENCE + ("HEALTHY", "INCONCLUSIVE")

DEFAULT_THRESHOLDS = {
    "executor_silence_s": 20,       # a live executor logs a heartbeat every 5 s
    "no_signal_after_s": 900,       # runbook: NoOrdersSubmitted for > 15 min
    "unanswered_after_s": 60,       # ORDER_SUBMIT without ORDER_RESPONSE/ORDER_ERROR
    "clock_skew_ms": 1000,          # Binance rejects timestamps > 1000 ms ahead
    "gate_block_min": 2,            # consecutive GATE_BLOCKED before it is "all blocked"
}

_PB = "ansible-playbook -i {inventory} playbooks/{playbook}"
RECOMMENDED = {
    "OPERATOR_STOPPED": ("resume_trading.yml -e confirm=RESUME",
                         "Trading was stopped by an operator (emergency stop / kill switch): nothing is restarted "
                         "automatically. Resume only once the reason for the stop is cleared."),
    "TRADING_MODE_MISMATCH": ("rollback.yml -e trading_mode={dotenv_mode}",
                              "The running executor trades {running_mode} while .env says {dotenv_mode}: apply "
                              ".env with the rollback (recreates the executor), or revert .env to {running_mode}."),
    "EVENT_BUS_DOWN": (None, "Start Redis: docker compose up -d redis (in the project dir), then re-run diagnose."),
    "NO_SIGNALS": (None, "The ai-engine publishes no intents: check quantum_ai_engine logs and its data feed."),
    "EXECUTOR_DOWN": ("mitigate_restart_executor.yml", "Restart the executor (runbook quick fix 1)."),
    "EXECUTOR_HUNG": ("mitigate_restart_executor.yml", "Restart the hung executor (quick fix 1)."),
    "GATE_BLOCKED": (None, "The execution policy blocks every intent: review the policy / kill switch; "
                           "do not restart, the gate would block again."),
    "BINANCE_IP_BANNED": (None, "IP banned by Binance: stop all polling and wait for Retry-After; "
                                "do not restart (it lengthens the ban)."),
    "BINANCE_RATE_LIMITED": (None, "Rate limited: wait for Retry-After and reduce request weight; do not restart."),
    "BINANCE_UNREACHABLE": (None, "Binance unreachable from the executor: check the network path / exchange status;"
                                  " consider the emergency stop if positions are at risk."),
    "CLOCK_SKEW": (None, "Fix the host clock (NTP): signed requests are outside recvWindow."),
    "BINANCE_AUTH_REJECTED": ("rollback.yml -e trading_mode=testnet",
                              "Keys rejected: check key/IP whitelist and that testnet keys meet the testnet endpoint."),
    "ORDERS_STUCK_AT_EXCHANGE": ("mitigate_cancel_stuck_orders.yml -e confirm=true",
                                 "Cancel our own orders resting longer than the threshold (quick fix 2)."),
    "HEALTHY": (None, "Nothing to do."),
    "INCONCLUSIVE": ("diagnose.yml -vv", "Some checks could not run: fix access, then re-run diagnose."),
}
# INCONCLUSIVE because the host lacks what the modules need (check_error names prepare_host.yml).
PREPARE_HOST = ("prepare_host.yml", "The host is not prepared for the checks: install the modules' libraries "
                                    "there (offline), then re-run diagnose with the interpreter it prints.")


def finding(code, check, summary, evidence, severity="critical", **facts):
    """One finding; `facts` are machine-readable details the recommendation may name."""
    out = {"code": code, "check": check, "step": STEPS[check], "severity": severity,
           "summary": summary, "evidence": [str(e) for e in evidence if e is not None]}
    if facts:
        out["facts"] = facts
    return out


def _num(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _stop_detail(detail):
    """`by alice: via=emergency_stop.yml, incident=INC-42` from the kill switch's stored value."""
    if not isinstance(detail, dict) or not detail:
        return None
    rest = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("by", "at"))
    return f"by {detail.get('by') or 'unknown'}" + (f": {rest}" if rest else "")


def executor_findings(ex, t):
    """Runbook check 1: container state and what its last log lines say."""
    if not ex or ex.get("check_error"):
        return []
    out = []
    stop = ex.get("operator_stop") or {}
    if stop.get("engaged"):
        # The kill switch is a human's decision: a stopped or gate-blocked executor is its intended effect.
        since = stop.get("since") or "an unknown time"
        return [finding("OPERATOR_STOPPED", "executor", f"trading stopped by an operator at {since}", [
            f"kill switch engaged ({', '.join(stop.get('where') or []) or 'engaged'})",
            _stop_detail(stop.get("detail")),
            f"executor container: {ex.get('status', 'missing')}",
            "resume with playbooks/resume_trading.yml -e confirm=RESUME once the cause is cleared"],
            since=since)]
    if not ex.get("exists") or not ex.get("running"):
        out.append(finding("EXECUTOR_DOWN", "executor", "auto-executor container is not running", [
            f"container status: {ex.get('status', 'missing')}",
            f"exit code: {ex.get('exit_code')}" if ex.get("exists") else "container does not exist",
            "OOM killed" if ex.get("oom_killed") else None,
            f"restarts: {ex.get('restart_count')}" if ex.get("restart_count") else None]))
        return out
    age = _num(ex.get("last_log_age_s"))
    silent = age is None or age > t["executor_silence_s"]
    if ex.get("health") == "unhealthy" or silent:
        out.append(finding("EXECUTOR_HUNG", "executor", "auto-executor is Up but not working", [
            f"health: {ex.get('health') or 'no healthcheck'}",
            f"last log line {age:.0f} s ago (heartbeat every 5 s)" if age is not None else "no log line at all"]))
    blocks = ex.get("trailing_blocks") or 0
    if blocks >= t["gate_block_min"]:
        out.append(finding("GATE_BLOCKED", "executor", "the execution policy blocks every intent", [
            f"last {blocks} intents blocked, none submitted since",
            f"top reason: {ex.get('top_block_reason')}"]))
    last = ex.get("last_outcome") or {}
    if last.get("event") == "ORDER_ERROR":
        code = last.get("error_code")
        text = f"last order answer: ORDER_ERROR {code} ({last.get('error', '')})".strip()
        if code in CREDENTIAL_CODES:
            out.append(finding("BINANCE_AUTH_REJECTED", "executor", "the exchange rejects the executor's key", [text]))
        elif code == CLOCK_SKEW_CODE:
            out.append(finding("CLOCK_SKEW", "executor", "the exchange rejects the executor's timestamps", [text]))
    old = [u for u in ex.get("unanswered") or [] if (_num(u.get("age_s"), 0)) > t["unanswered_after_s"]]
    if old:
        out.append(finding("BINANCE_UNREACHABLE", "executor", "orders submitted without any answer", [
            f"{len(old)} ORDER_SUBMIT without ORDER_RESPONSE/ORDER_ERROR, oldest "
            f"{max(_num(u['age_s'], 0) for u in old):.0f} s (correlation_id {old[0].get('correlation_id')})"]))
    lost = ex.get("lost_on_restart") or []
    if lost:  # informational: the restart ended the wait, but the exchange may hold these orders
        out.append(finding("ORDERS_LOST_ON_RESTART", "executor", "orders submitted before a restart got no answer",
                           [f"correlation_id {u.get('correlation_id')} ({u.get('symbol')})" for u in lost[-5:]],
                           severity="info"))
    return out


def _probe_text(where, probe):
    if not probe:
        return None
    if probe.get("error_kind") and probe.get("error_kind") != "http":
        return f"{where}: {probe['error_kind']} ({probe.get('error_msg') or 'no answer'})"
    return (f"{where}: HTTP {probe.get('http_status')} in {probe.get('latency_ms')} ms, "
            f"weight {probe.get('used_weight_1m')}, retry-after {probe.get('retry_after_s')}")


def binance_findings(bn, t):
    """Runbook check 2: the exchange as the host and the executor container see it."""
    if not bn or bn.get("check_error"):
        return []
    out = []
    host, cont = bn.get("host") or {}, bn.get("container") or {}
    probes = [p for p in (host, cont) if p]
    evidence = [f"endpoint: {bn.get('endpoint')} ({bn.get('personality')})",
                _probe_text("from host", host), _probe_text("from executor container", cont)]
    account = bn.get("account") or {}
    if any(p.get("rate_limit") == "ip_banned" for p in probes) or account.get("status") == "ip_banned":
        out.append(finding("BINANCE_IP_BANNED", "binance", "Binance answers 418: this IP is banned", evidence))
    elif any(p.get("rate_limit") == "rate_limited" for p in probes) or account.get("status") == "rate_limited":
        out.append(finding("BINANCE_RATE_LIMITED", "binance", "Binance answers 429: rate limited", evidence))
    unreachable = [p for p in probes if not p.get("reachable")]
    if unreachable:
        where = {"host_only": "the executor container cannot reach Binance (the host can)",
                 "container_only": "the host cannot reach Binance (the executor container can)"}
        out.append(finding("BINANCE_UNREACHABLE", "binance",
                           where.get(bn.get("path_finding"), "Binance does not answer"), evidence))
    offset = _num(host.get("clock_offset_ms"))
    if account.get("status") == "clock_skew" or (offset is not None and abs(offset) > t["clock_skew_ms"]):
        out.append(finding("CLOCK_SKEW", "binance", "local clock and Binance server time disagree", [
            f"clock offset {offset:+.0f} ms (limit {t['clock_skew_ms']} ms)" if offset is not None else None,
            f"signed call: {account.get('error_code')} {account.get('error_msg')}"
            if account.get("status") == "clock_skew" else None]))
    if account.get("status") == "rejected":
        out.append(finding("BINANCE_AUTH_REJECTED", "binance", "signed request rejected", [
            f"account check: {account.get('error_code')} {account.get('error_msg')}", evidence[0]]))
    orders = bn.get("open_orders") or {}
    if (orders.get("stuck_count") or 0) > 0:
        out.append(finding("ORDERS_STUCK_AT_EXCHANGE", "binance", "orders resting at the exchange too long", [
            f"{orders['stuck_count']} open orders older than the threshold "
            f"(own {orders.get('own_count')}, foreign {orders.get('foreign_count')}), "
            f"oldest {orders.get('oldest_age_s')} s"]))
    dotenv, running = bn.get("dotenv"), bn.get("running_env")
    if dotenv and running and trading_mode_of(dotenv) != trading_mode_of(running):
        want, real = trading_mode_of(dotenv), trading_mode_of(running)
        out.append(finding("TRADING_MODE_MISMATCH", "binance",
                           f"the running executor trades {real.upper()}, .env says {want}", [
                               f"{k}: .env={dotenv.get(k)} running={running.get(k)}"
                               for k in sorted(set(dotenv) | set(running))],
                           running_mode=real, dotenv_mode=want))
    if bn.get("dotenv_error"):
        out.append(finding("ENV_UNREADABLE", "binance", ".env could not be read: the drift check did not run",
                           [bn["dotenv_error"]], severity="warning"))
    env = bn.get("env_drift") or []
    if env:
        out.append(finding("ENV_DRIFT", "binance", ".env and the running executor disagree", [
            f"{d['key']}: .env={d['dotenv']} running={d['running']}" for d in env], severity="warning"))
    return out


def event_bus_findings(bus, t):
    """Runbook check 3: Redis answers, the intent stream is fed."""
    if not bus or bus.get("check_error"):
        return []
    if not bus.get("reachable") or not bus.get("ping"):
        return [finding("EVENT_BUS_DOWN", "event_bus", "Redis does not answer", [
            f"target: {bus.get('target')}" if bus.get('target') else None, f"error: {bus.get('error')}",
            f"container: {bus.get('container_state')}" if bus.get("container_state") else None])]
    intent = (bus.get("streams") or {}).get("quantum:stream:intent") or {}
    age = _num(intent.get("last_age_s"))
    if not intent.get("exists") or not intent.get("length") or (age is not None and age > t["no_signal_after_s"]):
        return [finding("NO_SIGNALS", "event_bus", "no new trade intents reach the bus", [
            f"quantum:stream:intent length {intent.get('length')}, last entry {age:.0f} s ago"
            if age is not None else "quantum:stream:intent is empty or missing",
            f"threshold {t['no_signal_after_s']} s"])]
    return []


def trace_findings(trace, t):
    """Runbook check 4 adds evidence to a finding; on its own it names the missing step."""
    if not trace or not trace.get("correlation_id") or not trace.get("first_missing_step"):
        return []
    evidence = [f"{e.get('service')}: {e.get('event')} at {e.get('ts')}" for e in trace.get("timeline") or []]
    return [finding("TRACE_INCOMPLETE", "trace", f"order {trace['correlation_id']} stopped before "
                    f"{trace['first_missing_step']}", evidence, severity="info")]


def _add_backlog_evidence(findings, bus):
    """A stopped or hung executor leaves intents waiting: show the consumer group's backlog."""
    intent = ((bus or {}).get("streams") or {}).get("quantum:stream:intent") or {}
    for group in intent.get("groups") or []:
        if group.get("lag") or group.get("pending"):
            for f in findings:
                if f["code"] in ("EXECUTOR_DOWN", "EXECUTOR_HUNG"):
                    f["evidence"].append(f"intents waiting in group '{group.get('name')}': "
                                         f"lag {group.get('lag')}, pending {group.get('pending')}")


def _home_check(code):
    """The check that observes a cause directly (its finding is listed first)."""
    if code.startswith(("BINANCE_", "CLOCK_", "ORDERS_", "TRADING_")):
        return "binance"
    return "event_bus" if code in ("EVENT_BUS_DOWN", "NO_SIGNALS") else "executor"


def _rank(f):
    order = PRECEDENCE.index(f["code"]) if f["code"] in PRECEDENCE else len(PRECEDENCE)
    return order, f["check"] != _home_check(f["code"])


# What the runbook says to do by hand, shown while a playbook for it is not available.
MANUAL = {
    "EXECUTOR_DOWN": "cd <project> && docker compose up -d auto-executor",
    "EXECUTOR_HUNG": "cd <project> && docker compose restart auto-executor",
    "ORDERS_STUCK_AT_EXCHANGE": "cancel our own stuck orders per symbol (runbook quick fix 2)",
    "BINANCE_AUTH_REJECTED": "fix the keys / BINANCE_USE_TESTNET in .env, then docker compose up -d auto-executor",
}


def decide(checks, thresholds=None, inventory="inventory/lab.yml", available_playbooks=None):
    """All findings, the primary verdict and the recommended next step."""
    t = dict(DEFAULT_THRESHOLDS, **{k: v for k, v in (thresholds or {}).items() if v is not None})
    findings = (executor_findings(checks.get("executor"), t) + binance_findings(checks.get("binance"), t)
                + event_bus_findings(checks.get("event_bus"), t) + trace_findings(checks.get("trace"), t))
    _add_backlog_evidence(findings, checks.get("event_bus"))
    codes = [f["code"] for f in findings]
    primary = next((c for c in PRECEDENCE if c in codes), None)
    missing = [STEPS[name] for name in ("executor", "binance", "event_bus")
               if not checks.get(name) or checks[name].get("check_error")]
    if primary is None:
        primary = "INCONCLUSIVE" if missing else "HEALTHY"
    errors = {name: checks[name]["check_error"] for name in ("executor", "binance", "event_bus")
              if checks.get(name) and checks[name].get("check_error")}
    if primary == "INCONCLUSIVE":
        # One cause for every check (host unreachable, not prepared) is said once.
        same = len(errors) > 1 and len(set(errors.values())) == 1
        findings.append(finding("INCONCLUSIVE", "executor", "some checks could not run", (
            [f"all checks: {next(iter(errors.values()))}"] if same
            else [f"{STEPS[name]}: {error}" for name, error in errors.items()]) or ["check results missing"],
            severity="warning"))
        findings[-1]["step"] = "all checks"
    playbook, why = RECOMMENDED[primary]
    if primary == "INCONCLUSIVE" and any("playbooks/prepare_host.yml" in str(e) for e in errors.values()):
        playbook, why = PREPARE_HOST
    facts = next((f.get("facts") or {} for f in findings if f["code"] == primary), {})
    if facts:
        playbook, why = playbook.format(**facts), why.format(**facts)
    if playbook and available_playbooks is not None and playbook.split()[0] not in available_playbooks:
        why = f"{why} (no playbook for it yet; by hand: {MANUAL.get(primary, 'see the runbook')})"
        playbook = None
    return {
        "primary": primary,
        "findings": sorted(findings, key=_rank),
        "missing_checks": missing,
        "recommended": {"action": why, "playbook": playbook.split()[0] if playbook else None,
                        "command": _PB.format(inventory=inventory, playbook=playbook) if playbook else None},
        "thresholds": t,
    }


# Worst first: the verdict precedence, then a host we could not see, then the healthy ones.
FLEET_ORDER = PRECEDENCE + ("INCONCLUSIVE", "HEALTHY")


def fleet_rows(reports):
    """One row per host (host, verdict, next command or action), worst first. ``reports``: {host: the
    diagnosis report dict, or None when the host's play ended before its report}."""
    rows = []
    for host, report in (reports or {}).items():
        if not report:
            rows.append({"host": host, "verdict": "NO_REPORT", "next": "see this host's tasks in the play output"})
            continue
        verdict = report.get("verdict") or {}
        recommended = verdict.get("recommended") or {}
        rows.append({"host": host, "verdict": verdict.get("primary"),
                     "next": recommended.get("command") or recommended.get("action") or ""})

    def rank(row):
        order = FLEET_ORDER.index(row["verdict"]) if row["verdict"] in FLEET_ORDER else -1  # unknown: top
        return (order, row["host"])
    return sorted(rows, key=rank)


def fleet_table(rows):
    """fleet_rows' rows as aligned text lines: a header, then one line per host."""
    cells = [("HOST", "VERDICT", "NEXT")] + [(r["host"], r["verdict"], r["next"]) for r in rows]
    width = [max(len(str(c[i])) for c in cells) for i in range(2)]
    return ["%-*s  %-*s  %s" % (width[0], c[0], width[1], c[1], c[2]) for c in cells]
