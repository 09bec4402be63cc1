"""GET /metrics of `qt-remediate serve`: Prometheus text format (0.0.4), no client library.

State metrics (breaker, recent mitigations, last run, running hosts) come from reports/remediation/
state.json, so they cover every process sharing it (serve, a CI `run`, EDA's `alert`) and survive a
restart; the counters are this process's own since it started (Prometheus handles the reset). Nothing
here is secret: results, steps and inventory host names. alerts/execution_stuck.rules.yml pages on
`qt_remediate_breaker_open == 1` (RemediationBreakerOpen) and on the endpoint being gone
(RemediationServiceDown).
"""
from __future__ import annotations

from .engine import RESULTS, RUN_STATUSES
from .state import StateError, empty, owner_alive

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEPS = ("diagnose", "rediagnose", "mitigate", "run")


def _labels(labels):
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v):
    return repr(float(v)) if isinstance(v, float) else str(int(v))


def render(engine, queued=0):
    """The exposition text for one scrape."""
    out = []

    def metric(name, kind, text, samples):
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{_labels(labels)} {_value(value)}")

    try:
        state, readable = engine.store.peek(), 1
    except StateError:
        state, readable = empty(), 0
    breaker = state["breaker"]
    is_open = bool(breaker.get("open"))
    metric("qt_remediate_state_readable", "gauge",
           "1 when reports/remediation/state.json can be read; 0: every alert is refused (HTTP 503) until fixed.",
           [({}, readable)])
    metric("qt_remediate_breaker_open", "gauge",
           "1 while the circuit breaker is open: automatic remediation of every host is stopped until a human "
           "runs `qt-remediate breaker reset`.", [({}, int(is_open))])
    metric("qt_remediate_breaker_opened_timestamp_seconds", "gauge",
           "When the open breaker opened (Unix time); 0 while closed.",
           [({}, float(breaker.get("opened_ts") or 0) if is_open else 0)])
    metric("qt_remediate_breaker_max_mitigations", "gauge",
           "Automatic mitigations allowed within the breaker window before it opens (policy).",
           [({}, engine.policy.breaker_max)])
    per_host = {}
    for m in state["mitigations"]:
        per_host[m.get("host") or "-"] = per_host.get(m.get("host") or "-", 0) + 1
    metric("qt_remediate_recent_mitigations", "gauge",
           "Automatic mitigations within the breaker window, per inventory host (all hosts count together).",
           [({"host": h}, n) for h, n in sorted(per_host.items())])
    decisions, runs = engine.counters.snapshot()
    metric("qt_remediate_decisions_total", "counter",
           "Final decisions of this process by result (ran, failed, skipped, refused, breaker_open, interrupted).",
           [({"result": r}, decisions.get(r, 0)) for r in sorted(set(RESULTS) | set(decisions))])
    combos = {(s, st) for s in STEPS for st in RUN_STATUSES} | set(runs)
    metric("qt_remediate_runs_total", "counter",
           "Playbook runs (ansible-runner) of this process by step and ansible-runner status.",
           [({"step": s, "status": st}, runs.get((s, st), 0)) for s, st in sorted(combos)])
    last = state.get("last_run") or {}
    metric("qt_remediate_last_run_timestamp_seconds", "gauge",
           "When the last playbook run of any process sharing the state ended (Unix time); 0 if none yet. "
           "Age: time() - this.", [({}, float(last.get("ts") or 0))])
    running = sorted(h for h, r in state["running"].items() if owner_alive(r))
    metric("qt_remediate_running", "gauge", "1 per inventory host with a run in progress.",
           [({"host": h}, 1) for h in running])
    metric("qt_remediate_inflight_alerts", "gauge",
           "Alert fingerprints queued or running (not yet ended), all processes.", [({}, len(state["inflight"]))])
    metric("qt_remediate_queued_jobs", "gauge", "Jobs waiting for this service's worker.", [({}, queued)])
    return "\n".join(out) + "\n"
