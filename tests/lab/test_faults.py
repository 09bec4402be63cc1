"""Every lab fault shows its symptom the way the runbook looks for it.

Each test injects a fault with labctl, then proves the symptom with the
runbook's own commands (docker ps / docker logs | grep / redis-cli / curl from
the executor container) and, for exchange faults, with python-binance against
the simulator. The `fault` fixture heals the lab afterwards.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"
EXECUTOR = "quantum_auto_executor"
TESTNET = "http://127.0.0.1:18081/fapi"


def sh(cmd, timeout=30):
    """A runbook line, run as a shell pipeline: (rc, stdout)."""
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout, check=False)
    return res.returncode, res.stdout


def events(cmd):
    """JSON events from `docker logs ... | grep ...` output."""
    rc, out = sh(cmd)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def logs_since(container, seconds, pattern):
    return events(f"docker logs {container} --since {seconds}s 2>&1 | grep {pattern}")


def sim_testnet_client(keys, timeout=5):
    client = Client(keys["SIM_TESTNET_API_KEY"], keys["SIM_TESTNET_API_SECRET"], ping=False, testnet=True,
                    requests_params={"timeout": timeout})
    client.FUTURES_TESTNET_URL = TESTNET
    return client


def xinfo_lag():
    rc, out = sh("docker exec quantum_redis redis-cli XINFO GROUPS quantum:stream:intent")
    fields = out.split()
    return int(fields[fields.index("lag") + 1]) if "lag" in fields else None


def test_healthy_orders_are_submitted_and_answered(lab):
    rc, out = sh("docker ps | grep quantum_auto_executor")
    assert rc == 0 and "Up" in out
    order_events = events("docker logs quantum_auto_executor --tail 100 2>&1 | grep ORDER_")
    submitted = {e["correlation_id"] for e in order_events if e["event"] == "ORDER_SUBMIT"}
    answered = {e["correlation_id"] for e in order_events if e["event"] == "ORDER_RESPONSE"}
    assert submitted and submitted & answered
    assert sh("docker exec quantum_redis redis-cli PING")[1].strip() == "PONG"
    for stream in ("intent", "execution"):
        assert int(sh(f"docker exec quantum_redis redis-cli XLEN quantum:stream:{stream}")[1]) > 0
    rc, out = sh("docker exec quantum_auto_executor curl -s http://binance-sim:8081/fapi/v1/time")
    assert abs(json.loads(out)["serverTime"] - time.time() * 1000) < 5000
    assert "BINANCE_USE_TESTNET=true" in sh("docker exec quantum_auto_executor env | grep BINANCE_USE_TESTNET")[1]
    preflight = events("docker logs quantum_auto_executor 2>&1 | grep PREFLIGHT")
    assert preflight and preflight[-1]["binance_use_testnet"] is True


def test_executor_crash_leaves_container_exited(fault):
    fault("executor_crash")
    assert sh("docker ps | grep quantum_auto_executor")[0] == 1  # grep finds nothing
    rc, out = sh("docker ps -a | grep quantum_auto_executor")
    assert "Exited (137)" in out


def test_executor_hang_is_up_but_silent_while_the_backlog_grows(fault):
    fault("executor_hang")
    rc, out = sh("docker ps | grep quantum_auto_executor")
    assert rc == 0 and "Up" in out
    lag_before = xinfo_lag()
    time.sleep(5)
    assert sh("docker logs quantum_auto_executor --since 5s 2>&1")[1] == ""
    assert xinfo_lag() > lag_before
    with pytest.raises(requests.exceptions.RequestException):
        requests.get("http://127.0.0.1:19100/healthz", timeout=2)


def test_up_on_a_hung_lab_brings_it_back_healthy(fault):
    """`make demo` leaves the executor frozen; `make test` then runs `labctl up`, which must heal it
    (compose's --wait fails at once on an unhealthy container)."""
    fault("executor_hang")
    res = subprocess.run([*LABCTL, "up"], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-1000:]
    status = json.loads(res.stdout)
    assert status["faults"] == [] and status["containers"][EXECUTOR]["health"] == "healthy"


def test_gate_block_logs_the_reason(fault):
    fault("gate_block")
    time.sleep(3)
    blocked = logs_since(EXECUTOR, 3, "GATE_BLOCKED")
    assert blocked and {e["reason"] for e in blocked} == {"NOTIONAL_ABOVE_LIMIT"}
    assert not logs_since(EXECUTOR, 3, "ORDER_SUBMIT")


def test_redis_down_fails_ping_and_executor_reports_it(fault):
    fault("redis_down")
    rc, out = sh("docker exec quantum_redis redis-cli PING")
    assert rc != 0 and "PONG" not in out
    time.sleep(2)
    assert logs_since(EXECUTOR, 10, "REDIS_ERROR")


def test_no_signals_stops_the_intent_stream(fault):
    fault("no_signals")
    first = sh("docker exec quantum_redis redis-cli XLEN quantum:stream:intent")[1]
    time.sleep(4)
    assert sh("docker exec quantum_redis redis-cli XLEN quantum:stream:intent")[1] == first
    assert not logs_since("quantum_ai_engine", 4, "INTENT_PUBLISHED")
    assert not logs_since(EXECUTOR, 4, "ORDER_SUBMIT")


def test_binance_down_refuses_connections(fault, lab_keys):
    fault("binance_down")
    rc, _dummy = sh("docker exec quantum_auto_executor curl -s -m 3 http://binance-sim:8081/fapi/v1/time")
    assert rc == 7  # curl: couldn't connect
    with pytest.raises(requests.exceptions.ConnectionError):
        sim_testnet_client(lab_keys).futures_time()


def test_binance_timeout_leaves_order_submit_without_response(fault, lab_keys):
    fault("binance_timeout")
    rc, _dummy = sh("docker exec quantum_auto_executor curl -s -m 3 http://binance-sim:8081/fapi/v1/time")
    assert rc == 28  # curl: operation timed out
    order_events = events("docker logs quantum_auto_executor --tail 100 2>&1 | grep ORDER_")
    last_submit = [e for e in order_events if e["event"] == "ORDER_SUBMIT"][-1]
    answered = {e["correlation_id"] for e in order_events if e["event"] in ("ORDER_RESPONSE", "ORDER_ERROR")}
    assert last_submit["correlation_id"] not in answered
    with pytest.raises(requests.exceptions.ReadTimeout):
        sim_testnet_client(lab_keys, timeout=1).futures_time()


@pytest.mark.parametrize("name,status", [("binance_429", 429), ("binance_418", 418)])
def test_rate_limit_and_ban_map_to_python_binance(fault, lab_keys, name, status):
    fault(name)
    rc, out = sh("docker exec quantum_auto_executor curl -s -i -m 3 http://binance-sim:8081/fapi/v1/time")
    assert out.startswith("HTTP/1.") and f" {status} " in out.splitlines()[0]
    assert "retry-after:" in out.lower()
    with pytest.raises(BinanceAPIException) as err:
        sim_testnet_client(lab_keys).futures_account()
    assert (err.value.status_code, err.value.code) == (status, -1003)
    assert int(err.value.response.headers["Retry-After"]) > 0


def test_bad_credentials_rejects_signed_calls_only(fault, lab_keys):
    fault("bad_credentials")
    assert any(e.get("error_code") == -2015 for e in logs_since(EXECUTOR, 60, "ORDER_ERROR"))
    client = sim_testnet_client(lab_keys)
    assert "serverTime" in client.futures_time()  # unsigned still works
    with pytest.raises(BinanceAPIException) as err:
        client.futures_account()
    assert err.value.code == -2015


def test_testnet_keys_on_mainnet_are_rejected(lab, lab_keys):
    client = Client(lab_keys["SIM_TESTNET_API_KEY"], lab_keys["SIM_TESTNET_API_SECRET"], ping=False)
    client.FUTURES_URL = "http://127.0.0.1:18080/fapi"
    with pytest.raises(BinanceAPIException) as err:
        client.futures_account()
    assert err.value.code == -2015


def test_clock_skew_gives_1021(fault, lab_keys):
    fault("clock_skew")
    assert any(e.get("error_code") == -1021 for e in logs_since(EXECUTOR, 60, "ORDER_ERROR"))
    client = sim_testnet_client(lab_keys)
    assert abs(client.futures_time()["serverTime"] - time.time() * 1000) > 5000
    with pytest.raises(BinanceAPIException) as err:
        client.futures_account()
    assert err.value.code == -1021


def test_stuck_orders_rest_older_than_five_minutes(fault, lab_keys):
    fault("stuck_orders")
    assert any(e.get("exchange_status") == "NEW" for e in logs_since(EXECUTOR, 60, "ORDER_RESPONSE"))
    orders = sim_testnet_client(lab_keys).futures_get_open_orders()
    now_ms = time.time() * 1000
    stuck = [o for o in orders if o["status"] == "NEW" and now_ms - o["time"] > 5 * 60 * 1000]
    assert stuck and all(o["clientOrderId"].startswith("qtx-") for o in stuck)


def test_faults_combine(fault):
    fault("executor_hang", "binance_429")
    assert sh("docker logs quantum_auto_executor --since 5s 2>&1")[1] == ""
    out = sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18081/fapi/v1/time")[1]
    assert out == "429"
    status = json.loads(subprocess.run([*LABCTL, "status"], capture_output=True, text=True, check=False).stdout)
    assert status["faults"] == ["binance_429", "executor_hang"]
    assert status["expected_verdicts"] == ["BINANCE_RATE_LIMITED", "EXECUTOR_HUNG"]


def test_executor_exposes_readiness_and_order_metrics(lab):
    assert requests.get("http://127.0.0.1:19100/readyz", timeout=3).status_code == 200
    metrics = dict(line.rsplit(" ", 1) for line in requests.get("http://127.0.0.1:19100/metrics", timeout=3)
                   .text.splitlines() if line and not line.startswith("#"))
    assert float(metrics["orders_submitted_total"]) > 0
    assert float(metrics["orders_responded_total"]) > 0
    assert float(metrics["last_intent_age_seconds"]) < 10


def test_go_live_abort_needs_the_word_and_sets_the_kill_switch(lab):
    script = f"bash {RUN_DIR}/scripts/go_live_abort.sh"  # the script cds to its project itself
    rc, _dummy = sh(f"echo nope | {script}")
    assert rc == 1
    assert sh("docker exec quantum_redis redis-cli EXISTS quantum:control:kill_switch")[1].strip() == "0"
    try:
        assert sh(f"echo ABORT | {script}")[0] == 0
        assert sh("docker exec quantum_redis redis-cli EXISTS quantum:control:kill_switch")[1].strip() == "1"
        time.sleep(3)
        assert {e["reason"] for e in logs_since(EXECUTOR, 2, "GATE_BLOCKED")} == {"KILL_SWITCH"}
        assert not logs_since(EXECUTOR, 2, "ORDER_SUBMIT")
    finally:
        assert sh(f"{script} --release")[0] == 0
    time.sleep(3)
    assert logs_since(EXECUTOR, 2, "ORDER_RESPONSE")
