#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read what runbook checks 1-4 need, all at the same time, in one module run."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: diagnose_probes
short_description: Read the executor, Binance, the event bus and an order's trace at the same time (read-only)
version_added: "0.3.0"
description:
  - The reads of the runbook's checks 1-4, each in its own thread, in one module run - the diagnosis
    waits for the slowest probe, not for the sum of them, and starts one Python instead of five.
  - Give the slices you want (O(executor), O(binance), O(event_bus), O(trace)); each comes back under
    its own name. The roles P(quantum.runbooks.executor_health#role), P(quantum.runbooks.binance_connectivity#role),
    P(quantum.runbooks.event_bus#role) and P(quantum.runbooks.correlation_trace#role) interpret their slice.
  - A probe that fails or overruns its bound is B(data), C({failed - true, msg - one line}) in its slice,
    not a failed task, so the diagnosis always ends with a report. Every probe keeps its own timeout.
  - Read-only (never writes to Docker, Redis or the exchange); supports check mode; never changed.
  - Secrets never leave the module - the container's environment is not returned, the Binance keys and a
    Redis URL's password are masked in every result.
author:
  - qt-runbooks contributors (@qt-runbooks)
options:
  executor:
    description: Check 1 - the executor container's state, its last log lines summarised, and the kill switch.
    type: dict
    suboptions:
      container: {description: The executor container., type: str, required: true}
      log_lines: {description: Log lines read from the end (streamed)., type: int, default: 200}
      redis_container: {description: The Redis container holding the kill switch key., type: str,
                        default: quantum_redis}
      kill_switch_key: {description: The kill switch's Redis key., type: str,
                        default: "quantum:control:kill_switch"}
      policy_file: {description: The executor's policy file (its persisted kill switch flag)., type: path}
      docker_host: {description: Docker daemon URL., type: str, default: "unix:///var/run/docker.sock"}
      timeout: {description: Seconds for each Docker API call., type: float, default: 10}
  binance:
    description:
      - Check 2 - the options of M(quantum.runbooks.binance_futures_info) the diagnosis uses; the others
        take that module's defaults.
    type: dict
    suboptions:
      settings_from_container:
        description: Read personality, endpoints and keys from this running container's environment.
        type: str
      dotenv_path: {description: The project's C(.env) (compared with the running settings)., type: path}
      futures_url: {description: The mainnet futures base URL as the target host sees it., type: str}
      futures_testnet_url: {description: The testnet futures base URL as the target host sees it., type: str}
      api_key: {description: Key for the signed checks (default - the container's)., type: str}
      api_secret: {description: Secret for the signed checks (default - the container's)., type: str}
      timeout: {description: Seconds per request., type: float, default: 5}
      stuck_after_s: {description: An open order older than this is stuck., type: int, default: 300}
      client_order_prefix:
        description: The executor's clientOrderId prefix (default - the container's C(EXECUTOR_CLIENT_ORDER_PREFIX),
          else C(qtx-)).
        type: str
  event_bus:
    description: Check 3 - the options of M(quantum.runbooks.redis_stream_info).
    type: dict
    suboptions:
      url: {description: Redis URL (its password is masked everywhere); wins over O(event_bus.container)., type: str}
      container: {description: The Redis container (reached at its IP)., type: str, default: quantum_redis}
      port: {description: Redis port inside the container., type: int, default: 6379}
      timeout: {description: Seconds for each connect and read., type: float, default: 3}
      docker_host: {description: Docker daemon URL., type: str, default: "unix:///var/run/docker.sock"}
      streams:
        description: Stream keys to report.
        type: list
        elements: str
        default: [quantum:stream:intent, quantum:stream:execution]
      idle_after_ms: {description: A consumer idle this long counts as idle., type: int, default: 30000}
  trace:
    description:
      - Check 4 - one order's lines in each service's log.
      - Without O(trace.correlation_id), the oldest order without an answer is traced - from the executor's log
        read by O(executor) in the same run, else from O(trace.unanswered).
    type: dict
    suboptions:
      containers: {description: The services' containers., type: list, elements: str, required: true}
      correlation_id: {description: The order to trace (empty - pick one)., type: str, default: ""}
      unanswered:
        description: Unanswered orders (C(correlation_id), C(age_s)) to pick from when O(executor) is not given.
        type: list
        elements: dict
        default: []
      since_s: {description: Seconds to look back for a given id., type: int, default: 3600}
      max_lines: {description: At most this many lines per container., type: int, default: 20000}
      docker_host: {description: Docker daemon URL., type: str, default: "unix:///var/run/docker.sock"}
      timeout: {description: Seconds for each Docker API call., type: float, default: 10}
notes:
  - Redis (the kill switch, the event bus) is reached with the collection's own client and Docker with the Docker
    Engine API, both on the Python standard library (the module needs no Python library on the target).
  - Each slice's result is the same as the matching module's (M(quantum.runbooks.container_logs),
    M(quantum.runbooks.kill_switch) with O(quantum.runbooks.kill_switch#module:state=query),
    M(quantum.runbooks.binance_futures_info), M(quantum.runbooks.redis_stream_info)).
"""

EXAMPLES = r"""
- name: Read checks 1-4 at once
  quantum.runbooks.diagnose_probes:
    executor: {container: quantum_auto_executor, policy_file: /home/qt/quantum_trader/config/execution_policy.json}
    binance: {settings_from_container: quantum_auto_executor, dotenv_path: /home/qt/quantum_trader/.env}
    event_bus: {container: quantum_redis}
    trace: {containers: [quantum_ai_engine, quantum_auto_executor]}
  register: probes
"""

RETURN = r"""
executor:
  description:
    - C(exists), C(restart_count), C(state) (C(status), C(running), C(health), C(exit_code), C(oom_killed),
      C(started_at)), C(logs) (as M(quantum.runbooks.container_logs) returns) and C(kill_switch) (as
      M(quantum.runbooks.kill_switch) returns in query mode).
    - C(failed) and C(msg) when it could not be read.
  type: dict
  returned: when executor is given
  sample: {"exists": true, "restart_count": 0, "state": {"status": "running", "running": true}, "logs": {}}
binance:
  description: As M(quantum.runbooks.binance_futures_info) returns; C(failed) and C(msg) when it could not run.
  type: dict
  returned: when binance is given
event_bus:
  description: As M(quantum.runbooks.redis_stream_info) returns; C(failed) and C(msg) when it could not run.
  type: dict
  returned: when event_bus is given
trace:
  description:
    - C(correlation_id) (null when there was nothing to trace), C(auto_selected), C(since_s) and, per container,
      what M(quantum.runbooks.container_logs) returns (C(correlation_matches)).
    - C(failed) and C(msg) when it could not run.
  type: dict
  returned: when trace is given
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.diagnose_probes import SPECS, run_probes
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_connect import url_secrets


class ProbesModule(AnsibleModule):
    """Hides the event bus URL's password before the invocation is logged (it is not a no_log option)."""

    def _log_invocation(self):
        self.no_log_values.update(url_secrets((self.params.get("event_bus") or {}).get("url")))
        super()._log_invocation()


def main():
    module = ProbesModule(
        argument_spec={name: dict(type="dict", options=spec) for name, spec in SPECS.items()},
        supports_check_mode=True,
    )
    results = run_probes({name: module.params[name] for name in SPECS}, module.no_log_values)
    module.exit_json(changed=False, **results)


if __name__ == "__main__":
    main()
