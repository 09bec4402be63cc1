# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""What every Binance USD-M futures module of this collection shares.

* ``binance_argument_spec(**own)``: endpoint, personality, key, secret (``no_log``, environment
  fallback) and timeout, merged with the module's own options;
* ``make_client(params)``: a python-binance 1.0.37 ``Client`` pointed at ``futures_url`` per instance
  (the library's class attributes are never patched), with ``ping=False`` and the timeout on every request;
* ``redact(text, secrets)``: strips keys, secrets and ``signature=...`` from any text (requests' exception
  messages quote the signed URL);
* ``call_bounded(func, limit)``: a hard deadline per call (requests' timeout is per socket operation);
* ``connection_kind(exc)``: refused / dns / tls / timeout / other for a requests connection error;
* ``container_settings(name)`` and ``apply_settings(params, env)``: the trading settings and keys of the
  running executor container (``docker inspect``, no exec), as the modules' ``settings_from_container``.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import threading
import traceback
from urllib.parse import quote, quote_plus

from ansible.module_utils.basic import env_fallback

from ansible_collections.quantum.runbooks.plugins.module_utils.missing_library import missing_library
from ansible_collections.quantum.runbooks.plugins.module_utils.trading_mode import MODE_KEYS

try:
    import requests  # python-binance's transport; its exceptions are caught by callers
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

# python-binance is imported only when a signed call is about to be made: importing it alone
# takes about a second (aiohttp, dateparser, websockets), which a diagnosis skips whenever the
# exchange is unreachable or banning us.
HAS_BINANCE = importlib.util.find_spec("binance") is not None
BINANCE_IMPORT_ERROR = None if HAS_BINANCE else "ModuleNotFoundError: No module named 'binance'"


def binance_library():
    """(Client, BinanceAPIException, BinanceRequestException), imported on first use."""
    from binance.client import Client
    from binance.exceptions import BinanceAPIException, BinanceRequestException
    return Client, BinanceAPIException, BinanceRequestException


# python-binance 1.0.37's futures base URLs (base_client.py:29-30), used when futures_url is not given.
DEFAULT_FUTURES_URL = "https://fapi.binance.com/fapi"
DEFAULT_FUTURES_TESTNET_URL = "https://testnet.binancefuture.com/fapi"

REDACTED = "********"
_SIGNATURE = re.compile(r"(signature=)[^&\s'\"]+", re.IGNORECASE)
_APIKEY_HEADER = re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.IGNORECASE)


def fail_without_libraries(module):
    """Fail the module with Ansible's usual message when requests or python-binance is missing."""
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_library("requests"), exception=REQUESTS_IMPORT_ERROR)
    if not HAS_BINANCE:
        module.fail_json(msg=missing_library("python-binance"), exception=BINANCE_IMPORT_ERROR)


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
    """The futures base URL (ending in /fapi) the module talks to: futures_url or the library default."""
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


def make_client(params):
    """A python-binance Client for the futures endpoint in ``params``; no network call is made here."""
    if not HAS_BINANCE:
        raise RuntimeError("python-binance is not installed")
    url = futures_endpoint(params)
    client_class = binance_library()[0]
    client = client_class(params.get("api_key"), params.get("api_secret"), ping=False,
                          testnet=bool(params.get("testnet")), requests_params={"timeout": params["timeout"]})
    # Instance attributes: with testnet=True python-binance reads FUTURES_TESTNET_URL, else FUTURES_URL.
    client.FUTURES_URL = url
    client.FUTURES_TESTNET_URL = url
    return client


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
    """A call outlived its hard deadline (requests' timeout is per socket operation, not per call)."""


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


def connection_kind(exc):
    """refused, dns, tls, timeout or other, for a requests ConnectionError."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    text = str(exc).lower()
    if "refused" in text:
        return "refused"
    if "resolve" in text or "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "dns"
    if "timed out" in text:
        return "timeout"
    return "other"


# ---------------------------------------------------------------- settings of the running executor

SETTING_KEYS = MODE_KEYS + ("BINANCE_FUTURES_URL", "BINANCE_FUTURES_TESTNET_URL", "BINANCE_API_KEY",
                            "BINANCE_API_SECRET", "EXECUTOR_CLIENT_ORDER_PREFIX")
SECRET_KEYS = ("BINANCE_API_KEY", "BINANCE_API_SECRET")


def truthy(value):
    return str(value).strip().lower() in ("true", "1", "yes")


def container_settings(name):
    """(state, {setting: value}) of a container, read with `docker inspect` (no exec into it).

    The state is ``missing`` when the container does not exist or the docker CLI cannot answer.
    """
    try:
        res = subprocess.run(["docker", "inspect", "--format", "{{json .State.Status}} {{json .Config.Env}}", name],
                             capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing", {}
    if res.returncode != 0:
        return "missing", {}
    state, _dummy, env_json = res.stdout.strip().partition(" ")
    pairs = (item.split("=", 1) for item in json.loads(env_json or "[]") if "=" in item)
    return json.loads(state), {k: v for k, v in pairs if k in SETTING_KEYS}


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
