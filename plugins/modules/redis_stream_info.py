#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Report Redis streams and consumer groups (length, ages, pending, lag, idle consumers)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_stream_info
short_description: Report Redis streams, consumer groups, pending entries, lag and idle consumers
version_added: "0.1.0"
description:
  - Connects to Redis and reports, for each stream in O(streams), its length, the first and
    last entry ids and their ages, and for every consumer group the consumers, pending
    entries, lag and consumers idle for longer than O(idle_after_ms) (C(XINFO STREAM),
    C(XINFO GROUPS), C(XINFO CONSUMERS)).
  - Ages compare the millisecond part of entry ids with Redis C(TIME), the server's clock,
    so a skewed clock on the control node does not distort them.
  - Without O(url), Redis is reached like the runbook does from inside Docker, at the IP
    of container O(container) on its first network, port O(port); no published port needed.
  - Redis down, container stopped or missing, connection refused or timed out are
    B(results) (RV(reachable=false), RV(error)), not task failures, so a diagnosis can go on.
    The module fails only on bad arguments or, in O(container) mode, a missing Docker SDK.
  - Every network call is bounded by O(timeout).
  - Read-only (never writes to Redis); supports check mode; never changed.
options:
  url:
    description:
      - Redis URL, for example V(redis://127.0.0.1:16379/0) (V(redis://) or V(unix://); V(rediss://), TLS,
        is not supported).
      - A password in the URL is masked in every result.
      - When set, O(container) and O(port) are ignored.
    type: str
  container:
    description:
      - Name or ID of the Redis container, used when O(url) is not set.
      - The URL becomes V(redis://<container IP on its first network>:<port>/0).
    type: str
    default: quantum_redis
  port:
    description: Redis port inside the container (O(container) mode only).
    type: int
    default: 6379
  streams:
    description: Stream keys to report.
    type: list
    elements: str
    default: [quantum:stream:intent, quantum:stream:execution]
  idle_after_ms:
    description:
      - A consumer counts as idle when its C(XINFO CONSUMERS) C(idle) time exceeds this many milliseconds.
    type: int
    default: 30000
  timeout:
    description: Seconds for each socket connect and read to Redis, and for each Docker API call.
    type: float
    default: 3
  docker_host:
    description: Docker daemon URL (O(container) mode only).
    type: str
    default: unix:///var/run/docker.sock
notes:
  - Redis is reached with the collection's own client (standard library only; no redis-py on the target).
    V(redis://) and V(unix://) URLs; V(rediss://) (TLS) is not supported.
  - Without O(url), the container's IP is read from the Docker Engine API with the Python standard library
    (no Docker SDK needed).
  - C(lag) comes from C(XINFO GROUPS) (Redis >= 7). Redis returns it as null after C(XDEL) or
    for a group created at an arbitrary id; then the entries after the group's last-delivered
    id are counted (up to 1000) and C(lag_source) is V(counted). If even that is not
    possible, C(lag) stays null and C(lag_source) is null.
  - C(inactive_ms) exists from Redis 7.2 on; it is null on older servers.
seealso:
  - module: quantum.runbooks.container_logs
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Streams and the executor group, reached through the quantum_redis container
  quantum.runbooks.redis_stream_info:
  register: bus

- name: Event bus down?
  ansible.builtin.debug:
    msg: "EVENT_BUS_DOWN: {{ bus.error }}"
  when: not bus.reachable

- name: Executor group lag and idle consumers
  ansible.builtin.debug:
    msg: >-
      lag={{ group.lag }} pending={{ group.pending }} idle={{ group.idle_consumers }}
      last intent {{ bus.streams['quantum:stream:intent'].last_age_s }} s ago
  vars:
    group: "{{ bus.streams['quantum:stream:intent'].groups | selectattr('name', '==', 'executor') | first }}"
  when: bus.reachable

- name: Through the published port, a consumer idle after 15 s, 1 s timeout
  quantum.runbooks.redis_stream_info:
    url: redis://127.0.0.1:16379/0
    streams:
      - quantum:stream:intent
    idle_after_ms: 15000
    timeout: 1
"""

RETURN = r"""
reachable:
  description: Whether Redis answered (even with an error such as an authentication failure).
  type: bool
  returned: always
  sample: true
ping:
  description: Whether C(PING) returned C(PONG).
  type: bool
  returned: always
  sample: true
error:
  description: One line saying what went wrong (container, Docker, connection, timeout, command), null when fine.
  type: str
  returned: always
  sample: "cannot reach Redis at redis://172.18.0.2:6379/0: TimeoutError: Timeout reading from socket"
target:
  description: The Redis URL used, password masked; null when it could not be determined.
  type: str
  returned: always
  sample: redis://172.18.0.2:6379/0
container_state:
  description:
    - Docker state of O(container) (V(running), V(exited), V(paused), ...) or V(missing).
    - Null when Docker could not be asked.
  type: str
  returned: when O(url) is not set
  sample: running
redis_version:
  description: C(redis_version) from C(INFO server).
  type: str
  returned: always (null when not reachable)
  sample: "7.0.15"
streams:
  description: One entry per requested stream, keyed by stream name. Empty when Redis is not reachable.
  type: dict
  returned: always
  contains:
    exists:
      description: Whether the key exists.
      type: bool
    type:
      description: Redis type of the key (V(stream) normally), null when it does not exist.
      type: str
    error:
      description: Set when the key exists but is not a stream.
      type: str
    length:
      description: C(XLEN).
      type: int
    first_id:
      description: Id of the oldest entry, null when empty.
      type: str
    first_age_s:
      description: Seconds between the oldest entry's id time and Redis C(TIME).
      type: float
    last_id:
      description: Id of the newest entry, null when empty.
      type: str
    last_age_s:
      description: Seconds between the newest entry's id time and Redis C(TIME).
      type: float
    last_generated_id:
      description: Last id the stream generated (stays after entries are deleted).
      type: str
    groups:
      description: Consumer groups (C(XINFO GROUPS)).
      type: list
      elements: dict
      contains:
        name:
          description: Group name.
          type: str
        consumers:
          description: Number of consumers.
          type: int
        pending:
          description: Entries delivered but not acknowledged (PEL size).
          type: int
        lag:
          description: Entries not yet delivered to the group; null when unknown (see notes).
          type: int
        lag_source:
          description: V(xinfo) (Redis reported it), V(counted) (counted by this module) or null (unknown).
          type: str
        last_delivered_id:
          description: Id of the last entry delivered to the group.
          type: str
        entries_read:
          description: Logical read counter of the group (Redis >= 7), may be null.
          type: int
        idle_consumers:
          description: How many consumers have C(idle_ms) greater than O(idle_after_ms).
          type: int
        consumer_details:
          description:
            - Per consumer C(name), C(pending), C(idle_ms), C(inactive_ms) (Redis >= 7.2, else null)
              and C(idle) (C(idle_ms) > O(idle_after_ms)).
          type: list
          elements: dict
  sample:
    "quantum:stream:intent":
      exists: true
      type: stream
      error: null
      length: 812
      first_id: "1795838000000-0"
      first_age_s: 1624.1
      last_id: "1795839622000-0"
      last_age_s: 2.1
      last_generated_id: "1795839622000-0"
      groups:
        - name: executor
          consumers: 1
          pending: 0
          lag: 0
          lag_source: xinfo
          last_delivered_id: "1795839622000-0"
          entries_read: 812
          idle_consumers: 0
          consumer_details:
            - {name: auto-executor-3f2a, pending: 0, idle_ms: 1200, inactive_ms: null, idle: false}
"""


from ansible_collections.quantum.runbooks.plugins.module_utils.redis_connect import (
    STREAM_INFO_SPEC,
    RedisModule,
    stream_info,
    stream_info_problem,
)


def main():
    module = RedisModule(argument_spec=STREAM_INFO_SPEC, supports_check_mode=True)  # never shows the url's password
    p = module.params
    problem = stream_info_problem(p)
    if problem:
        module.fail_json(msg=problem)
    module.exit_json(changed=False, **stream_info(p))


if __name__ == "__main__":
    main()
