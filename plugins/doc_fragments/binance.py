# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Options shared by the Binance USD-M futures modules.

``quantum.runbooks.binance``: the connection options of every one of them (binance_futures_info,
binance_futures_orders, binance_futures_positions, binance_futures_income) -
module_utils/binance_common.binance_argument_spec() plus settings_from_container and futures_testnet_url.
``quantum.runbooks.binance.exchange``: the rate-limit options of the modules that go through
``Exchange.call`` (orders, positions, income) - module_utils/binance_common.exchange_argument_spec().
"""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  futures_url:
    description:
      - Base URL of the USD-M futures REST API, ending in C(/fapi) (for example C(http://127.0.0.1:18081/fapi)
        for the lab simulator's testnet personality).
      - Default is Binance's URL for the personality, C(https://fapi.binance.com/fapi) or, with
        O(testnet=true), C(https://testnet.binancefuture.com/fapi) (python-binance 1.0.37's, as the executor uses).
    type: str
  testnet:
    description:
      - The testnet personality (the executor's C(BINANCE_USE_TESTNET)) - it picks the default O(futures_url)
        and is reported as C(personality).
    type: bool
    default: false
  api_key:
    description: API key. If not set, E(BINANCE_API_KEY) is used, or the container's with O(settings_from_container).
    type: str
  api_secret:
    description:
      - API secret (HMAC-SHA256). If not set, E(BINANCE_API_SECRET) is used, or the container's with
        O(settings_from_container).
    type: str
  timeout:
    description: Seconds allowed for each call (connect and read); a call never takes more than this plus one.
    type: float
    default: 5
  settings_from_container:
    description:
      - Take the trading settings from this container's environment as the executor really runs (its inspect
        data from the Docker API on the target, no exec) - C(BINANCE_USE_TESTNET) sets the personality,
        C(BINANCE_FUTURES_URL) / C(BINANCE_FUTURES_TESTNET_URL) the URL, C(BINANCE_API_KEY) /
        C(BINANCE_API_SECRET) the keys when O(api_key) / O(api_secret) are not given. The keys stay inside
        the module.
      - O(futures_url) / O(futures_testnet_url) override the container's URL on the target (the container's
        host name, for example C(binance-sim), may not resolve there).
    type: str
  futures_testnet_url:
    description: With O(settings_from_container), the URL to use when the container runs in testnet mode.
    type: str
notes:
  - O(settings_from_container) reads the Docker API at E(DOCKER_HOST) or C(unix:///var/run/docker.sock), with the
    Python standard library (no docker CLI or Docker SDK needed on the target).
  - Binance is called with the Python standard library only (C(urllib), HMAC-SHA256 signing), through the
    collection's one Binance client (module_utils C(binance_exchange)); no python-binance or requests on the
    target. HTTPS certificates are checked against the target's system CA store; C(HTTPS_PROXY) / C(NO_PROXY)
    apply.
  - The key, the secret and request signatures never appear in results or messages.
"""

    EXCHANGE = r"""
options:
  max_backoff_s:
    description: On HTTP 429, wait C(Retry-After) once only when it is at most this many seconds; otherwise stop.
    type: float
    default: 10
  weight_budget:
    description:
      - Never send a call that would take C(X-MBX-USED-WEIGHT-1M) above this. Binance allows 2400 per minute
        per IP, shared with the executor when it runs on the same IP; stopping here leaves a partial result.
    type: int
    default: 2000
"""
