"""Check 4's timeline, and log parsing that survives whatever a container prints."""
import json
import random

from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary, iter_lines
from ansible_collections.quantum.runbooks.plugins.module_utils.trace import timeline

CID = "8f1c6a52-0000-4000-8000-000000000001"


def ev(event, ts, **kw):
    return dict({"event": event, "correlation_id": CID, "ts": ts, "_log_ts": ts}, **kw)


def test_full_path_is_complete():
    t = timeline({"quantum_ai_engine": [ev("INTENT_PUBLISHED", 1)],
                  "quantum_auto_executor": [ev("ORDER_RESPONSE", 4, exchange_status="FILLED"),
                                            ev("INTENT_RECEIVED", 2), ev("ORDER_SUBMIT", 3)]}, CID)
    assert t["complete"] and t["first_missing_step"] is None
    assert [e["event"] for e in t["timeline"]] == ["INTENT_PUBLISHED", "INTENT_RECEIVED", "ORDER_SUBMIT",
                                                   "ORDER_RESPONSE"]
    assert t["timeline"][-1]["detail"] == {"exchange_status": "FILLED"}


def test_order_follows_the_services_clocks_not_when_docker_read_the_line():
    # Seen in CI: Docker read the AI engine's pipe late, so its receive times put the publish after the submit.
    def at(event, ms, docker_s, service_events):
        service_events.append(dict(ev(event, f"2026-11-28T17:00:00.{ms:03d}Z"), _log_ts=docker_s))
    engine, executor = [], []
    at("INTENT_RECEIVED", 100, 10.9, engine)
    at("INTENT_PUBLISHED", 101, 10.9, engine)
    at("INTENT_RECEIVED", 101, 10.1, executor)  # same millisecond as the publish: causal order decides
    at("ORDER_SUBMIT", 102, 10.2, executor)
    at("ORDER_RESPONSE", 140, 10.3, executor)
    t = timeline({"quantum_ai_engine": engine, "quantum_auto_executor": executor}, CID)
    assert [(e["service"], e["event"]) for e in t["timeline"]] == [
        ("quantum_ai_engine", "INTENT_RECEIVED"), ("quantum_ai_engine", "INTENT_PUBLISHED"),
        ("quantum_auto_executor", "INTENT_RECEIVED"), ("quantum_auto_executor", "ORDER_SUBMIT"),
        ("quantum_auto_executor", "ORDER_RESPONSE")]


def test_unparseable_service_time_falls_back_to_docker_time():
    t = timeline({"quantum_auto_executor": [dict(ev("ORDER_SUBMIT", "garbage"), _log_ts=2.0),
                                            dict(ev("INTENT_RECEIVED", None), _log_ts=1.0)]}, CID)
    assert [e["event"] for e in t["timeline"]] == ["INTENT_RECEIVED", "ORDER_SUBMIT"]


def test_submit_without_answer_names_the_response_as_missing():
    t = timeline({"quantum_ai_engine": [ev("INTENT_PUBLISHED", 1)],
                  "quantum_auto_executor": [ev("INTENT_RECEIVED", 2), ev("ORDER_SUBMIT", 3)]}, CID)
    assert t["first_missing_step"] == "ORDER_RESPONSE"


def test_gate_block_ends_the_path_before_submit():
    executor = [ev("INTENT_RECEIVED", 2), ev("GATE_BLOCKED", 3, reason="KILL_SWITCH")]
    t = timeline({"quantum_ai_engine": [ev("INTENT_PUBLISHED", 1)], "quantum_auto_executor": executor}, CID)
    assert t["complete"] and t["ended_by"] == "blocked by the execution policy"


def test_intent_never_consumed():
    t = timeline({"quantum_ai_engine": [ev("INTENT_PUBLISHED", 1)], "quantum_auto_executor": []}, CID)
    assert t["first_missing_step"] == "INTENT_RECEIVED"


def _noisy_log(rng):
    good = [
        json.dumps({"event": "INTENT_RECEIVED", "correlation_id": CID}),
        json.dumps({"event": "ORDER_SUBMIT", "correlation_id": CID, "symbol": "BTCUSDT"}),
    ]
    junk = [
        b'{"event": "ORDER_RESP',                             # truncated JSON
        b"\xff\xfe\x00garbage \x80\x81",                      # not UTF-8
        b'{"level": "INFO", "msg": "no event field"}',        # missing fields
        b'["a", "list"]',                                     # JSON, not an object
        b"x" * (1024 * 1024),                                 # a 1 MB line
        b'{"event": null, "correlation_id": 5}',              # wrong types
        b"Traceback (most recent call last):",
    ]
    lines = [f"2026-11-28T03:00:0{i}.000000000Z ".encode() + g.encode() for i, g in enumerate(good)]
    for j in junk:
        lines.insert(rng.randrange(len(lines) + 1), b"2026-11-28T03:00:05.000000000Z " + j)
    blob = b"\n".join(lines) + b"\n"
    cut = sorted(rng.sample(range(1, len(blob)), 20))  # random Docker frame boundaries
    return [blob[a:b] for a, b in zip([0] + cut, cut + [len(blob)], strict=True)]


def test_fuzzed_logs_still_trace_the_order():
    for seed in range(25):
        summary = LogSummary(correlation_id=CID)
        for line in iter_lines(_noisy_log(random.Random(seed))):
            summary.add(line)
        result = summary.result(now=0)
        assert [e["event"] for e in result["correlation_matches"]] == ["INTENT_RECEIVED", "ORDER_SUBMIT"]
        assert [u["correlation_id"] for u in result["unanswered"]] == [CID]
        t = timeline({"quantum_auto_executor": result["correlation_matches"]}, CID)
        assert t["first_missing_step"] == "INTENT_PUBLISHED"
