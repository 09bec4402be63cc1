"""Alertmanager webhook payloads (version 4): validation with messages that name the bad field.

Unknown keys are allowed (Alertmanager adds fields across versions); what the decision path reads
is checked strictly. A payload that fails here never reaches the decision path.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_BODY = 256 * 1024   # Alertmanager groups are small; anything bigger is not ours
MAX_ALERTS = 500
FINGERPRINT = re.compile(r"^[0-9A-Za-z]{1,64}$")
STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """Not a usable Alertmanager payload; the message names the field."""


@dataclass(frozen=True)
class Alert:
    name: str
    status: str
    fingerprint: str
    labels: dict
    starts_at: str | None


def _fail(where, msg):
    raise PayloadError(f"{where}: {msg}")


def _string_map(value, where):
    if not isinstance(value, dict):
        _fail(where, "must be an object")
    for k, v in value.items():
        if not isinstance(v, str):
            _fail(f"{where}.{k}", "must be a string")
    return value


def parse_body(body):
    """bytes → list of Alert; PayloadError on bad JSON, wrong version or a malformed alert."""
    if len(body) > MAX_BODY:
        _fail("body", f"larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"body: not JSON ({str(err)[:80]})") from None
    return parse(data)


def parse(data):
    if not isinstance(data, dict):
        _fail("body", "must be a JSON object")
    if data.get("version") != "4":
        _fail("version", f"must be \"4\" (Alertmanager webhook), got {data.get('version')!r}")
    if data.get("status") not in STATUSES:
        _fail("status", f"must be one of {', '.join(STATUSES)}")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in data:
            _string_map(data[key], key)
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        _fail("alerts", "must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        _fail("alerts", f"more than {MAX_ALERTS} alerts")
    return [_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)]


def _alert(a, where):
    if not isinstance(a, dict):
        _fail(where, "must be an object")
    if a.get("status") not in STATUSES:
        _fail(f"{where}.status", f"must be one of {', '.join(STATUSES)}")
    labels = _string_map(a.get("labels"), f"{where}.labels")
    if not labels.get("alertname"):
        _fail(f"{where}.labels.alertname", "missing")
    if "annotations" in a:
        _string_map(a["annotations"], f"{where}.annotations")
    fingerprint = a.get("fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        _fail(f"{where}.fingerprint", "must be 1-64 letters/digits (Alertmanager's alert id)")
    starts = a.get("startsAt")
    if starts is not None and not isinstance(starts, str):
        _fail(f"{where}.startsAt", "must be a string")
    return Alert(labels["alertname"], a["status"], fingerprint, dict(labels), starts)
