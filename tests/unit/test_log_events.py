"""Log parsing that the executor_health check relies on."""
import json

from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import (
    LogSummary,
    iter_lines,
    parse_docker_ts,
    split_line,
)


def _line(ts, **event):
    return f"{ts} {json.dumps(event)}"


def test_docker_timestamp_parses_nanoseconds():
    assert parse_docker_ts("2026-11-28T03:04:05.500000000Z") == 1795835045.5
    assert parse_docker_ts("not-a-time") is None


def test_noise_lines_count_but_are_not_events():
    s = LogSummary()
    s.add("2026-11-28T03:04:05.000Z Traceback (most recent call last):")
    s.add("2026-11-28T03:04:06.000Z {broken json")
    s.add(_line("2026-11-28T03:04:07.000Z", event="ORDER_SUBMIT", correlation_id="c1"))
    r = s.result(now=parse_docker_ts("2026-11-28T03:04:17.000Z"))
    assert r["lines_read"] == 3
    assert r["json_lines"] == 1
    assert r["event_counts"] == {"ORDER_SUBMIT": 1}
    assert r["last_log_age_s"] == 10.0


def test_top_block_reason_and_correlation_trace():
    s = LogSummary(correlation_id="c2", keep_last=2)
    for i, reason in enumerate(["NOTIONAL_ABOVE_LIMIT", "KILL_SWITCH", "NOTIONAL_ABOVE_LIMIT"]):
        s.add(_line(f"2026-11-28T03:04:0{i}.000Z", event="GATE_BLOCKED", reason=reason, correlation_id=f"c{i}"))
    s.add(_line("2026-11-28T03:04:09.000Z", event="HEARTBEAT", correlation_id=None))
    r = s.result(now=0)
    assert r["top_block_reason"] == "NOTIONAL_ABOVE_LIMIT"
    assert [e["correlation_id"] for e in r["recent_events"]] == ["c1", "c2"]  # only the last 2 kept
    assert [e["reason"] for e in r["correlation_matches"]] == ["NOTIONAL_ABOVE_LIMIT"]
    assert r["last_event"] == "HEARTBEAT"


def test_iter_lines_rejoins_split_frames():
    chunks = [b"2026-11-28T03:04:05Z {\"event\":", b" \"A\"}\n2026-11-28T03:04:06Z", b" tail"]
    assert list(iter_lines(chunks)) == ['2026-11-28T03:04:05Z {"event": "A"}', "2026-11-28T03:04:06Z tail"]


def test_line_without_timestamp_keeps_payload():
    assert split_line('{"event": "X"}') == (None, '{"event": "X"}')


def test_restart_ends_the_wait_but_keeps_the_lost_submit():
    """A process killed between ORDER_SUBMIT and ORDER_RESPONSE must not make the next one look hung."""
    s = LogSummary()
    s.add(_line("2026-11-28T03:04:00.000Z", event="ORDER_SUBMIT", correlation_id="lost", symbol="BTCUSDT"))
    s.add(_line("2026-11-28T03:04:05.000Z", event="PREFLIGHT", paper_trading=True))
    s.add(_line("2026-11-28T03:04:06.000Z", event="ORDER_SUBMIT", correlation_id="new"))
    r = s.result(now=parse_docker_ts("2026-11-28T03:04:10.000Z"))
    assert [u["correlation_id"] for u in r["unanswered"]] == ["new"]
    assert r["lost_on_restart"] == [{"correlation_id": "lost", "symbol": "BTCUSDT", "_log_ts": 1795835040.0,
                                     "age_s": 10.0}]
    assert r["last_preflight"] == {"event": "PREFLIGHT", "paper_trading": True, "_log_ts": 1795835045.0}
