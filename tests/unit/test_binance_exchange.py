"""module_utils/binance_exchange: the one Binance client - signing, the request it sends, and how every
answer (or the lack of one) maps to an ExchangeError.

Signing is checked against Binance's own published example. The rest runs against a scripted HTTP server
on loopback (this file), which records the raw request and answers as told: any status, headers and body,
silence, a dropped connection, a trickle. No simulator, no lab, no python-binance.
"""
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_exchange as bx
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import Exchange, ExchangeError

KEY, SECRET = "unitKey0123456789abcdef", "unitSecret/with+chars=0123456789"


# ---------------------------------------------------------------- signing

# USD-M futures "General Info", SIGNED endpoint examples (HMAC SHA256), example 1 - public documentation
# values, not credentials: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
DOC_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DOC_QUERY = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
             "&recvWindow=5000&timestamp=1591702613943")
DOC_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
# Binance's spot "SIGNED endpoint examples", the parameter set with non-ASCII characters: the signature is
# over the percent-encoded string that is sent.
SPOT_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SPOT_UNICODE_SIGNATURE = "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_signature_of_binance_documented_example():
    assert bx.sign(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE


def test_parameters_are_encoded_as_binance_signs_them():
    params = {"symbol": "\uff11\uff12\uff13\uff14\uff15\uff16", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": 1, "price": "0.1", "recvWindow": 5000, "timestamp": 1499827319559}
    query = bx.encode_params(params)
    assert query.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&")
    assert bx.sign(SPOT_SECRET, query) == SPOT_UNICODE_SIGNATURE
    assert bx.encode_params({"symbol": "BTCUSDT", "orderidlist": [1, 22], "reduceOnly": True, "price": None}) == (
        "symbol=BTCUSDT&orderidlist=%5B1%2C22%5D&reduceOnly=true")  # a compact JSON array, None dropped


# ---------------------------------------------------------------- a scripted exchange

class Scripted:
    """A loopback HTTP server: each request takes the next answer from `answers` (the last one repeats)
    and is recorded as {method, path, query, body, headers (lower-case names)}. An answer is (status,
    headers, body), a function of the URL returning one, or "silence" (no answer until the client gives
    up), "drop" (close without answering), "trickle"."""

    def __init__(self):
        self.answers, self.seen, self.release = [], [], threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.seen.append({"method": self.command, "path": url.path, "query": url.query, "body": body,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}})
                answer = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                if callable(answer):
                    answer = answer(url)
                if answer == "silence":
                    outer.release.wait(10)
                    return
                if answer == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer == "trickle":  # headers at once, then a byte every 0.3 s: no socket timeout fires
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _byte in range(100):
                        if outer.release.wait(0.3):
                            return
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    return
                status, headers, payload = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_DELETE = do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = "http://127.0.0.1:%d/fapi" % self.server.server_address[1]

    def exchange(self, timeout=2.0, **over):
        return Exchange(over.pop("url", self.url), KEY, SECRET, timeout, **over)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    scripted = Scripted()
    yield scripted
    scripted.close()


def ok(payload=None, **headers):
    return 200, headers, payload if payload is not None else {}


def signed_part(raw):
    """(the string the signature covers, the signature) of a raw query or body."""
    head, _sep, signature = raw.rpartition("&signature=")
    return head, signature


# ---------------------------------------------------------------- the request sent

def test_signed_get_and_delete_carry_everything_in_the_query(server):
    server.answers = [ok([])]
    ex = server.exchange()
    before = int(time.time() * 1000)
    ex.send("GET", "/v1/openOrders", {"symbol": "BTCUSDT"})
    ex.send("DELETE", "/v1/batchOrders", {"symbol": "BTCUSDT", "orderidlist": [11, 12]})
    for sent in server.seen:
        assert sent["body"] == "" and "content-type" not in sent["headers"]
        assert sent["headers"]["x-mbx-apikey"] == KEY
        signed, signature = signed_part(sent["query"])
        assert signature == hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
        params = dict(parse_qsl(signed))
        assert params["symbol"] == "BTCUSDT" and params["recvWindow"] == "10000"
        assert before <= int(params["timestamp"]) <= int(time.time() * 1000)
    assert [s["method"] for s in server.seen] == ["GET", "DELETE"]
    assert server.seen[0]["path"] == "/fapi/v1/openOrders"
    assert server.seen[1]["query"].startswith("symbol=BTCUSDT&orderidlist=%5B11%2C12%5D&timestamp=")


def test_signed_post_carries_everything_in_a_form_body(server):
    server.answers = [ok({"orderId": 1})]
    assert server.exchange().send("POST", "/v1/order", {"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET",
                                                        "quantity": "0.05", "reduceOnly": "true"}) == {"orderId": 1}
    sent = server.seen[0]
    assert sent["query"] == "" and sent["headers"]["content-type"] == "application/x-www-form-urlencoded"
    signed, signature = signed_part(sent["body"])
    assert signature == bx.sign(SECRET, signed)
    assert signed.startswith("symbol=ETHUSDT&side=SELL&type=MARKET&quantity=0.05&reduceOnly=true&timestamp=")


def test_unsigned_call_has_no_timestamp_and_the_clock_follows_the_exchange(server):
    skew_ms = 30000
    server.answers = [lambda url: ok({"serverTime": int(time.time() * 1000) + skew_ms}), ok({})]
    ex = server.exchange()
    server_ms = ex.server_now()
    assert server.seen[0]["query"] == "" and abs(ex.timestamp_offset_ms - skew_ms) < 1000
    ex.send("GET", "/v2/account")
    stamp = int(dict(parse_qsl(server.seen[1]["query"]))["timestamp"])
    assert abs(stamp - server_ms) < 1000  # signed on the exchange's clock, not the local one


def test_no_signed_request_without_a_key(server):
    server.answers = [ok()]
    with pytest.raises(ExchangeError) as err:
        Exchange(server.url, None, None, 1).send("GET", "/v2/account")
    assert err.value.kind == "credentials" and server.seen == []


# ---------------------------------------------------------------- answers -> errors

def body(code, msg):
    return {"code": code, "msg": msg}


@pytest.mark.parametrize("status,headers,payload,kind,code", [
    (400, {}, body(-1102, "Mandatory parameter 'symbol' was not sent."), "api", -1102),
    (400, {}, body(-2011, "Unknown order sent."), "api", -2011),
    (400, {}, body(-1021, "Timestamp for this request is outside of the recvWindow."), "api", -1021),
    (401, {}, body(-2015, "Invalid API-key, IP, or permissions for action."), "credentials", -2015),
    (401, {}, body(-2014, "API-key format invalid."), "credentials", -2014),
    (400, {}, body(-1022, "Signature for this request is not valid."), "credentials", -1022),
    (429, {"Retry-After": 30}, body(-1003, "Too many requests"), "rate_limited", -1003),
    (503, {}, body(-1000, "Unknown error, please check your request or try again later."), "unknown", -1000),
    (502, {}, b"<html>Bad Gateway</html>", "unknown", None),
])
def test_error_answers_map_to_kinds(server, status, headers, payload, kind, code):
    server.answers = [(status, dict(headers, **{"X-MBX-USED-WEIGHT-1M": 17}), payload)]
    ex = server.exchange()
    with pytest.raises(ExchangeError) as err:
        ex.send("GET", "/v1/openOrders")
    e = err.value
    assert (e.kind, e.code, e.http_status, e.cause, e.hanging) == (kind, code, status, None, False)
    assert e.msg == (payload["msg"] if isinstance(payload, dict) else
                     "Invalid JSON error message from Binance: <html>Bad Gateway</html>")
    assert ex.used_weight_1m == 17 and ex.http_status == status
    assert e.retry_after_s == headers.get("Retry-After") == ex.retry_after_s
    assert e.kind in bx.KINDS


def test_418_records_the_ban(server):
    until = int(time.time() * 1000) + 120000
    msg = "Way too many requests; IP(127.0.0.1) banned until %d. Please use the websocket." % until
    server.answers = [(418, {"Retry-After": "120", "x-mbx-used-weight-1m": "2401"}, body(-1003, msg))]
    ex = server.exchange()
    with pytest.raises(ExchangeError) as err:
        ex.send("GET", "/v1/time", signed=False)
    assert (err.value.kind, err.value.http_status, err.value.retry_after_s) == ("banned", 418, 120)
    limits = ex.rate_limit()
    assert (limits["ban_s"], limits["banned_until"], limits["used_weight_1m"]) == (120, bx.iso_utc(until), 2401)
    assert "for 120 s, until %s" % bx.iso_utc(until) in bx.describe(err.value, ex)


def test_2xx_bodies(server):
    server.answers = [(200, {}, b""), (200, {}, b"not json")]
    ex = server.exchange()
    assert ex.send("DELETE", "/v1/allOpenOrders", {"symbol": "BTCUSDT"}) == {}
    with pytest.raises(ExchangeError) as err:
        ex.send("GET", "/v1/openOrders")
    assert (err.value.kind, err.value.http_status, err.value.msg) == ("unknown", 200, "Invalid Response: not json")


def test_messages_never_carry_key_secret_or_signature(server):
    def echo(url):  # an answer that quotes the request back, as proxies and some errors do
        return 400, {}, body(-1022, "bad: %s key=%s secret=%s" % (url.query, KEY, SECRET))
    server.answers = [echo]
    with pytest.raises(ExchangeError) as err:
        server.exchange().send("GET", "/v1/order", {"symbol": "BTCUSDT", "orderId": 1})
    text = err.value.msg + bx.describe(err.value, server.exchange())
    assert KEY not in text and SECRET not in text and "signature=********" in text
    signature = signed_part(server.seen[0]["query"])[1]
    assert signature not in text and "\n" not in text


# ---------------------------------------------------------------- no answer

def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url,cause", [
    (lambda server: "http://127.0.0.1:%d/fapi" % closed_port(), "refused"),
    (lambda server: "http://no-such-host.invalid/fapi", "dns"),
    (lambda server: server.url.replace("http://", "https://"), "tls"),  # TLS to a plain-HTTP port
])
def test_not_sent_is_unreachable(server, url, cause):
    server.answers = [ok()]
    ex = server.exchange(url=url(server))
    with pytest.raises(ExchangeError) as err:
        ex.send("GET", "/v1/openOrders")
    e = err.value
    assert (e.kind, e.cause, e.http_status, e.hanging) == ("unreachable", cause, None, False)
    assert e.msg.startswith(cause + ": ") and e.kind in bx.STOP_KINDS


def test_connect_timeout_is_unreachable():
    """A listener whose accept queue is full drops further SYNs: the connect itself times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _filler in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.1)
        ex = Exchange("http://127.0.0.1:%d/fapi" % listener.getsockname()[1], KEY, SECRET, 0.5)
        started = time.monotonic()
        with pytest.raises(ExchangeError) as err:
            ex.send("GET", "/v1/openOrders")
        assert time.monotonic() - started < 1.5 + 0.5
        if err.value.cause != "timeout" or err.value.kind != "unreachable":
            pytest.skip("this kernel answered the queued connect (%s): no connect timeout to observe" % err.value.msg)
        assert err.value.msg == "connect timed out after 0.5 s" and not err.value.hanging
    finally:
        for sock in fillers + [listener]:
            sock.close()


@pytest.mark.parametrize("answer,msg", [
    ("silence", "read timed out after 0.5 s"),  # the socket timeout
    ("trickle", "no answer within 1.5 s"),  # a byte now and then: only the hard bound stops it
    ("drop", None),
])
def test_sent_without_an_answer_is_unknown_and_bounded(server, answer, msg):
    server.answers = [answer]
    ex = server.exchange(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ExchangeError) as err:
        ex.send("DELETE", "/v1/order", {"symbol": "BTCUSDT", "orderId": 7})
    assert time.monotonic() - started < 0.5 + 1 + 0.5
    e = err.value
    assert (e.kind, e.http_status, e.hanging) == ("unknown", None, True)
    assert e.cause == ("other" if answer == "drop" else "timeout")
    if msg:
        assert e.msg == msg
    assert "outcome unknown" in bx.describe(e, ex)


# ---------------------------------------------------------------- rate-limit manners (Exchange.call)

def test_short_429_is_waited_out_once_then_the_second_stops(server):
    waits = []
    limited = (429, {"Retry-After": "2", "X-MBX-USED-WEIGHT-1M": "2390"}, body(-1003, "Too many requests"))
    server.answers = [limited, ok([], **{"X-MBX-USED-WEIGHT-1M": "12"}), limited, limited]
    ex = server.exchange(sleep=waits.append)
    assert ex.call(1, "GET", "/v1/openOrders", {"symbol": "BTCUSDT"}) == []
    assert waits == [2] and ex.waited_s == 2 and ex.used_weight_1m == 12 and len(server.seen) == 2
    with pytest.raises(ExchangeError) as err:
        ex.call(1, "GET", "/v1/openOrders", {"symbol": "BTCUSDT"})
    assert err.value.kind == "rate_limited" and waits == [2, 2] and len(server.seen) == 4


def test_long_retry_after_is_not_waited(server):
    server.answers = [(429, {"Retry-After": "30"}, body(-1003, "Too many requests"))]
    ex = server.exchange(sleep=lambda s: pytest.fail("must not wait %s s" % s), max_backoff_s=10)
    with pytest.raises(ExchangeError) as err:
        ex.call(1, "DELETE", "/v1/order", {"symbol": "BTCUSDT", "orderId": 1})
    assert (err.value.kind, err.value.retry_after_s, len(server.seen)) == ("rate_limited", 30, 1)
    assert bx.describe(err.value, ex).endswith("rerun after 30 s")


def test_weight_budget_refuses_before_sending(server):
    server.answers = [ok([], **{"X-MBX-USED-WEIGHT-1M": "1990"})]
    ex = server.exchange(weight_budget=2000)
    ex.call(1, "GET", "/v1/openOrders", {"symbol": "BTCUSDT"})
    with pytest.raises(ExchangeError) as err:
        ex.call(40, "GET", "/v1/openOrders")
    assert err.value.kind == "budget" and len(server.seen) == 1
    assert ex.rate_limit() == {"used_weight_1m": 1990, "weight_budget": 2000, "retry_after_s": None, "waited_s": 0,
                               "banned_until": None, "ban_s": None}
