# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""python-binance calls that respect Binance's rate limits, for modules that change things.

python-binance 1.0.37 neither reads ``X-MBX-USED-WEIGHT-1M`` / ``Retry-After`` nor backs off, so every
call goes through ``Exchange.call``, which

* refuses to send a call that would take the used weight past ``weight_budget`` (the executor shares
  the IP's 2400/min);
* on HTTP 429 waits ``Retry-After`` once when it is at most ``max_backoff_s``, else stops;
* on HTTP 418 stops at once and remembers until when the IP is banned;
* turns every failure into an ``ExchangeError`` whose ``kind`` tells the caller what is known about the
  request's effect (see ``KINDS``). Messages never carry keys or signatures.

Also what binance_futures_orders and binance_futures_positions share: their extra options
(``exchange_argument_spec``, documented in the doc fragment ``quantum.runbooks.binance``), the settings of
the executor container (``connection_params``), argument checks, the exchange clock (``server_now``) and
the guarded run (``run_guarded``: one-line failures, no credentials, ``rate_limit`` always returned).
"""
from __future__ import annotations

import re
import time
import traceback

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_common import (
    CallOverrun,
    apply_settings,
    binance_argument_spec,
    binance_library,
    call_bounded,
    check_params,
    connection_kind,
    container_settings,
    hide_container_secrets,
    make_client,
    redact,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_probe import header_value, to_number

try:
    import requests
except ImportError:  # the modules check binance_common.HAS_REQUESTS first
    requests = None

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
CREDENTIAL_CODES = (-2014, -2015, -1022)
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")


class ExchangeError(Exception):
    def __init__(self, kind, msg, http_status=None, code=None, retry_after_s=None):
        super().__init__(msg)
        self.kind, self.msg, self.http_status, self.code, self.retry_after_s = (
            kind, msg, http_status, code, retry_after_s)

    @property
    def hanging(self):
        """No HTTP answer at all: the exchange may hold every further request for the whole timeout."""
        return self.kind == "unknown" and self.http_status is None


class Exchange:
    """One client's calls with rate-limit bookkeeping (``used_weight_1m``, ``retry_after_s``, ban)."""

    def __init__(self, client, timeout, secrets, max_backoff_s=10, weight_budget=2000, sleep=time.sleep):
        self.client, self.timeout, self.secrets = client, timeout, [s for s in secrets if s]
        self.max_backoff_s, self.weight_budget, self.sleep = max_backoff_s, weight_budget, sleep
        self.used_weight_1m = None
        self.retry_after_s = None
        self.waited_s = 0
        self.banned_until_ms = None
        self.ban_s = None

    def call(self, weight, func, **params):
        """func(**params)'s payload, or ExchangeError. A short 429 is waited out once, then retried."""
        if self.used_weight_1m is not None and self.used_weight_1m + weight > self.weight_budget:
            raise ExchangeError("budget", "not sent: used weight %s + %s would pass weight_budget %s"
                                % (self.used_weight_1m, weight, self.weight_budget))
        try:
            return self._send(func, params)
        except ExchangeError as err:
            if not (err.kind == "rate_limited" and err.retry_after_s is not None
                    and err.retry_after_s <= self.max_backoff_s):
                raise
            wait = err.retry_after_s
        self.sleep(wait)
        self.waited_s += wait
        return self._send(func, params)  # a second 429 stops the run: no hammering

    def rate_limit(self):
        until = self.banned_until_ms
        return {"used_weight_1m": self.used_weight_1m, "weight_budget": self.weight_budget,
                "retry_after_s": self.retry_after_s, "waited_s": self.waited_s,
                "banned_until": iso_utc(until) if until else None, "ban_s": self.ban_s}

    # ------------------------------------------------------------ internals

    def _see(self, headers):
        weight = to_number(header_value(headers, "X-MBX-USED-WEIGHT-1M"))
        retry = to_number(header_value(headers, "Retry-After"))
        if weight is not None:
            self.used_weight_1m = weight
        if retry is not None:
            self.retry_after_s = retry
        return retry

    def _send(self, func, params):
        _client, api_exception, request_exception = binance_library()
        try:
            payload = call_bounded(lambda: func(**params), self.timeout + 1)
        except CallOverrun as exc:
            raise ExchangeError("unknown", str(exc)) from None
        except api_exception as exc:
            raise self._api_error(exc) from None
        except requests.exceptions.ConnectTimeout:
            raise ExchangeError("unreachable", "connect timed out after %g s" % self.timeout) from None
        except requests.exceptions.Timeout:
            raise ExchangeError("unknown", "read timed out after %g s" % self.timeout) from None
        except requests.exceptions.ConnectionError as exc:
            kind = connection_kind(exc)
            raise ExchangeError("unreachable" if kind in ("refused", "dns", "tls") else "unknown",
                                "%s: %s" % (kind, self._clean(exc))) from None
        except request_exception as exc:  # a 2xx whose body is not JSON
            raise ExchangeError("unknown", self._clean(getattr(exc, "message", exc))) from None
        except Exception as exc:  # anything else from requests or the library: outcome unknown
            raise ExchangeError("unknown", self._clean("%s: %s" % (type(exc).__name__, exc))) from None
        self._see(getattr(getattr(self.client, "response", None), "headers", None))
        return payload

    def _api_error(self, exc):
        status, code = getattr(exc, "status_code", None), getattr(exc, "code", None)
        msg = self._clean(getattr(exc, "message", None) or exc)
        retry = self._see(getattr(getattr(exc, "response", None), "headers", None))
        if status == 418:
            self._banned(msg, retry)
            kind = "banned"
        elif status == 429:
            kind = "rate_limited"
        elif code in CREDENTIAL_CODES:
            kind = "credentials"
        elif status is not None and status >= 500:
            kind = "unknown"
        else:
            kind = "api"
        return ExchangeError(kind, msg, http_status=status, code=code, retry_after_s=retry)

    def _banned(self, msg, retry):
        """Ban end from the message ("banned until <ms>") or now + Retry-After; its length from Retry-After."""
        now_ms = time.time() * 1000
        match = _BANNED_UNTIL.search(msg)
        until = int(match.group(1)) if match else (now_ms + retry * 1000 if retry is not None else None)
        self.banned_until_ms = until
        self.ban_s = retry if retry is not None else (max(0, round((until - now_ms) / 1000)) if until else None)

    def _clean(self, text):
        return " ".join(redact(text, self.secrets).split())  # one line, no secrets


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


# ---------------------------------------------------------------- what the changing modules share

class Refused(Exception):
    """The module will not go on (bad input, a cap, a failed first read); args: (the one line, [partial result])."""


def server_now(ex, client):
    """The exchange clock in ms; signed timestamps follow it from now on (a skewed host cannot -1021)."""
    before = time.time()
    payload = ex.call(1, client.futures_time)
    local_ms = int((before + time.time()) / 2 * 1000)
    try:
        server = int(payload["serverTime"])
    except (TypeError, KeyError, ValueError):
        raise ExchangeError("unknown", "GET /fapi/v1/time answered without serverTime") from None
    client.timestamp_offset = server - local_ms
    return server


def weight_text(ex):
    return "used weight %s/%s" % (ex.used_weight_1m if ex.used_weight_1m is not None else "?", ex.weight_budget)


def exchange_argument_spec(**own):
    """The options of every module that changes things on the exchange (documented in the doc fragment
    quantum.runbooks.binance), updated with the module's own."""
    return binance_argument_spec(
        max_backoff_s=dict(type="float", default=10.0),
        weight_budget=dict(type="int", default=2000),
        settings_from_container=dict(type="str"),
        futures_testnet_url=dict(type="str"),
        **own,
    )


def connection_params(params, no_log_values):
    """(params with the settings of ``settings_from_container`` applied, that container's settings env,
    extra results). The container's keys go to ``no_log_values``; symbols are upper-cased.
    """
    p, env, extra = dict(params), {}, {}
    if params.get("settings_from_container"):
        state, env = container_settings(params["settings_from_container"])
        hide_container_secrets(env, no_log_values)
        p, _dummy = apply_settings(p, env)
        extra["settings_container_state"] = state
    p["symbols"] = sorted({s.strip().upper() for s in p.get("symbols") or [] if s and s.strip()})
    return p, env, extra


def check_exchange_params(p):
    """Problems with the shared options a spec cannot express; a message or None."""
    problem = check_params(p)
    if problem:
        return problem
    if not (p.get("api_key") and p.get("api_secret")):
        return ("no API key: set api_key/api_secret, BINANCE_API_KEY/BINANCE_API_SECRET, or settings_from_container "
                "with a container that has them")
    if p["max_backoff_s"] < 0:
        return "max_backoff_s must be >= 0"
    if p["weight_budget"] <= 0:
        return "weight_budget must be positive"
    return None


def run_guarded(p, result, work):
    """(result, failure line or None) of ``work(ex, client) -> (out, failure)`` with an ``Exchange`` built
    from ``p``. Never raises: ``Refused`` becomes the failure line (with its partial result), a bug one line
    plus ``internal_error`` (credentials removed). ``rate_limit`` is always set."""
    secrets = [p.get("api_key"), p.get("api_secret")]
    ex = None
    failure = None
    try:
        client = make_client(p)
        ex = Exchange(client, p["timeout"], secrets, p["max_backoff_s"], p["weight_budget"])
        out, failure = work(ex, client)
        result.update(out)
    except Refused as exc:
        failure = str(exc.args[0])
        if len(exc.args) > 1:
            result.update(exc.args[1])
        result["summary"] = failure
    except Exception as exc:  # a bug: one line, the traceback without credentials
        failure = redact("internal error: %s: %s" % (type(exc).__name__, exc), secrets)
        result.update(summary=failure, internal_error=redact(traceback.format_exc(), secrets))
    result["rate_limit"] = ex.rate_limit() if ex is not None else None
    return result, failure
