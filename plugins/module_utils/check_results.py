# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""How a check's role reads its slice of diagnose_probes: plain Python, no imports beyond the trace's, so the
filters that call it stay cheap to load in every worker. One Python call per check instead of a template per
field: each template costs a Jinja compile per host in a fresh worker."""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.trace import timeline

NOTHING_TO_TRACE = "no correlation_id given and no ORDER_SUBMIT without answer in the executor's recent log"
PROBE_LABELS = {"executor": "executor", "binance": "Binance", "event_bus": "Redis", "trace": "trace"}


def probe_slice(probes, name):
    """The `name` slice of a diagnose_probes result, or ``{'failed': True, 'msg': why}`` when the module did not
    run or failed as a whole (unreachable, no Python, skipped): each check then records why, in the same words."""
    probes = probes or {}
    read = probes.get(name)
    if isinstance(read, dict):
        return read
    return {"failed": True, "msg": probes.get("msg") or "the %s probe did not run" % PROBE_LABELS.get(name, name)}


def check_result(read, finished_at):
    """Checks 2 and 3: the slice as read, or ``check_error`` when it could not be read."""
    if read.get("failed"):
        return {"check_error": read.get("msg"), "finished_at": finished_at}
    return {**read, "finished_at": finished_at}


def trace_result(read, requested_id, finished_at, loki=None, loki_url=""):
    """Check 4: the order's timeline across the services (and Loki's count when it is asked), that there was
    nothing to trace, or ``check_error``."""
    if read.get("failed"):
        return {"correlation_id": requested_id or None, "check_error": read.get("msg"), "finished_at": finished_at}
    cid = read.get("correlation_id")
    if cid is None:
        return {"correlation_id": None, "note": NOTHING_TO_TRACE, "finished_at": finished_at}
    by_service = {svc: (c or {}).get("correlation_matches") for svc, c in (read.get("containers") or {}).items()}
    loki_matches = None
    if loki_url:
        data = ((loki or {}).get("json") or {}).get("data") or {}
        loki_matches = sum(len(r.get("values") or []) for r in data.get("result") or [])
    return {**timeline(by_service, cid), "auto_selected": bool(read.get("auto_selected")), "finished_at": finished_at,
            "loki_matches": loki_matches}


def executor_result(read, finished_at):
    """executor_health_result from the executor slice: the container's state, its log summary and the operator's
    stop (an emergency stop is a human's decision: a stopped executor is then not a fault); ``check_error`` when
    the slice could not be read."""
    read = read or {"failed": True, "msg": "the executor probe did not run"}
    if read.get("failed"):
        return {"check_error": read.get("msg"), "finished_at": finished_at}
    state, logs, stop = read.get("state") or {}, read.get("logs") or {}, read.get("kill_switch") or {}
    redis, policy = stop.get("redis") or {}, stop.get("policy") or {}
    return {
        "exists": bool(read.get("exists")),
        "status": state.get("status") or "missing",
        "running": bool(state.get("running")),
        "health": state.get("health"),
        "exit_code": state.get("exit_code"),
        "oom_killed": bool(state.get("oom_killed")),
        "started_at": state.get("started_at"),
        "restart_count": read.get("restart_count") or 0,
        "last_log_age_s": logs.get("last_log_age_s"),
        "event_counts": logs.get("event_counts") or {},
        "top_block_reason": logs.get("top_block_reason"),
        "trailing_blocks": logs.get("trailing_blocks") or 0,
        "last_outcome": logs.get("last_outcome"),
        "unanswered": logs.get("unanswered") or [],
        "lost_on_restart": logs.get("lost_on_restart") or [],
        "recent_events": logs.get("recent_events") or [],
        "operator_stop": {
            "engaged": bool(stop.get("engaged")),
            "since": stop.get("since"),
            "where": (["redis"] if redis.get("set") else []) + (["policy file"] if policy.get("set") else []),
            "detail": redis.get("value"),
        },
        "finished_at": finished_at,
    }
