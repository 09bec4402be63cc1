#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Wait until a (re)started service container really works: one module run, no polling loop."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_ready
short_description: Wait until a restarted quantum_trader container works end to end
version_added: "0.2.0"
description:
  - Waits, in one module run, until the container is running, its log (followed through the Docker API,
    not polled) shows the awaited events after O(since_ts) - by default a C(PREFLIGHT) line and an
    answered intent - and the container's own health check command passes when the module runs it (beside
    the log wait; Docker runs it only every interval, so waiting for Docker's status would add up to one
    interval).
  - Returns the log summary of M(quantum.runbooks.container_logs) for the lines since O(since_ts).
  - Read-only (the health check command is the image's own probe); supports check mode.
options:
  name:
    description: Container name or ID.
    type: str
    required: true
  since_ts:
    description: Epoch seconds of the (re)start; only log lines after it count.
    type: float
    required: true
  wait_for_all:
    description: Events that must all appear after O(since_ts).
    type: list
    elements: str
    default: [PREFLIGHT]
  wait_for_any:
    description: Events of which at least one must appear after O(since_ts) (the proof of work).
    type: list
    elements: str
    default: [ORDER_RESPONSE, WOULD_SUBMIT]
  timeout:
    description: Seconds to wait for all of it.
    type: float
    default: 60
  keep_last:
    description: How many of the last order-related events to return.
    type: int
    default: 5
  docker_host:
    description: Docker daemon URL.
    type: str
    default: unix:///var/run/docker.sock
notes:
  - Talks to the Docker Engine API with the Python standard library (no Docker SDK needed on the target).
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Wait until the restarted executor answers a fresh intent
  quantum.runbooks.container_ready:
    name: quantum_auto_executor
    since_ts: "{{ restarted_at }}"
    wait_for_any: [ORDER_RESPONSE]
  register: ready
"""

RETURN = r"""
stage:
  description: The last stage reached - C(running), C(log), C(health) or C(ready).
  type: str
  returned: always
waited_s:
  description: Seconds the module waited in total.
  type: float
  returned: always
wait:
  description: Whether the awaited events were seen (C(met)) and after how long (C(waited_s)).
  type: dict
  returned: when the container was running
health_check:
  description: The health check command's exit code (C(rc)) and how often it ran, or null without a health check.
  type: dict
  returned: when the awaited events were seen
event_counts:
  description: Count per event in the lines since O(since_ts); also every other key that
    M(quantum.runbooks.container_logs) returns (recent_events, last_preflight, unanswered, ...).
  type: dict
  returned: when the container was running
"""

import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, Engine, NotFound
from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary
from ansible_collections.quantum.runbooks.plugins.module_utils.log_follow import follow

POLL_S = 0.25
EXEC_TIMEOUT_S = 30  # one run of the health check command (the Docker client's timeout before)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            since_ts=dict(type="float", required=True),
            wait_for_all=dict(type="list", elements="str", default=["PREFLIGHT"]),
            wait_for_any=dict(type="list", elements="str", default=["ORDER_RESPONSE", "WOULD_SUBMIT"]),
            timeout=dict(type="float", default=60),
            keep_last=dict(type="int", default=5),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = wait_ready(Engine(p["docker_host"], 30), p)
    except DockerError as err:
        module.fail_json(msg=f"cannot reach Docker at {p['docker_host']}: {err}")
    if result["stage"] != "ready":
        module.fail_json(msg=f"{p['name']} not ready after {result['waited_s']} s: {result.pop('why')}", **result)
    module.exit_json(changed=False, **result)


def wait_ready(engine, p):
    started = time.monotonic()
    deadline = started + p["timeout"]

    def done(stage, why=None, **extra):
        return dict(extra, stage=stage, why=why, waited_s=round(time.monotonic() - started, 3))

    attrs = running_container(engine, p["name"], deadline)
    if attrs is None:
        return done("running", "the container is not running")
    # The health check runs beside the log wait (it passes once the new process serves it), so
    # the wait ends when the awaited line is logged, not one check run later.
    checked = []
    checker = threading.Thread(target=lambda: checked.append(health_check(engine, attrs, deadline)), daemon=True)
    checker.start()
    summary = LogSummary(keep_last=p["keep_last"])
    logs = {"timestamps": True, "since": p["since_ts"]}
    wait = follow(engine, attrs, logs, summary, p["wait_for_all"], p["wait_for_any"],
                  max(deadline - time.monotonic(), 0))
    seen = dict(wait=wait, **summary.result(time.time()))
    if not wait["met"]:
        wanted = " and ".join(p["wait_for_all"] + ([" or ".join(p["wait_for_any"])] if p["wait_for_any"] else []))
        return done("log", f"no {wanted} logged since the start", **seen)
    checker.join(max(deadline - time.monotonic(), 0) + 5)  # + one exec that started before the deadline
    check = checked[0] if checked else {"rc": None, "runs": None, "note": "still running at the deadline"}
    if check and check["rc"] != 0:
        return done("health", f"its health check still fails (rc={check['rc']})", health_check=check, **seen)
    return done("ready", health_check=check, **seen)


def running_container(engine, name, deadline):
    """The container's inspect data once it runs; None when it does not by the deadline."""
    while True:
        try:
            attrs = engine.inspect(name)
            if (attrs.get("State") or {}).get("Status") == "running":
                return attrs
        except NotFound:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def health_check(engine, attrs, deadline):
    """Run the image's HEALTHCHECK command now, until it passes or the deadline; None without one."""
    test = (attrs.get("Config", {}).get("Healthcheck") or {}).get("Test") or []
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    runs = 0
    while True:
        runs += 1
        try:
            rc = engine.exec(attrs["Id"], argv, timeout=EXEC_TIMEOUT_S)[0]
        except DockerError:  # restarting or stopping right now: a failed run, tried again
            rc = None
        if rc == 0 or time.monotonic() >= deadline:
            return {"rc": rc, "runs": runs}
        time.sleep(POLL_S * 2)


if __name__ == "__main__":
    main()
