# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""How a check's role reads its slice of diagnose_probes: plain Python, no imports, so the filters that call it
stay cheap to load in every worker."""
from __future__ import annotations


def executor_result(read, finished_at):
    """executor_health_result from the executor slice: the container's state, its log summary and the operator's
    stop (an emergency stop is a human's decision: a stopped executor is then not a fault); ``check_error`` when
    the slice could not be read. One Python call instead of a template per field (each costs a Jinja compile per
    host in a fresh worker)."""
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
