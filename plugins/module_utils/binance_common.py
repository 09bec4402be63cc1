# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""What every Binance USD-M futures module of this collection shares.

* ``binance_argument_spec(**own)``: endpoint, personality, key, secret (``no_log``, environment
  fallback) and timeout, merged with the module's own options;
* ``make_client(params)``: a python-binance 1.0.37 ``Client`` pointed at ``futures_url`` per instance
  (the library's class attributes are never patched), with ``ping=False`` and the timeout on every request;
* ``redact(text, secrets)``: strips keys, secrets and ``signature=...`` from any text (requests' exception
  messages quote the signed URL).
"""
from __future__ import annotations

import importlib.util
import re
import traceback
from urllib.parse import quote, quote_plus

from ansible.module_utils.basic import env_fallback

try:
    import requests  # noqa: F401 - python-binance's transport; its exceptions are caught by callers
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
