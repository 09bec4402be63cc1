"""Lab auto-executor: consumes trade intents from Redis and submits them to (simulated) Binance futures.

Contract: docs/lab-interfaces.md ("auto-executor", "Redis", "Log format"). Reproduces the symptoms the
P0 "execution stuck" runbook diagnoses: ORDER_SUBMIT without ORDER_RESPONSE, GATE_BLOCKED, WOULD_SUBMIT.
"""

import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

SERVICE = "auto-executor"
INTENT_STREAM = "quantum:stream:intent"
EXECUTION_STREAM = "quantum:stream:execution"
GROUP = "executor"
KILL_SWITCH_KEY = "quantum:control:kill_switch"
HEARTBEAT_KEY = "quantum:executor:heartbeat"
DEFAULT_POLICY = {"max_notional_usdt": 5000.0, "allowed_symbols": ["BTCUSDT", "ETHUSDT"]}
HEARTBEAT_S = 5.0
REDIS_ERROR_LOG_EVERY_S = 5.0
MAX_BACKOFF_S = 2.0

STOP = threading.Event()
_DONE = threading.Event()  # the main loop has returned
_LOG_LOCK = threading.Lock()
_SECRETS: set = set()  # values redacted from every log line, whatever field they end up in


def parse_bool(value, default=False):
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip().lower() in ("true", "1", "yes")


def redact(text):
    """Strip secrets and request signatures: an exception text may quote a URL or a body."""
    for secret in _SECRETS:
        if len(secret) >= 8:  # a very short value would also hit field names (real keys are 64 chars)
            text = text.replace(secret, "***")
    return re.sub(r"signature=[0-9a-fA-F]+", "signature=***", text)


def format_log(level, event, correlation_id=None, **fields):
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    record = {"ts": ts, "level": level, "service": SERVICE, "event": event, "correlation_id": correlation_id}
    record.update(fields)
    return redact(json.dumps(record, default=str))


def log(level, event, correlation_id=None, **fields):
    line = format_log(level, event, correlation_id, **fields)
    with _LOG_LOCK:  # one writer at a time, so threads never interleave half lines
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class RateLimitedLog:
    """Logs an event at most once per interval; counts what it swallowed so nothing is silently lost."""

    def __init__(self, event, every_s=REDIS_ERROR_LOG_EVERY_S):
        self.event, self.every_s = event, every_s
        self.last, self.suppressed = None, 0

    def __call__(self, **fields):
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every_s:
            self.suppressed += 1
            return False
        log("ERROR", self.event, None, suppressed=self.suppressed, **fields)
        self.last, self.suppressed = now, 0
        return True


@dataclass
class Config:
    redis_url: str
    api_key: str
    api_secret: str
    use_testnet: bool
    paper_trading: bool
    futures_url: str
    futures_testnet_url: str
    http_timeout_s: float
    client_order_prefix: str
    policy_file: str
    http_port: int


def load_config(env):
    return Config(
        redis_url=env.get("REDIS_URL", "redis://redis:6379/0"),
        api_key=env.get("BINANCE_API_KEY", ""),
        api_secret=env.get("BINANCE_API_SECRET", ""),
        use_testnet=parse_bool(env.get("BINANCE_USE_TESTNET"), False),
        paper_trading=parse_bool(env.get("PAPER_TRADING"), False),
        futures_url=env.get("BINANCE_FUTURES_URL", ""),
        futures_testnet_url=env.get("BINANCE_FUTURES_TESTNET_URL", ""),
        http_timeout_s=float(env.get("BINANCE_HTTP_TIMEOUT_S") or 10),
        client_order_prefix=env.get("EXECUTOR_CLIENT_ORDER_PREFIX", "qtx-"),
        policy_file=env.get("EXECUTOR_POLICY_FILE", "/config/execution_policy.json"),
        http_port=int(env.get("EXECUTOR_HTTP_PORT") or 9100),
    )


def client_order_id(prefix, correlation_id):
    """Deterministic id: a re-processed intent re-sends the same id, so the exchange can spot the duplicate."""
    hexchars = re.sub(r"[^0-9a-f]", "", str(correlation_id).lower())
    if len(hexchars) < 20:  # not a uuid: still stable, still hex
        hexchars = hashlib.sha1(str(correlation_id).encode()).hexdigest()
    return prefix + hexchars[:20]


def gate_decision(intent, policy):
    """Return None when the intent may go out, else the GATE_BLOCKED reason."""
    if policy.get("kill_switch"):  # the persisted emergency stop (survives a Redis restart)
        return "KILL_SWITCH"
    if intent["symbol"] not in policy["allowed_symbols"]:
        return "SYMBOL_NOT_ALLOWED"
    if float(intent["quantity"]) * float(intent["price"]) > float(policy["max_notional_usdt"]):
        return "NOTIONAL_ABOVE_LIMIT"
    return None


def classify_error(exc):
    """Map a python-binance call failure to (error_code, http_status) for ORDER_ERROR."""
    if isinstance(exc, BinanceAPIException):
        return exc.code, exc.status_code
    if isinstance(exc, requests.exceptions.Timeout):  # before ConnectionError: ConnectTimeout is both
        return "TIMEOUT", None
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "CONNECTION", None
    return "UNKNOWN", None


def render_metrics(counters, gauges):
    lines = []
    for name, value in counters.items():
        lines += [f"# TYPE {name} counter", f"{name} {value}"]
    for name, value in gauges.items():
        lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"


class PolicyFile:
    """Execution policy, re-read only when the file's mtime changes; missing file = defaults."""

    def __init__(self, path):
        self.path, self.stamp, self.policy = path, "unset", dict(DEFAULT_POLICY)

    def current(self):
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self.stamp:
            self.stamp = stamp
            self.policy = self._load(stamp)
        return self.policy

    def _load(self, stamp):
        if stamp is None:
            log("INFO", "POLICY_LOADED", None, source="defaults", policy=DEFAULT_POLICY)
            return dict(DEFAULT_POLICY)
        try:
            with open(self.path, encoding="utf-8") as fh:
                loaded = json.load(fh)
            policy = {**DEFAULT_POLICY, **loaded}
            policy["max_notional_usdt"] = float(policy["max_notional_usdt"])
            policy["allowed_symbols"] = list(policy["allowed_symbols"])
        except (OSError, ValueError, TypeError) as exc:  # keep the last good policy rather than trade unchecked
            log("WARN", "POLICY_INVALID", None, path=self.path, error=str(exc))
            return self.policy
        log("INFO", "POLICY_LOADED", None, source=self.path, policy=policy)
        return policy


class Executor:
    def __init__(self, cfg, redis_client, binance_client):
        self.cfg, self.r, self.client = cfg, redis_client, binance_client
        self.consumer = f"auto-executor-{socket.gethostname()}"
        self.policy = PolicyFile(cfg.policy_file)
        self.lock = threading.Lock()
        self.counters = dict.fromkeys(
            ["orders_submitted_total", "orders_responded_total", "order_errors_total", "gate_blocked_total",
             "intents_received_total", "would_submit_total"], 0)
        self.in_flight = 0
        self.started = time.monotonic()
        self.last_intent = None
        self.last_loop = time.monotonic()
        self.unpublished = {}  # stream id -> execution record whose XADD/XACK failed; never re-send the order
        self.redis_error = RateLimitedLog("REDIS_ERROR")

    def count(self, name, delta=1):
        with self.lock:
            self.counters[name] += delta

    def last_intent_age(self):
        return None if self.last_intent is None else round(time.monotonic() - self.last_intent, 3)

    def metrics_text(self):
        with self.lock:
            counters, in_flight = dict(self.counters), self.in_flight
        age = self.last_intent_age()
        gauges = {
            # No intent yet: age since start, so "no intents for N s" alerts still fire after a restart.
            "last_intent_age_seconds": age if age is not None else round(time.monotonic() - self.started, 3),
            "in_flight_orders": in_flight,
            "executor_paper_trading": int(self.cfg.paper_trading),
            "executor_use_testnet": int(self.cfg.use_testnet),
        }
        return render_metrics(counters, gauges)

    def futures_endpoint(self):
        return self.client.FUTURES_TESTNET_URL if self.cfg.use_testnet else self.client.FUTURES_URL

    def ensure_group(self):
        try:
            self.r.xgroup_create(INTENT_STREAM, GROUP, id="$", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, last_id):
        block = None if last_id == "0" else 1000  # pending entries are there already: no need to wait
        result = self.r.xreadgroup(GROUP, self.consumer, {INTENT_STREAM: last_id}, count=10, block=block)
        return result[0][1] if result else []

    def drain_pending(self):
        """Re-process entries delivered to this consumer but never acked (a hang or crash left them)."""
        while not STOP.is_set():
            entries = self.read("0")
            if not entries:
                return
            for msg_id, fields in entries:
                self.handle(msg_id, fields)

    def run(self):
        needs_setup, backoff = True, 0.25
        while not STOP.is_set():
            try:
                if needs_setup:
                    self.ensure_group()
                    self.drain_pending()
                    needs_setup = False
                entries = self.read(">")
                if self.redis_error.last is not None:
                    log("INFO", "REDIS_RECOVERED", None, suppressed=self.redis_error.suppressed)
                    self.redis_error.last, self.redis_error.suppressed = None, 0
                backoff = 0.25
                for msg_id, fields in entries:
                    if STOP.is_set():  # no new order after SHUTDOWN; the entry stays pending for the next start
                        break
                    self.handle(msg_id, fields)
                self.last_loop = time.monotonic()
            except (redis.exceptions.RedisError, OSError) as exc:
                # NOGROUP: the stream was deleted; any other error: reconnect and re-drain what is pending.
                needs_setup = True
                self.last_loop = time.monotonic()
                self.redis_error(error=f"{type(exc).__name__}: {exc}", retry_in_s=backoff)
                STOP.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def handle(self, msg_id, fields):
        if msg_id in self.unpublished:  # order already went out; only the bookkeeping failed
            return self.finish(msg_id, self.unpublished[msg_id])
        if not fields:  # pending entry trimmed from the stream: nothing left to do
            return self.r.xack(INTENT_STREAM, GROUP, msg_id)
        cid = fields.get("correlation_id") or None
        self.last_intent = time.monotonic()
        self.count("intents_received_total")
        log("INFO", "INTENT_RECEIVED", cid, stream_id=msg_id, symbol=fields.get("symbol"), side=fields.get("side"),
            quantity=fields.get("quantity"), price=fields.get("price"), notional=fields.get("notional"),
            strategy=fields.get("strategy"), intent_ts=fields.get("ts"))
        record = {"correlation_id": cid or "", "symbol": fields.get("symbol", ""), "side": fields.get("side", ""),
                  "order_id": "", "client_order_id": "", "exchange_status": "", "error_code": ""}
        missing = [k for k in ("symbol", "side", "quantity", "price") if not fields.get(k)]
        reason = "KILL_SWITCH" if self.r.exists(KILL_SWITCH_KEY) else None
        if reason is None and missing:
            log("WARN", "INTENT_INVALID", cid, stream_id=msg_id, missing=missing)
            return self.finish(msg_id, {**record, "status": "BLOCKED", "error_code": "INVALID_INTENT"})
        if reason is None:
            try:
                reason = gate_decision(fields, self.policy.current())
            except ValueError:
                reason = "NOTIONAL_ABOVE_LIMIT"  # unparsable quantity/price: treat as unbounded
        if reason:
            self.count("gate_blocked_total")
            log("WARN", "GATE_BLOCKED", cid, reason=reason, symbol=record["symbol"], side=record["side"])
            return self.finish(msg_id, {**record, "status": "BLOCKED", "error_code": reason})
        record["client_order_id"] = client_order_id(self.cfg.client_order_prefix, cid or msg_id)
        if self.cfg.paper_trading:
            self.count("would_submit_total")
            log("INFO", "WOULD_SUBMIT", cid, symbol=fields["symbol"], side=fields["side"],
                quantity=fields["quantity"], price=fields["price"], client_order_id=record["client_order_id"])
            return self.finish(msg_id, {**record, "status": "WOULD_SUBMIT"})
        return self.finish(msg_id, self.submit(cid, fields, record))

    def submit(self, cid, fields, record):
        log("INFO", "ORDER_SUBMIT", cid, symbol=fields["symbol"], side=fields["side"], quantity=fields["quantity"],
            price=fields["price"], client_order_id=record["client_order_id"], endpoint=self.futures_endpoint())
        self.count("orders_submitted_total")
        with self.lock:
            self.in_flight += 1
        started = time.monotonic()
        try:
            resp = self.client.futures_create_order(
                symbol=fields["symbol"], side=fields["side"], type="LIMIT", timeInForce="GTC",
                quantity=fields["quantity"], price=fields["price"], newClientOrderId=record["client_order_id"])
        except Exception as exc:  # noqa: BLE001 -- every failure must end in ORDER_ERROR, never kill the loop
            code, status = classify_error(exc)
            self.count("order_errors_total")
            log("ERROR", "ORDER_ERROR", cid, error_code=code, http_status=status, error=str(exc),
                client_order_id=record["client_order_id"], latency_ms=int((time.monotonic() - started) * 1000))
            return {**record, "status": "ERROR", "error_code": str(code)}
        finally:
            with self.lock:
                self.in_flight -= 1
        self.count("orders_responded_total")
        resp = resp if isinstance(resp, dict) else {}
        record = {**record, "status": "SUBMITTED_OK", "order_id": str(resp.get("orderId", "")),
                  "exchange_status": str(resp.get("status", ""))}
        log("INFO", "ORDER_RESPONSE", cid, order_id=record["order_id"], client_order_id=record["client_order_id"],
            exchange_status=record["exchange_status"], latency_ms=int((time.monotonic() - started) * 1000))
        return record

    def finish(self, msg_id, record):
        """Publish the outcome, then ack. If Redis fails here the entry stays pending and is finished later."""
        self.unpublished[msg_id] = record
        self.r.xadd(EXECUTION_STREAM, {**record, "ts": str(int(time.time() * 1000))}, maxlen=10000, approximate=True)
        self.r.xack(INTENT_STREAM, GROUP, msg_id)
        del self.unpublished[msg_id]

    def ready(self):  # runs in HTTP threads; the Redis client's connection pool is thread-safe
        try:
            groups = self.r.xinfo_groups(INTENT_STREAM)  # answers only if Redis does; no stream = no group
        except (redis.exceptions.RedisError, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if not any(g.get("name") == GROUP for g in groups):
            return False, "consumer group missing"
        return True, "ok"

    def heartbeat_loop(self, hb_redis):
        pending_hint = None  # pending entries in the group as of the previous beat (Redis may be slow or down)
        while not STOP.wait(HEARTBEAT_S):
            log("INFO", "HEARTBEAT", None, in_flight=self.in_flight, last_intent_age_s=self.last_intent_age(),
                pending_hint=pending_hint)
            try:
                hb_redis.set(HEARTBEAT_KEY, int(time.time() * 1000), ex=60)
                pending_hint = hb_redis.xpending(INTENT_STREAM, GROUP)["pending"]
            except (redis.exceptions.RedisError, OSError, KeyError):
                pending_hint = None


def make_handler(executor):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                body = {"status": "ok", "last_loop_age_s": round(time.monotonic() - executor.last_loop, 3),
                        "in_flight": executor.in_flight}  # int reads are atomic: no lock needed
                self.reply(200, json.dumps(body), "application/json")
            elif self.path == "/readyz":
                ok, reason = executor.ready()
                body = {"status": "ready" if ok else "not_ready", "reason": reason}
                self.reply(200 if ok else 503, json.dumps(body), "application/json")
            elif self.path == "/metrics":
                self.reply(200, executor.metrics_text(), "text/plain; version=0.0.4")
            else:
                self.reply(404, json.dumps({"error": "not found"}), "application/json")

        def reply(self, code, text, ctype):
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep stdout/stderr for JSON events only
            pass

    return Handler


def build_client(cfg):
    # ping=False: the constructor would otherwise call the spot API, which the lab does not serve.
    client = Client(cfg.api_key, cfg.api_secret, ping=False, testnet=cfg.use_testnet,
                    requests_params={"timeout": cfg.http_timeout_s})
    if cfg.futures_url:
        client.FUTURES_URL = cfg.futures_url
    if cfg.futures_testnet_url:
        client.FUTURES_TESTNET_URL = cfg.futures_testnet_url
    return client


def preflight_fields(cfg, endpoint):
    """What PREFLIGHT shows: the mode and where orders go; never credentials."""
    return {"binance_use_testnet": cfg.use_testnet, "paper_trading": cfg.paper_trading, "futures_endpoint": endpoint,
            "client_order_prefix": cfg.client_order_prefix, "http_timeout_s": cfg.http_timeout_s,
            "api_key_set": bool(cfg.api_key), "policy_file": cfg.policy_file}


def _shutdown(signum):
    # Runs in its own non-daemon thread: the signal handler must not write (it may interrupt a write).
    log("INFO", "SHUTDOWN", None, signal=signal.Signals(signum).name)
    _DONE.wait(1.5)  # let the main loop finish its current step, but never past the 2 s budget
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
    _SECRETS.update(s for s in (cfg.api_key, cfg.api_secret) if s)
    client = build_client(cfg)
    opts = {"decode_responses": True, "socket_connect_timeout": 2}
    executor = Executor(cfg, redis.Redis.from_url(cfg.redis_url, socket_timeout=5, **opts), client)
    log("INFO", "PREFLIGHT", None, consumer=executor.consumer, **preflight_fields(cfg, executor.futures_endpoint()))
    executor.policy.current()  # show the policy in force at start, not at the first intent
    server = ThreadingHTTPServer(("0.0.0.0", cfg.http_port), make_handler(executor))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    hb_redis = redis.Redis.from_url(cfg.redis_url, socket_timeout=2, **opts)
    threading.Thread(target=executor.heartbeat_loop, args=(hb_redis,), name="heartbeat", daemon=True).start()
    executor.run()
    _DONE.set()  # the shutdown thread (non-daemon) exits the process with status 0


if __name__ == "__main__":
    main()
