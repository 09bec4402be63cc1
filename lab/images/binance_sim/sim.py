#!/usr/bin/env python
"""Binance USD-M futures REST simulator for the lab (stdlib only, Python 3.11).

Two personalities (mainnet, testnet) with their own keys and books, plus a control API that
injects faults (contract: docs/lab-interfaces.md, "binance-sim"). Shapes, error codes and messages
follow the project's Binance USD-M reference notes; python-binance 1.0.37 works against it unmodified.
"""

import hashlib
import hmac
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_dec(name, default):
    return Decimal(os.environ.get(name) or default)


BIND = os.environ.get("SIM_BIND_HOST", "0.0.0.0")
PORTS = {"mainnet": env_int("SIM_MAINNET_PORT", 8080), "testnet": env_int("SIM_TESTNET_PORT", 8081)}
CONTROL_PORT = env_int("SIM_CONTROL_PORT", 8099)
RETRY_AFTER_429 = env_int("SIM_RETRY_AFTER_429_S", 30)
RETRY_AFTER_418 = env_int("SIM_RETRY_AFTER_418_S", 120)
CLOCK_SKEW_MS = env_int("SIM_CLOCK_SKEW_MS", 30000)
BACKDATE_S = env_int("SIM_BACKDATE_S", 600)
HOLD_MAX_S = env_int("SIM_TIMEOUT_HOLD_MAX_S", 300)  # binance_timeout never holds longer than this
MAX_RECORDS = 10000  # cap on stored orders, income and trades per personality

WEIGHT_LIMIT = 2400
ORDERS_LIMIT = 1200
# Taker fills (at once, against the book) pay TAKER_RATE, fills of resting orders MAKER_RATE. Binance's regular
# tier is 0.02 % maker / 0.05 % taker; the simulator keeps its historical 0.04 % taker rate (docs/lab-interfaces.md).
TAKER_RATE = Decimal("0.0004")
MAKER_RATE = Decimal("0.0002")
# The market (docs/lab-interfaces.md, "Matching"): a mark price per symbol, at the reference price and not moving
# unless POST /_sim/market moves it or a seeded random walk is switched on (SIM_WALK_INTERVAL_S > 0).
SEED = env_int("SIM_SEED", 1)
WALK_INTERVAL_S = float(os.environ.get("SIM_WALK_INTERVAL_S") or 0)  # 0: no walk timer (the default)
WALK_STEP_BPS = env_dec("SIM_WALK_STEP_BPS", "10")  # one step moves the mark by 0 or +-10 basis points
WALK_MAX_DEV_PCT = env_dec("SIM_WALK_MAX_DEV_PCT", "4")  # the walk stays within +-4 % of the reference
LEVERAGE = 20
START_BALANCE = Decimal("10000")
MIN_NOTIONAL = Decimal("5")
FAULTS = ("binance_down", "binance_timeout", "binance_429", "binance_418",
          "bad_credentials", "clock_skew", "stuck_orders")
ALGO_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD")
# symbol -> (reference/mark price, price tick, quantity step)
SYMBOLS = {
    "BTCUSDT": (Decimal("60000"), "0.10", "0.001"),
    "ETHUSDT": (Decimal("3000"), "0.01", "0.001"),
    "SOLUSDT": (Decimal("150"), "0.0100", "1"),
}
# More symbols for benches (SIM_EXTRA_SYMBOLS=AAAUSDT,BBBUSDT): each at reference 100, tick 0.01, step 0.001.
for _extra in filter(None, os.environ.get("SIM_EXTRA_SYMBOLS", "").upper().replace(" ", "").split(",")):
    SYMBOLS.setdefault(_extra, (Decimal("100"), "0.01", "0.001"))
MSG_1003_429 = ("Too many requests; current limit is %d requests per minute. "
                "Please use the websocket for live updates to avoid polling the API.")
MSG_1003_418 = "Way too many requests; IP(%s) banned until %d. Please use the websocket for live updates to avoid bans."
MSG_1102 = "Mandatory parameter '%s' was not sent, was empty/null, or malformed."
MSG_503_UNKNOWN = "Unknown error, please check your request or try again later."
MSG_5021 = "Due to the order could not be filled immediately, the FOK order has been rejected."
MSG_5022 = "Due to the order could not be executed as maker, the Post Only order will be rejected."
OPEN = ("NEW", "PARTIALLY_FILLED")  # statuses that rest in the book and can be cancelled
# GET /fapi/v1/income incomeType values (reference notes, section 10.4); POST /_sim/income accepts these
INCOME_TYPES = ("TRANSFER", "WELCOME_BONUS", "REALIZED_PNL", "FUNDING_FEE", "COMMISSION", "INSURANCE_CLEAR",
                "REFERRAL_KICKBACK", "COMMISSION_REBATE", "API_REBATE", "CONTEST_REWARD",
                "CROSS_COLLATERAL_TRANSFER", "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT", "INTERNAL_TRANSFER",
                "AUTO_EXCHANGE", "DELIVERED_SETTELMENT", "COIN_SWAP_DEPOSIT", "COIN_SWAP_WITHDRAW",
                "POSITION_LIMIT_INCREASE_FEE", "STRATEGY_UMFUTURES_TRANSFER", "FEE_RETURN", "BFUSD_REWARD")
NEXT_FAULT_STATUSES = (418, 429, 503)
REQUEST_LOG_MAX = 2000


LOG_LOCK = threading.Lock()


def log(level, event, **fields):
    now = datetime.now(timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
    line = {"ts": ts, "level": level, "service": "binance-sim", "event": event, "correlation_id": None}
    line.update(fields)
    with LOG_LOCK:  # print() from many threads can interleave a line and its newline
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def fmt(d):
    """Decimal -> Binance-style string: fixed point, at most 8 decimals, no trailing zeros."""
    if d == 0:
        return "0"
    s = format(d.quantize(Decimal("1e-8")), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


class ApiError(Exception):
    def __init__(self, code, msg, status=400, headers=None):
        super().__init__(msg)
        self.code, self.msg, self.status, self.headers = code, msg, status, headers or {}


def missing(name):
    return ApiError(-1102, MSG_1102 % name)


# ---------------------------------------------------------------- parameters

def need(p, name):
    if p.get(name, "") == "":
        raise missing(name)
    return p[name]


def dec(p, name):
    """A positive decimal parameter (quantity, price)."""
    try:
        value = Decimal(need(p, name))
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0:
        raise missing(name)
    return value


def opt_int(p, name, default=None):
    try:
        return int(p[name]) if p.get(name) else default
    except ValueError:
        raise missing(name) from None


def symbol_of(p, required=True):
    if not p.get("symbol") and not required:
        return None
    sym = need(p, "symbol").upper()
    if sym not in SYMBOLS:
        raise ApiError(-1121, "Invalid symbol.")
    return sym


def on_tick(sym, price):
    """A price on the symbol's tick grid (PRICE_FILTER tickSize)."""
    tick = Decimal(SYMBOLS[sym][1])
    return (Decimal(price) / tick).to_integral_value(ROUND_HALF_EVEN) * tick


def json_list(p, *names):
    """Batch id lists arrive JSON-encoded; python-binance only encodes the lowercase spelling."""
    name = next((n for n in names if p.get(n)), None)
    if name is None:
        return None
    try:
        items = json.loads(p[name])
    except ValueError:
        items = None
    if not isinstance(items, list) or not 1 <= len(items) <= 10:
        raise ApiError(-1130, "Data sent for parameter '%s' is not valid." % name)
    return items


# ---------------------------------------------------------------- state

class Order:
    def __init__(self, order_id, client_id, symbol, side, otype, tif, price, qty, created, reduce_only=False):
        self.order_id, self.client_id, self.symbol, self.side = order_id, client_id, symbol, side
        self.type, self.tif, self.price, self.qty, self.reduce_only = otype, tif, price, qty, reduce_only
        self.time = self.update_time = created  # ms, server clock
        self.status, self.executed, self.avg = "NEW", Decimal(0), Decimal(0)

    def to_json(self):
        return {
            "orderId": self.order_id, "clientOrderId": self.client_id, "symbol": self.symbol,
            "status": self.status, "type": self.type, "origType": self.type, "side": self.side,
            "positionSide": "BOTH", "timeInForce": self.tif, "price": fmt(self.price),
            "avgPrice": fmt(self.avg), "origQty": fmt(self.qty), "executedQty": fmt(self.executed),
            "cumQty": fmt(self.executed), "cumQuote": fmt(self.executed * self.avg), "stopPrice": "0",
            "closePosition": False, "reduceOnly": self.reduce_only, "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
            "goodTillDate": 0, "time": self.time, "updateTime": self.update_time,
        }


@dataclass
class Position:
    amt: Decimal = Decimal(0)  # signed: negative is short
    entry: Decimal = Decimal(0)
    update_time: int = 0


class Book:
    """One personality's account: orders, positions, income, trades and rate counters."""

    def __init__(self, name, key, secret):
        self.name, self.key, self.secret = name, key, secret
        self.orders = {}  # orderId -> Order, insertion ordered
        self.positions = {s: Position() for s in SYMBOLS}
        self.income = deque(maxlen=MAX_RECORDS)
        self.trades = deque(maxlen=MAX_RECORDS)
        self.wallet = START_BALANCE
        self.next_id = 8_000_000_001 if name == "mainnet" else 4_000_000_001
        self.weights = {}  # ip -> {epoch second: weight}
        self.totals = {"requests": 0, "weight": 0, "by_status": {}}  # every API request since the reset
        self.order_times = deque()  # ms of accepted new orders in the last minute
        self.countdowns = {}  # symbol -> {"countdown_ms", "deadline" (monotonic), "timer"}
        self.countdowns_fired = deque(maxlen=100)  # {"symbol", "ts", "cancelled"} per expiry

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def open_orders(self, symbol=None):
        return [o for o in self.orders.values() if o.status in OPEN and symbol in (None, o.symbol)]

    def store(self, order):
        self.orders[order.order_id] = order
        while len(self.orders) > MAX_RECORDS:  # drop the oldest closed order, else the oldest one
            victim = next((i for i, o in self.orders.items() if o.status not in OPEN), next(iter(self.orders)))
            del self.orders[victim]

    def find(self, symbol, order_id=None, client_id=None):
        for o in reversed(self.orders.values()):
            if o.symbol == symbol and (o.order_id == order_id if order_id is not None else o.client_id == client_id):
                return o
        return None

    def add_weight(self, ip, weight):
        """Rolling one-minute IP weight kept in per-second buckets (bounded: 60 entries per IP)."""
        sec = int(time.time())
        buckets = self.weights.setdefault(ip, {})
        for old in [s for s in buckets if s <= sec - 60]:
            del buckets[old]
        buckets[sec] = buckets.get(sec, 0) + weight
        for idle in [i for i, b in self.weights.items() if max(b, default=0) <= sec - 60]:
            del self.weights[idle]  # forget clients silent for a minute
        return sum(buckets.values())

    def used_weight(self):
        sec = int(time.time())
        return {ip: sum(w for s, w in b.items() if s > sec - 60) for ip, b in self.weights.items()}

    def count_order(self):
        now = time.time() * 1000
        while self.order_times and self.order_times[0] <= now - 60000:
            self.order_times.popleft()
        self.order_times.append(now)
        return sum(1 for t in self.order_times if t > now - 10000), len(self.order_times)

    # -- fills: move the position, book commission and realized PnL
    def fill(self, order, price, ts, qty=None, maker=False):
        """Fill `qty` (default: the rest) of the order at `price`; a remainder leaves it PARTIALLY_FILLED.

        `maker`: the order rested in the book and the market came to it (maker rate), else it took the
        book at once (taker rate)."""
        qty = min(qty or order.qty - order.executed, order.qty - order.executed)
        order.avg = (order.avg * order.executed + price * qty) / (order.executed + qty)
        order.executed += qty
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        order.update_time = ts
        signed = qty if order.side == "BUY" else -qty
        pos = self.positions[order.symbol]
        realized = None
        new_amt = pos.amt + signed
        if pos.amt != 0 and (pos.amt > 0) != (signed > 0):  # the fill reduces the position
            closed = min(abs(signed), abs(pos.amt))
            realized = (price - pos.entry) * closed * (1 if pos.amt > 0 else -1)
            if new_amt == 0:
                pos.entry = Decimal(0)
            elif (new_amt > 0) != (pos.amt > 0):  # flipped: the remainder opens at the fill price
                pos.entry = price
        else:
            pos.entry = (pos.entry * abs(pos.amt) + price * qty) / abs(new_amt)
        pos.amt, pos.update_time = new_amt, ts
        trade_id = self.new_id()
        commission = price * qty * (MAKER_RATE if maker else TAKER_RATE)
        self.record(order.symbol, "COMMISSION", -commission, ts, trade_id)
        if realized is not None:
            self.record(order.symbol, "REALIZED_PNL", realized, ts, trade_id)
        self.trades.append({
            "buyer": order.side == "BUY", "commission": fmt(commission), "commissionAsset": "USDT",
            "id": trade_id, "maker": maker, "orderId": order.order_id, "price": fmt(price), "qty": fmt(qty),
            "quoteQty": fmt(price * qty), "realizedPnl": fmt(realized or Decimal(0)), "side": order.side,
            "positionSide": "BOTH", "symbol": order.symbol, "time": ts, "marginAsset": "USDT",
        })

    def record(self, symbol, kind, amount, ts, trade_id):
        self.wallet += amount
        self.income.append({"symbol": symbol, "incomeType": kind, "income": fmt(amount), "asset": "USDT",
                            "info": kind, "time": ts, "tranId": self.new_id(), "tradeId": str(trade_id)})

    def stop_countdowns(self):
        for armed in self.countdowns.values():
            armed["timer"].cancel()
        self.countdowns.clear()

    def armed_countdowns(self):
        now = time.monotonic()
        return {sym: {"countdown_ms": a["countdown_ms"], "remaining_ms": max(0, int((a["deadline"] - now) * 1000))}
                for sym, a in sorted(self.countdowns.items())}

    def counts(self):
        return {"open_orders": len(self.open_orders()), "orders_total": len(self.orders),
                "positions": sum(1 for p in self.positions.values() if p.amt != 0), "income": len(self.income),
                "trades": len(self.trades), "used_weight": self.used_weight(),
                "countdowns": self.armed_countdowns(), "countdowns_fired": list(self.countdowns_fired),
                "totals": dict(self.totals, by_status=dict(self.totals["by_status"]))}


class Sim:
    def __init__(self, keys):
        self.keys = keys  # personality -> (key, secret)
        self.lock = threading.RLock()
        self.listener_lock = threading.Lock()  # serialises closing/reopening the API sockets
        self.fault_changed = threading.Condition(self.lock)
        self.faults = set()
        self.held = 0  # requests parked by binance_timeout
        self.servers = {}  # personality -> ThreadingHTTPServer while listening
        self.next_fault = None  # {"after", "status", "count", "retry_after"}: see take_next_fault
        self.requests = deque(maxlen=REQUEST_LOG_MAX)  # API requests, for tests (no keys, no signatures)
        self.books = {}
        self.reset_books()
        # the market, shared by both personalities: symbol -> {"mark", "bid", "ask", "time"}
        self.quotes, self.walk, self.rng, self.walk_stop = {}, {}, None, None
        self.reset_market()

    def reset_books(self):
        for book in self.books.values():
            book.stop_countdowns()
        self.books = {name: Book(name, *self.keys[name]) for name in PORTS}
        self.requests.clear()

    # -- the market: a mark price and a top of book per symbol, and the matching of resting orders

    def reference_quotes(self):
        now = self.server_ms()
        return {sym: {"mark": ref, "bid": ref, "ask": ref, "time": now}
                for sym, (ref, _dummy, _dummy2) in SYMBOLS.items()}

    def reset_market(self):
        """Every symbol back at its reference price (bid = ask = mark), the walk as configured at start.
        Called under self.lock."""
        self.quotes = self.reference_quotes()
        self.configure_walk({"seed": SEED, "interval_s": WALK_INTERVAL_S, "step_bps": WALK_STEP_BPS,
                             "max_dev_pct": WALK_MAX_DEV_PCT})

    def configure_walk(self, spec):
        """(Re)configure the seeded random walk; a `seed` restarts its sequence, `interval_s` > 0 runs it on a
        timer (0 stops the timer; POST /_sim/market {"steps": N} still steps it by hand). Called under self.lock."""
        if self.walk_stop is not None:
            self.walk_stop.set()
            self.walk_stop = None
        walk = {**self.walk, **spec}
        if "seed" in spec or self.rng is None:
            self.rng, walk["steps"] = random.Random(int(walk["seed"])), 0
        self.walk = walk
        if walk["interval_s"] > 0:
            stop = self.walk_stop = threading.Event()
            threading.Thread(target=self.walk_loop, args=(stop, walk["interval_s"]), daemon=True).start()

    def walk_loop(self, stop, interval_s):
        while not stop.wait(interval_s):
            with self.lock:
                if stop.is_set():  # reconfigured while waiting for the lock
                    return
                self.walk_step()

    def walk_step(self):
        """One step of the walk for every symbol (fixed order, so a seed gives one sequence): the mark moves by
        -1, 0 or +1 times step_bps, turning back at max_dev_pct from the reference; the spread is kept.
        Returns the orders it filled. Called under self.lock."""
        step, max_dev = Decimal(self.walk["step_bps"]) / 10000, Decimal(self.walk["max_dev_pct"]) / 100
        for sym, (ref, _dummy, _dummy2) in SYMBOLS.items():
            mark = self.quotes[sym]["mark"]
            move = self.rng.choice((-1, 0, 1))
            new = mark * (1 + move * step)
            if abs(new / ref - 1) > max_dev:
                new = mark * (1 - move * step)
            self.set_quote(sym, new, match=False)
        self.walk["steps"] += 1
        return self.match()

    def new_quote(self, sym, old, mark, bid=None, ask=None):
        """A symbol's next quote: mark on the tick grid; bid/ask given, or kept at their distance from the mark
        (a book at the mark by default). Raises ValueError, changes nothing."""
        mark = on_tick(sym, mark)
        bid = on_tick(sym, bid) if bid is not None else mark - (old["mark"] - old["bid"])
        ask = on_tick(sym, ask) if ask is not None else mark + (old["ask"] - old["mark"])
        if not 0 < bid <= ask:
            raise ValueError("need 0 < bid <= ask, got bid %s ask %s" % (fmt(bid), fmt(ask)))
        return {"mark": mark, "bid": bid, "ask": ask, "time": self.server_ms()}

    def set_quote(self, sym, mark, match=True):
        """Move a symbol's mark (the spread kept); then resting orders the book now crosses fill."""
        self.quotes[sym] = self.new_quote(sym, self.quotes[sym], mark)
        return self.match(sym) if match else []

    def crosses(self, side, price, sym):
        """A BUY at or above the best ask, a SELL at or below the best bid, takes the book."""
        quote = self.quotes[sym]
        return price >= quote["ask"] if side == "BUY" else price <= quote["bid"]

    def match(self, symbol=None):
        """Resting orders the book now crosses fill at their own limit price as makers (the market came to
        them). Nothing matches while stuck_orders holds the matching engine. Called under self.lock."""
        if "stuck_orders" in self.faults:
            return []
        filled = []
        for book in self.books.values():
            for order in book.open_orders(symbol):
                if order.type != "LIMIT" or not self.crosses(order.side, order.price, order.symbol):
                    continue  # a resting BUY at P fills once the ask is at or below P, a SELL once the bid is >= P
                pos, rest = book.positions[order.symbol].amt, order.qty - order.executed
                if order.reduce_only and (pos == 0 or (pos > 0) == (order.side == "BUY") or rest > abs(pos)):
                    order.status, order.update_time = "EXPIRED", self.server_ms()  # would no longer reduce
                    log("INFO", "ORDER_EXPIRED", personality=book.name, symbol=order.symbol,
                        order_id=order.order_id, reason="reduce-only order would not reduce the position")
                    continue
                book.fill(order, order.price, self.server_ms(), maker=True)
                filled.append({"personality": book.name, "symbol": order.symbol, "orderId": order.order_id,
                               "clientOrderId": order.client_id, "side": order.side, "price": fmt(order.price),
                               "qty": fmt(rest)})
                log("INFO", "RESTING_ORDER_FILLED", personality=book.name, symbol=order.symbol,
                    order_id=order.order_id, side=order.side, price=fmt(order.price), qty=fmt(rest))
        return filled

    def market_state(self):
        walk = {k: (fmt(v) if isinstance(v, Decimal) else v) for k, v in self.walk.items()}
        walk["running"] = self.walk_stop is not None
        return {"symbols": {sym: {"mark": fmt(q["mark"]), "bid": fmt(q["bid"]), "ask": fmt(q["ask"]),
                                  "reference": fmt(SYMBOLS[sym][0]), "time": q["time"]}
                            for sym, q in self.quotes.items()},
                "walk": walk}

    def offset_ms(self):
        return CLOCK_SKEW_MS if "clock_skew" in self.faults else 0

    def server_ms(self):
        return int(time.time() * 1000) + self.offset_ms()

    def set_faults(self, faults):
        with self.lock:
            self.faults = set(faults)
            self.next_fault = None  # setting faults (a reset too) also clears a pending one-shot fault
            self.fault_changed.notify_all()  # wakes requests held by binance_timeout
        self.sync_listeners()

    def take_next_fault(self):
        """The HTTP status a signed request must get from the pending /_sim/faults/next fault, or None.

        The first `after` signed requests pass, the next `count` get `status`; then the fault is gone.
        """
        with self.lock:
            nf = self.next_fault
            if nf is None:
                return None
            if nf["after"] > 0:
                nf["after"] -= 1
                return None
            nf["count"] -= 1
            if nf["count"] <= 0:
                self.next_fault = None
            return nf

    def arm_countdown(self, book, symbol, countdown_ms):
        """countdownCancelAll: (re)start the symbol's timer; 0 stops it. Called under self.lock."""
        armed = book.countdowns.pop(symbol, None)
        if armed:
            armed["timer"].cancel()
        if countdown_ms == 0:
            return
        timer = threading.Timer(countdown_ms / 1000.0, self.fire_countdown)
        timer.args = (book, symbol, timer)  # fire_countdown ignores a timer that was replaced meanwhile
        timer.daemon = True
        book.countdowns[symbol] = {"countdown_ms": countdown_ms, "timer": timer,
                                   "deadline": time.monotonic() + countdown_ms / 1000.0}
        timer.start()

    def fire_countdown(self, book, symbol, timer):
        with self.lock:
            armed = book.countdowns.get(symbol)
            if armed is None or armed["timer"] is not timer:
                return
            del book.countdowns[symbol]
            cancelled = [cancel(self, o)["orderId"] for o in book.open_orders(symbol)]
            book.countdowns_fired.append({"symbol": symbol, "ts": self.server_ms(), "cancelled": len(cancelled)})
        log("WARN", "COUNTDOWN_FIRED", personality=book.name, symbol=symbol, cancelled=cancelled)

    def record_request(self, personality, method, path, status, code, params, arrived_ms):
        """`ts` is when the request arrived (it belongs to the incident it arrived in, even when
        binance_timeout held it and answered it minutes later), `answered_ts` when it was answered."""
        hidden = ("signature", "timestamp", "recvWindow")
        with self.lock:
            self.requests.append({"ts": arrived_ms, "answered_ts": self.server_ms(), "personality": personality,
                                  "method": method,
                                  "path": path, "status": status, "code": code,
                                  "params": {k: v for k, v in params.items() if k not in hidden}})

    def sync_listeners(self):
        """binance_down closes the API listening sockets; clearing it reopens them."""
        with self.listener_lock:
            for name, port in PORTS.items():
                self.sync_listener(name, port)

    def sync_listener(self, name, port):
        server = self.servers.get(name)
        if "binance_down" in self.faults and server:
            server.shutdown()
            server.server_close()  # the port now refuses connections
            del self.servers[name]
            log("WARN", "LISTENER_CLOSED", personality=name, port=port)
        elif "binance_down" not in self.faults and not server:
            try:
                self.servers[name] = serve(port, api_handler(self, name))
                log("INFO", "LISTENER_OPEN", personality=name, port=port)
            except OSError as e:  # reported in /_sim/state "listening"
                log("ERROR", "LISTENER_FAILED", personality=name, port=port, error=str(e))

    def hold(self):
        """binance_timeout: park the request (no CPU) until the fault clears or HOLD_MAX_S passes."""
        deadline = time.monotonic() + HOLD_MAX_S
        with self.fault_changed:
            self.held += 1
            while "binance_timeout" in self.faults and time.monotonic() < deadline:
                self.fault_changed.wait(deadline - time.monotonic())
            self.held -= 1

    def state(self):
        with self.lock:
            per = {name: b.counts() for name, b in self.books.items()}
            return {"faults": sorted(self.faults), "clock_offset_ms": self.offset_ms(),
                    "orders": {n: c["open_orders"] for n, c in per.items()},
                    "listening": {n: n in self.servers for n in PORTS}, "held_requests": self.held,
                    "next_fault": dict(self.next_fault) if self.next_fault else None,
                    "countdowns": {n: c["countdowns"] for n, c in per.items()},
                    "market": self.market_state(), "personalities": per}


# ---------------------------------------------------------------- API endpoints
# Each takes (sim, book, params) and returns a JSON-able payload; called under sim.lock.

def r_exchange_info(sim, book, p):
    symbols = []
    for sym, (ref, tick, step) in SYMBOLS.items():
        symbols.append({
            "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": sym[:-4], "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": len(tick.split(".")[1]),
            "quantityPrecision": len(step.split(".")[1]) if "." in step else 0, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "triggerProtect": "0.0500",
            "orderTypes": ["LIMIT", "MARKET", *ALGO_TYPES], "timeInForce": list(TIME_IN_FORCE),
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": fmt(ref * 20), "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
                {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120", "stepSize": step},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(MIN_NOTIONAL)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
        })
    limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": WEIGHT_LIMIT},
              {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": ORDERS_LIMIT}]
    return {"timezone": "UTC", "serverTime": sim.server_ms(), "futuresType": "U_MARGINED", "rateLimits": limits,
            "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True}], "symbols": symbols}


def r_new_order(sim, book, p):
    sym = symbol_of(p)
    side = need(p, "side").upper()
    if side not in ("BUY", "SELL"):
        raise ApiError(-1117, "Invalid side.")
    otype = need(p, "type").upper()
    if otype in ALGO_TYPES:
        raise ApiError(-4120, "Order type not supported for this endpoint. "
                              "Please use the Algo Order API endpoints instead.")
    if otype not in ("LIMIT", "MARKET"):
        raise ApiError(-1116, "Invalid orderType.")
    if p.get("positionSide", "BOTH").upper() != "BOTH":  # the sim accounts are in one-way mode
        raise ApiError(-4061, "Order's position side does not match user's setting.")
    qty = dec(p, "quantity")
    tif = need(p, "timeInForce").upper() if otype == "LIMIT" else "GTC"
    if tif not in TIME_IN_FORCE:
        raise ApiError(-1115, "Invalid timeInForce.")
    price = dec(p, "price") if otype == "LIMIT" else Decimal(0)
    quote = sim.quotes[sym]
    book_price = quote["ask"] if side == "BUY" else quote["bid"]  # what a taker gets: the best opposite price
    reduce_only = p.get("reduceOnly", "false").lower() == "true"
    pos = book.positions[sym].amt
    if reduce_only and (pos == 0 or (pos > 0) == (side == "BUY") or qty > abs(pos)):
        raise ApiError(-2022, "ReduceOnly Order is rejected.")
    if not reduce_only and (price if otype == "LIMIT" else book_price) * qty < MIN_NOTIONAL:
        raise ApiError(-4164, "Order's notional must be no smaller than %s (unless you choose reduce only)"
                       % fmt(MIN_NOTIONAL))
    client_id = p.get("newClientOrderId") or "x-sim" + uuid.uuid4().hex[:22]
    if len(client_id) > 36 or any(not (c.isascii() and (c.isalnum() or c in ".:/_-")) for c in client_id):
        raise ApiError(-4015, "Client order id is not valid.")
    now = sim.server_ms()
    stuck = otype == "LIMIT" and "stuck_orders" in sim.faults
    takes = otype == "MARKET" or sim.crosses(side, price, sym)
    if not stuck and takes and tif == "GTX":  # post-only would take the book: rejected, not recorded
        raise ApiError(-5022, MSG_5022)
    if not stuck and not takes and tif == "FOK":  # cannot fill at once: rejected, not recorded
        raise ApiError(-5021, MSG_5021)
    order = Order(book.new_id(), client_id, sym, side, otype, tif, price, qty, now, reduce_only=reduce_only)
    if stuck:
        order.time = order.update_time = now - BACKDATE_S * 1000  # looks older than a 5-minute threshold
        if tif in ("IOC", "FOK"):  # nothing fills while stuck, and these may not rest
            order.status = "EXPIRED"
    elif takes:  # MARKET, or a LIMIT that crosses: fills at once at the book's price (never worse than the limit)
        book.fill(order, book_price, now)
    elif tif == "IOC":  # nothing to take at once, and IOC never rests
        order.status = "EXPIRED"
    # else (GTC, GTD, GTX): rests NEW until the market comes to it (Sim.match), a cancel, or a countdown
    book.store(order)
    return order.to_json()


def lookup(book, p, not_found):
    sym = symbol_of(p)
    order_id = opt_int(p, "orderId")
    client_id = p.get("origClientOrderId") or None
    if order_id is None and client_id is None:
        raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    order = book.find(sym, order_id, client_id)
    if order is None:
        raise not_found
    return order


def cancel(sim, order):
    order.status, order.update_time = "CANCELED", sim.server_ms()
    return order.to_json()


def r_get_order(sim, book, p):
    return lookup(book, p, ApiError(-2013, "Order does not exist.")).to_json()


def r_cancel_order(sim, book, p):
    unknown = ApiError(-2011, "Unknown order sent.")
    order = lookup(book, p, unknown)
    if order.status not in OPEN:
        raise unknown
    return cancel(sim, order)


def r_all_orders(sim, book, p):
    sym = symbol_of(p)
    start, end, from_id = opt_int(p, "startTime", 0), opt_int(p, "endTime", 2**62), opt_int(p, "orderId", 0)
    limit = min(max(opt_int(p, "limit", 500), 1), 1000)
    rows = [o.to_json() for o in book.orders.values()
            if o.symbol == sym and start <= o.time <= end and o.order_id >= from_id]
    return rows[:limit] if p.get("orderId") else rows[-limit:]


def r_cancel_all(sim, book, p):
    for order in book.open_orders(symbol_of(p)):
        cancel(sim, order)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def r_batch_cancel(sim, book, p):
    sym = symbol_of(p)
    ids = json_list(p, "orderidlist", "orderIdList")
    cids = None if ids is not None else json_list(p, "origclientorderidlist", "origClientOrderIdList")
    if ids is None and cids is None:
        raise missing("orderIdList")
    out = []
    for item in ids if ids is not None else cids:
        try:
            order = book.find(sym, int(item)) if ids is not None else book.find(sym, client_id=str(item))
        except (TypeError, ValueError):
            order = None
        if order is None or order.status not in OPEN:
            out.append({"code": -2011, "msg": "Unknown order sent."})
        else:
            out.append(cancel(sim, order))
    return out


def r_countdown(sim, book, p):
    """Auto-cancel all open orders of the symbol when no new call arrives within countdownTime ms."""
    sym = symbol_of(p)
    countdown_ms = opt_int(p, "countdownTime")
    if countdown_ms is None or countdown_ms < 0:
        raise missing("countdownTime")
    sim.arm_countdown(book, sym, countdown_ms)
    log("INFO", "COUNTDOWN_SET", personality=book.name, symbol=sym, countdown_ms=countdown_ms)
    return {"symbol": sym, "countdownTime": str(countdown_ms)}  # a string, as Binance sends it


def position_numbers(sim, sym, pos):
    mark = sim.quotes[sym]["mark"]
    notional = pos.amt * mark
    return mark, notional, pos.amt * (mark - pos.entry), abs(notional) / LEVERAGE  # cross, 20x


def r_position_risk(version):
    def handler(sim, book, p):
        only, rows = symbol_of(p, required=False), []
        for sym, pos in book.positions.items():
            # v3 lists only symbols with a position or open orders
            if only not in (None, sym) or (version == 3 and pos.amt == 0 and not book.open_orders(sym)):
                continue
            mark, notional, upnl, margin = position_numbers(sim, sym, pos)
            row = {"symbol": sym, "positionSide": "BOTH", "positionAmt": fmt(pos.amt), "entryPrice": fmt(pos.entry),
                   "breakEvenPrice": fmt(pos.entry), "markPrice": fmt(mark), "unRealizedProfit": fmt(upnl),
                   "liquidationPrice": "0", "isolatedMargin": "0", "notional": fmt(notional),
                   "isolatedWallet": "0", "updateTime": pos.update_time}
            row.update({"leverage": str(LEVERAGE), "maxNotionalValue": "10000000", "marginType": "cross",
                        "isAutoAddMargin": "false"} if version == 2 else
                       {"marginAsset": "USDT", "initialMargin": fmt(margin), "maintMargin": fmt(margin / 10),
                        "positionInitialMargin": fmt(margin), "openOrderInitialMargin": "0", "adl": 0,
                        "bidNotional": "0", "askNotional": "0"})
            rows.append(row)
        return rows
    return handler


def account_totals(sim, book):
    upnl = margin = Decimal(0)
    for sym, pos in book.positions.items():
        _dummy, _dummy2, u, m = position_numbers(sim, sym, pos)
        upnl, margin = upnl + u, margin + m
    wallet, available = fmt(book.wallet), fmt(book.wallet + upnl - margin)
    return {"totalInitialMargin": fmt(margin), "totalMaintMargin": fmt(margin / 10), "totalWalletBalance": wallet,
            "totalUnrealizedProfit": fmt(upnl), "totalMarginBalance": fmt(book.wallet + upnl),
            "totalPositionInitialMargin": fmt(margin), "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": wallet, "totalCrossUnPnl": fmt(upnl), "availableBalance": available,
            "maxWithdrawAmount": available}


def r_account(version):
    def handler(sim, book, p):
        t = account_totals(sim, book)
        asset = {"asset": "USDT", "walletBalance": t["totalWalletBalance"],
                 "unrealizedProfit": t["totalUnrealizedProfit"], "marginBalance": t["totalMarginBalance"],
                 "maintMargin": t["totalMaintMargin"], "initialMargin": t["totalInitialMargin"],
                 "positionInitialMargin": t["totalPositionInitialMargin"], "openOrderInitialMargin": "0",
                 "crossWalletBalance": t["totalWalletBalance"], "crossUnPnl": t["totalCrossUnPnl"],
                 "availableBalance": t["availableBalance"], "maxWithdrawAmount": t["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": sim.server_ms()}
        positions = []
        for sym, pos in book.positions.items():
            if version == 3 and pos.amt == 0:
                continue  # v3 lists open positions only
            _dummy, notional, upnl, margin = position_numbers(sim, sym, pos)
            row = {"symbol": sym, "positionSide": "BOTH", "positionAmt": fmt(pos.amt), "unrealizedProfit": fmt(upnl),
                   "isolatedMargin": "0", "notional": fmt(notional), "isolatedWallet": "0",
                   "initialMargin": fmt(margin), "maintMargin": fmt(margin / 10), "updateTime": pos.update_time}
            if version == 2:
                row.update({"positionInitialMargin": fmt(margin), "openOrderInitialMargin": "0",
                            "leverage": str(LEVERAGE), "isolated": False, "entryPrice": fmt(pos.entry),
                            "maxNotional": "10000000", "bidNotional": "0", "askNotional": "0"})
            positions.append(row)
        head = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1} if version == 2 else {}
        return {**head, **t, "assets": [asset], "positions": positions}
    return handler


def r_balance(sim, book, p):
    t = account_totals(sim, book)
    return [{"accountAlias": "SgsR" + book.name[:4], "asset": "USDT", "balance": t["totalWalletBalance"],
             "crossWalletBalance": t["totalWalletBalance"], "crossUnPnl": t["totalCrossUnPnl"],
             "availableBalance": t["availableBalance"], "maxWithdrawAmount": t["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": sim.server_ms()}]


def time_window(sim, p, default_days=7):
    """startTime/endTime filter; with neither, the last `default_days` days."""
    now = sim.server_ms()
    start, end = opt_int(p, "startTime"), opt_int(p, "endTime")
    if start is None and end is None:
        start = now - default_days * 86400000
    return start or 0, end if end is not None else 2**62


def pick(rows, p, default_limit):
    limit = min(max(opt_int(p, "limit", default_limit), 1), 1000)
    return rows[:limit] if p.get("startTime") else rows[-limit:]  # from startTime forward, else the latest


def r_income(sim, book, p):
    start, end = time_window(sim, p)
    sym, kind = symbol_of(p, required=False), p.get("incomeType") or None
    rows = [r for r in book.income if start <= r["time"] <= end and sym in (None, r["symbol"])
            and kind in (None, r["incomeType"])]
    return pick(rows, p, 100)


def r_user_trades(sim, book, p):
    sym = symbol_of(p)
    start, end = time_window(sim, p)
    order_id = opt_int(p, "orderId")
    rows = [t for t in book.trades if t["symbol"] == sym and start <= t["time"] <= end
            and order_id in (None, t["orderId"])]
    return pick(rows, p, 500)


def r_mark_price(sim, book, p):
    """GET /fapi/v1/premiumIndex: the mark price (index = mark, no funding in the simulator)."""
    def row(sym):
        q = sim.quotes[sym]
        return {"symbol": sym, "markPrice": fmt(q["mark"]), "indexPrice": fmt(q["mark"]),
                "estimatedSettlePrice": fmt(q["mark"]), "lastFundingRate": "0", "interestRate": "0",
                "nextFundingTime": 0, "time": q["time"]}
    sym = symbol_of(p, required=False)
    return row(sym) if sym else [row(s) for s in SYMBOLS]


def r_book_ticker(sim, book, p):
    """GET /fapi/v1/ticker/bookTicker: best bid/ask (the simulator's book is deep: quantities are nominal)."""
    def row(sym):
        q = sim.quotes[sym]
        return {"symbol": sym, "bidPrice": fmt(q["bid"]), "bidQty": "1000", "askPrice": fmt(q["ask"]),
                "askQty": "1000", "time": q["time"]}
    sym = symbol_of(p, required=False)
    return row(sym) if sym else [row(s) for s in SYMBOLS]


# (method, path) -> (weight, signed, handler); weight may depend on params
ROUTES = {
    ("GET", "/fapi/v1/ping"): (1, False, lambda sim, book, p: {}),
    ("GET", "/api/v3/ping"): (1, False, lambda sim, book, p: {}),  # spot ping, for Client(ping=True)
    ("GET", "/fapi/v1/time"): (1, False, lambda sim, book, p: {"serverTime": sim.server_ms()}),
    ("GET", "/fapi/v1/exchangeInfo"): (1, False, r_exchange_info),
    ("GET", "/fapi/v1/premiumIndex"): (lambda p: 1 if p.get("symbol") else 10, False, r_mark_price),
    ("GET", "/fapi/v1/ticker/bookTicker"): (lambda p: 2 if p.get("symbol") else 5, False, r_book_ticker),
    ("POST", "/fapi/v1/order"): (0, True, r_new_order),
    ("GET", "/fapi/v1/order"): (1, True, r_get_order),
    ("DELETE", "/fapi/v1/order"): (1, True, r_cancel_order),
    ("GET", "/fapi/v1/openOrders"): (lambda p: 1 if p.get("symbol") else 40, True,
                                     lambda sim, book, p: [o.to_json() for o in book.open_orders(symbol_of(p, False))]),
    ("GET", "/fapi/v1/allOrders"): (5, True, r_all_orders),
    ("DELETE", "/fapi/v1/allOpenOrders"): (1, True, r_cancel_all),
    ("DELETE", "/fapi/v1/batchOrders"): (1, True, r_batch_cancel),
    ("POST", "/fapi/v1/countdownCancelAll"): (10, True, r_countdown),
    ("GET", "/fapi/v2/positionRisk"): (5, True, r_position_risk(2)),
    ("GET", "/fapi/v3/positionRisk"): (5, True, r_position_risk(3)),
    ("GET", "/fapi/v2/account"): (5, True, r_account(2)),
    ("GET", "/fapi/v3/account"): (5, True, r_account(3)),
    ("GET", "/fapi/v3/balance"): (5, True, r_balance),
    ("GET", "/fapi/v1/income"): (30, True, r_income),
    ("GET", "/fapi/v1/userTrades"): (5, True, r_user_trades),
}


# ---------------------------------------------------------------- authentication

def authenticate(sim, book, headers, params, raw_query, raw_body):
    """Key, timestamp and HMAC checks in Binance's order; raises ApiError."""
    key = headers.get("X-MBX-APIKEY", "")
    if not key or len(key) > 128 or not all(c.isascii() and c.isalnum() for c in key):
        raise ApiError(-2014, "API-key format invalid.", 401)
    if "bad_credentials" in sim.faults or not hmac.compare_digest(key.encode(), book.key.encode()):
        raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    signature = need(params, "signature").lower()
    need(params, "timestamp")
    stamp, recv_window, server = opt_int(params, "timestamp"), opt_int(params, "recvWindow", 5000), sim.server_ms()
    if stamp >= server + 1000:
        raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server - stamp > recv_window:
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
    # totalParams = query string + body, signed up to "&signature=" (GI; python-binance puts it last)
    total = raw_query + raw_body
    cut = 0 if total.startswith("signature=") else total.find("&signature=")
    payload = total[:max(cut, 0)]
    expected = hmac.new(book.secret.encode(), payload.encode("latin-1"), hashlib.sha256).hexdigest()
    if cut < 0 or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise ApiError(-1022, "Signature for this request is not valid.")


# ---------------------------------------------------------------- HTTP layer

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(port, handler):
    server = Server((BIND, port), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


class JsonHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so binance_down is not bypassed by kept-alive sockets
    protocol_version = "HTTP/1.0"
    personality = "control"

    def log_message(self, *args):  # stdout carries JSON lines only; access logs come from log_request
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("latin-1") if length else ""

    def reply(self, status, payload, headers=None, code=None):
        data = json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. after its read timeout)
        log("INFO" if status < 400 else "WARN", "HTTP", method=self.command, path=urlsplit(self.path).path,
            status=status, code=code, personality=self.personality)


def limit_error(sim, status, ip, retry_after):
    """-1003 as a 429 (rate limited) or a 418 (IP banned until now + Retry-After)."""
    if status == 418:
        until = sim.server_ms() + retry_after * 1000
        return ApiError(-1003, MSG_1003_418 % (ip, until), 418, {"Retry-After": retry_after})
    return ApiError(-1003, MSG_1003_429 % WEIGHT_LIMIT, 429, {"Retry-After": retry_after})


def api_handler(sim, name):
    class ApiHandler(JsonHandler):
        personality = name

        def do_GET(self):
            self.handle_api()

        do_POST = do_PUT = do_DELETE = do_GET

        def handle_api(self):
            arrived_ms = sim.server_ms()
            url = urlsplit(self.path)
            raw_body = self.body()
            # params from the form body and the query; the query wins (GI)
            params = {k: v[0] for k, v in parse_qs(raw_body, keep_blank_values=True).items()}
            params.update({k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
            route = ROUTES.get((self.command, url.path))
            book = sim.books[name]
            weight = (route[0](params) if callable(route[0]) else route[0]) if route else 1
            with sim.lock:
                used = book.add_weight(self.client_address[0], weight)
                book.totals["requests"] += 1
                book.totals["weight"] += weight
            headers = {"X-MBX-USED-WEIGHT-1M": used}
            status, code = 200, None
            try:
                payload = self.run(route, book, params, url.query, raw_body, used, headers)
                self.reply(200, payload, headers)
            except ApiError as e:
                status, code = e.status, e.code
                self.reply(e.status, {"code": e.code, "msg": e.msg}, {**headers, **e.headers}, e.code)
            except Exception as e:  # a simulator bug: answer like Binance's 5xx rather than hang up
                log("ERROR", "HANDLER_ERROR", path=url.path, error=repr(e))
                status, code = 500, -1000
                self.reply(500, {"code": -1000, "msg": "An unknown error occured while processing the request."},
                           headers, -1000)
            with sim.lock:
                book.totals["by_status"][str(status)] = book.totals["by_status"].get(str(status), 0) + 1
            sim.record_request(name, self.command, url.path, status, code, params, arrived_ms)

        def run(self, route, book, params, raw_query, raw_body, used, headers):
            if "binance_timeout" in sim.faults:
                sim.hold()
                raise ApiError(-1007, "Timeout waiting for response from backend server. "
                                      "Send status unknown; execution status unknown.", 503)
            if "binance_418" in sim.faults:
                raise limit_error(sim, 418, self.client_address[0], RETRY_AFTER_418)
            if "binance_429" in sim.faults:
                raise limit_error(sim, 429, self.client_address[0], RETRY_AFTER_429)
            if used > WEIGHT_LIMIT:
                retry = 60 - int(time.time()) % 60  # simplification: until the next minute boundary
                raise ApiError(-1003, MSG_1003_429 % WEIGHT_LIMIT, 429, {"Retry-After": retry})
            if route is None:
                raise ApiError(-1000, "An unknown error occured while processing the request.", 404)
            _dummy, signed, func = route
            injected = sim.take_next_fault() if signed else None
            if injected is not None:
                log("WARN", "FAULT_INJECTED", path=urlsplit(self.path).path, status=injected["status"])
            if injected is not None and injected["status"] in (418, 429):
                raise limit_error(sim, injected["status"], self.client_address[0], injected["retry_after"])
            with sim.lock:
                try:
                    if signed:
                        authenticate(sim, book, self.headers, params, raw_query, raw_body)
                    if func is r_new_order:
                        ten_s, one_m = book.count_order()
                        headers.update({"X-MBX-ORDER-COUNT-10S": ten_s, "X-MBX-ORDER-COUNT-1M": one_m})
                    payload = func(sim, book, params)
                except ApiError:
                    if injected is None:
                        raise
            if injected is not None:  # 503: the request took effect, but the answer says "unknown"
                raise ApiError(-1000, MSG_503_UNKNOWN, 503)
            return payload

    return ApiHandler


def control_handler(sim):
    class ControlHandler(JsonHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_sim/healthz":
                return self.reply(200, {"status": "ok"})
            if url.path == "/_sim/state":
                return self.reply(200, sim.state())
            if url.path == "/_sim/market":
                with sim.lock:
                    return self.reply(200, sim.market_state())
            if url.path == "/_sim/orders":
                wanted = parse_qs(url.query).get("personality", list(PORTS))
                if any(w not in PORTS for w in wanted):
                    return self.reply(400, {"error": "personality must be one of %s" % list(PORTS)})
                with sim.lock:
                    orders = {n: [o.to_json() for o in sim.books[n].orders.values()] for n in wanted}
                return self.reply(200, orders[wanted[0]] if len(wanted) == 1 else orders)
            if url.path == "/_sim/positions":  # open (non-zero) positions, without an API request
                wanted = parse_qs(url.query).get("personality", ["testnet"])[0]
                if wanted not in PORTS:
                    return self.reply(400, {"error": "personality must be one of %s" % list(PORTS)})
                with sim.lock:
                    return self.reply(200, {sym: {"positionAmt": fmt(pos.amt), "entryPrice": fmt(pos.entry)}
                                            for sym, pos in sim.books[wanted].positions.items() if pos.amt != 0})
            if url.path == "/_sim/income":  # every income record, oldest first: the oracle for PnL tests
                wanted = parse_qs(url.query).get("personality", ["testnet"])[0]
                if wanted not in PORTS:
                    return self.reply(400, {"error": "personality must be one of %s" % list(PORTS)})
                with sim.lock:
                    return self.reply(200, list(sim.books[wanted].income))
            if url.path == "/_sim/requests":
                wanted = parse_qs(url.query).get("personality", list(PORTS))
                with sim.lock:
                    return self.reply(200, [r for r in sim.requests if r["personality"] in wanted])
            self.reply(404, {"error": "not found"})

        def do_PUT(self):
            if urlsplit(self.path).path != "/_sim/faults":
                return self.reply(404, {"error": "not found"})
            faults = self.json_body().get("faults")
            if not isinstance(faults, list) or any(f not in FAULTS for f in faults):
                return self.reply(400, {"error": "unknown fault", "known": list(FAULTS)})
            sim.set_faults(faults)
            log("INFO", "FAULTS_SET", faults=sorted(sim.faults))
            self.reply(200, sim.state())

        def do_POST(self):
            path = urlsplit(self.path).path
            if path == "/_sim/reset":
                with sim.lock:
                    sim.reset_books()
                    sim.reset_market()
                sim.set_faults([])
                log("INFO", "RESET")
                return self.reply(200, sim.state())
            if path == "/_sim/market":
                try:
                    return self.reply(200, move_market(sim, self.json_body()))
                except (KeyError, ValueError, TypeError, InvalidOperation, ApiError) as e:
                    return self.reply(400, {"error": "bad market: %s" % getattr(e, "msg", e)})
            if path == "/_sim/orders/fill":
                try:
                    return self.reply(200, {"filled": fill_resting(sim, self.json_body())})
                except (KeyError, ValueError, TypeError, InvalidOperation) as e:
                    return self.reply(400, {"error": "bad fill: %s" % e})
            if path == "/_sim/faults/next":
                try:
                    spec = next_fault_spec(self.json_body())
                except (KeyError, ValueError, TypeError) as e:
                    return self.reply(400, {"error": "bad next fault: %s" % e})
                with sim.lock:
                    sim.next_fault = spec
                log("INFO", "NEXT_FAULT_SET", **spec)
                return self.reply(200, sim.state())
            if path == "/_sim/income":
                try:
                    return self.reply(200, {"seeded": seed_income(sim, self.json_body())})
                except (KeyError, ValueError, TypeError, InvalidOperation) as e:
                    return self.reply(400, {"error": "bad income: %s" % e})
            if path == "/_sim/orders":
                try:
                    return self.reply(200, seed_order(sim, self.json_body()))
                except (ApiError, KeyError, ValueError, TypeError, InvalidOperation) as e:
                    return self.reply(400, {"error": "bad seed order: %s" % getattr(e, "msg", e)})
            self.reply(404, {"error": "not found"})

        def json_body(self):
            try:
                data = json.loads(self.body() or "{}")
            except ValueError:
                data = None
            return data if isinstance(data, dict) else {}

    return ControlHandler


def seed_order(sim, spec):
    """A resting LIMIT order placed 'by someone else' (e.g. a human), aged by age_s."""
    name = spec.get("personality", "testnet")
    if name not in PORTS:
        raise ValueError("personality must be one of %s" % list(PORTS))
    p = {"symbol": spec["symbol"], "quantity": str(spec["quantity"]), "price": str(spec["price"])}
    sym, qty, price = symbol_of(p), dec(p, "quantity"), dec(p, "price")
    side = str(spec.get("side", "BUY")).upper()
    if side not in ("BUY", "SELL"):
        raise ValueError("side must be BUY or SELL")
    with sim.lock:
        book = sim.books[name]
        created = sim.server_ms() - int(float(spec.get("age_s", 0)) * 1000)
        client_id = spec.get("client_order_id") or "x-sim" + uuid.uuid4().hex[:22]
        order = Order(book.new_id(), client_id, sym, side, "LIMIT", "GTC", price, qty, created)
        book.store(order)
        return order.to_json()


def seed_income(sim, spec):
    """Income records booked 'by the exchange' (funding fees, transfers, or PnL at a chosen time).

    ``{"personality": "testnet", "records": [{"incomeType", "income", "symbol", "time" (ms) | "age_s",
    "asset", "info"}]}``; each moves the wallet like a real one. The book stays in time order, so
    GET /fapi/v1/income pages by time as Binance does. Returns the stored records.
    """
    name = spec.get("personality", "testnet")
    if name not in PORTS:
        raise ValueError("personality must be one of %s" % list(PORTS))
    items = spec["records"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_RECORDS:
        raise ValueError("records must be a list of 1 to %d records" % MAX_RECORDS)
    with sim.lock:
        book, now, stored = sim.books[name], sim.server_ms(), []
        for item in items:
            kind = str(item["incomeType"]).upper()
            if kind not in INCOME_TYPES:
                raise ValueError("unknown incomeType %r" % kind)
            amount = Decimal(str(item["income"]))
            if not amount.is_finite():
                raise ValueError("income must be a finite number")
            symbol = str(item.get("symbol") or "").upper()
            if symbol and symbol not in SYMBOLS:
                raise ValueError("unknown symbol %r" % symbol)
            ts = int(item["time"]) if item.get("time") is not None else now - int(float(item.get("age_s", 0)) * 1000)
            stored.append({"symbol": symbol, "incomeType": kind, "income": fmt(amount),
                           "asset": str(item.get("asset") or "USDT"), "info": str(item.get("info") or kind),
                           "time": ts, "tranId": book.new_id(), "tradeId": str(item.get("tradeId") or "")})
        for record in stored:
            book.wallet += Decimal(record["income"])
        # sorted() is stable: records already booked keep their order within a millisecond
        book.income = deque(sorted([*book.income, *stored], key=lambda r: r["time"]), maxlen=MAX_RECORDS)
        return stored


def fill_resting(sim, spec):
    """The market moved through resting orders: fill them at their limit price (heals stuck_orders).

    Without `order_ids` every resting order of every personality fills completely; with them (and
    `personality`, default testnet) only those, by `quantity` each when given (a partial fill).
    """
    ids = spec.get("order_ids")
    qty = Decimal(str(spec["quantity"])) if spec.get("quantity") is not None else None
    if qty is not None and (not qty.is_finite() or qty <= 0):
        raise ValueError("quantity must be positive")
    with sim.lock:
        if ids is None:
            targets = [(book, order) for book in sim.books.values() for order in book.open_orders()]
        else:
            book = sim.books[spec.get("personality", "testnet")]
            targets = [(book, book.orders[int(i)]) for i in ids if book.orders[int(i)].status in OPEN]
        for book, order in targets:
            book.fill(order, order.price, sim.server_ms(), qty, maker=True)
        return len(targets)


def move_market(sim, spec):
    """POST /_sim/market: move the market (docs/lab-interfaces.md, "Matching"), all or nothing.

    In this order: `reset` (reference prices, the walk as at start), `walk` (seed, interval_s, step_bps,
    max_dev_pct; a seed restarts the sequence), a quote (`symbol` with `mark` and optional `bid`/`ask`, or
    `shift_pct` from the reference for `symbol` or every symbol), then `steps` walk steps. Resting orders the
    new book crosses fill (maker, at their limit price). Returns the market and the fills.
    """
    unknown = set(spec) - {"reset", "walk", "symbol", "mark", "bid", "ask", "shift_pct", "steps"}
    if unknown:
        raise ValueError("unknown field(s) %s" % sorted(unknown))
    walk = spec.get("walk")
    if walk is not None:
        if not isinstance(walk, dict) or set(walk) - {"seed", "interval_s", "step_bps", "max_dev_pct"}:
            raise ValueError("walk takes seed, interval_s, step_bps, max_dev_pct")
        walk = {k: (int(v) if k == "seed" else float(v) if k == "interval_s" else Decimal(str(v)))
                for k, v in walk.items()}
        if walk.get("interval_s", 0) < 0 or walk.get("step_bps", 0) < 0 or walk.get("max_dev_pct", 1) <= 0:
            raise ValueError("interval_s and step_bps must be >= 0, max_dev_pct > 0")
    sym = symbol_of({"symbol": str(spec["symbol"])}) if spec.get("symbol") is not None else None
    prices = {k: Decimal(str(spec[k])) for k in ("mark", "bid", "ask") if spec.get(k) is not None}
    if any(not v.is_finite() or v <= 0 for v in prices.values()):
        raise ValueError("mark, bid and ask must be positive")
    if prices and (sym is None or "mark" not in prices or spec.get("shift_pct") is not None):
        raise ValueError("a quote needs symbol and mark (bid/ask optional), without shift_pct")
    shift = Decimal(str(spec["shift_pct"])) if spec.get("shift_pct") is not None else None
    if shift is not None and not -100 < shift:
        raise ValueError("shift_pct must be above -100")
    steps = int(spec.get("steps", 0))
    if not 0 <= steps <= 100000:
        raise ValueError("steps must be 0..100000")
    with sim.lock:
        base = sim.reference_quotes() if spec.get("reset") else sim.quotes
        if prices:
            moved = {sym: sim.new_quote(sym, base[sym], prices["mark"], prices.get("bid"), prices.get("ask"))}
        elif shift is not None:
            moved = {s: sim.new_quote(s, base[s], SYMBOLS[s][0] * (1 + shift / 100))
                     for s in ([sym] if sym else SYMBOLS)}
        else:
            moved = {}  # everything is validated above this line: nothing changes on a 400
        if spec.get("reset"):
            sim.reset_market()
        if walk:
            sim.configure_walk(walk)
        sim.quotes.update(moved)
        filled = sim.match() if moved or spec.get("reset") else []
        for _dummy in range(steps):
            filled += sim.walk_step()
        log("INFO", "MARKET_MOVED", quotes={s: fmt(sim.quotes[s]["mark"]) for s in SYMBOLS}, steps=steps,
            filled=len(filled))
        return {**sim.market_state(), "filled": filled}


def next_fault_spec(spec):
    """The one-shot fault of POST /_sim/faults/next, validated."""
    status = int(spec["status"])
    if status not in NEXT_FAULT_STATUSES:
        raise ValueError("status must be one of %s" % list(NEXT_FAULT_STATUSES))
    after, count = int(spec.get("after", 0)), int(spec.get("count", 1))
    if after < 0 or count < 1:
        raise ValueError("after must be >= 0 and count >= 1")
    retry_after = int(spec.get("retry_after", RETRY_AFTER_418 if status == 418 else RETRY_AFTER_429))
    return {"after": after, "status": status, "count": count, "retry_after": retry_after}


def load_keys():
    names = {p: ("SIM_%s_API_KEY" % p.upper(), "SIM_%s_API_SECRET" % p.upper()) for p in PORTS}
    unset = [var for pair in names.values() for var in pair if not os.environ.get(var)]
    if unset:
        log("ERROR", "CONFIG_ERROR", error="required environment variables unset: " + ", ".join(unset))
        print("binance-sim: refusing to start, set " + ", ".join(unset), file=sys.stderr)
        sys.exit(2)
    return {p: (os.environ[k], os.environ[s]) for p, (k, s) in names.items()}


def main():
    sim = Sim(load_keys())
    try:
        control = Server((BIND, CONTROL_PORT), control_handler(sim))
        for name, port in PORTS.items():
            sim.servers[name] = serve(port, api_handler(sim, name))
            # port 0: the kernel's pick, kept so binance_down reopens the same port; START tells it
            PORTS[name] = sim.servers[name].server_address[1]
    except OSError as e:
        log("ERROR", "CONFIG_ERROR", error="cannot listen: %s" % e)
        print("binance-sim: cannot listen: %s" % e, file=sys.stderr)
        sys.exit(1)
    # PID 1 in a container ignores SIGTERM unless handled; exit promptly on `docker stop`
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("INFO", "START", ports=PORTS, control_port=control.server_address[1], bind=BIND)
    try:
        control.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        log("INFO", "SHUTDOWN")


if __name__ == "__main__":
    main()
