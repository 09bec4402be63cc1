"""Unit tests for the lab's auto-executor and ai-engine (pure logic; nothing is started).

The integration tests at the end start the real executor/ai-engine processes against a Redis given by
QT_TEST_REDIS_URL (default redis://127.0.0.1:16379/15, i.e. the lab's Redis in a spare database) and are
skipped when no Redis answers there.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from binance.exceptions import BinanceAPIException, BinanceRequestException
from sim_process import KEYS, SimProcess

ROOT = Path(__file__).resolve().parents[2]
EXECUTOR_PY = ROOT / "lab/images/auto_executor/executor.py"
AI_ENGINE_PY = ROOT / "lab/images/ai_engine/ai_engine.py"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex = _load("lab_executor", EXECUTOR_PY)
ai = _load("lab_ai_engine", AI_ENGINE_PY)


# ---------------------------------------------------------------- shared helpers


@pytest.mark.parametrize("module", [ex, ai], ids=["executor", "ai_engine"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), (" Yes ", True), ("1", True), ("false", False), ("0", False),
     ("no", False), ("off", False), ("banana", False)],
)
def test_parse_bool(module, raw, expected):
    assert module.parse_bool(raw) is expected


@pytest.mark.parametrize("module", [ex, ai], ids=["executor", "ai_engine"])
def test_parse_bool_empty_uses_default(module):
    assert module.parse_bool(None, True) is True
    assert module.parse_bool("", True) is True
    assert module.parse_bool("  ", False) is False


@pytest.mark.parametrize("module", [ex, ai], ids=["executor", "ai_engine"])
def test_log_line_shape(module):
    line = json.loads(module.format_log("INFO", "HEARTBEAT", None, in_flight=0))
    assert line["service"] in ("auto-executor", "ai-engine")
    assert line["event"] == "HEARTBEAT"
    assert "correlation_id" in line and line["correlation_id"] is None
    assert line["ts"].endswith("Z") and len(line["ts"]) == len("2026-11-28T03:04:05.123Z")


# ---------------------------------------------------------------- executor


def test_config_defaults_and_parsing():
    cfg = ex.load_config({})
    assert (cfg.use_testnet, cfg.paper_trading) == (False, False)
    assert cfg.http_timeout_s == 10.0 and cfg.client_order_prefix == "qtx-" and cfg.http_port == 9100
    assert cfg.policy_file == "/config/execution_policy.json"
    cfg = ex.load_config({"BINANCE_USE_TESTNET": "Yes", "PAPER_TRADING": "TRUE", "BINANCE_HTTP_TIMEOUT_S": "2.5"})
    assert (cfg.use_testnet, cfg.paper_trading, cfg.http_timeout_s) == (True, True, 2.5)


POLICY = {"max_notional_usdt": 5000.0, "allowed_symbols": ["BTCUSDT", "ETHUSDT"]}


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ({"symbol": "BTCUSDT", "quantity": "0.002", "price": "60000"}, None),
        ({"symbol": "ETHUSDT", "quantity": "1", "price": "5000"}, None),  # exactly at the limit is allowed
        ({"symbol": "BTCUSDT", "quantity": "0.1", "price": "60000"}, "NOTIONAL_ABOVE_LIMIT"),
        ({"symbol": "SOLUSDT", "quantity": "0.67", "price": "150"}, "SYMBOL_NOT_ALLOWED"),
        ({"symbol": "SOLUSDT", "quantity": "1000", "price": "150"}, "SYMBOL_NOT_ALLOWED"),
    ],
)
def test_gate_decision(intent, expected):
    assert ex.gate_decision(intent, POLICY) == expected


def test_persisted_kill_switch_in_the_policy_blocks_everything():
    allowed = {"symbol": "BTCUSDT", "quantity": "0.002", "price": "60000"}
    assert ex.gate_decision(allowed, dict(POLICY, kill_switch=True)) == "KILL_SWITCH"
    assert ex.gate_decision(allowed, dict(POLICY, kill_switch=False)) is None


def test_policy_file_defaults_reload_and_bad_json(tmp_path, capsys):
    path = tmp_path / "policy.json"
    policy = ex.PolicyFile(str(path))
    assert policy.current() == ex.DEFAULT_POLICY  # missing file
    path.write_text(json.dumps({"max_notional_usdt": 50, "allowed_symbols": ["SOLUSDT"]}))
    assert policy.current() == {"max_notional_usdt": 50.0, "allowed_symbols": ["SOLUSDT"]}
    path.write_text("{not json")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # force a new mtime
    assert policy.current()["allowed_symbols"] == ["SOLUSDT"]  # keeps the last good policy
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events == ["POLICY_LOADED", "POLICY_LOADED", "POLICY_INVALID"]


def test_client_order_id():
    cid = "123e4567-e89b-12d3-a456-426614174000"
    assert ex.client_order_id("qtx-", cid) == "qtx-123e4567e89b12d3a456"
    assert ex.client_order_id("qtx-", cid) == ex.client_order_id("qtx-", cid.upper())  # deterministic
    odd = ex.client_order_id("qtx-", "not-a-uuid")
    assert odd.startswith("qtx-") and len(odd) == 24 and odd == ex.client_order_id("qtx-", "not-a-uuid")
    assert len(ex.client_order_id("qtx-", str(uuid.uuid4()))) <= 36  # Binance's limit


def _response(status, body):
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode()
    resp.headers["Content-Type"] = "application/json"
    return resp


def test_classify_binance_api_exception_429():
    resp = _response(429, '{"code":-1003,"msg":"x"}')
    exc = BinanceAPIException(resp, resp.status_code, resp.text)
    assert ex.classify_error(exc) == (-1003, 429)


def test_classify_binance_api_exception_non_json():
    resp = _response(502, "<html>bad gateway</html>")
    exc = BinanceAPIException(resp, resp.status_code, resp.text)
    assert ex.classify_error(exc) == (0, 502)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), ("TIMEOUT", None)),
        (requests.exceptions.ConnectTimeout("connect timed out"), ("TIMEOUT", None)),
        (requests.exceptions.ConnectionError("refused"), ("CONNECTION", None)),
        (BinanceRequestException("Invalid Response: <html>"), ("UNKNOWN", None)),
        (RuntimeError("boom"), ("UNKNOWN", None)),
    ],
)
def test_classify_other_errors(exc, expected):
    assert ex.classify_error(exc) == expected


def test_render_metrics():
    text = ex.render_metrics({"orders_submitted_total": 3}, {"in_flight_orders": 1, "last_intent_age_seconds": 2.5})
    lines = text.splitlines()
    assert "# TYPE orders_submitted_total counter" in lines and "orders_submitted_total 3" in lines
    assert "# TYPE in_flight_orders gauge" in lines and "in_flight_orders 1" in lines
    assert "last_intent_age_seconds 2.5" in lines and text.endswith("\n")


def test_executor_metrics_names():
    cfg = ex.load_config({"PAPER_TRADING": "true", "EXECUTOR_POLICY_FILE": "/nonexistent"})
    executor = ex.Executor(cfg, redis_client=None, binance_client=None)
    executor.count("orders_submitted_total", 2)
    samples = dict(line.split(" ") for line in executor.metrics_text().splitlines() if not line.startswith("#"))
    assert set(samples) == {
        "orders_submitted_total", "orders_responded_total", "order_errors_total", "gate_blocked_total",
        "intents_received_total", "would_submit_total", "last_intent_age_seconds", "in_flight_orders",
        "executor_paper_trading", "executor_use_testnet",
    }
    assert samples["orders_submitted_total"] == "2" and samples["executor_paper_trading"] == "1"


def test_build_client_points_at_configured_urls():
    cfg = ex.load_config({"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s", "BINANCE_USE_TESTNET": "true",
                          "BINANCE_FUTURES_URL": "http://sim:8080/fapi",
                          "BINANCE_FUTURES_TESTNET_URL": "http://sim:8081/fapi", "BINANCE_HTTP_TIMEOUT_S": "3"})
    client = ex.build_client(cfg)
    assert client.FUTURES_TESTNET_URL == "http://sim:8081/fapi" and client.FUTURES_URL == "http://sim:8080/fapi"
    assert client._create_futures_api_uri("order", 1) == "http://sim:8081/fapi/v1/order"
    assert client._requests_params == {"timeout": 3.0}
    from binance.client import Client

    assert Client.FUTURES_URL == "https://fapi.binance.{}/fapi"  # the library itself is untouched


def test_build_client_defaults_to_production():
    client = ex.build_client(ex.load_config({}))
    assert client.FUTURES_URL == "https://fapi.binance.com/fapi"


def test_preflight_and_log_never_leak_secret(monkeypatch):
    secret, key = "S3CR3T-" + uuid.uuid4().hex, "K3Y-" + uuid.uuid4().hex
    cfg = ex.load_config({"BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret, "PAPER_TRADING": "true"})
    fields = ex.preflight_fields(cfg, "http://sim:8081/fapi")
    assert {"binance_use_testnet", "paper_trading", "futures_endpoint", "client_order_prefix",
            "http_timeout_s"} <= set(fields)
    monkeypatch.setattr(ex, "_SECRETS", {key, secret})
    line = ex.format_log("INFO", "PREFLIGHT", None, **fields)
    assert secret not in line and key not in line
    # Even if an exception text quotes them (or a signed query string), the log line is redacted.
    leaky = ex.format_log("ERROR", "ORDER_ERROR", "c", error=f"url ?apiKey={key}&x={secret}&signature=abc123ef")
    assert secret not in leaky and key not in leaky and "abc123ef" not in leaky


def test_rate_limited_log(capsys, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(ex.time, "monotonic", lambda: clock[0])
    limited = ex.RateLimitedLog("REDIS_ERROR", every_s=5)
    assert limited(error="down") is True
    clock[0] += 1
    assert limited(error="down") is False
    clock[0] += 5
    assert limited(error="down") is True
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["suppressed"] for line in lines] == [0, 1]


# ---------------------------------------------------------------- ai-engine


def test_intent_fields_are_strings_and_notional_about_100():
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        intent = ai.build_intent(symbol, "BUY", now_ms=1_700_000_000_000)
        assert set(intent) == {"correlation_id", "symbol", "side", "quantity", "price", "notional", "strategy", "ts"}
        assert all(isinstance(v, str) for v in intent.values())
        notional = Decimal(intent["price"]) * Decimal(intent["quantity"])
        assert 90 <= notional <= 125, (symbol, notional)
        assert Decimal(intent["notional"]) == notional
        assert intent["strategy"] == "lab-momentum" and intent["ts"] == "1700000000000"
        uuid.UUID(intent["correlation_id"])
    assert ai.build_intent("BTCUSDT", "SELL")["price"] == "60000"
    assert ai.build_intent("ETHUSDT", "SELL")["quantity"] == "0.033"


def test_intents_cycle_symbols_and_alternate_sides():
    factory = ai.IntentFactory(["BTCUSDT", "ETHUSDT"])
    got = [(i["symbol"], i["side"]) for i in (factory.next() for _dummy in range(6))]
    assert got == [("BTCUSDT", "BUY"), ("ETHUSDT", "BUY"), ("BTCUSDT", "SELL"), ("ETHUSDT", "SELL"),
                   ("BTCUSDT", "BUY"), ("ETHUSDT", "BUY")]
    single = ai.IntentFactory(["SOLUSDT"])
    assert [single.next()["side"] for _dummy in range(4)] == ["BUY", "SELL", "BUY", "SELL"]
    ids = {factory.next()["correlation_id"] for _dummy in range(10)}
    assert len(ids) == 10


def test_ai_config():
    cfg = ai.load_config({})
    assert cfg["symbols"] == ["BTCUSDT", "ETHUSDT"] and cfg["interval_s"] == 2.0 and cfg["publishing"] is True
    cfg = ai.load_config({"SYMBOLS": " btcusdt, SOLUSDT ,", "INTENT_INTERVAL_S": "0.5", "PUBLISHING": "false"})
    assert cfg["symbols"] == ["BTCUSDT", "SOLUSDT"] and cfg["interval_s"] == 0.5 and cfg["publishing"] is False


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"publishing": false}', False), (b'{"publishing": true}', True), (b"{bad", None), (b"", None),
     (b'{"publishing": "no"}', None), (b"[true]", None)],
)
def test_parse_control(body, expected):
    assert ai.parse_control(body) is expected


# ---------------------------------------------------------------- integration (real processes, real Redis)

REDIS_URL = os.environ.get("QT_TEST_REDIS_URL", "redis://127.0.0.1:16379/15")


def _redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({type(exc).__name__}); set QT_TEST_REDIS_URL or start the lab")
    return client


@pytest.fixture
def spare_redis(request):
    """A real Redis in a spare database: QT_TEST_REDIS_URL, or the lab's (db 15), started if needed."""
    if "QT_TEST_REDIS_URL" not in os.environ:
        request.getfixturevalue("lab")
    return _redis_or_skip()


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(script, env):
    return subprocess.Popen([sys.executable, "-u", str(script)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc):
    """SIGTERM must end the process with status 0 within 2 s; returns its JSON log lines."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _dummy = proc.communicate(timeout=2.5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("process did not exit within 2.5 s of SIGTERM")
    assert proc.returncode == 0
    return [json.loads(line) for line in out.splitlines()]


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


@pytest.mark.integration
def test_paper_pipeline_end_to_end(tmp_path, spare_redis):
    r = spare_redis
    for key in (ex.INTENT_STREAM, ex.EXECUTION_STREAM, ex.KILL_SWITCH_KEY, ex.HEARTBEAT_KEY):
        r.delete(key)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"max_notional_usdt": 5000, "allowed_symbols": ["BTCUSDT", "ETHUSDT"]}))
    ex_port, ai_port = _free_port(), _free_port()
    executor = _start(EXECUTOR_PY, {"REDIS_URL": REDIS_URL, "PAPER_TRADING": "true", "EXECUTOR_HTTP_PORT": str(ex_port),
                                    "EXECUTOR_POLICY_FILE": str(policy), "BINANCE_API_SECRET": "never-logged"})
    engine = _start(AI_ENGINE_PY, {"REDIS_URL": REDIS_URL, "INTENT_INTERVAL_S": "0.2", "AI_HTTP_PORT": str(ai_port),
                                   "SYMBOLS": "BTCUSDT,ETHUSDT,SOLUSDT"})
    try:
        statuses = _wait_for(lambda: {e[1]["status"] for e in r.xrange(ex.EXECUTION_STREAM)} >= {"WOULD_SUBMIT",
                                                                                                 "BLOCKED"} or None)
        assert statuses, "executor produced no WOULD_SUBMIT and BLOCKED executions"
        ready = requests.get(f"http://127.0.0.1:{ex_port}/readyz", timeout=2)
        assert ready.status_code == 200
        metrics = requests.get(f"http://127.0.0.1:{ex_port}/metrics", timeout=2).text
        assert "executor_paper_trading 1" in metrics
        assert requests.post(f"http://127.0.0.1:{ai_port}/control", data="{bad", timeout=2).status_code == 400
        paused = requests.post(f"http://127.0.0.1:{ai_port}/control", json={"publishing": False}, timeout=2)
        assert paused.json() == {"publishing": False}
        assert requests.get(f"http://127.0.0.1:{ai_port}/control", timeout=2).json() == {"publishing": False}
    finally:
        engine_lines, executor_lines = _stop(engine), _stop(executor)
    assert not any("never-logged" in json.dumps(line) for line in executor_lines)
    assert executor_lines[0]["event"] == "PREFLIGHT" and executor_lines[-1]["event"] == "SHUTDOWN"
    by_cid = {}
    for line in executor_lines:
        by_cid.setdefault(line["correlation_id"], []).append(line["event"])
    assert ["INTENT_RECEIVED", "WOULD_SUBMIT"] in by_cid.values()
    assert ["INTENT_RECEIVED", "GATE_BLOCKED"] in by_cid.values()  # SOLUSDT is not in the policy
    assert any(line["event"] == "INTENT_PUBLISHED" for line in engine_lines)
    assert engine_lines[-1]["event"] == "SHUTDOWN"


@pytest.mark.integration
def test_executor_drains_pending_after_restart_and_honours_kill_switch(tmp_path, spare_redis):
    r = spare_redis
    for key in (ex.INTENT_STREAM, ex.EXECUTION_STREAM, ex.KILL_SWITCH_KEY):
        r.delete(key)
    env = {"REDIS_URL": REDIS_URL, "PAPER_TRADING": "true", "EXECUTOR_POLICY_FILE": str(tmp_path / "none.json")}
    first = _start(EXECUTOR_PY, {**env, "EXECUTOR_HTTP_PORT": str(_free_port())})
    assert _wait_for(lambda: r.exists(ex.INTENT_STREAM) and r.xinfo_groups(ex.INTENT_STREAM))
    _stop(first)
    # Deliver an entry to the executor's consumer without acking it: what a hang or crash leaves behind.
    intent = ai.build_intent("BTCUSDT", "BUY")
    r.xadd(ex.INTENT_STREAM, intent)
    consumer = f"auto-executor-{__import__('socket').gethostname()}"
    r.xreadgroup(ex.GROUP, consumer, {ex.INTENT_STREAM: ">"}, count=10)
    r.set(ex.KILL_SWITCH_KEY, json.dumps({"reason": "test"}))
    second = _start(EXECUTOR_PY, {**env, "EXECUTOR_HTTP_PORT": str(_free_port())})
    try:
        done = _wait_for(lambda: r.xrange(ex.EXECUTION_STREAM))
    finally:
        lines = _stop(second)
        r.delete(ex.KILL_SWITCH_KEY)
    assert done and done[0][1]["correlation_id"] == intent["correlation_id"]
    assert done[0][1]["status"] == "BLOCKED" and done[0][1]["error_code"] == "KILL_SWITCH"
    assert r.xpending(ex.INTENT_STREAM, ex.GROUP)["pending"] == 0
    assert any(line["event"] == "GATE_BLOCKED" and line["reason"] == "KILL_SWITCH" for line in lines)


@pytest.mark.integration
def test_live_orders_against_simulator(tmp_path, spare_redis):
    r = spare_redis
    for key in (ex.INTENT_STREAM, ex.EXECUTION_STREAM, ex.KILL_SWITCH_KEY):
        r.delete(key)
    sim = SimProcess(tmp_path)
    key, secret = KEYS["testnet"]
    executor = _start(EXECUTOR_PY, {
        "REDIS_URL": REDIS_URL, "BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret,
        "BINANCE_USE_TESTNET": "true", "PAPER_TRADING": "false", "BINANCE_HTTP_TIMEOUT_S": "1",
        "BINANCE_FUTURES_TESTNET_URL": sim.url("testnet"),
        "EXECUTOR_POLICY_FILE": str(tmp_path / "none.json"), "EXECUTOR_HTTP_PORT": str(_free_port())})
    factory = ai.IntentFactory(["BTCUSDT"])
    try:
        assert _wait_for(lambda: r.exists(ex.INTENT_STREAM) and r.xinfo_groups(ex.INTENT_STREAM))
        outcomes = []
        for faults in ([], ["binance_429"], ["binance_timeout"]):
            sim.faults(*faults)
            r.xadd(ex.INTENT_STREAM, factory.next())
            want = len(outcomes) + 1
            entries = _wait_for(lambda want=want: (found := r.xrange(ex.EXECUTION_STREAM)) and len(found) >= want
                                and found)
            assert entries, f"no execution for faults={faults}"
            outcomes.append((entries[-1][1]["status"], entries[-1][1]["error_code"]))
        sim.faults()
    finally:
        lines = _stop(executor)
        sim.stop()
    assert outcomes == [("SUBMITTED_OK", ""), ("ERROR", "-1003"), ("ERROR", "TIMEOUT")]
    errors = [line for line in lines if line["event"] == "ORDER_ERROR"]
    assert [(e["error_code"], e["http_status"]) for e in errors] == [(-1003, 429), ("TIMEOUT", None)]
    assert not any(secret in json.dumps(line) for line in lines)
