# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The collection's one Binance USD-M futures client. Standard library only.

Every Binance request in plugins/ goes through ``Exchange``:

* ``Exchange.send(method, path, params, signed)``: one HTTP request with ``urllib.request``, signed as
  Binance wants it (the parameters URL-encoded, then ``timestamp`` and ``recvWindow``, then
  ``signature`` = HMAC-SHA256 of exactly that string with the API secret, last; the key in the
  ``X-MBX-APIKEY`` header). GET and DELETE carry the parameters in the query string, POST and PUT in a
  form-encoded body. The whole request is bounded by ``timeout + 1`` seconds (``call_bounded``; the
  socket timeout alone does not bound name resolution or a server that trickles bytes);
* ``Exchange.call(weight, ...)`` adds rate-limit manners for the modules that change things. It
  refuses to send a call that would take the used weight past ``weight_budget`` (the executor shares
  the IP's 2400/min), waits a 429's ``Retry-After`` once when it is at most ``max_backoff_s``, and on
  418 remembers until when the IP is banned;
* every failure is an ``ExchangeError`` whose ``kind`` says what is known about the request's effect
  (see ``KINDS``) and whose ``cause`` names the network failure (``timeout``, ``refused``, ``dns``,
  ``tls``, ``other``) when no HTTP answer came. Messages never carry keys, secrets or signatures.

The error codes the collection acts on are defined here and nowhere else (``verdict`` imports them).
The options, the executor container's settings and the guarded run the modules share are in
``binance_common``.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote, quote_plus, urlencode

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_probe import (
    classify_error,
    header_value,
    to_number,
)

# Binance error codes (USD-M futures "Error Codes"): a rejected key or signature - the request had no
# effect and sending more cannot help - and a timestamp outside recvWindow.
CREDENTIAL_CODES = (-2014, -2015, -1022)  # API-key format invalid; key, IP or permissions; bad signature
CLOCK_SKEW_CODE = -1021

# Binance's futures base URLs (python-binance 1.0.37's, base_client.py:29-30), when futures_url is not given.
DEFAULT_FUTURES_URL = "https://fapi.binance.com/fapi"
DEFAULT_FUTURES_TESTNET_URL = "https://testnet.binancefuture.com/fapi"
# What python-binance 1.0.37 sends on every signed request, so a check sees the timestamps as the
# executor (python-binance) sees them; Binance's default when absent is 5000.
RECV_WINDOW_MS = 10000
USER_AGENT = "qt-runbooks-binance/1"

KINDS = {
    "api": "the exchange refused the request (4xx with a Binance code): it had no effect",
    "credentials": "the key or signature was rejected (-2014, -2015, -1022): it had no effect",
    "unknown": "5xx, read timeout or dropped connection: the request may or may not have taken effect",
    "unreachable": "connection refused, DNS, TLS or connect timeout: the request never arrived",
    "rate_limited": "HTTP 429 with a Retry-After above max_backoff_s (or twice): not processed",
    "banned": "HTTP 418, the IP is banned: not processed, send nothing until the ban ends",
    "budget": "not sent: it would take X-MBX-USED-WEIGHT-1M past weight_budget",
}
# After one of these, sending anything else only makes it worse (or cannot work).
STOP_KINDS = ("credentials", "unreachable", "rate_limited", "banned", "budget")
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_MAX_BODY = 8 * 1024 * 1024

# ---------------------------------------------------------------- redaction and the hard bound

REDACTED = "********"
_SIGNATURE = re.compile(r"(signature=)[^&\s'\"]+", re.IGNORECASE)
_APIKEY_HEADER = re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.IGNORECASE)


def redact(text, secrets=()):
    """``text`` as a string with every secret (raw or URL-quoted), API-key header value and
    ``signature=...`` value replaced by ``********``. ``None`` stays ``None``."""
    if text is None:
        return None
    text = str(text)
    variants = set()
    for secret in secrets or ():
        if not secret:
            continue
        secret = str(secret)
        variants.update({secret, quote(secret, safe=""), quote_plus(secret)})
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, REDACTED)
    text = _SIGNATURE.sub(r"\1" + REDACTED, text)
    return _APIKEY_HEADER.sub(r"\1" + REDACTED, text)


class CallOverrun(Exception):
    """A call outlived its hard deadline (a socket timeout is per operation, not per call)."""


def call_bounded(func, limit):
    """Run func() in a daemon thread; its result, its exception, or CallOverrun after `limit` seconds."""
    box = {}

    def run():
        try:
            box["value"] = func()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise CallOverrun("no answer within %.1f s" % limit)
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------- signing

def sign(secret, payload):
    """Binance's signature: the hex HMAC-SHA256 of ``payload`` (the exact query string or body sent,
    without ``&signature=``) keyed with the API secret."""
    return hmac.new(str(secret).encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))  # batch id lists: a compact JSON array
    return str(value)


def encode_params(params):
    """``params`` (in order, ``None`` values dropped) as an URL-encoded string."""
    return urlencode([(name, _text(value)) for name, value in (params or {}).items() if value is not None])


# ---------------------------------------------------------------- errors

class ExchangeError(Exception):
    def __init__(self, kind, msg, http_status=None, code=None, retry_after_s=None, cause=None):
        super().__init__(msg)
        self.kind, self.msg, self.http_status, self.code, self.retry_after_s, self.cause = (
            kind, msg, http_status, code, retry_after_s, cause)

    @property
    def hanging(self):
        """No HTTP answer at all: the exchange may hold every further request for the whole timeout."""
        return self.kind == "unknown" and self.http_status is None


def error_kind(status, code):
    """The ``KINDS`` entry for an HTTP error answer (status, Binance code)."""
    if status == 418:
        return "banned"
    if status == 429:
        return "rate_limited"
    if code in CREDENTIAL_CODES:
        return "credentials"
    if status >= 500:
        return "unknown"
    return "api"


# ---------------------------------------------------------------- the client

class Exchange:
    """One endpoint's calls with signing and rate-limit bookkeeping (``used_weight_1m``,
    ``retry_after_s``, the ban). No network call is made before ``send`` or ``call``."""

    def __init__(self, base_url, api_key=None, api_secret=None, timeout=5.0, max_backoff_s=10, weight_budget=2000,
                 sleep=time.sleep, recv_window_ms=RECV_WINDOW_MS):
        self.base_url = str(base_url).rstrip("/")
        self.api_key, self.api_secret = api_key, api_secret
        self.timeout, self.recv_window_ms = timeout, recv_window_ms
        self.secrets = [s for s in (api_key, api_secret) if s]
        self.max_backoff_s, self.weight_budget, self.sleep = max_backoff_s, weight_budget, sleep
        self.timestamp_offset_ms = 0  # server minus local clock, once server_now() has read it
        self.http_status = None  # of the last answer
        self.used_weight_1m = None
        self.retry_after_s = None
        self.waited_s = 0
        self.banned_until_ms = None
        self.ban_s = None
        # Environment proxies (and NO_PROXY) apply, as they did with python-binance's requests session.
        self._opener = urllib.request.build_opener()

    # ------------------------------------------------------------ calls

    def call(self, weight, method, path, params=None, signed=True):
        """The payload of ``send``, or ExchangeError; within the weight budget, a short 429 waited out once."""
        if self.used_weight_1m is not None and self.used_weight_1m + weight > self.weight_budget:
            raise ExchangeError("budget", "not sent: used weight %s + %s would pass weight_budget %s"
                                % (self.used_weight_1m, weight, self.weight_budget))
        try:
            return self.send(method, path, params, signed)
        except ExchangeError as err:
            if not (err.kind == "rate_limited" and err.retry_after_s is not None
                    and err.retry_after_s <= self.max_backoff_s):
                raise
            wait = err.retry_after_s
        self.sleep(wait)
        self.waited_s += wait
        return self.send(method, path, params, signed)  # a second 429 stops the run: no hammering

    def send(self, method, path, params=None, signed=True):
        """One request (``path`` below the base URL, e.g. ``/v1/openOrders``): the JSON payload ({} for an
        empty body), or ExchangeError. Used weight and Retry-After are recorded from every answer."""
        try:
            request = self._request(method.upper(), path, params, signed)
            status, headers, body = call_bounded(lambda: self._open(request), self.timeout + 1)
        except ExchangeError:
            raise
        except CallOverrun as exc:
            raise ExchangeError("unknown", str(exc), cause="timeout") from None
        except urllib.error.URLError as exc:  # before the request was sent: connect, DNS, TLS
            raise self._not_sent(exc) from None
        except (TimeoutError, socket.timeout):  # the same class since Python 3.10
            raise ExchangeError("unknown", "read timed out after %g s" % self.timeout, cause="timeout") from None
        except (ValueError, http.client.InvalidURL) as exc:  # a malformed URL: nothing was sent
            raise ExchangeError("unknown", self._clean("%s: %s" % (type(exc).__name__, exc))) from None
        except (OSError, http.client.HTTPException) as exc:  # sent, then the connection dropped
            raise ExchangeError("unknown", self._clean("%s: %s" % (type(exc).__name__, exc)), cause="other") from None
        except Exception as exc:  # anything else: nothing known about the request
            raise ExchangeError("unknown", self._clean("%s: %s" % (type(exc).__name__, exc))) from None
        self.http_status = status
        retry = self._see(headers)
        text = body.decode("utf-8", "replace")
        if not 200 <= status < 300:
            raise self._answer_error(status, text, retry)
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            raise ExchangeError("unknown", self._clean("Invalid Response: %s" % text[:300]),
                                http_status=status) from None

    def server_now(self):
        """The exchange clock in ms (``GET /v1/time``, weight 1); signed timestamps follow it from now on
        (a skewed host clock cannot cause -1021)."""
        before = time.time()
        payload = self.call(1, "GET", "/v1/time", signed=False)
        local_ms = int((before + time.time()) / 2 * 1000)
        try:
            server = int(payload["serverTime"])
        except (TypeError, KeyError, ValueError):
            raise ExchangeError("unknown", "GET /fapi/v1/time answered without serverTime") from None
        self.timestamp_offset_ms = server - local_ms
        return server

    def rate_limit(self):
        until = self.banned_until_ms
        return {"used_weight_1m": self.used_weight_1m, "weight_budget": self.weight_budget,
                "retry_after_s": self.retry_after_s, "waited_s": self.waited_s,
                "banned_until": iso_utc(until) if until else None, "ban_s": self.ban_s}

    # ------------------------------------------------------------ internals

    def _request(self, method, path, params, signed):
        query = encode_params(params)
        if signed:
            if not (self.api_key and self.api_secret):
                raise ExchangeError("credentials", "no API key and secret for a signed request")
            stamp = int(time.time() * 1000 + self.timestamp_offset_ms)
            query = "&".join(filter(None, (query, "timestamp=%d&recvWindow=%d" % (stamp, self.recv_window_ms))))
            query += "&signature=" + sign(self.api_secret, query)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            headers["X-MBX-APIKEY"] = self.api_key
        url, data = self.base_url + path, None
        if method in ("POST", "PUT"):
            data = query.encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif query:
            url += "?" + query
        return urllib.request.Request(url, data=data, headers=headers, method=method)

    def _open(self, request):
        """(status, headers, body) of any HTTP answer; raises for no answer (runs in call_bounded's thread)."""
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return resp.status, resp.headers, resp.read(_MAX_BODY)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(_MAX_BODY)
            except Exception:  # a broken error body is still an HTTP answer
                body = b""
            return exc.code, exc.headers, body or b""

    def _not_sent(self, exc):
        cause = classify_error(exc)
        if cause == "timeout":
            return ExchangeError("unreachable", "connect timed out after %g s" % self.timeout, cause=cause)
        reason = getattr(exc, "reason", exc)
        detail = self._clean("%s: %s" % (cause, reason))
        # refused, DNS and TLS failures happen before anything is sent; anything else might not
        return ExchangeError("unreachable" if cause in ("refused", "dns", "tls") else "unknown", detail, cause=cause)

    def _answer_error(self, status, text, retry):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            code, msg = payload.get("code"), payload.get("msg")
        else:
            code, msg = None, "Invalid JSON error message from Binance: %s" % text[:300]
        msg = self._clean(msg if msg is not None else "HTTP %d" % status)
        kind = error_kind(status, code)
        if kind == "banned":
            self._banned(msg, retry)
        return ExchangeError(kind, msg, http_status=status, code=code, retry_after_s=retry)

    def _see(self, headers):
        weight = to_number(header_value(headers, "X-MBX-USED-WEIGHT-1M"))
        retry = to_number(header_value(headers, "Retry-After"))
        if weight is not None:
            self.used_weight_1m = weight
        if retry is not None:
            self.retry_after_s = retry
        return retry

    def _banned(self, msg, retry):
        """Ban end from the message ("banned until <ms>") or now + Retry-After; its length from Retry-After."""
        now_ms = time.time() * 1000
        match = _BANNED_UNTIL.search(msg)
        until = int(match.group(1)) if match else (now_ms + retry * 1000 if retry is not None else None)
        self.banned_until_ms = until
        self.ban_s = retry if retry is not None else (max(0, round((until - now_ms) / 1000)) if until else None)

    def _clean(self, text):
        return " ".join(redact(text, self.secrets).split())  # one line, no secrets


# ---------------------------------------------------------------- what callers say about it

def iso_utc(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000.0))


def describe(err, exchange, reading=False):
    """One line for an ExchangeError: what happened and what the operator should do about it."""
    detail = "%s: %s" % (err.code, err.msg) if err.code is not None else err.msg
    status = "HTTP %s, " % err.http_status if err.http_status else ""
    if err.kind == "banned":
        limits = exchange.rate_limit()
        return ("IP banned by Binance (HTTP 418) for %s s, until %s: send nothing to Binance before then"
                % (limits["ban_s"] if limits["ban_s"] is not None else "?", limits["banned_until"] or "unknown"))
    if err.kind == "rate_limited":
        retry = err.retry_after_s if err.retry_after_s is not None else "?"
        return ("rate limited by Binance (HTTP 429, Retry-After %s s, max_backoff_s %g): rerun after %s s"
                % (retry, exchange.max_backoff_s, err.retry_after_s or 60))
    if err.kind == "budget":
        return "%s: rerun in a minute" % err.msg
    if err.kind == "credentials":
        return ("Binance rejected the API key (%s%s): check the key, its IP whitelist and testnet vs mainnet"
                % (status, detail))
    if err.kind == "unreachable":
        return "Binance unreachable (%s)" % detail
    if err.kind == "unknown":
        return "no usable answer from Binance (%s%s)%s" % (status, detail, "" if reading else ": outcome unknown")
    return "Binance refused the request (%s%s)" % (status, detail)


def weight_text(ex):
    return "used weight %s/%s" % (ex.used_weight_1m if ex.used_weight_1m is not None else "?", ex.weight_budget)


class Refused(Exception):
    """The module will not go on (bad input, a cap, a failed first read); args: (the one line, [partial result])."""
