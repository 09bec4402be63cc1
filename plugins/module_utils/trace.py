# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Runbook check 4: one order's path across the services' logs, and the first missing step."""
from __future__ import annotations

# (step, events that satisfy it, terminal events that end the path early)
PATH = (
    ("INTENT_PUBLISHED", {"INTENT_PUBLISHED"}),
    ("INTENT_RECEIVED", {"INTENT_RECEIVED"}),
    ("ORDER_SUBMIT", {"ORDER_SUBMIT"}),
    ("ORDER_RESPONSE", {"ORDER_RESPONSE", "ORDER_ERROR"}),
)
STOPS_BEFORE_SUBMIT = {"GATE_BLOCKED": "blocked by the execution policy", "WOULD_SUBMIT": "paper trading"}


def timeline(events_by_service, correlation_id):
    """Merge the services' events for one correlation_id in time order and name what is missing."""
    events = []
    for service, items in (events_by_service or {}).items():
        for e in items or []:
            if isinstance(e, dict) and e.get("correlation_id") == correlation_id:
                events.append({"service": service, "event": e.get("event"), "ts": e.get("ts"),
                               "log_ts": e.get("_log_ts"), "detail": _detail(e)})
    events.sort(key=lambda e: (e["log_ts"] or 0, str(e["ts"] or "")))
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


def _detail(event):
    keys = ("reason", "exchange_status", "error_code", "error", "order_id", "symbol", "side", "stream_id")
    return {k: event[k] for k in keys if event.get(k) not in (None, "")}
