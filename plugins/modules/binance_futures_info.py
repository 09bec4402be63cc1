#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read-only health probe of a Binance USD-M futures endpoint: reachability, clock, key, open orders."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: binance_futures_info
short_description: Probe a Binance USD-M futures endpoint (reachability, clock, credentials, stuck orders)
version_added: "0.1.0"
description:
  - Answers the "Execution Stuck" runbook's exchange-side questions without changing anything.
  - C(time) probes C(GET {futures_url}/v1/time) from the Ansible target with the standard library and reports
    reachability (timeout, refused, DNS, TLS, HTTP), latency, the clock offset to the exchange, the used request
    weight and the rate-limit state (C(429) rate limited, C(418) IP banned).
  - With O(container), the same probe also runs inside that container (an exec of C(python3 -c <the probe's
    source>) through the Docker API; the container needs only C(python3)). Comparing both answers tells whether the
    network path from the container is the problem (RV(path_finding)). No credential is sent to the container.
  - C(account) reads C(GET /fapi/v2/account) (signed, weight 5) and classifies the answer (accepted, key rejected,
    clock skew, rate limited, banned, unreachable). Signed requests carry the target's own clock and
    C(recvWindow=10000), as the executor's python-binance client sends them, so a skew that breaks the
    executor shows up here as C(clock_skew).
  - C(open_orders) reads C(GET /fapi/v1/openOrders) for all symbols (signed, weight 40) and reports orders
    resting longer than O(stuck_after_s), split into the executor's own orders (client order id starting with
    O(client_order_prefix)) and foreign ones (for example a human's manual order). Ages are measured on the
    exchange's clock, so a skewed local clock does not distort them.
  - The signed checks are skipped when the time probe answered C(418) or C(429) (another request would only
    make the ban longer) or when no key is given, and not attempted when the time probe got no HTTP answer.
  - Read-only, C(changed) is always false; supports check mode (runs the same read-only probes).
  - Bounded; every network call carries O(timeout) and the module returns within about
    3 x O(timeout) + 5 seconds even when the exchange holds requests unanswered.
  - Exchange and container failures are reported as data; the module fails only on bad arguments.
options:
  checks:
    description:
      - Which checks to run.
      - The target-side time probe also runs when C(account) or C(open_orders) is selected (it guards them and
        gives the exchange clock for order ages) or when O(container) is set (path finding).
      - Without a key and a secret, C(account) and C(open_orders) are skipped.
    type: list
    elements: str
    choices: [time, account, open_orders]
    default: [time, account, open_orders]
  stuck_after_s:
    description: An open order older than this many seconds (exchange clock) counts as stuck.
    type: int
    default: 300
  client_order_prefix:
    description:
      - Client order ids starting with this prefix are the executor's own orders (its C(EXECUTOR_CLIENT_ORDER_PREFIX)).
      - Orders without it are foreign (for example a human's manual order).
      - Default is the container's C(EXECUTOR_CLIENT_ORDER_PREFIX) with O(settings_from_container) (read from
        its environment like the other settings), else C(qtx-).
    type: str
  container:
    description:
      - Name or ID of a running container (for example C(quantum_auto_executor)) from which C(/v1/time) is
        probed too, as that container sees the exchange.
      - Needs the Docker API on the Ansible target (E(DOCKER_HOST) or C(unix:///var/run/docker.sock)) and
        C(python3) in the container.
    type: str
  container_futures_url:
    description:
      - The futures base URL as the container sees it (for example C(http://binance-sim:8081/fapi)).
      - Default is the URL used on the target (O(futures_url) or the personality's default).
    type: str
  max_orders:
    description: At most this many open orders (oldest first) are returned in RV(open_orders.orders); counts cover all.
    type: int
    default: 50
  settings_from_container:
    description:
      - Take the trading settings from this running container's environment, as the executor really runs
        (not from C(.env)). C(BINANCE_USE_TESTNET) sets the personality, C(BINANCE_FUTURES_URL) /
        C(BINANCE_FUTURES_TESTNET_URL) set O(container_futures_url), and C(BINANCE_API_KEY) /
        C(BINANCE_API_SECRET) are used when O(api_key) / O(api_secret) are not given. The keys stay inside
        the module and never become Ansible variables.
      - The container is also probed from inside (as O(container)) when it is running.
      - O(futures_url) / O(futures_testnet_url) still override the URL used on the target itself.
    type: str
  dotenv_path:
    description:
      - Path of the compose project's C(.env) on the target. Its effective C(BINANCE_USE_TESTNET) and
        C(PAPER_TRADING) are returned in RV(dotenv) and compared with the running container in RV(env_drift).
    type: path
extends_documentation_fragment:
  - quantum.runbooks.binance
notes:
  - C(open_orders) without a symbol costs request weight 40; C(account) costs 5; the time probe 1.
  - Check mode runs the same read-only calls.
seealso:
  - name: Binance USD-M futures general info (limits, error codes)
    description: HTTP 429, 418, Retry-After and the C(X-MBX-USED-WEIGHT-1M) header.
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Probe the lab simulator (testnet personality) from the host and from the executor container
  quantum.runbooks.binance_futures_info:
    futures_url: http://127.0.0.1:18081/fapi
    testnet: true
    api_key: "{{ lab_binance_api_key }}"
    api_secret: "{{ lab_binance_api_secret }}"
    container: quantum_auto_executor
    container_futures_url: http://binance-sim:8081/fapi
    timeout: 3
  register: exchange

- name: Stop when the exchange refuses the key
  ansible.builtin.assert:
    that: exchange.account.status != 'rejected'
    fail_msg: "Binance rejects the key ({{ exchange.account.error_code }}): {{ exchange.account.error_msg }}"

- name: Only the unsigned probe (no key needed, weight 1)
  quantum.runbooks.binance_futures_info:
    testnet: true
    checks: [time]
  register: exchange_time

- name: Stuck orders, key from BINANCE_API_KEY / BINANCE_API_SECRET in the environment
  quantum.runbooks.binance_futures_info:
    futures_url: "{{ binance_futures_url }}"
    checks: [open_orders]
    stuck_after_s: 300
    client_order_prefix: qtx-
  register: orders
"""

RETURN = r"""
endpoint:
  description: The futures base URL probed from the target.
  type: str
  returned: always
  sample: http://127.0.0.1:18081/fapi
personality:
  description: C(testnet) when O(testnet=true), else C(mainnet).
  type: str
  returned: always
  sample: testnet
host:
  description:
    - Result of C(GET /v1/time) from the Ansible target, or null when no check needed it.
  type: dict
  returned: always
  contains:
    url:
      description: The URL requested.
      type: str
    reachable:
      description: Whether any HTTP answer arrived (a 418 or 429 counts).
      type: bool
    error_kind:
      description: Null, or one of C(timeout), C(refused), C(dns), C(tls), C(http) (non-2xx answer), C(other).
      type: str
    error:
      description: Short description of the failure, or null.
      type: str
    http_status:
      description: HTTP status of the answer, or null.
      type: int
    latency_ms:
      description: Round-trip time in milliseconds.
      type: float
    server_time_ms:
      description: The exchange's C(serverTime).
      type: int
    local_time_ms:
      description: Local wall clock at the midpoint of the request.
      type: int
    clock_offset_ms:
      description: Exchange time minus local time at the midpoint of the request (positive = exchange ahead).
      type: int
    used_weight_1m:
      description: Value of the C(X-MBX-USED-WEIGHT-1M) header.
      type: int
    retry_after_s:
      description: Value of the C(Retry-After) header.
      type: int
    error_code:
      description: Binance error code from the JSON body of a non-2xx answer.
      type: int
    error_msg:
      description: Binance error message from the JSON body of a non-2xx answer.
      type: str
    rate_limit:
      description: C(ok), C(rate_limited) (HTTP 429) or C(ip_banned) (HTTP 418); null without an answer.
      type: str
  sample:
    url: http://127.0.0.1:18081/fapi/v1/time
    reachable: true
    error_kind: null
    http_status: 200
    latency_ms: 2.1
    server_time_ms: 1795838046600
    clock_offset_ms: 3
    used_weight_1m: 1
    retry_after_s: null
    rate_limit: ok
container:
  description:
    - The same probe run inside O(container) against O(container_futures_url); null when O(container) is not set
      or C(docker exec) itself failed (see RV(container_error)).
  type: dict
  returned: always
container_error:
  description:
    - Why the probe could not run in the container (not running, no such container, no C(python3), Docker not
      reachable, timed out). Data, not a module failure.
  type: str
  returned: when O(container) is set and C(docker exec) failed
  sample: "docker exec failed: Docker API answered HTTP 409: Container abc is not running"
path_finding:
  description:
    - C(both_ok), C(host_only) (the target gets an answer, the container does not), C(container_only),
      C(neither), C(host_ok_container_not_checked), C(host_unreachable_container_not_checked);
      null when no probe ran.
    - Any HTTP answer counts as reachable, a 418 included.
  type: str
  returned: always
  sample: host_only
account:
  description: Result of the signed C(GET /fapi/v2/account) call.
  type: dict
  returned: always
  contains:
    status:
      description:
        - C(ok), C(rejected) (-2015, -2014, -1022), C(clock_skew) (-1021), C(rate_limited) (HTTP 429),
          C(ip_banned) (HTTP 418), C(unreachable) (timeout or connection error), C(error) (anything else),
          C(skipped).
      type: str
    reason:
      description: Why the call was skipped or not attempted.
      type: str
    error_kind:
      description: For C(unreachable), C(timeout), C(refused), C(dns), C(tls) or C(other).
      type: str
    http_status:
      description: HTTP status of the answer.
      type: int
    error_code:
      description: Binance error code.
      type: int
    error_msg:
      description: Binance error message or exception text (credentials and signatures removed).
      type: str
    can_trade:
      description: The account's C(canTrade) flag (status C(ok) only).
      type: bool
  sample: {"status": "rejected", "http_status": 401, "error_code": -2015,
           "error_msg": "Invalid API-key, IP, or permissions for action.", "can_trade": null}
open_orders:
  description: Result of the signed C(GET /fapi/v1/openOrders) call (all symbols).
  type: dict
  returned: always
  contains:
    status:
      description: Same values as RV(account.status).
      type: str
    count:
      description: Open orders.
      type: int
    own_count:
      description: Open orders whose client order id starts with O(client_order_prefix).
      type: int
    foreign_count:
      description: The other open orders.
      type: int
    stuck_count:
      description: Open orders (own and foreign) older than O(stuck_after_s).
      type: int
    own_stuck_count:
      description: Own open orders older than O(stuck_after_s).
      type: int
    oldest_age_s:
      description: Age of the oldest open order in seconds, or null.
      type: float
    age_reference:
      description: C(exchange) when ages use the exchange clock from the time probe, C(local) otherwise.
      type: str
    truncated:
      description: Whether RV(open_orders.orders) was cut to O(max_orders).
      type: bool
    orders:
      description: Open orders, oldest first, at most O(max_orders).
      type: list
      elements: dict
      contains:
        symbol: {description: Symbol., type: str}
        orderId: {description: Exchange order id., type: int}
        clientOrderId: {description: Client order id., type: str}
        side: {description: BUY or SELL., type: str}
        type: {description: Order type., type: str}
        price: {description: Limit price (a string as Binance sends it)., type: str}
        origQty: {description: Ordered quantity., type: str}
        executedQty: {description: Filled quantity., type: str}
        status: {description: Exchange status (NEW or PARTIALLY_FILLED)., type: str}
        time: {description: Creation time in ms on the exchange clock., type: int}
        age_s: {description: Age in seconds., type: float}
        own: {description: Client order id starts with O(client_order_prefix)., type: bool}
        stuck: {description: Older than O(stuck_after_s)., type: bool}
  sample: {"status": "ok", "count": 2, "own_count": 1, "foreign_count": 1, "stuck_count": 1,
           "own_stuck_count": 1, "oldest_age_s": 600.2, "age_reference": "exchange", "truncated": false,
           "orders": [{"symbol": "BTCUSDT", "orderId": 1, "clientOrderId": "qtx-1", "side": "BUY",
                       "type": "LIMIT", "price": "50000", "origQty": "0.01", "executedQty": "0",
                       "status": "NEW", "time": 1795838046600, "age_s": 600.2, "own": true, "stuck": true}]}
used_weight_1m:
  description: Last C(X-MBX-USED-WEIGHT-1M) seen on the target side (time probe or signed calls).
  type: int
  returned: always
  sample: 47
retry_after_s:
  description: Last C(Retry-After) seen on the target side, in seconds.
  type: int
  returned: always
  sample: 30
internal_error:
  description: An unexpected error inside the module (a bug), reported instead of failing; credentials removed.
  type: str
  returned: only after an internal error
running_env:
  description: With O(settings_from_container), its C(BINANCE_USE_TESTNET) and C(PAPER_TRADING) (no keys).
  type: dict
  returned: when settings_from_container is set
settings_container_state:
  description: With O(settings_from_container), that container's state (C(running), C(exited), C(missing), ...).
  type: str
  returned: when settings_from_container is set
dotenv:
  description: Effective C(BINANCE_USE_TESTNET) and C(PAPER_TRADING) in O(dotenv_path) (last assignment wins).
  type: dict
  returned: when dotenv_path is set
env_drift:
  description: Settings whose C(.env) value differs from the running container's (a change not applied yet).
  type: list
  elements: dict
  returned: when settings_from_container and dotenv_path are set
"""
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_connectivity import (
    ParameterError,
    argument_spec,
    connectivity,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = connectivity(module.params, module.no_log_values)
    except ParameterError as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
