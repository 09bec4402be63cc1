# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Times as the runbooks read and show them: pure functions, no Ansible, no I/O.

* ``parse_time``: epoch seconds from ISO 8601 or epoch seconds / milliseconds (the operator's window, the
  audit log, the diagnosis reports, Binance's income window);
* ``iso`` / ``when`` / ``duration``: the forms the reports and the post-mortem show;
* ``between``: a time, when there is one, inside a window.

Kept importable by Python 3.8+ (modules run it on the target host).
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone


def parse_time(value):
    """Epoch seconds from ISO 8601 (``Z``, an offset or naive UTC), or epoch seconds / milliseconds."""
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError("no time given")
    if isinstance(value, (int, float)):
        number = float(value)
    elif re.match(r"^\d+(\.\d+)?$", str(value).strip()):
        number = float(str(value).strip())
    else:
        text = str(value).strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # exactly 6 fraction digits: Python < 3.11 accepts no other count (nanoseconds are cut to micro)
        text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO 8601 time: %r" % (value,)) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return stamp.timestamp()
    if not math.isfinite(number):
        raise ValueError("not a time: %r" % (value,))
    return number / 1000.0 if number > 1e11 else number  # milliseconds (after 1973) or seconds


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else None


def when(ts):
    """'2026-11-28 12:29:37' (UTC), the form the document shows."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "unknown"


def duration(seconds):
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%s%d h %02d min" % (sign, hours, minutes)
    return "%s%d min %02d s" % (sign, minutes, secs) if minutes else "%s%d s" % (sign, secs)


def between(ts, start, end):
    return ts is not None and start <= ts <= end
