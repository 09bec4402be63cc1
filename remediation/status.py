"""`qt-remediate status`: recent decisions from the audit log, the breaker and running hosts, as text."""
from __future__ import annotations

from datetime import datetime, timezone

from .state import owner_alive

HEADER = ("TIME", "HOST", "TRIGGER", "ALERT/VERDICT", "ACTION", "RESULT", "DUR", "RC", "REASON / RUN")


def render(state, records, audit_log):
    lines = [breaker_line(state)]
    for host, run in sorted(state["running"].items()):
        stale = "" if owner_alive(run) else " (stale: its process is gone)"
        lines.append(f"running: {host} run {run.get('run_id')} since {_iso(run.get('since'))}{stale}")
    for fp, entry in sorted(state.get("inflight", {}).items(), key=lambda item: item[1].get("ts", 0)):
        stale = "" if owner_alive(entry) else " (its process is gone: recorded as interrupted at the next start)"
        lines.append(f"in flight: {entry.get('alert')} {fp} on {entry.get('host')} run {entry.get('run_id')} "
                     f"since {_iso(entry.get('ts'))}{stale}")
    if not records:
        return lines + [f"no remediation decisions in {audit_log}"]
    rows = [HEADER] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    for row in rows:  # the last column (reason) is free text: not padded
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    artifacts = [(r.get("details") or {}).get("artifacts") for r in records]
    latest = next((a for a in reversed(artifacts) if a), None)
    if latest:
        lines.append(f"latest artifacts: {latest}")
    return lines


def _row(r):
    d = r.get("details") or {}
    what = "/".join(x for x in (d.get("alert"), d.get("verdict")) if x) or "-"
    result = (r.get("result") or "") + (" (check)" if r.get("check_mode") else "")
    return (r.get("ts", "")[:19].replace("T", " "), r.get("host") or "-", d.get("trigger") or "-", what,
            d.get("playbook") or "-", result, "-" if d.get("duration_s") is None else f"{d['duration_s']:.1f}s",
            "-" if d.get("rc") is None else str(d["rc"]), f"{d.get('reason', '')} [{d.get('run_id') or '-'}]")


def breaker_line(state):
    b = state["breaker"]
    if b.get("open"):
        return (f"breaker: OPEN since {b.get('opened_at')} ({b.get('why')}); automatic remediation is stopped "
                "- page a human, then: qt-remediate breaker reset")
    return f"breaker: closed ({len(state['mitigations'])} recent automatic mitigations)"


def _iso(epoch):
    try:
        return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return "?"
