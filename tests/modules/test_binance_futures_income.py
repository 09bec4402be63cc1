"""quantum.runbooks.binance_futures_income against lab/images/binance_sim/sim.py as a local process.

Income comes from real fills (python-binance orders: COMMISSION, REALIZED_PNL) and from records seeded with
POST /_sim/income; the oracle is GET /_sim/income (every record the simulator booked). No Docker, no lab.
"""
import time
from decimal import Decimal

from ansible_run import run_module
from sim_process import KEYS, assert_no_secrets, run_in_process

from ansible_collections.quantum.runbooks.plugins.modules import binance_futures_income as mod

TEST_KEY, TEST_SECRET = KEYS["testnet"]


def run(sim, check=False, **over):
    return run_in_process(mod, sim, check, **over)


def now_ms():
    return int(time.time() * 1000)


def seed(sim, *records):
    status, body = sim.ctl("POST", "/_sim/income", {"records": list(records)})
    assert status == 200, body
    return body["seeded"]


def oracle(sim, start_ms, end_ms):
    """What the simulator booked in the window, summed by type and asset."""
    sums = {}
    for r in sim.ctl("GET", "/_sim/income?personality=testnet")[1]:
        if start_ms <= r["time"] <= end_ms:
            by = sums.setdefault(r["incomeType"], {})
            by[r["asset"]] = by.get(r["asset"], Decimal(0)) + Decimal(r["income"])
    return {k: {a: format(v.normalize(), "f") if v else "0" for a, v in by.items()} for k, by in sums.items()}


def paths(sim, since=0):
    return [(r["method"], r["path"]) for r in sim.ctl("GET", "/_sim/requests?personality=testnet")[1][since:]]


def trade_round_trip(sim):
    """Open and close a position the way the executor trades: commissions and a realized loss."""
    c = sim.client()
    sim.market(symbol="BTCUSDT", mark="61000")  # a marketable LIMIT fills at the book: put the book at 61000
    c.futures_create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
                           price="61000")
    sim.market(reset=True)  # back to the reference, 60000
    c.futures_create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")


# ---------------------------------------------------------------- the window's income

def test_sums_equal_the_simulators_income_in_the_window(sim):
    start = now_ms() - 60_000
    seed(sim, {"incomeType": "FUNDING_FEE", "income": "-0.75", "symbol": "ETHUSDT", "time": start - 1},  # before
         {"incomeType": "FUNDING_FEE", "income": "0.25", "symbol": "ETHUSDT", "age_s": 30},
         {"incomeType": "TRANSFER", "income": "100", "age_s": 20})
    trade_round_trip(sim)
    end = now_ms() + 1
    seed(sim, {"incomeType": "FUNDING_FEE", "income": "-9", "symbol": "BTCUSDT", "time": end + 1000})  # after
    since = len(paths(sim))
    r, failure = run(sim, start_time=str(start), end_time=str(end))
    assert failure is None and r["status"] == "ok" and r["reason"] is None and r["changed"] is False
    assert r["totals_by_type"] == oracle(sim, start, end) == {
        "FUNDING_FEE": {"USDT": "0.25"}, "TRANSFER": {"USDT": "100"}, "COMMISSION": {"USDT": "-0.484"},
        "REALIZED_PNL": {"USDT": "-10"}}
    assert r["net"] == {"USDT": "89.766"} and r["count"] == 5 and r["pages"] == 1
    assert r["totals_by_symbol"] == {"": {"USDT": "100"}, "BTCUSDT": {"USDT": "-10.484"}, "ETHUSDT": {"USDT": "0.25"}}
    assert {"symbol": "BTCUSDT", "incomeType": "COMMISSION", "asset": "USDT", "income": "-0.484", "count": 2} in \
        r["totals"]
    assert [x["time"] for x in r["records"]] == sorted(x["time"] for x in r["records"])
    assert r["summary"].startswith("5 income records ") and "net 89.766 USDT (COMMISSION -0.484 USDT, " in r["summary"]
    assert paths(sim, since) == [("GET", "/fapi/v1/time"), ("GET", "/fapi/v1/income")]  # reads only

    r, _ = run(sim, check=True, start_time=str(start), end_time=str(end), symbols=["btcusdt"],
               income_types=["realized_pnl"])
    assert r["net"] == {"USDT": "-10"} and r["count"] == 1 and r["records"][0]["incomeType"] == "REALIZED_PNL"


def test_pages_by_time_without_losing_or_repeating_a_record(sim):
    base = now_ms() - 600_000
    # 2 500 records; 40 of them share one millisecond right where the first page ends
    records = [{"incomeType": "COMMISSION", "income": "-0.01", "symbol": "BTCUSDT", "time": base + i}
               for i in range(980)]
    records += [{"incomeType": "FUNDING_FEE", "income": "0.02", "symbol": "ETHUSDT", "time": base + 980}] * 40
    records += [{"incomeType": "REALIZED_PNL", "income": "0.5", "symbol": "BTCUSDT", "time": base + 1000 + i}
                for i in range(1480)]
    seed(sim, *records)
    r, failure = run(sim, start_time=str(base), end_time=str(base + 10_000))
    assert failure is None and r["status"] == "ok" and r["count"] == 2500 and r["pages"] == 3
    assert len({x["tranId"] for x in r["records"]}) == 2500
    assert r["totals_by_type"] == oracle(sim, base, base + 10_000) == {
        "COMMISSION": {"USDT": "-9.8"}, "FUNDING_FEE": {"USDT": "0.8"}, "REALIZED_PNL": {"USDT": "740"}}
    assert [p["params"]["startTime"] for p in sim.ctl("GET", "/_sim/requests?personality=testnet")[1]
            if p["path"] == "/fapi/v1/income"] == [str(base), str(base + 980), str(base + 1959)]

    r, _ = run(sim, start_time=str(base), end_time=str(base + 10_000), page_size=500, max_pages=2)
    assert r["status"] == "partial" and r["count"] == 999 and r["pages"] == 2  # page 2 repeats page 1's last ms
    assert r["reason"] == "more than 2 pages of 500 records: raise max_pages or shorten the window"
    assert r["summary"].startswith("PARTIAL (more than 2 pages") and r["covered_until"] < r["end_time"]


def test_more_records_in_one_millisecond_than_a_page_is_partial(sim):
    ms = now_ms() - 5000
    seed(sim, *[{"incomeType": "FUNDING_FEE", "income": "1", "symbol": "BTCUSDT", "time": ms}] * 7,
         {"incomeType": "FUNDING_FEE", "income": "1", "symbol": "BTCUSDT", "time": ms + 1})
    r, _ = run(sim, start_time=str(ms - 1), page_size=5)
    assert r["status"] == "partial" and r["count"] == 6  # 5 of the 7, then the next millisecond
    assert r["reason"].startswith("more than 5 records in one millisecond (")


def test_the_simulator_refuses_bad_income_records(sim):
    for bad in ({"incomeType": "GIFT", "income": "1"}, {"incomeType": "FUNDING_FEE", "income": "NaN"},
                {"incomeType": "FUNDING_FEE", "income": "1", "symbol": "DOGEUSDT"}, {"income": "1"}):
        status, body = sim.ctl("POST", "/_sim/income", {"records": [{"incomeType": "TRANSFER", "income": "5"}, bad]})
        assert status == 400 and body["error"].startswith("bad income: ")
    assert sim.ctl("GET", "/_sim/income?personality=testnet") == (200, [])  # all or nothing
    assert sim.ctl("GET", "/_sim/income?personality=spot")[0] == 400


# ---------------------------------------------------------------- the exchange cannot answer: unknown, not failed

def test_unknown_with_the_reason_never_a_failure(sim):
    start = str(now_ms() - 60_000)
    sim.faults("binance_418")
    since = len(paths(sim))
    r, failure = run(sim, start_time=start)
    assert failure is None and r["status"] == "unknown" and r["count"] is None and r["net"] == {}
    assert r["reason"].startswith("IP banned by Binance (HTTP 418) for 120 s")
    assert r["summary"] == "income unknown: " + r["reason"]
    assert paths(sim, since) == [("GET", "/fapi/v1/time")]  # nothing signed into a ban
    sim.faults("binance_down")
    r, failure = run(sim, start_time=start)
    assert failure is None and r["status"] == "unknown" and r["reason"].startswith("Binance unreachable (refused")
    sim.faults("bad_credentials")
    r, failure = run(sim, start_time=start)
    assert failure is None and r["reason"].startswith("Binance rejected the API key (HTTP 401, -2015: ")
    sim.faults()
    r, failure = run(sim, start_time=start, api_secret="wrong-secret")
    assert failure is None and r["status"] == "unknown" and "-1022" in r["reason"]
    p, _ = mod.effective_params(dict({n: o.get("default") for n, o in mod.argument_spec().items()},
                                     futures_url=sim.url(), start_time=start), set())
    r, failure = mod.run(p, False)
    assert failure is None and r["status"] == "unknown" and r["reason"].startswith("no API key")


def test_a_long_429_after_the_first_page_keeps_what_was_read(sim):
    base = now_ms() - 60_000
    seed(sim, *[{"incomeType": "COMMISSION", "income": "-1", "symbol": "BTCUSDT", "time": base + i}
                for i in range(15)])
    assert sim.ctl("POST", "/_sim/faults/next", {"after": 1, "status": 429, "retry_after": 30})[0] == 200
    r, failure = run(sim, start_time=str(base), page_size=10)
    assert failure is None and r["status"] == "partial" and r["count"] == 10 and r["net"] == {"USDT": "-10"}
    assert r["reason"].startswith("stopped after 10 records: rate limited by Binance (HTTP 429, Retry-After 30 s")


def test_bad_arguments_fail():
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    for over, problem in (({"start_time": "yesterday"}, "start_time and end_time must be ISO 8601"),
                          ({"start_time": "2026-11-28T12:00:00Z", "end_time": "2026-11-28T11:00:00Z"},
                           "end_time must be after start_time"),
                          ({"start_time": "2026-11-28T12:00:00Z", "page_size": 1001}, "page_size must be 1 to 1000"),
                          ({"start_time": "2026-11-28T12:00:00Z", "futures_url": "ftp://x"}, "futures_url must be")):
        eff, _ = mod.effective_params(dict(p, **over), set())
        assert mod.check_own_params(eff).startswith(problem)


# ---------------------------------------------------------------- through Ansible

def test_module_end_to_end(sim, monkeypatch):
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):  # the key comes from the task only
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    trade_round_trip(sim)
    args = {"futures_url": sim.url(), "testnet": True, "timeout": 2, "api_key": TEST_KEY, "api_secret": TEST_SECRET,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))}
    r, output = run_module("binance_futures_income", args, check=True)
    assert not r.get("failed") and r["changed"] is False and r["status"] == "ok" and r["count"] == 3
    assert r["totals_by_type"]["REALIZED_PNL"] == {"USDT": "-10"}
    assert r["invocation"]["module_args"]["api_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_no_secrets(output)
    sim.faults("binance_418")
    r, output = run_module("binance_futures_income", args)
    assert not r.get("failed") and r["status"] == "unknown" and "IP banned" in r["reason"]
    assert_no_secrets(output)
    r, output = run_module("binance_futures_income", dict(args, start_time="last tuesday"))
    assert r["failed"] is True and r["msg"].startswith("start_time and end_time must be ISO 8601")
