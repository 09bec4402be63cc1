"""quantum.runbooks.binance_futures_info and its module_utils (binance_probe, binance_connectivity, binance_exchange).

Unit tests run against lab/images/binance_sim/sim.py started here as a subprocess on free loopback ports,
with faults driven through its control API (no Docker, the shared lab is not touched). The module is then
run end to end through the `ansible` CLI. Tests marked `lab` need Docker: one starts a throwaway container
without a network (host_only), one probes the shared lab strictly read-only.
"""
import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sim_process import KEYS, NO_PROXY, free_port

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_connectivity as mod
from ansible_collections.quantum.runbooks.plugins.module_utils import binance_exchange, binance_probe
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_common import (
    binance_argument_spec,
    make_exchange,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import redact

ROOT = Path(__file__).resolve().parents[2]
PROBE_PY = ROOT / "plugins" / "module_utils" / "binance_probe.py"
VENV_BIN = ROOT / ".venv" / "bin"
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"
LAB_SIM_CONTROL = "http://127.0.0.1:18099"
EXECUTOR_IMAGE = "qt-lab-auto-executor:1"
# Keys are random per run (tests/sim_process.py), so a leak cannot hide behind a common string.

TEST_KEY, TEST_SECRET = KEYS["testnet"]
LOOPBACK_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def module_params(sim, **over):
    """Module parameters as AnsibleModule would hand them over (defaults applied)."""
    spec = binance_argument_spec()
    params = {name: opt.get("default") for name, opt in spec.items()}
    params.update(futures_url=sim.url(), testnet=True, api_key=TEST_KEY, api_secret=TEST_SECRET, timeout=2.0,
                  checks=["time", "account", "open_orders"], stuck_after_s=300, client_order_prefix="qtx-",
                  container=None, container_futures_url=None, max_orders=50)
    params.update(over)
    return params


def assert_no_secrets(text, *extra):
    for needle in (TEST_KEY, TEST_SECRET, *KEYS["mainnet"], *extra):
        assert needle not in text
    assert not re.search(r"signature=[0-9a-f]{16}", text)


# ---------------------------------------------------------------- binance_probe

def test_probe_healthy(sim):
    started = time.monotonic()
    r = binance_probe.probe_time(sim.url(), 2)
    assert time.monotonic() - started < 2
    assert r["reachable"] is True and r["error_kind"] is None and r["http_status"] == 200
    assert r["rate_limit"] == "ok" and r["retry_after_s"] is None and r["error_code"] is None
    assert isinstance(r["used_weight_1m"], int) and r["used_weight_1m"] >= 1
    assert abs(r["clock_offset_ms"]) < 2000 and 0 <= r["latency_ms"] < 2000
    assert abs(r["server_time_ms"] - time.time() * 1000) < 3000
    assert r["url"] == sim.url() + "/v1/time"
    assert binance_probe.probe_time(sim.url() + "/", 2)["url"] == r["url"]  # trailing slash tolerated


def test_probe_binance_429(sim):
    sim.faults("binance_429")
    r = binance_probe.probe_time(sim.url(), 2)
    assert (r["reachable"], r["http_status"], r["rate_limit"], r["error_kind"]) == (True, 429, "rate_limited", "http")
    assert r["retry_after_s"] == 30 and r["error_code"] == -1003
    assert r["error_msg"].startswith("Too many requests") and r["server_time_ms"] is None


def test_probe_binance_418(sim):
    sim.faults("binance_418")
    r = binance_probe.probe_time(sim.url(), 2)
    assert (r["reachable"], r["http_status"], r["rate_limit"]) == (True, 418, "ip_banned")
    assert r["retry_after_s"] == 120 and r["error_code"] == -1003 and "banned until" in r["error_msg"]


def test_probe_binance_down_is_refused(sim):
    sim.faults("binance_down")
    r = binance_probe.probe_time(sim.url(), 2)
    assert (r["reachable"], r["error_kind"], r["http_status"], r["rate_limit"]) == (False, "refused", None, None)


def test_probe_binance_timeout_is_bounded(sim):
    sim.faults("binance_timeout")
    started = time.monotonic()
    r = binance_probe.probe_time(sim.url(), 1)
    assert time.monotonic() - started < 2.2
    assert (r["reachable"], r["error_kind"], r["http_status"]) == (False, "timeout", None)


def test_probe_clock_skew(sim):
    sim.faults("clock_skew")
    r = binance_probe.probe_time(sim.url(), 2)
    assert r["reachable"] and 28000 < r["clock_offset_ms"] < 32000


def test_probe_dns_and_bad_input():
    r = binance_probe.probe_time("http://no-such-host.invalid/fapi", 2)
    assert (r["reachable"], r["error_kind"]) == (False, "dns")
    assert binance_probe.probe_time("ftp://example/fapi", 2)["error_kind"] == "other"
    assert binance_probe.probe_time("http://127.0.0.1:1/fapi", 0)["error_kind"] == "other"


def test_probe_header_lookup_is_case_insensitive():
    assert binance_probe.header_value({"x-mbx-used-weight-1m": "7"}, "X-MBX-USED-WEIGHT-1M") == "7"
    assert binance_probe.to_number("7") == 7 and binance_probe.to_number("1.5") == 1.5
    assert binance_probe.to_number("soon") is None and binance_probe.header_value(None, "a") is None


def test_probe_runs_as_a_stdlib_only_script(sim):
    """`python3 -I file < request` and the program form `python3 -I -c <source + request>` (the container's; also
    on stdin, `python3 -I -`) answer JSON."""
    line = json.dumps({"base_url": sim.url(), "timeout": 2})
    clean_env = {"PATH": "/usr/bin:/bin", **LOOPBACK_ENV}
    res = subprocess.run(["/usr/bin/python3", "-I", str(PROBE_PY)], input=line + "\n", capture_output=True,
                         text=True, timeout=10, env=clean_env, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["http_status"] == 200
    script = binance_probe.container_script(mod.probe_source(), sim.url(), 2)
    res = subprocess.run(["/usr/bin/python3", "-I", "-"], input=script, capture_output=True, text=True,
                         timeout=10, env=clean_env, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["reachable"] is True
    # as the container runs it (an exec has no stdin): python3 -c <program>, one JSON line
    res = subprocess.run(["/usr/bin/python3", "-I", "-c", script], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=10, env=clean_env, check=False)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["reachable"] for line in res.stdout.splitlines()] == [True]
    res = subprocess.run(["/usr/bin/python3", "-I", str(PROBE_PY)], input="not json\n", capture_output=True,
                         text=True, timeout=10, env=clean_env, check=False)
    assert res.returncode == 2 and json.loads(res.stdout)["error_kind"] == "other"


# ---------------------------------------------------------------- binance_exchange

def test_redact():
    key, secret = "AbCdEf0123456789", "s3cr3t/with+chars="
    text = (f"GET /fapi/v2/account?timestamp=1&recvWindow=10000&signature=0a1b2c3d4e5f key={key} "
            f"secret={secret} quoted=s3cr3t%2Fwith%2Bchars%3D headers={{'X-MBX-APIKEY': '{key}'}}")
    out = redact(text, [key, secret, None, ""])
    assert key not in out and secret not in out and "s3cr3t%2F" not in out and "0a1b2c3d4e5f" not in out
    assert "signature=********" in out and out.count("********") >= 4
    assert redact("X-MBX-APIKEY: zzzTopKey", []) == "X-MBX-APIKEY: ********"
    assert redact(None, [key]) is None and redact(ValueError("boom"), []) == "boom"


def test_exchange_signs_for_each_personality(sim):
    """Signed GET, POST and DELETE against both personalities' keys: the simulator checks every signature."""
    ex = make_exchange(module_params(sim, ))
    assert ex.base_url == sim.url() and ex.send("GET", "/v1/time", signed=False)["serverTime"] > 0
    placed = ex.send("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                           "quantity": "0.01", "price": "50000", "newClientOrderId": "qtx-sign-1"})
    assert (placed["status"], placed["clientOrderId"], ex.http_status) == ("NEW", "qtx-sign-1", 200)
    assert ex.send("GET", "/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "qtx-sign-1"})["status"] == "NEW"
    assert ex.send("DELETE", "/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]})["status"] == "CANCELED"
    assert isinstance(ex.used_weight_1m, int) and ex.used_weight_1m >= 3
    mainnet = make_exchange(module_params(sim, futures_url=sim.url("mainnet"), testnet=False,
                                          api_key=KEYS["mainnet"][0], api_secret=KEYS["mainnet"][1]))
    assert mainnet.send("GET", "/v2/account")["canTrade"] is True
    with pytest.raises(binance_exchange.ExchangeError) as err:  # the testnet key on mainnet
        make_exchange(module_params(sim, futures_url=sim.url("mainnet"))).send("GET", "/v2/account")
    assert (err.value.kind, err.value.code, err.value.http_status) == ("credentials", -2015, 401)
    logged = sim.ctl("GET", "/_sim/requests?personality=testnet")[1]
    assert [(x["method"], x["path"], x["status"]) for x in logged] == [
        ("GET", "/fapi/v1/time", 200), ("POST", "/fapi/v1/order", 200), ("GET", "/fapi/v1/order", 200),
        ("DELETE", "/fapi/v1/order", 200)]


def test_signed_read_connection_errors_carry_no_secrets():
    closed = f"http://127.0.0.1:{free_port()}/fapi"
    params = {"futures_url": closed, "testnet": True, "api_key": TEST_KEY, "api_secret": TEST_SECRET, "timeout": 2}
    out, payload = mod.signed_read(make_exchange(params), "account")
    assert payload is None and out["http_status"] is None
    assert (out["status"], out["error_kind"]) == ("unreachable", "refused")
    assert out["error_msg"].startswith("refused: ")
    assert_no_secrets(json.dumps(out))


# ---------------------------------------------------------------- module logic in-process

def test_checks_healthy(sim):
    r = mod.run_checks(module_params(sim, ))
    assert (r["endpoint"], r["personality"], r["path_finding"]) == (sim.url(), "testnet",
                                                                    "host_ok_container_not_checked")
    assert r["container"] is None and "container_error" not in r
    assert r["account"]["status"] == "ok" and r["account"]["can_trade"] is True
    oo = r["open_orders"]
    assert (oo["status"], oo["count"], oo["stuck_count"], oo["oldest_age_s"], oo["orders"]) == ("ok", 0, 0, None, [])
    assert r["used_weight_1m"] >= 46 and r["retry_after_s"] is None  # 1 + 5 + 40 at least
    assert_no_secrets(json.dumps(r))


def test_checks_bad_credentials_and_wrong_secret(sim):
    sim.faults("bad_credentials")
    r = mod.run_checks(module_params(sim, ))
    assert r["host"]["http_status"] == 200  # /time is unsigned and still fine
    assert (r["account"]["status"], r["account"]["error_code"], r["account"]["http_status"]) == ("rejected", -2015, 401)
    assert r["open_orders"]["status"] == "rejected"
    sim.faults()
    r = mod.run_checks(module_params(sim, api_secret="not-the-secret", checks=["account"]))
    assert (r["account"]["status"], r["account"]["error_code"]) == ("rejected", -1022)
    assert r["open_orders"]["status"] == "skipped" and r["open_orders"]["reason"] == "not requested"


def test_checks_clock_skew(sim):
    sim.faults("clock_skew")
    r = mod.run_checks(module_params(sim, ))
    assert 28000 < r["host"]["clock_offset_ms"] < 32000
    assert (r["account"]["status"], r["account"]["error_code"]) == ("clock_skew", -1021)


@pytest.mark.parametrize("fault,status,retry", [("binance_429", 429, 30), ("binance_418", 418, 120)])
def test_checks_skip_signed_calls_when_limited(sim, fault, status, retry):
    sim.faults(fault)
    r = mod.run_checks(module_params(sim, ))
    for name in ("account", "open_orders"):
        assert r[name]["status"] == "skipped" and r[name]["http_status"] == status
        assert f"HTTP {status}" in r[name]["reason"]
    assert r["retry_after_s"] == retry and r["host"]["rate_limit"] in ("rate_limited", "ip_banned")
    logged = [json.loads(x) for x in sim.log.read_text().splitlines() if x.startswith("{")]
    assert not [x for x in logged if x.get("path") in ("/fapi/v2/account", "/fapi/v1/openOrders")
                and x.get("status") == status]  # no signed request was sent into the limit


def test_checks_binance_down(sim):
    sim.faults("binance_down")
    r = mod.run_checks(module_params(sim, ))
    assert r["host"]["error_kind"] == "refused" and r["path_finding"] == "host_unreachable_container_not_checked"
    assert (r["account"]["status"], r["account"]["error_kind"]) == ("unreachable", "refused")
    assert r["open_orders"]["status"] == "unreachable" and "not attempted" in r["open_orders"]["reason"]


def test_checks_binance_timeout_bounded(sim):
    sim.faults("binance_timeout")
    started = time.monotonic()
    r = mod.run_checks(module_params(sim, timeout=1.0))
    assert time.monotonic() - started < 3 * 1 + 1
    assert r["host"]["error_kind"] == "timeout"
    assert (r["account"]["status"], r["account"]["error_kind"]) == ("unreachable", "timeout")


def test_checks_bounded_when_only_signed_calls_hang():
    """/v1/time answers, every other path hangs: one signed call waits, the next is not attempted."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/fapi/v1/time"):
                body = json.dumps({"serverTime": int(time.time() * 1000)}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                time.sleep(8)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fapi"
        started = time.monotonic()
        r = mod.run_checks({"futures_url": url, "testnet": True, "api_key": TEST_KEY, "api_secret": TEST_SECRET,
                            "timeout": 1.0, "checks": ["time", "account", "open_orders"], "stuck_after_s": 300,
                            "client_order_prefix": "qtx-", "container": None, "container_futures_url": None,
                            "max_orders": 50})
        assert time.monotonic() - started < 3 * 1 + 2
        assert r["host"]["reachable"] and r["account"]["status"] == "unreachable"
        assert r["account"]["error_kind"] == "timeout"
        assert r["open_orders"]["status"] == "unreachable" and "timed out" in r["open_orders"]["reason"]
    finally:
        server.shutdown()
        server.server_close()


def test_checks_no_key_skips_signed(sim):
    r = mod.run_checks(module_params(sim, api_key=None, api_secret=None))
    assert r["host"]["reachable"] and r["account"]["status"] == "skipped" and "no api_key" in r["account"]["reason"]
    r = mod.run_checks(module_params(sim, checks=["time"]))
    assert r["account"]["reason"] == "not requested" and r["host"]["http_status"] == 200


def test_checks_stuck_orders(sim):
    """Own order resting (stuck_orders backdates it 600 s), a seeded old own order, a young foreign one."""
    sim.faults("stuck_orders")
    placed = sim.client().futures_create_order(  # as the executor places it: python-binance
        symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.05", price="2900",
        newClientOrderId="qtx-stuck-1")
    assert placed["status"] == "NEW"
    sim.faults()
    sim.seed(client_order_id="qtx-old-1", age_s=900)
    sim.seed(client_order_id="manual-1", age_s=30, side="SELL", price="70000")
    r = mod.run_checks(module_params(sim, ))
    oo = r["open_orders"]
    assert (oo["status"], oo["count"], oo["own_count"], oo["foreign_count"]) == ("ok", 3, 2, 1)
    assert (oo["stuck_count"], oo["own_stuck_count"], oo["age_reference"]) == (2, 2, "exchange")
    assert 895 < oo["oldest_age_s"] < 910 and oo["truncated"] is False
    assert [o["clientOrderId"] for o in oo["orders"]] == ["qtx-old-1", "qtx-stuck-1", "manual-1"]
    first, _dummy, last = oo["orders"]
    assert first["own"] and first["stuck"] and not last["own"] and not last["stuck"] and 25 < last["age_s"] < 40
    assert set(first) >= {"symbol", "orderId", "clientOrderId", "side", "price", "origQty", "executedQty",
                          "status", "age_s", "own", "stuck"}
    r = mod.run_checks(module_params(sim, max_orders=1, stuck_after_s=1000, client_order_prefix="manual-"))
    oo = r["open_orders"]
    assert (oo["count"], oo["own_count"], oo["stuck_count"], oo["truncated"], len(oo["orders"])) == (3, 1, 0, True, 1)


@pytest.mark.parametrize("err,expected", [
    (binance_exchange.ExchangeError("credentials", "m", 401, -2015), ("rejected", 401, -2015, None)),
    (binance_exchange.ExchangeError("credentials", "m", 400, -1022), ("rejected", 400, -1022, None)),
    (binance_exchange.ExchangeError("api", "m", 400, -1021), ("clock_skew", 400, -1021, None)),
    (binance_exchange.ExchangeError("rate_limited", "m", 429, -1003, 30), ("rate_limited", 429, -1003, None)),
    (binance_exchange.ExchangeError("banned", "m", 418, -1003, 120), ("ip_banned", 418, -1003, None)),
    (binance_exchange.ExchangeError("unknown", "m", 503, -1000), ("error", 503, -1000, None)),
    (binance_exchange.ExchangeError("unknown", "Invalid Response: x", 200), ("error", 200, None, None)),
    (binance_exchange.ExchangeError("unreachable", "m", cause="dns"), ("unreachable", None, None, "dns")),
    (binance_exchange.ExchangeError("unknown", "m", cause="timeout"), ("unreachable", None, None, "timeout")),
    (binance_exchange.ExchangeError("unknown", "m", cause="other"), ("unreachable", None, None, "other")),
    (binance_exchange.ExchangeError("unknown", "ValueError: m"), ("error", None, None, None)),
])
def test_outcome_reads_the_clients_errors(err, expected):
    out = mod.outcome(err)
    assert (out["status"], out["http_status"], out["error_code"], out["error_kind"]) == expected
    assert out["error_msg"] == err.msg and out["reason"] is None


def test_summarize_orders_uses_the_exchange_clock():
    now_server = 2_000_000_000_000
    orders = [{"clientOrderId": "qtx-a", "time": now_server - 301_000, "orderId": 1},
              {"clientOrderId": "web_x", "time": now_server - 10_000, "orderId": 2},
              {"clientOrderId": None, "orderId": 3}]
    s = mod.summarize_orders(orders, now_server, "qtx-", 300, 10)
    assert (s["count"], s["own_count"], s["foreign_count"], s["stuck_count"], s["oldest_age_s"]) == (3, 1, 2, 1, 301.0)
    assert [o["orderId"] for o in s["orders"]] == [1, 2, 3] and s["orders"][2]["age_s"] is None


@pytest.mark.parametrize("given, env, want", [
    (None, {"EXECUTOR_CLIENT_ORDER_PREFIX": "bot-"}, "bot-"),  # the running executor's own prefix
    ("", {"EXECUTOR_CLIENT_ORDER_PREFIX": "bot-"}, "bot-"),    # qt_client_order_prefix left empty
    ("mine-", {"EXECUTOR_CLIENT_ORDER_PREFIX": "bot-"}, "mine-"),
    (None, {}, "qtx-"),                                        # an executor that sets none
    (None, None, "qtx-"),                                      # no container to read settings from
])
def test_client_order_prefix_defaults_to_the_executors(monkeypatch, given, env, want):
    """Own orders are the ones with the running executor's EXECUTOR_CLIENT_ORDER_PREFIX unless a prefix is given
    (the same rule as binance_futures_orders), so the diagnosis and the cancels agree on which orders are ours."""
    seen = {}
    monkeypatch.setattr(mod, "container_settings", lambda name: ("running", dict(env or {})))
    monkeypatch.setattr(mod, "run_checks", lambda p: seen.update(p) or {})
    spec = mod.argument_spec()
    params = {name: opt.get("default") for name, opt in spec.items()}
    params.update(api_key="k", api_secret="s", futures_url="http://127.0.0.1:1/fapi", client_order_prefix=given,
                  settings_from_container="quantum_auto_executor" if env is not None else None)
    assert spec["client_order_prefix"].get("default") is None
    mod.connectivity(params, set())
    assert seen["client_order_prefix"] == want


def test_path_finding_values():
    ok, down = {"reachable": True}, {"reachable": False}
    assert mod.path_finding(ok, ok, True) == "both_ok"
    assert mod.path_finding(ok, down, True) == "host_only"
    assert mod.path_finding(down, ok, True) == "container_only"
    assert mod.path_finding(down, down, True) == "neither"
    assert mod.path_finding(ok, None, False) == "host_ok_container_not_checked"
    assert mod.path_finding(down, None, False) == "host_unreachable_container_not_checked"
    assert mod.path_finding(None, None, False) is None


def test_call_bounded():
    started = time.monotonic()
    with pytest.raises(binance_exchange.CallOverrun):
        binance_exchange.call_bounded(lambda: time.sleep(5), 0.3)
    assert time.monotonic() - started < 1
    with pytest.raises(ZeroDivisionError):
        binance_exchange.call_bounded(lambda: 1 / 0, 1)
    assert binance_exchange.call_bounded(lambda: 42, 1) == 42


def test_container_error_is_data(sim):
    """A container that does not exist (or a host without the docker CLI) is reported, not raised."""
    r = mod.run_checks(module_params(sim, container=f"qt-test-missing-{os.getpid()}", checks=["time"]))
    assert r["container"] is None and r["container_error"]
    assert r["path_finding"] == "host_ok_container_not_checked" and r["host"]["reachable"]


# ---------------------------------------------------------------- the module through Ansible

def run_module(args, env=None, verbosity="-vvv", check_mode=False, timeout=60):
    """`ansible localhost -m quantum.runbooks.binance_futures_info`: (result dict, stdout+stderr, seconds)."""
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
           "-m", "quantum.runbooks.binance_futures_info", "-a", json.dumps(args)]
    if verbosity:
        cmd.append(verbosity)
    if check_mode:
        cmd.append("--check")
    full_env = {**os.environ, **LOOPBACK_ENV, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
                "ANSIBLE_NOCOLOR": "1", **(env or {})}
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
        if env is None or name not in env:
            full_env.pop(name, None)
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.monotonic() - started
    output = res.stdout + res.stderr
    match = re.search(r"localhost \| (SUCCESS|FAILED!|CHANGED) => ", res.stdout)
    assert match, output[-3000:]
    result, _dummy = json.JSONDecoder().raw_decode(res.stdout[match.end():])
    result["_outcome"] = match.group(1)  # ansible-core 2.19 shows FAILED! without a `failed` key
    return result, output, elapsed


def test_module_end_to_end_stuck_orders_vvv(sim):
    sim.seed(client_order_id="qtx-old-1", age_s=600)
    sim.seed(client_order_id="manual-1", side="SELL", price="70000")
    args = {"futures_url": sim.url(), "testnet": True, "api_key": TEST_KEY, "api_secret": TEST_SECRET,
            "timeout": 2}
    r, output, _dummy = run_module(args)
    assert r["changed"] is False and r["_outcome"] == "SUCCESS"
    assert r["path_finding"] == "host_ok_container_not_checked" and r["account"]["status"] == "ok"
    oo = r["open_orders"]
    assert (oo["count"], oo["own_count"], oo["foreign_count"], oo["stuck_count"]) == (2, 1, 1, 1)
    assert r["invocation"]["module_args"]["api_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_no_secrets(output)


def test_module_end_to_end_env_credentials_rejected_and_check_mode(sim):
    sim.faults("bad_credentials")
    r, output, _dummy = run_module({"futures_url": sim.url(), "testnet": True, "timeout": 2, "checks": ["account"]},
                                   env={"BINANCE_API_KEY": TEST_KEY, "BINANCE_API_SECRET": TEST_SECRET},
                                   check_mode=True)
    assert r["changed"] is False and r["_outcome"] == "SUCCESS"  # read-only probes run in check mode too
    assert (r["account"]["status"], r["account"]["error_code"]) == ("rejected", -2015)
    assert r["open_orders"]["status"] == "skipped"
    assert_no_secrets(output)


def test_module_end_to_end_exchange_hangs(sim):
    sim.faults("binance_timeout")
    r, output, elapsed = run_module({"futures_url": sim.url(), "testnet": True, "api_key": TEST_KEY,
                                     "api_secret": TEST_SECRET, "timeout": 1}, verbosity=None)
    assert elapsed < 3 * 1 + 5, output[-2000:]
    assert r["host"]["error_kind"] == "timeout" and r["account"]["status"] == "unreachable"
    assert r["changed"] is False and r["_outcome"] == "SUCCESS"


def test_module_bad_arguments_fail():
    r, output, _dummy = run_module({"futures_url": "fapi.binance.com", "api_key": TEST_KEY, "api_secret": TEST_SECRET},
                                   verbosity="-vvv")
    assert r["_outcome"] == "FAILED!" and "futures_url" in r["msg"]
    assert_no_secrets(output)


# ---------------------------------------------------------------- container path (Docker)

def docker_ok():
    try:
        return subprocess.run(["docker", "image", "inspect", EXECUTOR_IMAGE], capture_output=True,
                              timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def nonet_container():
    """A throwaway container without any network (python3 inside); removed afterwards."""
    if not docker_ok():
        pytest.skip(f"needs Docker and the lab image {EXECUTOR_IMAGE} (make lab-up builds it)")
    name = f"qt-test-nonet-{os.getpid()}"
    res = subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", "--name", name, EXECUTOR_IMAGE,
                          "sleep", "300"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


@pytest.mark.lab
def test_module_host_only_from_a_container_without_network(sim, nonet_container):
    r, output, _dummy = run_module({"futures_url": sim.url(), "testnet": True, "api_key": TEST_KEY,
                                    "api_secret": TEST_SECRET, "timeout": 2, "container": nonet_container,
                                    "checks": ["time", "account"]})
    assert r["path_finding"] == "host_only", r
    assert r["host"]["reachable"] and r["container"]["reachable"] is False
    assert r["container"]["error_kind"] in ("refused", "other")  # no route at all inside --network none
    assert r["container"]["url"] == sim.url() + "/v1/time" and "container_error" not in r
    assert r["container"]["http_status"] is None and r["container"]["rate_limit"] is None
    assert r["account"]["status"] == "ok"
    assert_no_secrets(output)


@pytest.fixture(scope="module")
def shared_lab():
    """The shared lab, read-only: never `labctl up` or `labctl fault` (another developer injects faults).

    The conftest `lab` fixture is not used on purpose: `labctl up` re-sets the faults to healthy and its
    teardown runs `labctl fault healthy`, which would clear the other developer's faults.
    """
    if not docker_ok():
        pytest.skip("needs Docker and the lab images")
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", "quantum_binance_sim"],
                           capture_output=True, text=True, timeout=20, check=False)
    if state.stdout.strip() != "true" or not (RUN_DIR / "sim.env").exists():
        pytest.skip("the lab is not running (lab/labctl up); this test never starts or changes it")
    keys = dict(line.split("=", 1) for line in (RUN_DIR / "sim.env").read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    return keys


def lab_sim_faults():
    try:
        with NO_PROXY.open(LAB_SIM_CONTROL + "/_sim/state", timeout=5) as resp:
            return sorted(json.loads(resp.read())["faults"])
    except (OSError, ValueError):
        return None


@pytest.mark.lab
def test_module_against_the_shared_lab_read_only(shared_lab):
    key, secret = shared_lab["SIM_TESTNET_API_KEY"], shared_lab["SIM_TESTNET_API_SECRET"]
    before = lab_sim_faults()
    r, output, _dummy = run_module({"futures_url": "http://127.0.0.1:18081/fapi", "testnet": True, "timeout": 3,
                                    "container": "quantum_auto_executor",
                                    "container_futures_url": "http://binance-sim:8081/fapi",
                                    "checks": ["time", "account"]},
                                   env={"BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret})
    after = lab_sim_faults()
    for needle in (key, secret):
        assert needle not in output
    assert r["changed"] is False and r["_outcome"] == "SUCCESS"
    if "container_error" in r:  # e.g. executor_crash injected by someone else: data, not a failure
        assert r["container"] is None and r["path_finding"].endswith("container_not_checked")
        return
    assert r["container"]["url"] == "http://binance-sim:8081/fapi/v1/time"
    if before == after == []:
        # healthy simulator (other faults, e.g. executor_hang, do not change the network path)
        assert r["path_finding"] == "both_ok", f"lab faults {before}; run lab/labctl status: {r}"
        assert r["account"]["status"] == "ok" and abs(r["host"]["clock_offset_ms"]) < 2000
    elif before == after:
        # same simulator, same fault: both sides see the same thing
        assert r["host"]["reachable"] == r["container"]["reachable"], f"lab faults {before}: {r}"
