"""quantum.runbooks.binance_futures_positions and module_utils/positions.py.

Against lab/images/binance_sim/sim.py started as a local process (the `sim` fixture): no Docker, the shared lab
is never touched. Positions are opened with MARKET orders from an unmodified python-binance client; mid-run
faults come from the simulator's POST /_sim/faults/next, what was sent from its request log, what is open from
GET /_sim/positions. The module also runs end to end through the `ansible` CLI (tests/ansible_run.py).
"""

from ansible_run import run_module
from sim_process import KEYS, assert_no_secrets, module_params, run_in_process

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_common
from ansible_collections.quantum.runbooks.plugins.module_utils import positions as pos
from ansible_collections.quantum.runbooks.plugins.modules import binance_futures_positions as mod

TEST_KEY, TEST_SECRET = KEYS["testnet"]  # random per run (tests/sim_process.py)


# ---------------------------------------------------------------- helpers

def params(sim, **over):
    return module_params(mod, sim, **over)


def run(sim, check=False, **over):
    return run_in_process(mod, sim, check, **over)


def open_position(sim, symbol, side, quantity):
    """A position opened the way the executor opens one: a MARKET order through python-binance."""
    sim.client().futures_create_order(symbol=symbol, side=side, type="MARKET", quantity=quantity)


def book(sim):
    """Open positions at the simulator: {symbol: positionAmt}."""
    return {s: v["positionAmt"] for s, v in sim.ctl("GET", "/_sim/positions?personality=testnet")[1].items()}


def requests_log(sim, since=0):
    return sim.ctl("GET", "/_sim/requests?personality=testnet")[1][since:]


def orders_sent(log):
    return [(r["params"]["symbol"], r["params"]["side"], r["params"]["quantity"], r["status"]) for r in log
            if r["method"] == "POST" and r["path"] == "/fapi/v1/order"]


def next_fault(sim, **spec):
    status, body = sim.ctl("POST", "/_sim/faults/next", spec)
    assert status == 200, body


def long_btc_short_eth(sim):
    open_position(sim, "BTCUSDT", "BUY", "0.01")
    open_position(sim, "ETHUSDT", "SELL", "0.1")
    assert book(sim) == {"BTCUSDT": "0.01", "ETHUSDT": "-0.1"}
    return len(requests_log(sim))


# ---------------------------------------------------------------- pure logic (positions)

def test_plan_and_settle():
    raw = [{"symbol": "ETHUSDT", "positionAmt": "-0.100", "positionSide": "BOTH", "unRealizedProfit": "1"},
           {"symbol": "BTCUSDT", "positionAmt": "0.010", "positionSide": "BOTH"},
           {"symbol": "SOLUSDT", "positionAmt": "0", "positionSide": "BOTH"},
           {"symbol": "XRPUSDT", "positionAmt": "5", "positionSide": "LONG"}]
    assert [(p["symbol"], p["side"]) for p in pos.open_positions(raw, ["BTCUSDT", "ETHUSDT"])] == [
        ("BTCUSDT", "LONG"), ("ETHUSDT", "SHORT")]
    assert pos.hedge_mode_symbols(raw) == ["XRPUSDT"]
    rows = pos.plan(pos.open_positions(raw, ["BTCUSDT", "ETHUSDT"]), "qtx-close-", "0a1b2c3d")
    assert [(r["order_side"], r["quantity"], r["client_order_id"]) for r in rows] == [
        ("SELL", "0.010", "qtx-close-BTCUSDT-0a1b2c3d"), ("BUY", "0.100", "qtx-close-ETHUSDT-0a1b2c3d")]
    assert pos.client_order_id("a-very-long-prefix--", "1000SHIBUSDT", "0a1b2c3d") == "a-very-long-prefix--0a1b2c3d"
    # not re-read: the order's own answer decides
    rows[0].update(order_result="ok", order_status="FILLED", executed_qty="0.01")
    rows[1].update(order_result="unknown")
    assert [r["status"] for r in pos.settle(rows, None)] == ["closed", "unknown"]
    rows[1]["order_result"] = "rate_limited"
    assert [(r["status"], r["amount_after"]) for r in pos.settle(rows, None)][1] == ("still_open", "-0.100")
    # re-read: the exchange decides
    after = [{"symbol": "ETHUSDT", "positionAmt": "-0.05"}]
    assert [(r["status"], r["amount_after"]) for r in pos.settle(rows, after)] == [
        ("closed", "0"), ("still_open", "-0.05")]


def test_bad_arguments():
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    p, _dummy = mod.effective_params(dict(p, futures_url="http://127.0.0.1:1/fapi", symbols=[" btcusdt", "BTCUSDT"]),
                                     set())
    assert p["symbols"] == ["BTCUSDT"] and p["state"] == "read" and p["close_order_prefix"] == "qtx-close-"
    assert mod.check_own_params(p).startswith("no API key")
    p.update(api_key="k", api_secret="s", close_order_prefix="bad:prefix")
    assert mod.check_own_params(p).startswith("close_order_prefix must be")


def test_settings_from_container(monkeypatch):
    env = {"BINANCE_USE_TESTNET": "true", "BINANCE_FUTURES_TESTNET_URL": "http://binance-sim:8081/fapi",
           "BINANCE_API_KEY": "containerKey123", "BINANCE_API_SECRET": "containerSecret456"}
    monkeypatch.setattr(binance_common, "container_settings", lambda name: ("running", env))
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    hidden = set()
    eff, extra = mod.effective_params(dict(p, settings_from_container="quantum_auto_executor",
                                           futures_testnet_url="http://127.0.0.1:18081/fapi"), hidden)
    assert (eff["testnet"], eff["futures_url"], eff["api_key"]) == (True, "http://127.0.0.1:18081/fapi",
                                                                    "containerKey123")
    assert hidden == {"containerKey123", "containerSecret456"} and extra == {"settings_container_state": "running"}


# ---------------------------------------------------------------- against the simulator

def test_read_returns_open_positions_and_sends_nothing(sim):
    since = long_btc_short_eth(sim)
    r, failure = run(sim)
    assert failure is None and r["changed"] is False and r["open_count"] == 2
    assert r["positions"] == [
        {"symbol": "BTCUSDT", "positionAmt": "0.01", "side": "LONG", "entryPrice": "60000", "markPrice": "60000",
         "unRealizedProfit": "0", "notional": "600"},
        {"symbol": "ETHUSDT", "positionAmt": "-0.1", "side": "SHORT", "entryPrice": "3000", "markPrice": "3000",
         "unRealizedProfit": "0", "notional": "-300"}]
    assert r["summary"] == ("2 open positions (BTCUSDT LONG 0.01 uPnL 0, ETHUSDT SHORT -0.1 uPnL 0); "
                            "used weight %s/2000" % r["rate_limit"]["used_weight_1m"])
    r, _dummy = run(sim, symbols=["ethusdt", "SOLUSDT"])
    assert [p["symbol"] for p in r["positions"]] == ["ETHUSDT"]
    assert [(x["method"], x["path"]) for x in requests_log(sim, since)] == [
        ("GET", "/fapi/v1/time"), ("GET", "/fapi/v3/positionRisk")] * 2
    sim.ctl("POST", "/_sim/reset")
    r, failure = run(sim, check=True)
    assert failure is None and r["open_count"] == 0 and r["summary"].startswith("no open positions; used weight")


def test_close_long_and_short_check_mode_then_for_real_then_idempotent(sim):
    since = long_btc_short_eth(sim)
    r, failure = run(sim, check=True, state="closed")
    assert failure is None and r["changed"] is True and r["positions_after"] is None
    assert [(x["symbol"], x["order_side"], x["quantity"], x["order_result"], x["status"]) for x in r["results"]] == [
        ("BTCUSDT", "SELL", "0.01", "planned", "planned"), ("ETHUSDT", "BUY", "0.1", "planned", "planned")]
    assert r["summary"].startswith("check mode: would close 2 positions with reduce-only MARKET orders "
                                   "(BTCUSDT LONG 0.01: SELL 0.01, ETHUSDT SHORT -0.1: BUY 0.1); used weight")
    assert orders_sent(requests_log(sim, since)) == [] and len(book(sim)) == 2

    since = len(requests_log(sim))
    r, failure = run(sim, state="closed")
    assert failure is None and r["changed"] is True and book(sim) == {}
    assert r["summary"].startswith("closed 2 of 2 positions (BTCUSDT LONG 0.01, ETHUSDT SHORT -0.1); used weight")
    assert [(x["order_result"], x["order_status"], x["status"], x["amount_after"]) for x in r["results"]] == [
        ("ok", "FILLED", "closed", "0")] * 2
    assert [p["symbol"] for p in r["positions_before"]] == ["BTCUSDT", "ETHUSDT"]
    assert r["positions_after"] == [] and r["positions"] == [] and r["open_count"] == 0
    log = requests_log(sim, since)
    assert orders_sent(log) == [("BTCUSDT", "SELL", "0.01", 200), ("ETHUSDT", "BUY", "0.1", 200)]
    for sent in (x["params"] for x in log if x["method"] == "POST"):
        assert (sent["type"], sent["reduceOnly"]) == ("MARKET", "true") and "positionSide" not in sent
        assert sent["newClientOrderId"].startswith("qtx-close-" + sent["symbol"] + "-")
    assert [x["path"] for x in log].count("/fapi/v3/positionRisk") == 2  # read, re-read

    since = len(requests_log(sim))
    r, failure = run(sim, state="closed")
    assert failure is None and r["changed"] is False and r["results"] == []
    assert r["summary"].startswith("nothing to close: no open positions; used weight")
    assert orders_sent(requests_log(sim, since)) == []


def test_only_the_given_symbols_are_closed(sim):
    long_btc_short_eth(sim)
    r, failure = run(sim, state="closed", symbols=["BTCUSDT"], close_order_prefix="stop-")
    assert failure is None and book(sim) == {"ETHUSDT": "-0.1"}
    assert r["results"][0]["client_order_id"].startswith("stop-BTCUSDT-") and r["positions"] == []
    assert [p["symbol"] for p in r["positions_after"]] == ["ETHUSDT"]  # every symbol, for the record


def test_429_mid_run_is_partial_and_the_rerun_finishes(sim):
    long_btc_short_eth(sim)
    open_position(sim, "SOLUSDT", "BUY", "2")
    next_fault(sim, after=2, status=429, retry_after=30)  # positionRisk and the BTC order pass, ETH gets 429
    r, failure = run(sim, state="closed")
    assert failure == r["summary"] and r["changed"] is True
    assert failure.startswith(
        "PARTIAL: closed 1 of 3 positions (BTCUSDT LONG 0.01); "
        "STILL OPEN 2: ETHUSDT SHORT -0.1 (not sent), SOLUSDT LONG 2 (not sent); "
        "stopped: rate limited by Binance (HTTP 429, Retry-After 30 s, max_backoff_s 10): rerun after 30 s; "
        "positions not re-read: the run stopped; used weight")
    assert [(x["symbol"], x["order_result"], x["status"]) for x in r["results"]] == [
        ("BTCUSDT", "ok", "closed"), ("ETHUSDT", "rate_limited", "still_open"), ("SOLUSDT", "not_attempted",
                                                                                 "still_open")]
    assert r["positions_after"] is None and r["open_count"] is None and r["rate_limit"]["retry_after_s"] == 30
    assert book(sim) == {"ETHUSDT": "-0.1", "SOLUSDT": "2"}
    r, failure = run(sim, state="closed")
    assert failure is None and book(sim) == {}
    assert r["summary"].startswith("closed 2 of 2 positions (ETHUSDT SHORT -0.1, SOLUSDT LONG 2)")


def test_short_429_is_waited_out(sim):
    long_btc_short_eth(sim)
    next_fault(sim, after=1, status=429, retry_after=1)
    r, failure = run(sim, state="closed")
    assert failure is None and book(sim) == {} and r["rate_limit"]["waited_s"] == 1


def test_position_changed_meanwhile_reduce_only_rejected(sim, monkeypatch):
    """Between the read and the orders someone closes BTC and halves ETH (-2022 for both), and the executor
    opens SOL: nothing is flipped, the re-read tells what is left, the module fails, a rerun finishes."""
    long_btc_short_eth(sim)
    real_read = mod.read_positions
    calls = []

    def read_then_the_world_moves(ex):
        raw = real_read(ex)
        if not calls:
            c = sim.client()
            c.futures_create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01", reduceOnly="true")
            c.futures_create_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.05", reduceOnly="true")
            c.futures_create_order(symbol="SOLUSDT", side="BUY", type="MARKET", quantity="1")
        calls.append(1)
        return raw

    monkeypatch.setattr(mod, "read_positions", read_then_the_world_moves)
    r, failure = run(sim, state="closed")
    assert failure == r["summary"]
    assert [(x["symbol"], x["order_result"], x["error_code"], x["status"], x["amount_after"])
            for x in r["results"]] == [("BTCUSDT", "error", -2022, "closed", "0"),
                                       ("ETHUSDT", "error", -2022, "still_open", "-0.05")]
    assert failure.startswith(
        "PARTIAL: closed 1 of 2 positions (BTCUSDT LONG 0.01); "
        "STILL OPEN 1: ETHUSDT SHORT -0.05 (rejected: -2022 ReduceOnly Order is rejected.); "
        "1 closed without our order (BTCUSDT rejected: -2022 ReduceOnly Order is rejected.); "
        "NEW POSITION since the first read: SOLUSDT LONG 1: stop the executor, then rerun; "
        "rerun to close what is left; used weight")
    assert r["changed"] is False and book(sim) == {"ETHUSDT": "-0.05", "SOLUSDT": "1"}
    monkeypatch.setattr(mod, "read_positions", real_read)
    r, failure = run(sim, state="closed")
    assert failure is None and book(sim) == {}


def test_unknown_outcome_is_decided_by_the_reread(sim):
    long_btc_short_eth(sim)
    next_fault(sim, after=1, status=503)  # the BTC order fills, its answer is a 503 "Unknown error"
    r, failure = run(sim, state="closed")
    assert failure is None and r["changed"] is True and book(sim) == {}
    assert [(x["order_result"], x["status"]) for x in r["results"]] == [("unknown", "closed"), ("ok", "closed")]
    assert r["results"][0]["error_msg"] == "Unknown error, please check your request or try again later."


def test_failures_are_one_line_and_send_nothing(sim):
    long_btc_short_eth(sim)
    sim.faults("binance_418")
    since = len(requests_log(sim))
    r, failure = run(sim, state="closed")
    assert failure.startswith(f"cannot read positions at {sim.url()}: IP banned by Binance (HTTP 418) for 120 s")
    assert failure.endswith("nothing was sent") and r["rate_limit"]["ban_s"] == 120
    assert [x["path"] for x in requests_log(sim, since)] == ["/fapi/v1/time"]  # nothing signed into the ban
    sim.faults()
    r, failure = run(sim, state="closed", api_secret="wrong")
    assert failure.startswith(f"cannot read positions at {sim.url()}: Binance rejected the API key (HTTP ")
    assert "-1022: " in failure and len(book(sim)) == 2
    sim.faults("binance_down")
    r, failure = run(sim)
    assert failure.startswith(f"cannot read positions at {sim.url()}: Binance unreachable (refused")


# ---------------------------------------------------------------- the module through Ansible

def test_module_end_to_end(sim, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    long_btc_short_eth(sim)
    args = {"futures_url": sim.url(), "testnet": True, "timeout": 2, "api_key": TEST_KEY, "api_secret": TEST_SECRET,
            "state": "closed"}
    r, output = run_module("binance_futures_positions", args, check=True, diff=True)
    assert r["changed"] is True and not r.get("failed") and len(book(sim)) == 2
    assert r["summary"].startswith("check mode: would close 2 positions")
    assert r["diff"]["after"] == "(no open positions)\n" and "BTCUSDT LONG 0.01" in r["diff"]["before"]
    assert_no_secrets(output)
    r, output = run_module("binance_futures_positions", args)
    assert r["changed"] is True and not r.get("failed") and book(sim) == {}
    assert r["summary"].startswith("closed 2 of 2 positions")
    assert r["invocation"]["module_args"]["api_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_no_secrets(output)
    r, output = run_module("binance_futures_positions", dict(args, state="read"))
    assert r["changed"] is False and r["open_count"] == 0
    r, output = run_module("binance_futures_positions", args)
    assert r["changed"] is False and r["summary"].startswith("nothing to close")
    open_position(sim, "BTCUSDT", "BUY", "0.01")
    sim.faults("bad_credentials")
    r, output = run_module("binance_futures_positions", args)
    assert r["failed"] is True and "Binance rejected the API key" in r["msg"] and "-2015" in r["msg"]
    assert "\n" not in r["msg"] and "Traceback" not in output
    assert_no_secrets(output)
