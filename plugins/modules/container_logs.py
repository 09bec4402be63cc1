#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Summarise a container's JSON log lines without loading the whole log."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_logs
short_description: Stream and summarise a container's JSON log lines
version_added: "0.1.0"
description:
  - Reads the last O(tail) lines (and/or the lines since O(since)) of a Docker
    container's log through the Docker API as a stream (64 KiB at a time), never the whole log at once.
  - Parses one JSON object per line (the quantum_trader format), skips noise such as
    tracebacks, and returns per-event counts, the most common C(GATE_BLOCKED) reason,
    the age of the last line and the last order-related events.
  - Read-only; supports check mode.
options:
  name:
    description: Container name or ID. One of O(name) and O(names) is required.
    type: str
  names:
    description:
      - Several containers, read in one module run; the result is then RV(containers)
        (one summary per container, with the keys documented below).
    type: list
    elements: str
  tail:
    description: Number of lines from the end of the log to read.
    type: int
    default: 200
  since:
    description: Only lines newer than this many seconds ago (0 = no limit).
    type: int
    default: 0
  since_ts:
    description:
      - Only lines logged after this moment (epoch seconds, fractions allowed), e.g. a restart's start.
        Overrides O(since).
    type: float
  correlation_id:
    description: Also return every event carrying this correlation_id (within the lines read).
    type: str
  keep_last:
    description: How many of the last order-related events to return (0 = none).
    type: int
    default: 20
  docker_host:
    description: Docker daemon URL.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds to wait for the Docker API.
    type: int
    default: 30
notes:
  - Talks to the Docker Engine API with the Python standard library (no Docker SDK needed on the target).
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Summarise the executor's last 200 log lines
  quantum.runbooks.container_logs:
    name: quantum_auto_executor
    tail: 200
  register: executor_logs

- name: Everything one order did in the last hour
  quantum.runbooks.container_logs:
    name: quantum_auto_executor
    tail: -1
    since: 3600
    correlation_id: "{{ correlation_id }}"
"""

RETURN = r"""
containers:
  description: With O(names), the summary of each container (keys as below), by name.
  type: dict
  returned: when names is given
exists:
  description: Whether the container exists.
  type: bool
  returned: always
lines_read:
  description: Log lines read.
  type: int
  returned: when the container exists
json_lines:
  description: Lines that were JSON events.
  type: int
  returned: when the container exists
event_counts:
  description: Count per C(event) value.
  type: dict
  returned: when the container exists
  sample: {"ORDER_SUBMIT": 12, "ORDER_RESPONSE": 12, "HEARTBEAT": 40}
top_block_reason:
  description: Most common C(reason) of C(GATE_BLOCKED) events, or null.
  type: str
  returned: when the container exists
last_log_age_s:
  description: Seconds since the last log line (any line, JSON or not), or null when none was read.
  type: float
  returned: when the container exists
last_event:
  description: The C(event) of the last JSON line.
  type: str
  returned: when the container exists
recent_events:
  description: The last O(keep_last) order-related events (submit, response, error, gate, would-submit).
  type: list
  elements: dict
  returned: when the container exists
correlation_matches:
  description: Events with the requested correlation_id.
  type: list
  elements: dict
  returned: when the container exists
trailing_blocks:
  description: C(GATE_BLOCKED) events since the last C(ORDER_SUBMIT) / C(WOULD_SUBMIT) (is everything blocked now?).
  type: int
  returned: when the container exists
last_outcome:
  description: The latest C(ORDER_RESPONSE) or C(ORDER_ERROR) event, or null.
  type: dict
  returned: when the container exists
unanswered:
  description: C(ORDER_SUBMIT) events with no C(ORDER_RESPONSE)/C(ORDER_ERROR) for the same correlation_id
    in the lines read since the executor's last C(PREFLIGHT), with C(age_s) (at most 1000 kept).
  type: list
  elements: dict
  returned: when the container exists
lost_on_restart:
  description: C(ORDER_SUBMIT) events still unanswered when a new executor process started (a C(PREFLIGHT)
    line); their outcome on the exchange is unknown. Not in flight any more, so they are not in C(unanswered).
  type: list
  elements: dict
  returned: when the container exists
last_preflight:
  description: The last C(PREFLIGHT) event in the lines read (the executor's trading mode and endpoint
    at start), or null.
  type: dict
  returned: when the container exists
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, Engine
from ansible_collections.quantum.runbooks.plugins.module_utils.log_follow import summarise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            names=dict(type="list", elements="str"),
            tail=dict(type="int", default=200),
            since=dict(type="int", default=0),
            since_ts=dict(type="float"),
            correlation_id=dict(type="str"),
            keep_last=dict(type="int", default=20),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
        required_one_of=[("name", "names")],
        mutually_exclusive=[("name", "names")],
    )
    p = module.params
    try:
        engine = Engine(p["docker_host"], p["timeout"])
        if p["name"]:
            module.exit_json(changed=False, **summarise(engine, p["name"], p))
        # Several containers (e.g. a trace across services): one module run, one summary each.
        module.exit_json(changed=False, containers={name: summarise(engine, name, p) for name in p["names"]})
    except DockerError as err:
        module.fail_json(msg=f"cannot reach Docker at {p['docker_host']}: {err}")


if __name__ == "__main__":
    main()
