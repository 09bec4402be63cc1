#!/usr/bin/env python
"""Quick fix 2 at scale: 200 stale orders of the executor on 20 symbols, cancelled by the collection's
module against a one-request-per-order loop, on the local Binance simulator (no lab, no Docker).

The simulator is lab/images/binance_sim/sim.py on free loopback ports (tests/sim_process.SimProcess), with
17 symbols more than the lab's three (SIM_EXTRA_SYMBOLS). Each run starts from a reset simulator seeded with
200 resting orders 10 minutes old whose clientOrderId starts with the executor's prefix (qtx-, the module's
client_order_prefix), 10 per symbol, plus 5 manual orders (clientOrderId web_manual-...) on 5 of the
symbols, just as old, that must be left alone. Then:

  module  quantum.runbooks.binance_futures_orders, state=cancelled, called in-process like tests/modules do,
          with the options roles/cancel_stuck_orders sends (every symbol, prefix qtx-, 5 minutes, no foreign
          orders) and max_cancels=200: the role's default 100 refuses 200 targets (shown first). Per symbol
          it sends one DELETE allOpenOrders, or batchOrders (10 ids a call) where a manual order rests too,
          then re-reads every target (GET /fapi/v1/order) to see how it ended.
  naive   one GET /fapi/v1/openOrders, then one DELETE /fapi/v1/order per own order, same key.

Requests, weight and HTTP statuses come from the simulator's control API (GET /_sim/state, totals since
the reset), the split by endpoint from its request log. Prints them with 429s, wall time and ratios
module/naive, and a DEFECT line if a manual order was touched or an own order is still open.
No thresholds, no assertions; exit 1 only on a DEFECT. Usage: .venv/bin/python bench/cancel.py [--runs 3]
"""
import argparse
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / ".collections")]

from sim_process import SimProcess, run_in_process  # tests/ is not a package: on sys.path above

from ansible_collections.quantum.runbooks.plugins.modules import binance_futures_orders as mod

EXTRA = ["XRPUSDT", "DOGEUSDT", "ADAUSDT", "BNBUSDT", "LTCUSDT", "LINKUSDT", "DOTUSDT", "AVAXUSDT", "TRXUSDT",
         "ATOMUSDT", "NEARUSDT", "APTUSDT", "ARBUSDT", "OPUSDT", "FILUSDT", "UNIUSDT", "ETCUSDT"]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", *EXTRA]
PRICES = {"BTCUSDT": "50000", "ETHUSDT": "2500", "SOLUSDT": "120"}  # below the mark: they rest
PREFIX, PER_SYMBOL, AGE_S = "qtx-", 10, 600
MANUAL_ON = SYMBOLS[::4]  # 5 symbols with a human's order beside ours
# What roles/cancel_stuck_orders sends (tasks/cancel_orders.yml, defaults/main.yml), without the container.
ROLE_OPTIONS = {"state": "cancelled", "client_order_prefix": PREFIX, "include_foreign_orders": False,
                "stuck_after_minutes": 5.0, "max_cancels": 100, "timeout": 10.0}


def seed(sim):
    """Reset the simulator and seed the book; (own order ids, manual orders as seeded)."""
    status, _dummy = sim.ctl("POST", "/_sim/reset")
    if status != 200:
        raise SystemExit("the simulator did not reset")
    own = []
    for symbol in SYMBOLS:
        for i in range(PER_SYMBOL):
            own.append(sim.seed(symbol=symbol, price=PRICES.get(symbol, "90"), quantity="0.1",
                                client_order_id=f"{PREFIX}{symbol.lower()}{i:02d}", age_s=AGE_S + i)["orderId"])
    manual = [sim.seed(symbol=symbol, price=PRICES.get(symbol, "90"), quantity="0.1", side="SELL" if i % 2 else "BUY",
                       client_order_id=f"web_manual-{i}", age_s=3600) for i, symbol in enumerate(MANUAL_ON)]
    return own, manual


def tally(sim, own, manual):
    """Requests, weight, statuses and the split by endpoint since the reset; what happened to the orders."""
    totals = sim.ctl("GET", "/_sim/state")[1]["personalities"]["testnet"]["totals"]
    log = sim.ctl("GET", "/_sim/requests?personality=testnet")[1]
    paths = Counter(f"{r['method']} {r['path']}" for r in log)
    orders = {o["orderId"]: o for o in sim.ctl("GET", "/_sim/orders?personality=testnet")[1]}
    touched = [m["clientOrderId"] for m in manual
               if (orders[m["orderId"]]["status"], orders[m["orderId"]]["updateTime"]) != ("NEW", m["updateTime"])]
    manual_ids = {m["orderId"] for m in manual}
    touched += [f"request {r['method']} {r['path']} {r['params'].get('symbol')} names a manual order" for r in log
                if r["method"] == "DELETE" and str(r["params"].get("orderId")) in {str(i) for i in manual_ids}]
    still_open = [i for i in own if orders[i]["status"] != "CANCELED"]
    return {"requests": totals["requests"], "weight": totals["weight"], "by_status": totals["by_status"],
            "429": totals["by_status"].get("429", 0), "paths": paths, "touched": touched, "still_open": still_open,
            "logged": len(log)}


def run_module(sim, own, manual, **over):
    start = time.perf_counter()
    result, failure = run_in_process(mod, sim, **{**ROLE_OPTIONS, **over})
    wall = time.perf_counter() - start
    out = tally(sim, own, manual)
    out.update(wall=wall, failure=failure, calls=Counter(c["kind"] for c in result["calls"]),
               summary=result["summary"])
    return out


def run_naive(sim, own, manual):
    client = sim.client(timeout=10)
    start = time.perf_counter()
    errors = 0
    for order in client.futures_get_open_orders():
        if order["clientOrderId"].startswith(PREFIX):
            try:
                client.futures_cancel_order(symbol=order["symbol"], orderId=order["orderId"])
            except Exception:  # a naive loop carries on; the tally shows what is left open
                errors += 1
    wall = time.perf_counter() - start
    out = tally(sim, own, manual)
    out.update(wall=wall, failure=f"{errors} cancels failed" if errors else None, calls=Counter(), summary=None)
    return out


def line(name, r):
    paths = ", ".join(f"{n} {p}" for p, n in sorted(r["paths"].items()))
    return (f"{name:8} requests {r['requests']:4}  weight {r['weight']:4}  429s {r['429']}  wall {r['wall']:5.2f} s"
            f"   ({paths})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per way (median wall time; default 3)")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 20))
    for sig in (signal.SIGTERM, signal.SIGHUP):  # like Ctrl-C: the simulator is stopped on the way out
        signal.signal(sig, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="qtbench-cancel-") as tmp:
        sim = SimProcess(Path(tmp), SIM_EXTRA_SYMBOLS=",".join(EXTRA))
        try:
            own, manual = seed(sim)
            capped = run_module(sim, own, manual)  # the role's default max_cancels
            results = {"module": [], "naive": []}
            for _dummy in range(runs):  # interleaved, each from a fresh seed
                own, manual = seed(sim)
                results["module"].append(run_module(sim, own, manual, max_cancels=len(own)))
                own, manual = seed(sim)
                results["naive"].append(run_naive(sim, own, manual))
        finally:
            sim.stop()
    print(f"{len(own)} own orders ({PREFIX}..., {AGE_S // 60} min old) on {len(SYMBOLS)} symbols + {len(manual)} "
          f"manual ones on {len(MANUAL_ON)} of them; local simulator; median wall of {runs} run(s)")
    print(f"with the role's default max_cancels {ROLE_OPTIONS['max_cancels']}: "
          f"{'refused, ' if capped['failure'] else ''}{len(own) - len(capped['still_open'])} cancelled, "
          f"{capped['requests']} requests, weight {capped['weight']}: {capped['failure'] or capped['summary']}")
    med = {}
    for way, rs in results.items():
        last = dict(rs[-1], wall=statistics.median(r["wall"] for r in rs))
        med[way] = last
        varying = {(r["requests"], r["weight"]) for r in rs}
        if len(varying) > 1:
            print(f"note: {way} requests/weight varied between runs: {sorted(varying)}")
    module, naive = med["module"], med["naive"]
    print(line("naive", naive))
    print(line("module", module) + "   calls: " + ", ".join(f"{n} {k}" for k, n in sorted(module["calls"].items())))
    cancels = {way: sum(n for p, n in r["paths"].items() if p.startswith("DELETE")) for way, r in med.items()}
    print(f"ratio module/naive: requests {module['requests'] / naive['requests']:.2f}x, weight "
          f"{module['weight'] / naive['weight']:.2f}x, cancel requests {cancels['module']}/{cancels['naive']} = "
          f"{cancels['module'] / cancels['naive']:.2f}x, wall {module['wall'] / naive['wall']:.2f}x; "
          f"429s: module {module['429']}, naive {naive['429']}")
    print(f"module summary: {module['summary']}")
    defects = 0
    for way, rs in results.items():
        for r in rs:
            if r["touched"]:
                defects += 1
                print(f"DEFECT: {way} touched manual orders: {r['touched']}")
            if r["still_open"] or r["failure"]:
                defects += 1
                print(f"DEFECT: {way} left {len(r['still_open'])} own orders open ({r['failure']})")
    if capped["touched"]:
        defects += 1
        print(f"DEFECT: the capped run touched manual orders: {capped['touched']}")
    if not defects:
        print("manual orders: untouched by every run; every own order CANCELED in every run")
    return 1 if defects else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the simulator was stopped", file=sys.stderr)
        sys.exit(130)
