"""The Binance futures simulator, driven by the unmodified python-binance 1.0.37 client.

Starts lab/images/binance_sim/sim.py as a subprocess on free loopback ports; no Docker, no network.
"""
import http.client
import json
import os
import subprocess
import sys
import time

import pytest
import requests
from binance.exceptions import BinanceAPIException
from sim_process import KEYS, SIM, SimProcess


def api_error(call, **params):
    with pytest.raises(BinanceAPIException) as info:
        call(**params)
    return info.value


def weight(client):
    return int(client.response.headers["X-MBX-USED-WEIGHT-1M"])


def test_filled_order_round_trip_and_headers(sim):
    c = sim.client()
    order = c.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002",
                                   newClientOrderId="qtx-round-trip-1")
    assert order["status"] == "FILLED" and order["executedQty"] == "0.002" and order["avgPrice"] == "60000"
    assert c.response.headers["X-MBX-ORDER-COUNT-10S"] == "1" and c.response.headers["X-MBX-ORDER-COUNT-1M"] == "1"
    got = c.futures_get_order(symbol="BTCUSDT", origClientOrderId="qtx-round-trip-1")
    assert got["orderId"] == order["orderId"] and got["status"] == "FILLED"
    assert abs(got["time"] - time.time() * 1000) < 5000
    before = weight(c)
    e = api_error(c.futures_cancel_order, symbol="BTCUSDT", orderId=order["orderId"])
    assert (e.status_code, e.code, e.message) == (400, -2011, "Unknown order sent.")
    assert int(e.response.headers["X-MBX-USED-WEIGHT-1M"]) == before + 1
    auto = c.futures_create_order(symbol="ETHUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                                  quantity="0.05", price="2900")  # marketable: fills at the bid, not at 2900
    assert auto["clientOrderId"].startswith("x-") and auto["status"] == "FILLED" and auto["avgPrice"] == "3000"
    assert c.futures_get_order(symbol="ETHUSDT", orderId=auto["orderId"])["side"] == "SELL"
    e = api_error(c.futures_get_order, symbol="ETHUSDT", orderId=123)
    assert e.code == -2013


def test_resting_order_create_query_cancel(sim):
    sim.faults("stuck_orders")
    c = sim.client()
    order = c.futures_create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                   quantity="0.01", price="55000", newClientOrderId="qtx-stuck-1")
    assert order["status"] == "NEW" and order["executedQty"] == "0"
    assert time.time() * 1000 - order["time"] > 5 * 60 * 1000  # older than a 5-minute threshold
    market = c.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert market["status"] == "FILLED"
    sim.faults()  # resting orders stay resting once the fault clears
    open_orders = c.futures_get_open_orders(symbol="BTCUSDT")
    assert [o["clientOrderId"] for o in open_orders] == ["qtx-stuck-1"]
    assert c.futures_get_order(symbol="BTCUSDT", orderId=order["orderId"])["status"] == "NEW"
    assert c.futures_cancel_order(symbol="BTCUSDT", origClientOrderId="qtx-stuck-1")["status"] == "CANCELED"
    assert c.futures_get_open_orders(symbol="BTCUSDT") == []
    assert sim.ctl("GET", "/_sim/state")[1]["orders"] == {"mainnet": 0, "testnet": 0}


def test_wrong_secret_is_invalid_signature(sim):
    e = api_error(sim.client(secret="not-the-secret").futures_account)
    assert (e.status_code, e.code, e.message) == (400, -1022, "Signature for this request is not valid.")


def test_keys_are_per_personality(sim):
    key, secret = KEYS["testnet"]
    e = api_error(sim.client("mainnet", key=key, secret=secret).futures_get_open_orders, symbol="BTCUSDT")
    assert (e.status_code, e.code, e.message) == (401, -2015, "Invalid API-key, IP, or permissions for action.")
    assert sim.client("mainnet").futures_get_open_orders(symbol="BTCUSDT") == []
    resp = requests.get(f"http://127.0.0.1:{sim.ports['testnet']}/fapi/v1/openOrders", timeout=5)
    assert resp.status_code == 401 and resp.json()["code"] == -2014
    # orders are per personality too
    sim.client("mainnet").futures_create_order(symbol="SOLUSDT", side="BUY", type="MARKET", quantity="1")
    assert sim.client().futures_account_trades(symbol="SOLUSDT") == []
    assert len(sim.client("mainnet").futures_account_trades(symbol="SOLUSDT")) == 1


def test_clock_skew(sim):
    state = sim.faults("clock_skew")
    assert state["clock_offset_ms"] == 30000
    c = sim.client()
    offset = c.futures_time()["serverTime"] - time.time() * 1000
    assert 28000 < offset < 32000
    e = api_error(c.futures_position_information)
    assert (e.status_code, e.code) == (400, -1021)
    assert e.message == "Timestamp for this request is outside of the recvWindow."
    c.timestamp_offset = int(offset)  # a client that syncs its clock gets through
    assert c.futures_position_information() == []
    sim.faults()
    e = api_error(c.futures_position_information)  # now 30 s ahead of the server
    assert e.message == "Timestamp for this request was 1000ms ahead of the server's time."


def test_binance_429(sim):
    sim.faults("binance_429")
    c = sim.client()
    e = api_error(c.futures_ping)
    assert (e.status_code, e.code) == (429, -1003)
    assert e.message.startswith("Too many requests; current limit is 2400 requests per minute.")
    assert e.response.headers["Retry-After"] == "30"
    assert api_error(c.futures_create_order, symbol="BTCUSDT", side="BUY", type="MARKET",
                     quantity="0.01").status_code == 429
    sim.faults()
    assert c.futures_ping() == {}
    assert sim.ctl("GET", "/_sim/orders?personality=testnet")[1] == []


def test_binance_418(sim):
    sim.faults("binance_418")
    e = api_error(sim.client().futures_position_information)
    assert (e.status_code, e.code) == (418, -1003)
    assert e.message.startswith("Way too many requests; IP(127.0.0.1) banned until ")
    banned_until = int(e.message.split("banned until ")[1].split(".")[0])
    assert banned_until > time.time() * 1000 + 100_000
    assert e.response.headers["Retry-After"] == "120"


def test_bad_credentials(sim):
    sim.faults("bad_credentials")
    c = sim.client()
    e = api_error(c.futures_account_balance)
    assert (e.status_code, e.code) == (401, -2015)
    assert abs(c.futures_time()["serverTime"] - time.time() * 1000) < 2000
    assert c.futures_exchange_info()["rateLimits"][0]["limit"] == 2400


def test_binance_down(sim):
    c = sim.client()
    sim.faults("binance_down")
    with pytest.raises(requests.exceptions.ConnectionError):
        c.futures_ping()
    state = sim.ctl("GET", "/_sim/state")[1]  # control stays up
    assert state["faults"] == ["binance_down"] and state["listening"] == {"mainnet": False, "testnet": False}
    sim.faults()
    assert c.futures_ping() == {}


def test_binance_timeout(sim):
    sim.faults("binance_timeout")
    started, arrived_ms = time.monotonic(), time.time() * 1000
    with pytest.raises(requests.exceptions.ReadTimeout):
        sim.client(timeout=1).futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                                   newClientOrderId="qtx-held-1")
    assert time.monotonic() - started < 3
    # a held request is released with 503 -1007 once the fault clears
    conn = http.client.HTTPConnection("127.0.0.1", sim.ports["testnet"], timeout=5)
    conn.request("GET", "/fapi/v1/time")
    deadline = time.monotonic() + 5
    while sim.ctl("GET", "/_sim/state")[1]["held_requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.ctl("GET", "/_sim/state")[1]["held_requests"] == 2
    sim.faults()
    resp = conn.getresponse()
    assert resp.status == 503 and json.loads(resp.read())["code"] == -1007
    assert sim.client().futures_ping() == {}
    # The request log stamps a held request with its arrival, not with its (late) answer: a post-mortem
    # window that ends before the release still contains it. The client had hung up; it is logged anyway.
    deadline = time.monotonic() + 5
    held = []
    while not held and time.monotonic() < deadline:
        held = [r for r in sim.ctl("GET", "/_sim/requests?personality=testnet")[1]
                if r["params"].get("newClientOrderId") == "qtx-held-1"]
        time.sleep(0.02)
    assert [(r["status"], r["code"]) for r in held] == [(503, -1007)]
    assert abs(held[0]["ts"] - arrived_ms) < 500 and held[0]["answered_ts"] - held[0]["ts"] >= 900


def test_cancel_all_needs_symbol(sim):
    c = sim.client()
    e = api_error(c.futures_cancel_all_open_orders)
    assert (e.code, e.message) == (-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    sim.seed(client_order_id="human-1")
    sim.seed(symbol="ETHUSDT", price="2500")
    assert c.futures_cancel_all_open_orders(symbol="BTCUSDT")["code"] == 200
    assert [o["symbol"] for o in c.futures_get_open_orders()] == ["ETHUSDT"]


def test_batch_cancel_per_item_errors(sim):
    a, b = sim.seed(), sim.seed(side="SELL", price="70000", client_order_id="human-2")
    c = sim.client()
    result = c.futures_cancel_orders(symbol="BTCUSDT", orderidlist=[a["orderId"], 999, b["orderId"]])
    assert [r.get("status") for r in result] == ["CANCELED", None, "CANCELED"]
    assert result[1] == {"code": -2011, "msg": "Unknown order sent."}
    d = sim.seed(client_order_id="human-3")
    result = c.futures_cancel_orders(symbol="BTCUSDT", origclientorderidlist=["human-3", "human-2"])
    assert result[0]["orderId"] == d["orderId"] and result[1]["code"] == -2011
    e = api_error(c.futures_cancel_orders, symbol="BTCUSDT", orderidlist=list(range(1, 12)))
    assert e.status_code == 400


def test_seeded_order_and_control_api(sim):
    seeded = sim.seed(client_order_id="manual-1", age_s=900, side="SELL", price="65000")
    c = sim.client()
    [order] = c.futures_get_open_orders()
    assert order["clientOrderId"] == "manual-1" and order["side"] == "SELL" and order["price"] == "65000"
    assert 899_000 < time.time() * 1000 - order["time"] < 905_000
    assert [p["symbol"] for p in c.futures_position_information()] == ["BTCUSDT"]  # v3: open orders count
    assert sim.ctl("GET", "/_sim/orders?personality=testnet")[1] == [seeded]
    assert sim.ctl("GET", "/_sim/orders?personality=mainnet")[1] == []
    status, body = sim.ctl("PUT", "/_sim/faults", {"faults": ["binance_down", "meteor"]})
    assert status == 400 and "stuck_orders" in body["known"]
    assert sim.ctl("GET", "/_sim/state")[1]["faults"] == []
    assert sim.ctl("POST", "/_sim/orders", {"symbol": "DOGEUSDT", "quantity": 1, "price": 1})[0] == 400


def test_used_weight_header_and_limit(sim):
    c = sim.client("mainnet")
    c.futures_get_open_orders(symbol="BTCUSDT")
    first = weight(c)
    c.futures_get_open_orders()
    assert weight(c) == first + 40
    c.futures_income_history()
    assert weight(c) == first + 70
    e = None
    for _dummy in range(2400 // 40):  # 2400 is crossed within this many weight-40 calls
        try:
            c.futures_get_open_orders()
        except BinanceAPIException as exc:
            e = exc
            break
    else:
        pytest.fail("weight limit never enforced")
    assert (e.status_code, e.code) == (429, -1003) and int(e.response.headers["Retry-After"]) > 0
    assert int(e.response.headers["X-MBX-USED-WEIGHT-1M"]) > 2400
    assert sim.client().futures_ping() == {}  # the testnet personality has its own budget


def test_request_totals_outlive_the_weight_minute_and_reset(sim):
    c = sim.client()
    c.futures_get_open_orders()  # weight 40
    assert api_error(c.futures_cancel_order, symbol="BTCUSDT", orderId=1).code == -2011  # weight 1, a 400
    sim.faults("binance_429")
    with pytest.raises(BinanceAPIException):
        c.futures_time()  # weight 1, 429
    totals = sim.ctl("GET", "/_sim/state")[1]["personalities"]["testnet"]["totals"]
    assert totals == {"requests": 3, "weight": 42, "by_status": {"200": 1, "400": 1, "429": 1}}
    assert sim.ctl("GET", "/_sim/state")[1]["personalities"]["mainnet"]["totals"]["requests"] == 0
    sim.ctl("POST", "/_sim/reset")
    assert sim.ctl("GET", "/_sim/state")[1]["personalities"]["testnet"]["totals"] == {
        "requests": 0, "weight": 0, "by_status": {}}


def test_extra_symbols(tmp_path):
    extra = SimProcess(tmp_path, SIM_EXTRA_SYMBOLS="aaausdt, BBBUSDT")
    try:
        order = extra.seed(symbol="BBBUSDT", price="99.5", quantity="1")
        assert order["symbol"] == "BBBUSDT" and order["price"] == "99.5"
        symbols = [s["symbol"] for s in extra.client().futures_exchange_info()["symbols"]]
        assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "AAAUSDT", "BBBUSDT"]
    finally:
        extra.stop()


def test_income_positions_and_account_after_fills(sim):
    c = sim.client()
    c.futures_create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
                           price="60000")
    [pos] = c.futures_position_information()
    assert (pos["positionAmt"], pos["entryPrice"]) == ("0.01", "60000")
    assert len(c.futures_position_information(version=2)) == 3
    sim.market(symbol="BTCUSDT", mark="61000")  # the market rises; a SELL at 61000 now takes the bid
    c.futures_create_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01",
                           price="61000")
    income = c.futures_income_history(symbol="BTCUSDT")
    assert [(r["incomeType"], r["income"]) for r in income] == [
        ("COMMISSION", "-0.24"), ("COMMISSION", "-0.244"), ("REALIZED_PNL", "10")]
    assert c.futures_income_history(incomeType="REALIZED_PNL", startTime=int(time.time() * 1000) + 60000) == []
    assert c.futures_position_information() == []
    trades = c.futures_account_trades(symbol="BTCUSDT")
    assert [t["realizedPnl"] for t in trades] == ["0", "10"]
    assert c.futures_account()["totalWalletBalance"] == "10009.516"
    assert c.futures_account_balance()[0]["balance"] == "10009.516"
    state = sim.ctl("GET", "/_sim/state")[1]["personalities"]["testnet"]
    assert state["income"] == 3 and state["positions"] == 0


def test_logs_are_json_without_secrets(sim):
    sim.client().futures_account()
    lines = sim.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["service"] == "binance-sim" and "correlation_id" in r for r in records)
    assert any(r["event"] == "HTTP" and r["path"] == "/fapi/v2/account" and r["status"] == 200 for r in records)
    text = "\n".join(lines)
    for secret in [*KEYS["mainnet"], *KEYS["testnet"], "signature="]:
        assert secret not in text


def test_refuses_to_start_without_keys():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
    res = subprocess.run([sys.executable, str(SIM)], env=env, capture_output=True, text=True, timeout=10, check=False)
    assert res.returncode == 2 and "SIM_MAINNET_API_KEY" in res.stderr


def test_countdown_cancel_all(sim):
    c = sim.client()
    answer = c.futures_countdown_cancel_all(symbol="BTCUSDT", countdownTime=60000)
    assert answer == {"symbol": "BTCUSDT", "countdownTime": "60000"}  # a string, as Binance sends it
    assert weight(c) == 10
    armed = sim.ctl("GET", "/_sim/state")[1]["countdowns"]
    assert armed["mainnet"] == {} and armed["testnet"]["BTCUSDT"]["countdown_ms"] == 60000
    assert 55000 < armed["testnet"]["BTCUSDT"]["remaining_ms"] <= 60000
    assert c.futures_countdown_cancel_all(symbol="BTCUSDT", countdownTime=0)["countdownTime"] == "0"
    assert sim.ctl("GET", "/_sim/state")[1]["countdowns"]["testnet"] == {}
    e = api_error(c.futures_countdown_cancel_all, symbol="BTCUSDT")
    assert e.code == -1102
    # expiry cancels every open order of that symbol only; a refresh (heartbeat) replaces the timer
    btc, eth = sim.seed(), sim.seed(symbol="ETHUSDT", price="2500")
    c.futures_countdown_cancel_all(symbol="BTCUSDT", countdownTime=1500)
    time.sleep(0.9)
    c.futures_countdown_cancel_all(symbol="BTCUSDT", countdownTime=1500)
    time.sleep(0.9)  # past the first deadline, before the refreshed one
    assert c.futures_get_order(symbol="BTCUSDT", orderId=btc["orderId"])["status"] == "NEW"  # refreshed in time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and c.futures_get_open_orders(symbol="BTCUSDT"):
        time.sleep(0.05)
    assert c.futures_get_order(symbol="BTCUSDT", orderId=btc["orderId"])["status"] == "CANCELED"
    assert [o["orderId"] for o in c.futures_get_open_orders()] == [eth["orderId"]]
    state = sim.ctl("GET", "/_sim/state")[1]
    assert state["countdowns"]["testnet"] == {}
    assert state["personalities"]["testnet"]["countdowns_fired"] == [
        {"symbol": "BTCUSDT", "ts": state["personalities"]["testnet"]["countdowns_fired"][0]["ts"], "cancelled": 1}]
    c.futures_countdown_cancel_all(symbol="ETHUSDT", countdownTime=60000)
    sim.ctl("POST", "/_sim/reset")
    assert sim.ctl("GET", "/_sim/state")[1]["countdowns"]["testnet"] == {}


def test_next_fault_429_then_healthy(sim):
    c = sim.client()
    state = sim.ctl("POST", "/_sim/faults/next", {"after": 1, "status": 429, "count": 2, "retry_after": 3})[1]
    assert state["next_fault"] == {"after": 1, "status": 429, "count": 2, "retry_after": 3}
    assert c.futures_time()["serverTime"] > 0  # unsigned requests do not count
    c.futures_account()  # the one signed request let through
    for _dummy in range(2):
        e = api_error(c.futures_get_open_orders)
        assert (e.status_code, e.code, e.response.headers["Retry-After"]) == (429, -1003, "3")
    c.futures_get_open_orders()
    assert sim.ctl("GET", "/_sim/state")[1]["next_fault"] is None


def test_next_fault_503_takes_effect(sim):
    order = sim.seed()
    c = sim.client()
    sim.ctl("POST", "/_sim/faults/next", {"status": 503})
    e = api_error(c.futures_cancel_order, symbol="BTCUSDT", orderId=order["orderId"])
    assert (e.status_code, e.code, e.message) == (
        503, -1000, "Unknown error, please check your request or try again later.")
    assert c.futures_get_order(symbol="BTCUSDT", orderId=order["orderId"])["status"] == "CANCELED"


def test_next_fault_validation_and_clearing(sim):
    for bad in ({"status": 500}, {"status": 429, "count": 0}, {"status": 429, "after": -1}, {}):
        assert sim.ctl("POST", "/_sim/faults/next", bad)[0] == 400
    sim.ctl("POST", "/_sim/faults/next", {"after": 5, "status": 418})
    assert sim.ctl("GET", "/_sim/state")[1]["next_fault"]["retry_after"] == 120
    sim.faults()  # setting faults clears it
    assert sim.ctl("GET", "/_sim/state")[1]["next_fault"] is None
    sim.ctl("POST", "/_sim/faults/next", {"status": 418})
    sim.ctl("POST", "/_sim/reset")
    assert sim.ctl("GET", "/_sim/state")[1]["next_fault"] is None
    assert sim.client().futures_account()["canTrade"] is True


def test_partial_fill_rests_and_cancels_with_its_fill(sim):
    order = sim.seed(quantity="0.01")
    assert sim.ctl("POST", "/_sim/orders/fill", {"order_ids": [order["orderId"]], "quantity": "0.004"})[1] == {
        "filled": 1}
    c = sim.client()
    [rest] = c.futures_get_open_orders()
    assert (rest["status"], rest["executedQty"], rest["avgPrice"]) == ("PARTIALLY_FILLED", "0.004", "50000")
    assert c.futures_position_information()[0]["positionAmt"] == "0.004"
    cancelled = c.futures_cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
    assert (cancelled["status"], cancelled["executedQty"]) == ("CANCELED", "0.004")
    assert sim.ctl("POST", "/_sim/orders/fill", {"order_ids": [12345]})[0] == 400


def test_request_log_has_no_secrets(sim):
    c = sim.client()
    c.futures_cancel_orders(symbol="BTCUSDT", orderidlist=[1, 2])
    [entry] = [r for r in sim.ctl("GET", "/_sim/requests")[1] if r["path"] == "/fapi/v1/batchOrders"]
    assert entry["method"] == "DELETE" and entry["status"] == 200 and entry["personality"] == "testnet"
    assert entry["params"] == {"symbol": "BTCUSDT", "orderidlist": "[1,2]"}
    text = json.dumps(sim.ctl("GET", "/_sim/requests")[1])
    assert "signature" not in text and all(s not in text for s in KEYS["testnet"])
    assert sim.ctl("GET", "/_sim/requests?personality=mainnet")[1] == []
    sim.ctl("POST", "/_sim/reset")
    assert sim.ctl("GET", "/_sim/requests")[1] == []


# ---------------------------------------------------------------- matching: a book at the mark, resting orders

def limit(c, side, price, qty="0.01", tif="GTC", symbol="BTCUSDT", **extra):
    return c.futures_create_order(symbol=symbol, side=side, type="LIMIT", timeInForce=tif, quantity=qty,
                                  price=price, **extra)


def rejected(c, side, price, **kw):
    with pytest.raises(BinanceAPIException) as info:
        limit(c, side, price, **kw)
    return info.value


def income(sim):
    return [(r["incomeType"], r["income"]) for r in sim.ctl("GET", "/_sim/income?personality=testnet")[1]]


def test_limit_far_from_the_market_rests_is_listed_and_cancellable(sim):
    c = sim.client()
    order = limit(c, "BUY", "30000", newClientOrderId="qtx-far-below")  # half the market price
    assert (order["status"], order["executedQty"], order["avgPrice"]) == ("NEW", "0", "0")
    assert abs(order["time"] - time.time() * 1000) < 5000  # a real resting order is young (no backdating)
    assert [o["clientOrderId"] for o in c.futures_get_open_orders(symbol="BTCUSDT")] == ["qtx-far-below"]
    assert [p["symbol"] for p in c.futures_position_information()] == ["BTCUSDT"]  # v3: an open order, flat
    assert c.futures_position_information()[0]["positionAmt"] == "0"
    sell = limit(c, "SELL", "90000")  # above the market: rests too
    assert sell["status"] == "NEW"
    assert c.futures_cancel_order(symbol="BTCUSDT", origClientOrderId="qtx-far-below")["status"] == "CANCELED"
    assert [o["orderId"] for o in c.futures_get_open_orders()] == [sell["orderId"]]
    assert income(sim) == [] and c.futures_account_trades(symbol="BTCUSDT") == []


def test_marketable_limit_fills_at_the_book_never_worse_than_its_limit(sim):
    c = sim.client()
    moved = sim.market(symbol="BTCUSDT", mark="59000")
    assert moved["symbols"]["BTCUSDT"] == {"mark": "59000", "bid": "59000", "ask": "59000", "reference": "60000",
                                           "time": moved["symbols"]["BTCUSDT"]["time"]}
    assert moved["filled"] == []
    buy = limit(c, "BUY", "61000")  # at or above the ask: takes it, at the ask
    assert (buy["status"], buy["avgPrice"], buy["price"]) == ("FILLED", "59000", "61000")
    sell = limit(c, "SELL", "58000")  # at or below the bid: takes it, at the bid
    assert (sell["status"], sell["avgPrice"]) == ("FILLED", "59000")
    trades = c.futures_account_trades(symbol="BTCUSDT")
    assert [(t["price"], t["maker"], t["commission"]) for t in trades] == [
        ("59000", False, "0.236"), ("59000", False, "0.236")]  # taker rate 0.04 %
    # with a spread, an order between bid and ask rests; one at the ask takes it
    sim.market(symbol="BTCUSDT", mark="59000", bid="58990", ask="59010")
    before = weight(c)
    assert c.futures_orderbook_ticker(symbol="BTCUSDT")["askPrice"] == "59010"
    assert weight(c) == before + 2  # unsigned market data: 2 with a symbol (CN market_data_api.py)
    assert limit(c, "BUY", "59000")["status"] == "NEW"
    assert limit(c, "SELL", "59005")["status"] == "NEW"
    assert limit(c, "BUY", "59010")["avgPrice"] == "59010"
    market = c.futures_create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
    assert (market["status"], market["avgPrice"]) == ("FILLED", "58990")  # MARKET takes the book too
    before = weight(c)
    assert c.futures_mark_price(symbol="BTCUSDT")["markPrice"] == "59000"
    assert [r["symbol"] for r in c.futures_mark_price()] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert weight(c) == before + 1 + 10


def test_post_only_fok_and_ioc(sim):
    c = sim.client()
    e = rejected(c, "BUY", "60000", tif="GTX", newClientOrderId="qtx-gtx-cross")
    assert (e.status_code, e.code, e.message) == (
        400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")
    e = rejected(c, "SELL", "59000", tif="GTX")
    assert e.code == -5022
    assert api_error(c.futures_get_order, symbol="BTCUSDT", origClientOrderId="qtx-gtx-cross").code == -2013
    maker = limit(c, "BUY", "59000", tif="GTX")  # does not cross: rests as a maker order
    assert (maker["status"], maker["timeInForce"]) == ("NEW", "GTX")
    e = rejected(c, "BUY", "59000", tif="FOK")
    assert (e.code, e.message) == (-5021, "Due to the order could not be filled immediately, the FOK order has "
                                          "been rejected.")
    assert limit(c, "BUY", "60000", tif="FOK")["status"] == "FILLED"
    ioc = limit(c, "SELL", "61000", tif="IOC")  # nothing to take: expires, kept in the history
    assert (ioc["status"], ioc["executedQty"]) == ("EXPIRED", "0")
    assert c.futures_get_order(symbol="BTCUSDT", orderId=ioc["orderId"])["status"] == "EXPIRED"
    assert limit(c, "SELL", "59000", tif="IOC")["avgPrice"] == "60000"
    assert [o["orderId"] for o in c.futures_get_open_orders()] == [maker["orderId"]]
    logged = [r for r in sim.ctl("GET", "/_sim/requests")[1] if r["code"] in (-5021, -5022)]
    assert [(r["status"], r["code"]) for r in logged] == [(400, -5022), (400, -5022), (400, -5021)]


def test_the_mark_moving_through_a_resting_order_fills_it_and_books_income(sim):
    c = sim.client()
    buy = limit(c, "BUY", "58000", newClientOrderId="qtx-dip")
    assert sim.market(symbol="BTCUSDT", mark="58500")["filled"] == []  # not there yet
    assert c.futures_get_order(symbol="BTCUSDT", orderId=buy["orderId"])["status"] == "NEW"
    moved = sim.market(symbol="BTCUSDT", mark="57500")  # through it: fills at its limit, as a maker
    assert moved["filled"] == [{"personality": "testnet", "symbol": "BTCUSDT", "orderId": buy["orderId"],
                                "clientOrderId": "qtx-dip", "side": "BUY", "price": "58000", "qty": "0.01"}]
    got = c.futures_get_order(symbol="BTCUSDT", orderId=buy["orderId"])
    assert (got["status"], got["avgPrice"], got["executedQty"]) == ("FILLED", "58000", "0.01")
    assert c.futures_get_open_orders() == []
    [pos] = c.futures_position_information()
    assert (pos["positionAmt"], pos["entryPrice"], pos["markPrice"], pos["unRealizedProfit"]) == (
        "0.01", "58000", "57500", "-5")
    assert sim.ctl("GET", "/_sim/positions")[1] == {"BTCUSDT": {"positionAmt": "0.01", "entryPrice": "58000"}}
    [trade] = c.futures_account_trades(symbol="BTCUSDT")
    assert (trade["maker"], trade["price"], trade["commission"]) == (True, "58000", "0.116")  # maker 0.02 %
    sell = limit(c, "SELL", "59000")  # take profit above the market: rests
    assert sell["status"] == "NEW"
    assert [f["orderId"] for f in sim.market(symbol="BTCUSDT", mark="59500")["filled"]] == [sell["orderId"]]
    assert c.futures_position_information() == []
    assert income(sim) == [("COMMISSION", "-0.116"), ("COMMISSION", "-0.118"), ("REALIZED_PNL", "10")]
    assert [(r["incomeType"], r["income"]) for r in c.futures_income_history(symbol="BTCUSDT")] == income(sim)
    assert c.futures_account()["totalWalletBalance"] == "10009.766"  # 10000 - 0.116 - 0.118 + 10
    log_events = [json.loads(line)["event"] for line in sim.log.read_text().splitlines()]
    assert "RESTING_ORDER_FILLED" in log_events and "MARKET_MOVED" in log_events


def test_executor_style_orders_fill_at_once_by_default(sim):
    """The lab's executor: LIMIT GTC at the ai-engine's reference price, both sides, every symbol."""
    state = sim.ctl("GET", "/_sim/market")[1]
    assert {s: (q["mark"], q["bid"], q["ask"]) for s, q in state["symbols"].items()} == {
        "BTCUSDT": ("60000", "60000", "60000"), "ETHUSDT": ("3000", "3000", "3000"), "SOLUSDT": ("150", "150", "150")}
    assert state["walk"]["running"] is False and sim.ctl("GET", "/_sim/state")[1]["market"] == state
    c = sim.client()
    for symbol, price, qty in (("BTCUSDT", "60000", "0.002"), ("ETHUSDT", "3000", "0.033"), ("SOLUSDT", "150", "1")):
        for side in ("BUY", "SELL"):
            order = limit(c, side, price, qty=qty, symbol=symbol)
            assert (order["status"], order["avgPrice"], order["executedQty"]) == ("FILLED", price, qty)
    assert c.futures_get_open_orders() == [] and c.futures_position_information() == []
    time.sleep(0.3)
    assert sim.ctl("GET", "/_sim/market")[1]["symbols"] == state["symbols"]  # nothing moves by itself


def test_stuck_orders_holds_matching_until_the_market_moves_again(sim):
    sim.faults("stuck_orders")
    c = sim.client()
    stuck = limit(c, "BUY", "60000")  # crosses, but the fault keeps it resting (backdated)
    assert stuck["status"] == "NEW"
    assert sim.market(symbol="BTCUSDT", mark="59000")["filled"] == []  # the matching engine is stuck
    sim.faults()
    assert c.futures_get_order(symbol="BTCUSDT", orderId=stuck["orderId"])["status"] == "NEW"  # as documented
    [filled] = sim.market(symbol="BTCUSDT", mark="59000")["filled"]
    assert (filled["orderId"], filled["price"]) == (stuck["orderId"], "60000")


def test_reduce_only_resting_order_expires_when_it_would_not_reduce(sim):
    c = sim.client()
    c.futures_create_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.05")
    tp = limit(c, "SELL", "3100", qty="0.05", symbol="ETHUSDT", reduceOnly="true")
    assert tp["status"] == "NEW" and tp["reduceOnly"] is True
    c.futures_create_order(symbol="ETHUSDT", side="SELL", type="MARKET", quantity="0.05")  # closed by hand
    assert sim.market(symbol="ETHUSDT", mark="3200")["filled"] == []
    assert c.futures_get_order(symbol="ETHUSDT", orderId=tp["orderId"])["status"] == "EXPIRED"
    assert c.futures_position_information() == []


def test_seeded_walk_is_deterministic_and_bounded(sim):
    def walk(seed, steps=60):
        sim.ctl("POST", "/_sim/reset")
        out = sim.market(walk={"seed": seed, "step_bps": 50, "max_dev_pct": 2}, steps=steps)
        assert out["walk"] == {"seed": seed, "interval_s": 0.0, "step_bps": "50", "max_dev_pct": "2",
                               "steps": steps, "running": False}
        return {s: q["mark"] for s, q in out["symbols"].items()}

    first = walk(7)
    assert walk(7) == first and walk(8) != first
    assert first != {"BTCUSDT": "60000", "ETHUSDT": "3000", "SOLUSDT": "150"}
    for sym, mark in first.items():
        ref = {"BTCUSDT": 60000, "ETHUSDT": 3000, "SOLUSDT": 150}[sym]
        assert abs(float(mark) / ref - 1) <= 0.02
    # on a timer: it moves by itself, a resting order in its way fills; stopping it freezes the mark
    sim.ctl("POST", "/_sim/reset")
    c = sim.client()
    near = limit(c, "BUY", "59990")  # one 10 bps step below 60000 is 59940
    sim.market(walk={"seed": 3, "interval_s": 0.02})
    deadline = time.monotonic() + 10
    while c.futures_get_order(symbol="BTCUSDT", orderId=near["orderId"])["status"] == "NEW":
        assert time.monotonic() < deadline, sim.ctl("GET", "/_sim/market")[1]
        time.sleep(0.02)
    assert c.futures_get_order(symbol="BTCUSDT", orderId=near["orderId"])["avgPrice"] == "59990"
    stopped = sim.market(walk={"interval_s": 0})
    assert stopped["walk"]["running"] is False and stopped["walk"]["steps"] > 0
    time.sleep(0.1)
    assert sim.ctl("GET", "/_sim/market")[1]["symbols"] == stopped["symbols"]
    sim.ctl("POST", "/_sim/reset")  # back to the reference and the startup walk
    assert sim.ctl("GET", "/_sim/market")[1]["symbols"]["BTCUSDT"]["mark"] == "60000"


def test_market_shift_reset_and_validation(sim):
    c = sim.client()
    sell = limit(c, "SELL", "60000", symbol="BTCUSDT")  # crosses at the reference: fills at once
    assert sell["status"] == "FILLED"
    moved = sim.market(shift_pct=-3)  # every symbol 3 % below its reference
    assert {s: q["mark"] for s, q in moved["symbols"].items()} == {
        "BTCUSDT": "58200", "ETHUSDT": "2910", "SOLUSDT": "145.5"}
    rest = limit(c, "SELL", "60000", qty="0.002")  # the executor's SELL at the reference now rests
    assert rest["status"] == "NEW"
    assert [p["unRealizedProfit"] for p in c.futures_position_information()] == ["18"]  # short 0.01 from 60000
    back = sim.market(reset=True)  # the market comes back: the resting SELL fills at its limit
    assert [f["orderId"] for f in back["filled"]] == [rest["orderId"]]
    for bad in ({"symbol": "DOGEUSDT", "mark": "1"}, {"symbol": "BTCUSDT", "mark": "-1"}, {"mark": "59000"},
                {"symbol": "BTCUSDT", "mark": "59000", "bid": "59010", "ask": "59000"}, {"shift_pct": -100},
                {"walk": {"seed": 1, "speed": 2}}, {"walk": {"interval_s": -1}}, {"steps": -1}, {"meteor": 1},
                {"symbol": "BTCUSDT", "mark": "59000", "shift_pct": 1}):
        status, body = sim.ctl("POST", "/_sim/market", bad)
        assert status == 400 and body["error"].startswith("bad market"), (bad, body)
    assert sim.ctl("GET", "/_sim/market")[1]["symbols"]["BTCUSDT"]["mark"] == "60000"  # a 400 changes nothing


def test_walk_from_the_environment(tmp_path):
    proc = SimProcess(tmp_path, SIM_SEED="11", SIM_WALK_INTERVAL_S="0.02", SIM_WALK_STEP_BPS="5")
    try:
        walk = proc.ctl("GET", "/_sim/market")[1]["walk"]
        assert (walk["seed"], walk["interval_s"], walk["step_bps"], walk["running"]) == (11, 0.02, "5", True)
        deadline = time.monotonic() + 5
        while proc.ctl("GET", "/_sim/market")[1]["walk"]["steps"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # the same seed by hand gives the same marks as the timer did, step for step
        timer = proc.market(walk={"interval_s": 0})
        by_hand = proc.market(reset=True, walk={"interval_s": 0, "seed": 11}, steps=timer["walk"]["steps"])
        assert by_hand["symbols"].keys() == timer["symbols"].keys()
        assert {s: q["mark"] for s, q in by_hand["symbols"].items()} == {
            s: q["mark"] for s, q in timer["symbols"].items()}
    finally:
        proc.stop()
