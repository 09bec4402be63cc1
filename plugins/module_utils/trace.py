# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Runbook check 4: one order's path across the services' logs, and the first missing step."""
from __future__ import annotations

from datetime import datetime

# (step, events that satisfy it, terminal events that end the path early)
PATH = (
    ("INTENT_PUBLISHED", {"INTENT_PUBLISHED"}),
    ("INTENT_RECEIVED", {"INTENT_RECEIVED"}),
    ("ORDER_SUBMIT", {"ORDER_SUBMIT"}),
    ("ORDER_RESPONSE", {"ORDER_RESPONSE", "ORDER_ERROR"}),
)
STOPS_BEFORE_SUBMIT = {"GATE_BLOCKED": "blocked by the execution policy", "WOULD_SUBMIT": "paper trading"}
# Causal rank of (service, event): breaks ties between events logged in the same millisecond.
_PRODUCER = "quantum_ai_engine"
_RANK = {(_PRODUCER, "INTENT_RECEIVED"): 0, (_PRODUCER, "INTENT_PUBLISHED"): 1, "INTENT_RECEIVED": 2,
         "ORDER_SUBMIT": 3, "GATE_BLOCKED": 3, "WOULD_SUBMIT": 3, "ORDER_RESPONSE": 4, "ORDER_ERROR": 4}


def timeline(events_by_service, correlation_id):
    """Merge the services' events for one correlation_id in time order and name what is missing."""
    events = []
    for service, items in (events_by_service or {}).items():
        for e in items or []:
            if isinstance(e, dict) and e.get("correlation_id") == correlation_id:
                events.append({"service": service, "event": e.get("event"), "ts": e.get("ts"),
                               "log_ts": e.get("_log_ts"), "detail": _detail(e)})
    events.sort(key=_order)
    seen = {e["event"] for e in events}
    stop = next((s for s in STOPS_BEFORE_SUBMIT if s in seen), None)
    missing = None
    for step, satisfied_by in PATH:
        if stop and step in ("ORDER_SUBMIT", "ORDER_RESPONSE"):
            break
        if not seen & satisfied_by:
            missing = step
            break
    return {"correlation_id": correlation_id, "timeline": events, "first_missing_step": missing,
            "ended_by": STOPS_BEFORE_SUBMIT.get(stop) if stop else None, "complete": missing is None}


def _order(event):
    """The services' own timestamps first: Docker stamps a line when it reads the pipe, and on a busy
    host it reads one container's pipe later than another's, so its order across services can lie."""
    at = _epoch(event["ts"])
    if at is None:
        at = event["log_ts"] or 0
    rank = _RANK.get((event["service"], event["event"]), _RANK.get(event["event"], 5))
    return (round(at, 3), rank, event["log_ts"] or 0)


def _epoch(ts):
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    if isinstance(ts, str) and ts:
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _detail(event):
    keys = ("reason", "exchange_status", "error_code", "error", "order_id", "symbol", "side", "stream_id")
    return {k: event[k] for k in keys if event.get(k) not in (None, "")}
