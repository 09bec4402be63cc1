"""Lab ai-engine: a stand-in strategy that publishes one trade intent every INTENT_INTERVAL_S to Redis.

Contract: docs/lab-interfaces.md ("ai-engine", "Redis", "Log format"). POST /control {"publishing": false}
pauses it, which is how the lab produces the "no signals" symptom of the execution-stuck runbook.
"""

import json
import os
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

SERVICE = "ai-engine"
INTENT_STREAM = "quantum:stream:intent"
STRATEGY = "lab-momentum"
# Simulator reference price and a quantity giving a notional of about 100 USDT (above Binance's 5 USDT minimum,
# far below the executor's default 5000 USDT limit).
REFERENCE = {"BTCUSDT": ("60000", "0.002"), "ETHUSDT": ("3000", "0.033"), "SOLUSDT": ("150", "0.67")}
FALLBACK = ("100", "1")  # an unknown symbol still gets a ~100 USDT intent
HEARTBEAT_S = 5.0
PUBLISH_FAILED_LOG_EVERY_S = 5.0

STOP = threading.Event()
_DONE = threading.Event()  # the main loop has returned
_LOG_LOCK = threading.Lock()


def parse_bool(value, default=False):
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip().lower() in ("true", "1", "yes")


def format_log(level, event, correlation_id=None, **fields):
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    record = {"ts": ts, "level": level, "service": SERVICE, "event": event, "correlation_id": correlation_id}
    record.update(fields)
    return json.dumps(record, default=str)


def log(level, event, correlation_id=None, **fields):
    line = format_log(level, event, correlation_id, **fields)
    with _LOG_LOCK:  # one writer at a time, so threads never interleave half lines
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def load_config(env):
    symbols = [s.strip().upper() for s in env.get("SYMBOLS", "BTCUSDT,ETHUSDT").split(",") if s.strip()]
    return {
        "redis_url": env.get("REDIS_URL", "redis://redis:6379/0"),
        "symbols": symbols or ["BTCUSDT", "ETHUSDT"],
        "interval_s": max(float(env.get("INTENT_INTERVAL_S") or 2), 0.05),
        "http_port": int(env.get("AI_HTTP_PORT") or 9200),
        "publishing": parse_bool(env.get("PUBLISHING"), True),
    }


class IntentFactory:
    """Cycles through the symbols; each symbol alternates BUY/SELL so the lab's positions stay near flat.

    (Alternating per symbol rather than globally: with two symbols a global BUY/SELL toggle would always
    buy one symbol and always sell the other.)
    """

    def __init__(self, symbols):
        self.symbols = list(symbols)
        self.seq = 0
        self.next_side = dict.fromkeys(self.symbols, "BUY")

    def next(self, now_ms=None, correlation_id=None):
        symbol = self.symbols[self.seq % len(self.symbols)]
        self.seq += 1
        side = self.next_side[symbol]
        self.next_side[symbol] = "SELL" if side == "BUY" else "BUY"
        return build_intent(symbol, side, now_ms, correlation_id)


def build_intent(symbol, side, now_ms=None, correlation_id=None):
    price, quantity = REFERENCE.get(symbol, FALLBACK)
    return {
        "correlation_id": correlation_id or str(uuid.uuid4()),
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "price": price,
        "notional": f"{Decimal(price) * Decimal(quantity):.2f}",
        "strategy": STRATEGY,
        "ts": str(now_ms if now_ms is not None else int(time.time() * 1000)),
    }


def parse_control(body):
    """Body of POST /control → the new publishing flag, or None when it is not {"publishing": <bool>}."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("publishing"), bool):
        return None
    return data["publishing"]


class Engine:
    def __init__(self, cfg, redis_client):
        self.cfg, self.r = cfg, redis_client
        self.factory = IntentFactory(cfg["symbols"])
        self.publishing = cfg["publishing"]  # bool assignment is atomic; HTTP threads flip it
        self.published = 0
        self.failed = 0
        self.last_fail_log = None
        self.suppressed = 0

    def set_publishing(self, value, source):
        if value != self.publishing:
            self.publishing = value
            log("INFO", "CONTROL_CHANGED", None, publishing=value, source=source)

    def publish_once(self):
        intent = self.factory.next()
        cid = intent["correlation_id"]
        # INTENT_RECEIVED: the strategy produced it (same event name the executor uses, for one grep per id).
        log("INFO", "INTENT_RECEIVED", cid, **{k: v for k, v in intent.items() if k not in ("correlation_id", "ts")})
        try:
            stream_id = self.r.xadd(INTENT_STREAM, intent, maxlen=10000, approximate=True)
        except (redis.exceptions.RedisError, OSError) as exc:
            self.failed += 1
            self.log_failure(cid, exc)
            return None
        self.published += 1
        log("INFO", "INTENT_PUBLISHED", cid, stream_id=stream_id, symbol=intent["symbol"], side=intent["side"])
        return stream_id

    def log_failure(self, cid, exc):
        """PUBLISH_FAILED at most once per 5 s while Redis is down; the count of skipped lines rides along."""
        now = time.monotonic()
        if self.last_fail_log is not None and now - self.last_fail_log < PUBLISH_FAILED_LOG_EVERY_S:
            self.suppressed += 1
            return
        log("ERROR", "PUBLISH_FAILED", cid, error=f"{type(exc).__name__}: {exc}", suppressed=self.suppressed)
        self.last_fail_log, self.suppressed = now, 0

    def run(self):
        next_at = time.monotonic()
        while not STOP.is_set():
            if self.publishing:
                self.publish_once()
            next_at += self.cfg["interval_s"]
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow Redis made us late: restart the schedule instead of bursting to catch up
                next_at, delay = time.monotonic(), 0
            STOP.wait(delay)

    def heartbeat_loop(self):
        while not STOP.wait(HEARTBEAT_S):
            log("INFO", "HEARTBEAT", None, publishing=self.publishing, published_total=self.published,
                publish_failed_total=self.failed)


def make_handler(engine):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, {"status": "ok", "publishing": engine.publishing})
            elif self.path == "/control":
                self.reply(200, {"publishing": engine.publishing})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/control":
                return self.reply(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            value = parse_control(self.rfile.read(length) if length > 0 else b"")
            if value is None:
                return self.reply(400, {"error": 'body must be JSON {"publishing": true|false}'})
            engine.set_publishing(value, source="http")
            return self.reply(200, {"publishing": engine.publishing})

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep stdout for JSON events only
            pass

    return Handler


def _shutdown(signum):
    # Own non-daemon thread: the signal handler itself must not write (it may interrupt a write in progress).
    log("INFO", "SHUTDOWN", None, signal=signal.Signals(signum).name)
    _DONE.wait(1.5)
    sys.stdout.flush()
    os._exit(0)


def _on_signal(signum, _frame):
    if not STOP.is_set():
        STOP.set()
        threading.Thread(target=_shutdown, args=(signum,), name="shutdown").start()


def main():
    signal.signal(signal.SIGTERM, _on_signal)  # PID 1 in a container: no default action without a handler
    signal.signal(signal.SIGINT, _on_signal)
    cfg = load_config(os.environ)
    client = redis.Redis.from_url(cfg["redis_url"], decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
    engine = Engine(cfg, client)
    log("INFO", "STARTUP", None, symbols=cfg["symbols"], interval_s=cfg["interval_s"], publishing=engine.publishing,
        strategy=STRATEGY)
    server = ThreadingHTTPServer(("0.0.0.0", cfg["http_port"]), make_handler(engine))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    threading.Thread(target=engine.heartbeat_loop, name="heartbeat", daemon=True).start()
    engine.run()
    _DONE.set()  # the shutdown thread (non-daemon) exits the process with status 0


if __name__ == "__main__":
    main()
