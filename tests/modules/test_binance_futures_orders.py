"""quantum.runbooks.binance_futures_orders and its module_utils (stuck_orders, binance_common, binance_exchange).

Against lab/images/binance_sim/sim.py started as a local process (the `sim` fixture): no Docker, the shared
lab is never touched. Mid-run faults come from the simulator's POST /_sim/faults/next, which calls were sent
from its request log (GET /_sim/requests). The module also runs end to end through the `ansible` CLI.
"""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from sim_process import KEYS, assert_no_secrets, module_params, run_in_process

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_common, stuck_orders
from ansible_collections.quantum.runbooks.plugins.modules import binance_futures_orders as mod

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
TEST_KEY, TEST_SECRET = KEYS["testnet"]  # random per run (tests/sim_process.py)


# ---------------------------------------------------------------- helpers

def params(sim, **over):
    return module_params(mod, sim, **over)


def run(sim, check=False, **over):
    return run_in_process(mod, sim, check, **over)


def open_orders(sim):
    return sorted((o for o in sim.ctl("GET", "/_sim/orders?personality=testnet")[1]
                   if o["status"] in ("NEW", "PARTIALLY_FILLED")), key=lambda o: o["orderId"])


def requests_log(sim, since=0):
    return sim.ctl("GET", "/_sim/requests?personality=testnet")[1][since:]


def cancels(log):
    return [(r["method"], r["path"], r["params"].get("symbol"), r["status"]) for r in log
            if r["method"] == "DELETE"]


def by_id(result):
    return {r["orderId"]: r for r in result["results"]}


def next_fault(sim, **spec):
    status, body = sim.ctl("POST", "/_sim/faults/next", spec)
    assert status == 200, body
    return body


def seed_book(sim):
    """BTCUSDT: two old own orders (every open order a target); ETHUSDT: two old own, one fresh own (mixed);
    SOLUSDT: one old foreign (a human's manual order)."""
    return {
        "btc1": sim.seed(client_order_id="qtx-btc-1", age_s=900),
        "btc2": sim.seed(client_order_id="qtx-btc-2", age_s=800, side="SELL", price="70000"),
        "eth1": sim.seed(symbol="ETHUSDT", price="2900", client_order_id="qtx-eth-1", age_s=700),
        "eth2": sim.seed(symbol="ETHUSDT", price="2950", client_order_id="qtx-eth-2", age_s=650),
        "eth_fresh": sim.seed(symbol="ETHUSDT", price="2800", client_order_id="qtx-eth-fresh", age_s=30),
        "sol_manual": sim.seed(symbol="SOLUSDT", price="120", quantity="1", client_order_id="web_manual1",
                               age_s=3600),
    }


# ---------------------------------------------------------------- pure planning (stuck_orders)

def test_classify_reasons_and_order():
    now = 2_000_000_000_000
    orders = [{"symbol": "BTCUSDT", "orderId": 1, "clientOrderId": "qtx-a", "time": now - 400_000},
              {"symbol": "BTCUSDT", "orderId": 2, "clientOrderId": "qtx-b", "time": now - 100_000},
              {"symbol": "BTCUSDT", "orderId": 3, "clientOrderId": "manual", "time": now - 900_000},
              {"symbol": "BTCUSDT", "orderId": 4, "clientOrderId": "qtx-c"}]  # no time: age unknown
    targets, kept = stuck_orders.classify(orders, now, "qtx-", False, 300)
    assert [t["orderId"] for t in targets] == [1] and targets[0]["age_s"] == 400.0
    assert [(k["orderId"], k["reason"]) for k in kept] == [(3, "foreign"), (2, "fresh"), (4, "fresh")]
    targets, kept = stuck_orders.classify(orders, now, "qtx-", True, 300)
    assert [t["orderId"] for t in targets] == [3, 1] and not targets[0]["own"]


def test_plan_calls_cheapest_exact_call():
    def rows(symbol, *ids):
        return [{"symbol": symbol, "orderId": i} for i in ids]
    targets = rows("BTCUSDT", 1, 2) + rows("ETHUSDT", 3, 4) + rows("SOLUSDT", 5) + rows("XRPUSDT", *range(10, 22))
    calls = stuck_orders.plan_calls(targets, {"BTCUSDT": 2, "ETHUSDT": 3, "SOLUSDT": 1, "XRPUSDT": 13})
    assert [(c["symbol"], c["kind"], len(c["ids"])) for c in calls] == [
        ("BTCUSDT", "all_open_orders", 2), ("ETHUSDT", "batch", 2), ("SOLUSDT", "single", 1),
        ("XRPUSDT", "batch", 10), ("XRPUSDT", "batch", 2)]
    calls = stuck_orders.plan_calls(rows("XRPUSDT", *range(10, 22)), {"XRPUSDT": 12})
    assert [(c["kind"], len(c["ids"])) for c in calls] == [("all_open_orders", 12)]


def test_position_opened_and_not_done():
    assert stuck_orders.position_opened("FILLED", "0.01") and stuck_orders.position_opened("CANCELED", "0.004")
    assert not stuck_orders.position_opened("CANCELED", "0") and not stuck_orders.position_opened("UNKNOWN", None)
    row = {"outcome": "unknown", "final_status": "UNKNOWN"}
    assert stuck_orders.not_done(row) and not stuck_orders.cancelled_by_us(row)
    row["final_status"] = "CANCELED"
    assert not stuck_orders.not_done(row) and stuck_orders.cancelled_by_us(row)
    assert stuck_orders.not_done({"outcome": "cancelled", "final_status": "NEW"})
    assert not stuck_orders.not_done({"outcome": "already_gone", "final_status": "UNKNOWN"})


# ---------------------------------------------------------------- cancelled, against the simulator

def test_only_old_own_orders_cancelled_with_the_cheapest_call(sim):
    book = seed_book(sim)
    r, failure = run(sim)
    assert failure is None and r["changed"] is True and r["partial"] is False and r["failed_ids"] == []
    ids = {k: v["orderId"] for k, v in book.items()}
    assert [t["orderId"] for t in r["targets"]] == [ids["btc1"], ids["btc2"], ids["eth1"], ids["eth2"]]
    assert {k["orderId"]: k["reason"] for k in r["kept"]} == {ids["sol_manual"]: "foreign",
                                                              ids["eth_fresh"]: "fresh"}
    assert [(c["symbol"], c["kind"], c["ids"], c["result"]) for c in r["calls"]] == [
        ("BTCUSDT", "all_open_orders", [ids["btc1"], ids["btc2"]], "ok"),
        ("ETHUSDT", "batch", [ids["eth1"], ids["eth2"]], "ok")]
    for row in r["results"]:
        assert (row["outcome"], row["final_status"], row["reconciled"], row["position_opened"]) == (
            "cancelled", "CANCELED", True, False)
        assert row["age_s"] > 600
    assert [o["orderId"] for o in open_orders(sim)] == [ids["eth_fresh"], ids["sol_manual"]]
    log = requests_log(sim)
    assert cancels(log) == [("DELETE", "/fapi/v1/allOpenOrders", "BTCUSDT", 200),
                            ("DELETE", "/fapi/v1/batchOrders", "ETHUSDT", 200)]
    assert json.loads(next(x for x in log if x["path"] == "/fapi/v1/batchOrders")["params"]["orderidlist"]) == [
        ids["eth1"], ids["eth2"]]
    assert sum(1 for x in log if x["path"] == "/fapi/v1/order" and x["method"] == "GET") == 4  # reconciliation
    assert r["summary"].startswith("cancelled 4 of 4 qtx- orders older than 5 min "
                                   "(BTCUSDT: all_open_orders 2, ETHUSDT: batch 2)")
    assert "kept 2 (1 fresh, 1 foreign)" in r["summary"] and "used weight" in r["summary"]
    assert r["rate_limit"]["used_weight_1m"] >= 1 + 40 + 2 + 4 and r["rate_limit"]["banned_until"] is None


def test_include_foreign_orders_takes_the_manual_order_too(sim):
    book = seed_book(sim)
    r, failure = run(sim, include_foreign_orders=True)
    assert failure is None and r["changed"]
    assert [o["orderId"] for o in open_orders(sim)] == [book["eth_fresh"]["orderId"]]
    sol = [c for c in r["calls"] if c["symbol"] == "SOLUSDT"]
    assert [(c["kind"], c["ids"]) for c in sol] == [("single", [book["sol_manual"]["orderId"]])]
    assert "own and foreign orders older than 5 min" in r["summary"]


def test_symbols_and_stuck_after_minutes_narrow_the_run(sim):
    book = seed_book(sim)
    r, failure = run(sim, symbols=["ethusdt"], stuck_after_minutes=11)
    assert failure is None
    assert [t["orderId"] for t in r["targets"]] == [book["eth1"]["orderId"]]  # 700 s > 660 s > 650 s
    assert [(c["kind"], c["symbol"]) for c in r["calls"]] == [("single", "ETHUSDT")]
    listing = [x for x in requests_log(sim) if x["path"] == "/fapi/v1/openOrders"]
    assert [x["params"].get("symbol") for x in listing] == ["ETHUSDT"]  # weight 1, not 40
    assert len(open_orders(sim)) == 5


def test_check_mode_changes_nothing(sim):
    seed_book(sim)
    before = sim.ctl("GET", "/_sim/orders?personality=testnet")[1]
    r, failure = run(sim, check=True)
    assert failure is None and r["changed"] is True  # would change
    assert sim.ctl("GET", "/_sim/orders?personality=testnet")[1] == before
    assert cancels(requests_log(sim)) == []
    assert {c["result"] for c in r["calls"]} == {"planned"} and {x["outcome"] for x in r["results"]} == {"planned"}
    assert r["summary"].startswith("check mode: would cancel 4 qtx- orders older than 5 min "
                                   "(BTCUSDT: all_open_orders 2, ETHUSDT: batch 2)")


def test_second_run_changes_nothing(sim):
    seed_book(sim)
    assert run(sim)[0]["changed"] is True
    since = len(requests_log(sim))
    r, failure = run(sim)
    assert failure is None and r["changed"] is False and r["targets"] == [] and r["calls"] == []
    assert cancels(requests_log(sim, since)) == []
    assert r["summary"].startswith("nothing to cancel: no qtx- orders older than 5 min; kept 2")


def test_max_cancels_refuses_before_cancelling(sim):
    seed_book(sim)
    r, failure = run(sim, max_cancels=3)
    assert failure.startswith("refusing to cancel 4 orders, more than max_cancels 3")
    assert "nothing was cancelled" in failure and len(r["targets"]) == 4 and r["changed"] is False
    assert cancels(requests_log(sim)) == [] and len(open_orders(sim)) == 6


# ---------------------------------------------------------------- faults in the middle of a run

def three_single_targets(sim):
    return [sim.seed(client_order_id="qtx-b", age_s=900)["orderId"],
            sim.seed(symbol="ETHUSDT", price="2900", client_order_id="qtx-e", age_s=900)["orderId"],
            sim.seed(symbol="SOLUSDT", price="120", quantity="1", client_order_id="qtx-s", age_s=900)["orderId"]]


def test_429_mid_run_partial_then_rerun_finishes(sim):
    btc, eth, sol = three_single_targets(sim)
    # signed requests: openOrders, cancel BTCUSDT, then the ETHUSDT cancel gets 429 (Retry-After 30 > 10)
    next_fault(sim, after=2, status=429, count=1, retry_after=30)
    started = time.monotonic()
    r, failure = run(sim)
    assert time.monotonic() - started < 5  # no waiting out a long Retry-After, no hammering
    assert r["partial"] is True and failure == r["summary"] and r["changed"] is True
    assert r["failed_ids"] == [eth, sol]
    rows = by_id(r)
    assert (rows[btc]["outcome"], rows[btc]["final_status"]) == ("cancelled", "CANCELED")
    assert (rows[eth]["outcome"], rows[eth]["error_code"]) == ("not_attempted", -1003)
    assert rows[sol]["outcome"] == "not_attempted"
    assert [c["result"] for c in r["calls"]] == ["ok", "rate_limited", "not_attempted"]
    assert r["stop_reason"].startswith("stopped: rate limited by Binance (HTTP 429, Retry-After 30 s")
    assert failure.startswith("PARTIAL: cancelled 1 of 3") and f"NOT DONE 2: ETHUSDT {eth}, SOLUSDT {sol}" in failure
    assert "rerun after 30 s" in failure and r["rate_limit"]["retry_after_s"] == 30
    log = requests_log(sim)
    assert log[-1]["status"] == 429  # nothing was sent after the 429, reconciliation included
    r, failure = run(sim)  # the safe rerun lists again and cancels what is left
    assert failure is None and r["changed"] and sorted(by_id(r)) == [eth, sol] and open_orders(sim) == []


def test_short_429_is_waited_out_once(sim):
    three_single_targets(sim)
    next_fault(sim, after=2, status=429, count=1, retry_after=1)
    started = time.monotonic()
    r, failure = run(sim)
    assert failure is None and r["partial"] is False and open_orders(sim) == []
    assert r["rate_limit"]["waited_s"] == 1 and time.monotonic() - started >= 1
    statuses = [x["status"] for x in requests_log(sim) if x["method"] == "DELETE"]
    assert statuses == [200, 429, 200, 200]  # one retry of the limited call, then on


def test_second_429_after_waiting_stops(sim):
    three_single_targets(sim)
    next_fault(sim, after=2, status=429, count=2, retry_after=1)
    r, failure = run(sim)
    assert r["partial"] and r["rate_limit"]["waited_s"] == 1 and len(r["failed_ids"]) == 2
    assert [x["status"] for x in requests_log(sim) if x["method"] == "DELETE"] == [200, 429, 429]


def test_503_mid_run_is_unknown_then_reconciled_as_cancelled(sim):
    btc, eth, sol = three_single_targets(sim)
    next_fault(sim, after=1, status=503, count=1)  # the BTCUSDT cancel: takes effect, answer says "unknown"
    r, failure = run(sim)
    assert failure is None and r["partial"] is False and r["changed"] is True
    rows = by_id(r)
    assert (rows[btc]["outcome"], rows[btc]["final_status"], rows[btc]["reconciled"]) == (
        "unknown", "CANCELED", True)
    assert rows[btc]["error_msg"] == "Unknown error, please check your request or try again later."
    assert [c["result"] for c in r["calls"]] == ["unknown", "ok", "ok"]  # a 5xx answer does not stop the run
    assert rows[eth]["outcome"] == rows[sol]["outcome"] == "cancelled" and open_orders(sim) == []


def test_order_filled_between_listing_and_cancel_reports_the_position(sim, monkeypatch):
    btc_a = sim.seed(client_order_id="qtx-a", age_s=900)["orderId"]
    btc_b = sim.seed(client_order_id="qtx-b", age_s=900)["orderId"]
    eth = sim.seed(symbol="ETHUSDT", price="2900", quantity="0.01", client_order_id="qtx-e", age_s=900)["orderId"]
    sol = sim.seed(symbol="SOLUSDT", price="120", quantity="1", client_order_id="qtx-s", age_s=900)["orderId"]
    listed = mod.list_open_orders

    def market_moves(*args):  # after the listing, before any cancel
        orders = listed(*args)
        assert sim.ctl("POST", "/_sim/orders/fill", {"order_ids": [btc_a, sol]})[1] == {"filled": 2}
        assert sim.ctl("POST", "/_sim/orders/fill", {"order_ids": [eth], "quantity": "0.004"})[1] == {"filled": 1}
        return orders

    monkeypatch.setattr(mod, "list_open_orders", market_moves)
    r, failure = run(sim)
    assert failure is None and r["partial"] is False and r["changed"] is True
    rows = by_id(r)
    assert (rows[sol]["outcome"], rows[sol]["error_code"], rows[sol]["final_status"]) == (
        "already_gone", -2011, "FILLED")  # single cancel answered "Unknown order sent."
    assert (rows[btc_a]["call"], rows[btc_a]["outcome"], rows[btc_a]["final_status"]) == (
        "all_open_orders", "already_gone", "FILLED")
    assert (rows[btc_b]["outcome"], rows[btc_b]["final_status"]) == ("cancelled", "CANCELED")
    assert (rows[eth]["outcome"], rows[eth]["final_status"], rows[eth]["executedQty"]) == (
        "cancelled", "CANCELED", "0.004")  # partly filled, the rest cancelled
    assert {i for i, row in rows.items() if row["position_opened"]} == {btc_a, eth, sol}
    assert "POSITION OPENED by 3" in r["summary"] and "2 already gone" in r["summary"]


def test_silence_on_a_cancel_stops_the_cancels_then_reconciles(sim, monkeypatch):
    """A read timeout (no HTTP answer) on a cancel: outcome unknown, no further cancels into a hanging
    exchange, reconciliation still asks what happened (here: the cancel never arrived)."""
    btc, eth, sol = three_single_targets(sim)
    sent = mod.send_cancel

    def first_times_out(ex, call):
        if call["symbol"] == "BTCUSDT":
            raise mod.ExchangeError("unknown", "read timed out after 2 s")
        return sent(ex, call)

    monkeypatch.setattr(mod, "send_cancel", first_times_out)
    r, failure = run(sim)
    assert [c["result"] for c in r["calls"]] == ["unknown", "not_attempted", "not_attempted"]
    rows = by_id(r)
    assert (rows[btc]["outcome"], rows[btc]["final_status"], rows[btc]["reconciled"]) == ("unknown", "NEW", True)
    assert r["failed_ids"] == [btc, eth, sol] and failure.startswith("PARTIAL: cancelled 0 of 3")
    assert "stopped: no usable answer from Binance (read timed out after 2 s): outcome unknown" in failure
    assert cancels(requests_log(sim)) == [] and len(open_orders(sim)) == 3


def test_418_mid_run_stops_at_once_with_the_ban(sim):
    btc, eth, sol = three_single_targets(sim)
    next_fault(sim, after=2, status=418, count=1, retry_after=120)
    r, failure = run(sim)
    assert failure and r["partial"] and r["failed_ids"] == [eth, sol]
    assert r["rate_limit"]["ban_s"] == 120 and r["rate_limit"]["banned_until"].endswith("Z")
    assert "IP banned by Binance (HTTP 418) for 120 s, until " in failure
    assert "send nothing to Binance before then" in failure
    log = requests_log(sim)
    assert log[-1]["status"] == 418 and [c["result"] for c in r["calls"]] == ["ok", "banned", "not_attempted"]
    assert by_id(r)[btc]["final_status"] == "CANCELED"  # known from the cancel's own answer


def test_banned_before_anything_fails_with_one_line(sim):
    sim.seed(client_order_id="qtx-a", age_s=900)
    sim.faults("binance_418")
    r, failure = run(sim)
    assert failure.startswith(f"cannot list open orders at {sim.url()}: IP banned by Binance (HTTP 418) for 120 s")
    assert failure.endswith("nothing was cancelled") and "\n" not in failure
    assert [x["path"] for x in requests_log(sim)] == ["/fapi/v1/time"]  # nothing signed sent into the ban


def test_weight_budget_stops_before_the_limit(sim):
    three_single_targets(sim)
    r, failure = run(sim, weight_budget=42)  # time 1 + openOrders 40 + one cancel
    assert r["partial"] and [c["result"] for c in r["calls"]] == ["ok", "budget", "not_attempted"]
    assert "would pass weight_budget 42" in failure and len(open_orders(sim)) == 2


@pytest.mark.parametrize("fault,secret,code", [("bad_credentials", TEST_SECRET, -2015), (None, "wrong", -1022)])
def test_bad_credentials_fail_clearly(sim, fault, secret, code):
    sim.seed(client_order_id="qtx-a", age_s=900)
    if fault:
        sim.faults(fault)
    r, failure = run(sim, api_secret=secret)
    assert failure.startswith(f"cannot list open orders at {sim.url()}: Binance rejected the API key (HTTP ")
    assert f"{code}: " in failure and failure.endswith("nothing was cancelled") and "\n" not in failure
    assert r["changed"] is False and len(open_orders(sim)) == 1


def test_unreachable_and_hanging_exchange_fail_clearly(sim):
    sim.faults("binance_down")
    r, failure = run(sim)
    assert failure.startswith(f"cannot list open orders at {sim.url()}: Binance unreachable (refused")
    sim.faults("binance_timeout")
    started = time.monotonic()
    r, failure = run(sim, timeout=1.0)
    assert time.monotonic() - started < 3
    assert "no usable answer from Binance" in failure and failure.endswith("nothing was cancelled")


def test_missing_key_and_bad_arguments():
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    p, _dummy = mod.effective_params(dict(p, futures_url="http://127.0.0.1:1/fapi"), set())
    assert mod.check_own_params(p).startswith("no API key")
    p.update(api_key="k", api_secret="s", state="countdown_armed")
    assert "needs symbols" in mod.check_own_params(p)
    p.update(symbols=["BTCUSDT"], countdown_ms=0)
    assert "countdown_ms must be positive" in mod.check_own_params(p)
    p.update(state="reconciled")
    assert mod.check_own_params(p) == "state=reconciled needs order_ids"


def test_settings_from_container(monkeypatch):
    env = {"BINANCE_USE_TESTNET": "true", "BINANCE_FUTURES_TESTNET_URL": "http://binance-sim:8081/fapi",
           "BINANCE_API_KEY": "containerKey123", "BINANCE_API_SECRET": "containerSecret456",
           "EXECUTOR_CLIENT_ORDER_PREFIX": "bot-"}
    monkeypatch.setattr(binance_common, "container_settings", lambda name: ("running", env))
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    hidden = set()
    eff, extra = mod.effective_params(dict(p, settings_from_container="quantum_auto_executor",
                                           futures_testnet_url="http://127.0.0.1:18081/fapi"), hidden)
    assert (eff["testnet"], eff["futures_url"], eff["client_order_prefix"]) == (
        True, "http://127.0.0.1:18081/fapi", "bot-")
    assert (eff["api_key"], eff["api_secret"]) == ("containerKey123", "containerSecret456")
    assert hidden == {"containerKey123", "containerSecret456"} and extra == {"settings_container_state": "running"}
    eff, _dummy = mod.effective_params(dict(p, settings_from_container="x", api_key="mine", api_secret="mine2",
                                       client_order_prefix="qtx-"), set())
    assert (eff["api_key"], eff["client_order_prefix"], eff["futures_url"]) == (
        "mine", "qtx-", "http://binance-sim:8081/fapi")


# ---------------------------------------------------------------- countdown and reconciled

def test_countdown_arm_disarm_and_expiry(sim):
    r, failure = run(sim, state="countdown_armed", symbols=["BTCUSDT", "ETHUSDT"], countdown_ms=60000)
    assert failure is None and r["changed"] is True
    assert [(c["symbol"], c["result"], c["exchange_countdown_ms"]) for c in r["countdowns"]] == [
        ("BTCUSDT", "ok", 60000), ("ETHUSDT", "ok", 60000)]
    assert r["summary"].startswith("countdown armed 60 s on BTCUSDT, ETHUSDT; refresh it within 60 s")
    armed = sim.ctl("GET", "/_sim/state")[1]["countdowns"]["testnet"]
    assert sorted(armed) == ["BTCUSDT", "ETHUSDT"] and armed["BTCUSDT"]["countdown_ms"] == 60000
    r, failure = run(sim, state="countdown_disarmed", symbols=["BTCUSDT"])
    assert failure is None and r["countdowns"][0]["exchange_countdown_ms"] == 0
    assert r["summary"].startswith("countdown disarmed on BTCUSDT")
    assert sorted(sim.ctl("GET", "/_sim/state")[1]["countdowns"]["testnet"]) == ["ETHUSDT"]
    r, _dummy = run(sim, state="countdown_armed", symbols=["ETHUSDT"], check=True)
    assert r["countdowns"][0]["result"] == "planned" and r["changed"]
    assert [x["path"] for x in requests_log(sim)].count("/fapi/v1/countdownCancelAll") == 3  # none in check mode
    # a short countdown that nobody refreshes cancels the symbol's open orders
    eth = sim.seed(symbol="ETHUSDT", price="2900", client_order_id="qtx-e")["orderId"]
    btc = sim.seed(client_order_id="qtx-b")["orderId"]
    run(sim, state="countdown_armed", symbols=["ETHUSDT"], countdown_ms=300)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and open_orders(sim) != [o for o in open_orders(sim) if o["orderId"] == btc]:
        time.sleep(0.05)
    assert [o["orderId"] for o in open_orders(sim)] == [btc]
    state = sim.ctl("GET", "/_sim/state")[1]
    assert state["countdowns"]["testnet"] == {}
    assert state["personalities"]["testnet"]["countdowns_fired"][-1]["symbol"] == "ETHUSDT"
    got = [o for o in sim.ctl("GET", "/_sim/orders?personality=testnet")[1] if o["orderId"] == eth]
    assert got[0]["status"] == "CANCELED"


def test_reconciled_reads_orders(sim):
    a = sim.seed(client_order_id="qtx-a", age_s=900)
    b = sim.seed(symbol="ETHUSDT", price="2900", client_order_id="qtx-b")
    sim.ctl("POST", "/_sim/orders/fill", {"order_ids": [b["orderId"]]})
    r, failure = run(sim, state="reconciled",
                     order_ids=[{"symbol": "BTCUSDT", "orderId": a["orderId"], "extra": "ignored"},
                                f"ETHUSDT:{b['orderId']}", "BTCUSDT:qtx-a", "BTCUSDT:999"])
    assert failure == r["summary"] and r["changed"] is False and r["partial"] is True  # 999 does not exist
    assert [(x["orderId"], x["final_status"]) for x in r["results"]] == [
        (a["orderId"], "NEW"), (b["orderId"], "FILLED"), (a["orderId"], "NEW"), (999, "UNKNOWN")]
    assert r["results"][1]["position_opened"] and r["failed_ids"] == [999]
    assert "-2013" in r["results"][3]["reconcile_error"]
    assert r["summary"].startswith("re-read 4 orders: 1 FILLED, 2 NEW, 1 UNKNOWN")


# ---------------------------------------------------------------- the module through Ansible

def ansible_module(args, check=False, env=None, timeout=90):
    """(result, output) of `ansible localhost -m quantum.runbooks.binance_futures_orders` (json callback)."""
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
           "-m", "quantum.runbooks.binance_futures_orders", "-a", json.dumps(args), "-vvv"]
    cmd += ["--check"] if check else []
    full_env = {k: v for k, v in os.environ.items() if k not in ("BINANCE_API_KEY", "BINANCE_API_SECRET")}
    full_env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1",
                    NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                    PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **(env or {}))
    res = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    output = res.stdout + res.stderr
    start = res.stdout.find("{\n")
    assert start >= 0, output[-3000:]
    doc, _dummy = json.JSONDecoder().raw_decode(res.stdout[start:])
    return doc["plays"][0]["tasks"][0]["hosts"]["localhost"], output


def test_module_end_to_end(sim):
    book = seed_book(sim)
    args = {"futures_url": sim.url(), "testnet": True, "timeout": 2}
    keys = {"BINANCE_API_KEY": TEST_KEY, "BINANCE_API_SECRET": TEST_SECRET}
    r, output = ansible_module(args, check=True, env=keys)
    assert r["changed"] is True and not r.get("failed") and len(open_orders(sim)) == 6
    assert r["summary"].startswith("check mode: would cancel 4")
    assert_no_secrets(output)
    r, output = ansible_module(dict(args, api_key=TEST_KEY, api_secret=TEST_SECRET))
    assert r["changed"] is True and not r.get("failed") and r["partial"] is False
    assert r["invocation"]["module_args"]["api_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert [o["orderId"] for o in open_orders(sim)] == [book["eth_fresh"]["orderId"], book["sol_manual"]["orderId"]]
    assert_no_secrets(output)
    r, output = ansible_module(args, env=keys)
    assert r["changed"] is False and r["summary"].startswith("nothing to cancel")


def test_module_end_to_end_failures(sim):
    sim.seed(client_order_id="qtx-a", age_s=900, symbol="ETHUSDT", price="2900")
    sim.faults("bad_credentials")
    r, output = ansible_module({"futures_url": sim.url(), "testnet": True, "timeout": 2, "api_key": TEST_KEY,
                                "api_secret": TEST_SECRET})
    assert r["failed"] is True and "Binance rejected the API key" in r["msg"] and "-2015" in r["msg"]
    assert "Traceback" not in output and "\n" not in r["msg"]
    assert_no_secrets(output)
    sim.faults()
    next_fault(sim, after=1, status=418, count=1)
    r, output = ansible_module({"futures_url": sim.url(), "testnet": True, "timeout": 2, "api_key": TEST_KEY,
                                "api_secret": TEST_SECRET})
    assert r["failed"] is True and "IP banned by Binance (HTTP 418) for 120 s" in r["msg"]
    assert r["rate_limit"]["ban_s"] == 120 and r["partial"] is True
    assert_no_secrets(output)


def test_skewed_host_clock_does_not_matter(sim):
    """The exchange runs 30 s ahead: signed calls follow its clock (no -1021) and ages are measured on it."""
    sim.faults("clock_skew")
    order = sim.seed(client_order_id="qtx-a", age_s=400)  # 400 s old on the exchange's clock
    r, failure = run(sim)
    assert failure is None and by_id(r)[order["orderId"]]["final_status"] == "CANCELED"
    assert 395 < r["targets"][0]["age_s"] < 410


def test_diff_shows_open_orders_per_symbol_before_and_after():
    now = 1_000_000_000
    orders = [{"symbol": "BTCUSDT", "orderId": 1, "clientOrderId": "qtx-a", "side": "BUY", "origQty": "0.002",
               "price": "60000", "time": now - 600_000},
              {"symbol": "BTCUSDT", "orderId": 2, "clientOrderId": "manual-1", "side": "SELL", "origQty": "0.01",
               "price": "61000", "time": now - 600_000},
              {"symbol": "ETHUSDT", "orderId": 3, "clientOrderId": "qtx-b", "side": "BUY", "origQty": "0.1",
               "price": "3000", "time": now - 600_000}]
    targets, kept = stuck_orders.classify(orders, now, "qtx-", False, 300)
    plan = stuck_orders.cancel_diff(targets, kept, [], check_mode=True)
    assert plan["before"].startswith("BTCUSDT: 2 open\n") and "ETHUSDT: 1 open" in plan["before"]
    assert plan["after"] == "BTCUSDT: 1 open\n  2 manual-1 SELL 0.01@61000 age 600.0s (kept: foreign)\n"
    results = [{"orderId": 1, "final_status": "CANCELED", "outcome": "cancelled"},
               {"orderId": 3, "final_status": "NEW", "outcome": "error"}]  # the ETH cancel failed
    after = stuck_orders.cancel_diff(targets, kept, results, check_mode=False)["after"]
    assert "ETHUSDT: 1 open\n  3 qtx-b" in after and " 1 qtx-a" not in after
