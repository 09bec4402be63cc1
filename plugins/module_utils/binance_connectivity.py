# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Runbook check 2, Binance connectivity: the time probe (from the target and from inside the running
container), the signed account and open-orders reads, and the settings the running executor uses.
Read-only. ``connectivity(params, no_log_values)`` is the whole check; the module
binance_futures_info and the diagnosis probes are thin shells around it. The signed reads go through the
collection's one Binance client, ``binance_exchange.Exchange``; what is here is only the check's own logic
(the probes, path finding, the guard, the order summary, the settings from the container and .env)."""

from __future__ import annotations

import getpass
import inspect
import json
import os
import pwd
import threading
import time
import traceback

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_probe
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_common import (
    MODE_KEYS,
    apply_settings,
    binance_argument_spec,
    check_params,
    container_settings,
    futures_endpoint,
    hide_container_secrets,
    make_exchange,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import (
    CLOCK_SKEW_CODE,
    CREDENTIAL_CODES,
    ExchangeError,
    redact,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, engine_from_env
from ansible_collections.quantum.runbooks.plugins.module_utils.dotenv import effective_values

CHECKS = ["time", "account", "open_orders"]
# The executor's own clientOrderId prefix when neither the caller nor its environment names one.
DEFAULT_CLIENT_ORDER_PREFIX = "qtx-"
# The signed reads (GET, through Exchange.send): account weight 5, open orders of all symbols weight 40.
SIGNED_PATHS = {"account": "/v2/account", "open_orders": "/v1/openOrders"}
SIGNED = tuple(SIGNED_PATHS)
ORDER_FIELDS = ("symbol", "orderId", "clientOrderId", "side", "type", "price", "origQty", "executedQty", "status",
                "time")


# ---------------------------------------------------------------- container probe

def probe_source():
    """binance_probe's source, also when Ansible runs the module from a zip (AnsiballZ)."""
    try:
        return inspect.getsource(binance_probe)
    except (OSError, TypeError):
        loader = getattr(binance_probe, "__loader__", None)
        source = loader.get_source(binance_probe.__name__) if loader is not None else None
        if not source:
            raise
        return source


def probe_in_container(container, base_url, timeout):
    """(probe dict, None) or (None, why the exec failed). Runs ``python3 -c <probe>`` in the container through the
    Docker API (``docker_engine``; DOCKER_HOST or the default socket, as the docker CLI). Only the URL and timeout
    go to the container."""
    limit = timeout + 5
    try:
        script = binance_probe.container_script(probe_source(), base_url, timeout)
    except Exception as exc:  # should not happen; reported, not raised
        return None, "cannot read the probe's source: %s" % exc
    try:
        code, stdout, stderr = engine_from_env(limit).exec(container, ["python3", "-c", script], timeout=limit)
    except DockerError as exc:
        if exc.kind == "timeout":
            return None, "docker exec did not finish within %g s" % limit
        return None, "docker exec failed: %s" % exc
    stdout, stderr = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "reachable" in data:
                return data, None
    detail = (stderr.strip() or stdout.strip() or "no output")[-500:]
    return None, "docker exec exited %s: %s" % (code, detail)


def path_finding(host, container, container_checked):
    if host is None:
        return None
    host_ok = bool(host.get("reachable"))
    if not container_checked:
        return "host_ok_container_not_checked" if host_ok else "host_unreachable_container_not_checked"
    container_ok = bool(container.get("reachable"))
    if host_ok and container_ok:
        return "both_ok"
    if host_ok:
        return "host_only"
    if container_ok:
        return "container_only"
    return "neither"


# ---------------------------------------------------------------- signed calls

def blank(status=None, **extra):
    out = {"status": status, "reason": None, "error_kind": None, "http_status": None, "error_code": None,
           "error_msg": None}
    out.update(extra)
    return out


def guard(host, params):
    """A skipped/not-attempted result for the signed checks, or None when they may run."""
    if not (params.get("api_key") and params.get("api_secret")):
        return blank("skipped", reason="no api_key/api_secret (options or BINANCE_API_KEY/BINANCE_API_SECRET)")
    if host is None:
        return None
    retry = host.get("retry_after_s")
    wait = " (Retry-After %s s)" % retry if retry is not None else ""
    if host.get("rate_limit") == "ip_banned":
        return blank("skipped", http_status=418, error_code=host.get("error_code"),
                     reason="GET /v1/time answered HTTP 418, IP banned%s: a signed call would extend the ban" % wait)
    if host.get("rate_limit") == "rate_limited":
        return blank("skipped", http_status=429, error_code=host.get("error_code"),
                     reason="GET /v1/time answered HTTP 429, rate limited%s: a signed call would risk an IP ban"
                     % wait)
    if not host.get("reachable"):
        return blank("unreachable", error_kind=host.get("error_kind"),
                     reason="not attempted: GET /v1/time got no HTTP answer (%s)" % host.get("error_kind"))
    return None


def outcome(err):
    """The check's reading of an ExchangeError (status, error_kind, http_status, error_code, error_msg)."""
    if err.http_status is None:
        if err.cause is not None:  # no HTTP answer: timeout, refused, dns, tls, other
            return blank("unreachable", error_kind=err.cause, error_msg=err.msg)
        return blank("error", error_msg=err.msg)
    status = {418: "ip_banned", 429: "rate_limited"}.get(err.http_status)
    if status is None:
        status = "rejected" if err.code in CREDENTIAL_CODES else "clock_skew" if err.code == CLOCK_SKEW_CODE \
            else "error"
    return blank(status, http_status=err.http_status, error_code=err.code, error_msg=err.msg)


def signed_read(ex, name):
    """(result dict, payload or None) of one signed check (``SIGNED_PATHS``); never raises for the exchange.
    No retry and no clock correction: the check sees what the executor would see."""
    try:
        payload = ex.send("GET", SIGNED_PATHS[name])
    except ExchangeError as err:
        return outcome(err), None
    return blank("ok", http_status=ex.http_status), payload


def summarize_orders(orders, now_ms, prefix, stuck_after_s, max_orders):
    """Counts and the oldest-first list of open orders; ages in seconds against `now_ms` (exchange clock)."""
    rows = []
    for order in orders or []:
        if not isinstance(order, dict):
            continue
        row = {name: order.get(name) for name in ORDER_FIELDS}
        created = order.get("time")
        row["age_s"] = round((now_ms - created) / 1000.0, 1) if isinstance(created, (int, float)) else None
        row["own"] = bool(prefix) and str(order.get("clientOrderId") or "").startswith(prefix)
        row["stuck"] = row["age_s"] is not None and row["age_s"] >= stuck_after_s
        rows.append(row)
    rows.sort(key=lambda r: -(r["age_s"] if r["age_s"] is not None else float("-inf")))
    ages = [r["age_s"] for r in rows if r["age_s"] is not None]
    return {
        "count": len(rows),
        "own_count": sum(r["own"] for r in rows),
        "foreign_count": sum(not r["own"] for r in rows),
        "stuck_count": sum(r["stuck"] for r in rows),
        "own_stuck_count": sum(r["stuck"] and r["own"] for r in rows),
        "oldest_age_s": max(ages) if ages else None,
        "truncated": len(rows) > max_orders,
        "orders": rows[:max_orders],
    }


def empty_orders(base):
    base.update(count=None, own_count=None, foreign_count=None, stuck_count=None, own_stuck_count=None,
                oldest_age_s=None, age_reference=None, truncated=False, orders=[])
    return base


# ---------------------------------------------------------------- the whole run

def run_checks(params):
    """Everything the module returns except `changed`; never raises for network or container trouble."""
    secrets = [params.get("api_key"), params.get("api_secret")]
    timeout = params["timeout"]
    checks = params["checks"] or []
    endpoint = futures_endpoint(params)
    result = {
        "endpoint": endpoint,
        "personality": "testnet" if params["testnet"] else "mainnet",
        "host": None,
        "container": None,
        "path_finding": None,
        "account": blank("skipped", reason="not requested", can_trade=None),
        "open_orders": empty_orders(blank("skipped", reason="not requested")),
        "used_weight_1m": None,
        "retry_after_s": None,
    }
    ex = make_exchange(params)  # also keeps the last X-MBX-USED-WEIGHT-1M / Retry-After seen on the target

    # The container probe runs alongside the target-side checks (it has its own bound: timeout + 5 s).
    container_box = {}
    container_thread = None
    if params.get("container"):
        container_url = (params.get("container_futures_url") or endpoint).rstrip("/")

        def in_container():
            container_box["result"] = probe_in_container(params["container"], container_url, timeout)

        container_thread = threading.Thread(target=in_container, daemon=True)
        container_thread.start()

    host = None
    if "time" in checks or any(c in checks for c in SIGNED) or params.get("container"):
        host = binance_probe.probe_time(endpoint, timeout)
        for name in ("used_weight_1m", "retry_after_s"):
            if host.get(name) is not None:
                setattr(ex, name, host[name])
    result["host"] = host

    wanted = [c for c in SIGNED if c in checks]
    if wanted:
        skip = guard(host, params)
        for name in wanted:
            if skip is not None:
                out, payload = dict(skip), None
            else:
                out, payload = signed_read(ex, name)
            if name == "account":
                out["can_trade"] = payload.get("canTrade") if isinstance(payload, dict) else None
                result["account"] = out
            else:
                empty_orders(out)
                if out["status"] == "ok":
                    offset = host.get("clock_offset_ms") if host else None
                    now_ms = time.time() * 1000 + (offset or 0)
                    out.update(summarize_orders(payload if isinstance(payload, list) else [], now_ms,
                                                params["client_order_prefix"], params["stuck_after_s"],
                                                params["max_orders"]))
                    out["age_reference"] = "exchange" if offset is not None else "local"
                result["open_orders"] = out
            # Do not make a ban longer, do not wait twice for a hanging exchange.
            if skip is None and out["status"] in ("rate_limited", "ip_banned"):
                skip = blank("skipped", http_status=out["http_status"], error_code=out["error_code"],
                             reason="previous signed call answered HTTP %s (%s)" % (out["http_status"], out["status"]))
            elif skip is None and out["status"] == "unreachable" and out["error_kind"] == "timeout":
                skip = blank("unreachable", error_kind="timeout",
                             reason="not attempted: previous signed call timed out")

    if container_thread is not None:
        container_thread.join(timeout + 6)
        probe, error = container_box.get("result", (None, "docker exec did not finish in time"))
        result["container"] = probe
        if error:
            result["container_error"] = redact(error, secrets)
    result["path_finding"] = path_finding(host, result["container"], result["container"] is not None)
    result["used_weight_1m"] = ex.used_weight_1m
    result["retry_after_s"] = ex.retry_after_s
    return result


def apply_container_settings(no_log_values, p):
    """Effective parameters from the running container; the extra results (no secrets) to return."""
    state, env = container_settings(p["settings_from_container"])
    hide_container_secrets(env, no_log_values)
    effective, container_url = apply_settings(p, env)
    effective["container_futures_url"] = p.get("container_futures_url") or container_url
    effective["container"] = p.get("container") or (p["settings_from_container"] if state == "running" else None)
    effective["client_order_prefix"] = p.get("client_order_prefix") or env.get("EXECUTOR_CLIENT_ORDER_PREFIX")
    if not (p.get("futures_testnet_url") if effective["testnet"] else p.get("futures_url")):
        effective["futures_url"] = effective["container_futures_url"]
    return effective, {"settings_container_state": state,
                       "running_env": {k: env[k] for k in MODE_KEYS if k in env}}


def dotenv_settings(path):
    """(mode keys from .env, None) or ({}, one line saying why it could not be read, as whom)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return effective_values(handle.read(), MODE_KEYS), None
    except OSError as err:
        project = os.path.dirname(path)
        if not os.path.isdir(project) and not isinstance(err, PermissionError):
            return {}, "the project directory %s does not exist on this host (qt_project_dir)" % project
        who = getpass.getuser()
        try:
            st = os.stat(path)
            owner = " (owner %s, mode %04o)" % (_user_name(st.st_uid), st.st_mode & 0o7777)
        except OSError:
            owner = ""
        return {}, "cannot read %s as %s: %s%s" % (path, who, err.strerror, owner)


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def env_drift(dotenv, running):
    return [{"key": k, "dotenv": dotenv[k], "running": running[k]} for k in MODE_KEYS
            if k in dotenv and k in running and dotenv[k].strip().lower() != running[k].strip().lower()]


def argument_spec():
    return binance_argument_spec(
        checks=dict(type="list", elements="str", choices=CHECKS, default=list(CHECKS)),
        stuck_after_s=dict(type="int", default=300),
        client_order_prefix=dict(type="str"),
        container=dict(type="str"),
        container_futures_url=dict(type="str"),
        max_orders=dict(type="int", default=50),
        settings_from_container=dict(type="str"),
        futures_testnet_url=dict(type="str"),
        dotenv_path=dict(type="path"),
    )


class ParameterError(ValueError):
    """The parameters cannot make a check (one line for the operator)."""


def connectivity(p, no_log_values):
    """The check's whole result (no ``changed``). Raises ParameterError for unusable parameters; never raises
    for network or container trouble. Secrets read from the container are added to ``no_log_values``."""
    extra = {}
    if p.get("settings_from_container"):
        p, extra = apply_container_settings(no_log_values, p)
    p = dict(p, client_order_prefix=p.get("client_order_prefix") or DEFAULT_CLIENT_ORDER_PREFIX)
    if p.get("dotenv_path"):
        extra["dotenv"], dotenv_error = dotenv_settings(p["dotenv_path"])
        if dotenv_error:
            extra["dotenv_error"] = dotenv_error
        if "running_env" in extra:
            extra["env_drift"] = env_drift(extra["dotenv"], extra["running_env"])
    problem = check_params(p)
    if problem is None and p["stuck_after_s"] < 0:
        problem = "stuck_after_s must be >= 0"
    if problem is None and p["max_orders"] < 0:
        problem = "max_orders must be >= 0"
    url = p.get("container_futures_url")
    if problem is None and url and not url.lower().startswith(("http://", "https://")):
        problem = "container_futures_url must be an http:// or https:// URL (ending in /fapi)"
    if problem is not None:
        raise ParameterError(problem)

    secrets = [p.get("api_key"), p.get("api_secret")]
    try:
        result = run_checks(p)
    except Exception as exc:  # a bug here must not leak credentials or hide the probe's data
        result = {"endpoint": futures_endpoint(p),
                  "internal_error": redact("%s: %s" % (type(exc).__name__, exc), secrets),
                  "traceback": redact(traceback.format_exc(), secrets)}
    result.update(extra)
    return result
