# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Probe ``GET {base_url}/v1/time`` of a Binance USD-M futures endpoint. Standard library only.

Two uses:

* imported (``ansible_collections.quantum.runbooks.plugins.module_utils.binance_probe``) and called as
  ``probe_time(base_url, timeout)`` on the Ansible target;
* run as a script inside a container, where only ``python3`` and its standard library exist.
  ``python3 binance_probe.py`` reads one JSON line ``{"base_url": ..., "timeout": ...}`` from stdin and
  prints the result as one JSON line. In a container it runs as ``python3 -c <program>`` (an exec has no
  stdin): the program is this module's source plus ``main(<request line as a string literal>)``
  (see ``container_script``); the request line holds only the URL and the timeout, never a credential.

``probe_time`` never raises for network errors, never waits longer than about ``timeout + 1`` seconds
(DNS included) and sends no credentials: ``/v1/time`` is an unsigned endpoint.
"""
from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request

ERROR_KINDS = ("timeout", "refused", "dns", "tls", "http", "other")
_MAX_BODY = 65536


def header_value(headers, name):
    """Case-insensitive header lookup on an http.client / email.message headers object (or a dict)."""
    if headers is None:
        return None
    wanted = name.lower()
    try:
        items = headers.items()
    except AttributeError:
        return None
    for key, value in items:
        if key.lower() == wanted:
            return value
    return None


def to_number(value):
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def classify_error(exc):
    """Map a urllib/socket exception to one of ERROR_KINDS (also binance_exchange's ``cause``)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, str):
        text = reason.lower()
        if "timed out" in text:
            return "timeout"
        if "refused" in text:
            return "refused"
        return "other"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    if isinstance(reason, socket.gaierror):
        return "dns"
    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    return "other"


def _describe(exc):
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(exc, urllib.error.HTTPError):
        exc = reason
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _empty_result(url):
    return {
        "url": url,
        "reachable": False,
        "error_kind": None,
        "error": None,
        "http_status": None,
        "latency_ms": None,
        "server_time_ms": None,
        "local_time_ms": None,
        "clock_offset_ms": None,
        "used_weight_1m": None,
        "retry_after_s": None,
        "error_code": None,
        "error_msg": None,
        "rate_limit": None,
    }


def _rate_limit(status):
    if status == 429:
        return "rate_limited"
    if status == 418:
        return "ip_banned"
    return "ok"


def _fill_from_response(result, status, headers, body):
    result["reachable"] = True
    result["http_status"] = status
    result["rate_limit"] = _rate_limit(status)
    result["used_weight_1m"] = to_number(header_value(headers, "X-MBX-USED-WEIGHT-1M"))
    result["retry_after_s"] = to_number(header_value(headers, "Retry-After"))
    try:
        payload = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        payload = None
    if 200 <= status < 300:
        if isinstance(payload, dict) and isinstance(payload.get("serverTime"), (int, float)):
            result["server_time_ms"] = int(payload["serverTime"])
        else:
            result["error_kind"] = "other"
            result["error"] = "HTTP %d without a serverTime in the body" % status
        return
    result["error_kind"] = "http"
    result["error"] = "HTTP %d" % status
    if isinstance(payload, dict):
        result["error_code"] = payload.get("code")
        result["error_msg"] = payload.get("msg")
    elif body:
        result["error_msg"] = body[:300].decode("utf-8", "replace")


def _request(url, timeout, result):
    """The blocking part; fills `result` in place (runs in a worker thread)."""
    # Environment proxies apply as they do for python-binance (requests): the probe sees the same path.
    opener = urllib.request.build_opener()
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "qt-binance-probe/1"})
    started_wall, started = time.time(), time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            body = resp.read(_MAX_BODY)
            status, headers = resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(_MAX_BODY)
        except Exception:  # a broken error body is still an HTTP answer
            body = b""
        status, headers = exc.code, exc.headers
    except Exception as exc:  # never raise for network errors
        result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        result["error_kind"] = classify_error(exc)
        result["error"] = _describe(exc)
        return
    elapsed = time.monotonic() - started
    result["latency_ms"] = round(elapsed * 1000, 1)
    _fill_from_response(result, status, headers, body)
    if result["server_time_ms"] is not None:
        midpoint_ms = (started_wall + elapsed / 2) * 1000
        result["local_time_ms"] = int(midpoint_ms)
        result["clock_offset_ms"] = int(round(result["server_time_ms"] - midpoint_ms))


def probe_time(base_url, timeout=5.0):
    """GET ``{base_url}/v1/time`` (base_url ends in ``/fapi``); return a dict, never raise on network errors.

    ``reachable`` is true when any HTTP answer arrived (a 418 or 429 included). ``clock_offset_ms`` is the
    server time minus the local wall clock at the midpoint of the request.
    """
    url = str(base_url or "").rstrip("/") + "/v1/time"
    result = _empty_result(url)
    try:
        timeout = float(timeout)
        if timeout <= 0:
            raise ValueError
    except (TypeError, ValueError):
        result.update(error_kind="other", error="timeout must be a positive number")
        return result
    if not url.lower().startswith(("http://", "https://")):
        result.update(error_kind="other", error="base_url must start with http:// or https://")
        return result
    # urllib's timeout covers each socket operation but not name resolution: a worker thread and a
    # join bound the whole probe.
    worker_result = dict(result)
    worker = threading.Thread(target=_request, args=(url, timeout, worker_result), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout + 1.0)
    if worker.is_alive():
        result.update(error_kind="timeout", latency_ms=round((time.monotonic() - started) * 1000, 1),
                      error="no answer within %.1f s" % (timeout + 1.0))
        return result
    return worker_result


def container_script(source, base_url, timeout):
    """Program text for ``python3 -c`` (or ``python3 -``): this module's source plus a call carrying the request
    line. Only the URL and the timeout go in: the program is visible in the container's process list."""
    line = json.dumps({"base_url": base_url, "timeout": timeout})
    return "%s\n\n# the request line (python3 -c has no request on stdin)\nsys.exit(main(%r))\n" % (
        source, line)


def main(request_line=None):
    """Read one JSON request line (argument or stdin), print the probe result as one JSON line."""
    try:
        if request_line is None:
            request_line = sys.stdin.readline()
        request = json.loads(request_line)
        result = probe_time(request["base_url"], request.get("timeout", 5.0))
    except Exception as exc:  # always answer with JSON
        result = _empty_result(None)
        result.update(error_kind="other", error="bad request line: %s" % exc)
        sys.stdout.write(json.dumps(result) + "\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__" and sys.argv[:1] not in (["-"], ["-c"]):  # as a program text, its last line calls main
    raise SystemExit(main())
