# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""What every Binance USD-M futures module of this collection shares (the client itself, signing, error
mapping and rate limits, is ``binance_exchange.Exchange``).

* ``binance_argument_spec(**own)``: endpoint, personality, key, secret (``no_log``, environment
  fallback) and timeout, merged with the module's own options; ``exchange_argument_spec(**own)`` adds
  the options of the modules that change things (documented in the doc fragment ``quantum.runbooks.binance``);
* ``futures_endpoint(params)`` and ``make_exchange(params)``: the base URL and an ``Exchange`` for it;
* ``container_settings(name)`` and ``apply_settings(params, env)``: the trading settings and keys of the
  running executor container (inspected through the Docker API, no exec), as the modules'
  ``settings_from_container``;
  ``connection_params`` applies them;
* ``check_params`` / ``check_exchange_params``: argument problems a spec cannot express;
* ``run_guarded(p, result, work)``: one-line failures, no credentials, ``rate_limit`` always returned.
"""
from __future__ import annotations

import re
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import (
    DEFAULT_FUTURES_TESTNET_URL,
    DEFAULT_FUTURES_URL,
    Exchange,
    Refused,
    redact,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, engine_from_env
from ansible_collections.quantum.runbooks.plugins.module_utils.trading_mode import MODE_KEYS


def binance_argument_spec(**own):
    """The shared options, updated with the module's own (``own`` wins on a name clash)."""
    spec = dict(
        futures_url=dict(type="str"),
        testnet=dict(type="bool", default=False),
        api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["BINANCE_API_KEY"])),
        api_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["BINANCE_API_SECRET"])),
        timeout=dict(type="float", default=5.0),
    )
    spec.update(own)
    return spec


def futures_endpoint(params):
    """The futures base URL (ending in /fapi) the module talks to: futures_url or Binance's for the personality."""
    url = params.get("futures_url")
    if not url:
        url = DEFAULT_FUTURES_TESTNET_URL if params.get("testnet") else DEFAULT_FUTURES_URL
    return url.rstrip("/")


def check_params(params):
    """Argument problems a spec cannot express; returns an error message or None."""
    url = futures_endpoint(params)
    if not re.match(r"^https?://[^/\s]+", url):
        return "futures_url must be an http:// or https:// URL (ending in /fapi), got %r" % url
    if "{" in url or "}" in url:
        return "futures_url must not contain '{' or '}'"
    if params.get("timeout") is None or params["timeout"] <= 0:
        return "timeout must be a positive number of seconds"
    return None


def make_exchange(params, **limits):
    """An ``Exchange`` for the endpoint, key and timeout in ``params``; no network call is made here.
    ``limits``: max_backoff_s, weight_budget."""
    return Exchange(futures_endpoint(params), params.get("api_key"), params.get("api_secret"), params["timeout"],
                    **limits)


# ---------------------------------------------------------------- settings of the running executor

SETTING_KEYS = MODE_KEYS + ("BINANCE_FUTURES_URL", "BINANCE_FUTURES_TESTNET_URL", "BINANCE_API_KEY",
                            "BINANCE_API_SECRET", "EXECUTOR_CLIENT_ORDER_PREFIX")
SECRET_KEYS = ("BINANCE_API_KEY", "BINANCE_API_SECRET")


def truthy(value):
    return str(value).strip().lower() in ("true", "1", "yes")


def container_settings(name):
    """(state, {setting: value}) of a container, read from its inspect data (no exec into it) through the Docker
    API (``docker_engine``; DOCKER_HOST or the default socket, as the docker CLI).

    The state is ``missing`` when the container does not exist or Docker cannot answer.
    """
    try:
        attrs = engine_from_env(15).inspect(name)
    except DockerError:
        return "missing", {}
    pairs = (item.split("=", 1) for item in (attrs.get("Config") or {}).get("Env") or [] if "=" in item)
    return (attrs.get("State") or {}).get("Status"), {k: v for k, v in pairs if k in SETTING_KEYS}


def hide_container_secrets(env, no_log_values):
    """The container's keys join the module's no_log values: Ansible then masks them in any output."""
    for key in SECRET_KEYS:
        if env.get(key):
            no_log_values.add(env[key])


def apply_settings(params, env):
    """(effective params, the container's own futures URL) from a container's settings ``env``.

    The personality follows the container's ``BINANCE_USE_TESTNET``; keys are taken from it only when
    ``api_key`` / ``api_secret`` are not given. The URL the container uses (for example
    ``http://binance-sim:8081/fapi``) may not resolve on the Ansible target, so ``futures_url`` (mainnet)
    or ``futures_testnet_url`` (testnet) override it there.
    """
    testnet = truthy(env.get("BINANCE_USE_TESTNET", params["testnet"]))
    container_url = env.get("BINANCE_FUTURES_TESTNET_URL" if testnet else "BINANCE_FUTURES_URL")
    target_url = params.get("futures_testnet_url") if testnet else params.get("futures_url")
    effective = dict(params, testnet=testnet,
                     api_key=params.get("api_key") or env.get("BINANCE_API_KEY"),
                     api_secret=params.get("api_secret") or env.get("BINANCE_API_SECRET"),
                     futures_url=target_url or container_url)
    return effective, container_url


# ---------------------------------------------------------------- what the modules that change things share

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
    """(result, failure line or None) of ``work(ex) -> (out, failure)`` with an ``Exchange`` built from
    ``p``. Never raises: ``Refused`` becomes the failure line (with its partial result), a bug one line
    plus ``internal_error`` (credentials removed). ``rate_limit`` is always set."""
    secrets = [p.get("api_key"), p.get("api_secret")]
    ex = None
    failure = None
    try:
        ex = make_exchange(p, max_backoff_s=p["max_backoff_s"], weight_budget=p["weight_budget"])
        out, failure = work(ex)
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
