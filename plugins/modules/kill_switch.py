#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Engage or release the auto-executor's kill switch (what scripts/go_live_abort.sh sets)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kill_switch
short_description: Engage or release the auto-executor's kill switch, in Redis and persisted in its policy file
version_added: "0.2.0"
description:
  - "The executor blocks every intent (C(GATE_BLOCKED reason=KILL_SWITCH)) while the Redis key O(key)
    exists - the key C(scripts/go_live_abort.sh) sets - or while its execution policy file says
    C(\"kill_switch\": true)."
  - O(state=engaged) writes both, the policy file first, so the switch survives a Redis restart,
    an executor restart and a reboot; O(state=released) removes both.
  - Idempotent - an engaged switch is left as it is (its original reason is kept); supports check
    mode and diff mode (the policy file).
  - Fails with one line when Redis cannot be reached; the result then still says what was persisted.
  - "O(state=query) only reads both (never changes anything, never fails on an unreachable Redis or an
    unreadable policy file - it says so in RV(redis) / RV(policy)): the diagnosis uses it to tell an
    operator's emergency stop from a crash."
options:
  state:
    description: V(engaged) to stop new orders, V(released) to let trading resume, V(query) to read.
    type: str
    choices: [engaged, released, query]
    default: engaged
  key:
    description: The Redis key the executor checks before each intent.
    type: str
    default: quantum:control:kill_switch
  reason:
    description: Stored as the key's JSON value when engaging (C(by) and C(at) are added when missing).
    type: dict
    default: {}
  policy_file:
    description:
      - The executor's execution policy (JSON) on the target, e.g. C(<project>/config/execution_policy.json).
        Other settings in it are kept; the write is atomic. Not touched when unset.
    type: path
  url:
    description:
      - Redis URL; when unset, Redis is reached at the IP of O(container).
      - A password in it (V(redis://user:PASSWORD@host:6379/0) or V(?password=PASSWORD)) is masked in the
        result, the invocation and every message.
    type: str
  container:
    description: Redis container, used when O(url) is not set.
    type: str
    default: quantum_redis
  port:
    description: Redis port inside the container.
    type: int
    default: 6379
  timeout:
    description: Seconds for each Redis and Docker call.
    type: float
    default: 3
  docker_host:
    description: Docker daemon URL (O(container) mode).
    type: str
    default: unix:///var/run/docker.sock
notes:
  - Redis is reached with the collection's own client (standard library only; no redis-py on the target).
    V(redis://) and V(unix://) URLs; V(rediss://) (TLS) is not supported.
  - Without O(url), the container's IP is read from the Docker Engine API with the Python standard library
    (no Docker SDK needed).
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop all new orders (emergency stop, step 1)
  quantum.runbooks.kill_switch:
    state: engaged
    reason: {incident: INC-42}
    policy_file: /home/qt/quantum_trader/config/execution_policy.json

- name: Let trading resume
  quantum.runbooks.kill_switch:
    state: released
    policy_file: /home/qt/quantum_trader/config/execution_policy.json
"""

RETURN = r"""
engaged:
  description: Whether the switch is engaged after the task (in check mode, would be); with O(state=query),
    whether Redis or the policy file says it is engaged now.
  type: bool
  returned: always
since:
  description: With O(state=query), when it was engaged (the C(at) of the Redis value), else null.
  type: str
  returned: when state is query
redis:
  description: C(was_set), C(value) (the key's JSON value after the task), C(target) (URL, password masked).
  type: dict
  returned: always
policy:
  description: C(path), C(was_set) and C(now_set) for the policy file, when O(policy_file) is given.
  type: dict
  returned: when policy_file is set
"""

import getpass
import json
import os
import tempfile
from datetime import datetime, timezone

from ansible_collections.quantum.runbooks.plugins.module_utils.redis_connect import (
    CONNECTION_SPEC,
    RedisModule,
    check_url,
    container_target,
    masked_url,
    read_kill_switch,
    read_policy,
    redis_client,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_streams import RedisError, one_line


def set_policy_flag(module, path, engaged):
    """Persist the switch in the policy file; returns (was_set, diff or None). Atomic, keeps other settings."""
    text, policy, error = read_policy(path)
    if error:
        module.fail_json(msg=error)
    if not isinstance(policy, dict):
        module.fail_json(msg=f"the policy file {path} is not a JSON object")
    was_set = bool(policy.get("kill_switch"))
    if was_set == engaged:
        return was_set, None
    new = dict(policy, kill_switch=True) if engaged else {k: v for k, v in policy.items() if k != "kill_switch"}
    new_text = json.dumps(new) + "\n"
    if not module.check_mode:
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".policy.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        module.atomic_move(tmp, path)  # keeps the existing file's mode and owner
    return was_set, {"before": text, "after": new_text, "before_header": path, "after_header": path}


def set_redis_key(module, client, key, engaged, reason):
    """Set or delete the key; returns (was_set, value after, changed)."""
    value = client.get(key)
    if (value is not None) == engaged:
        return value is not None, value, False
    if engaged:
        value = json.dumps({"by": os.environ.get("SUDO_USER") or getpass.getuser(),
                            "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **reason})
        if not module.check_mode:
            client.set(key, value)
        return False, value, True
    if not module.check_mode:
        client.delete(key)
    return True, None, True


def query(module, p):
    """Read-only: is the switch engaged in Redis or in the policy file, since when, and why."""
    module.exit_json(changed=False, **read_kill_switch(p))


def main():
    module = RedisModule(  # never shows the password of url (invocation, messages, syslog)
        argument_spec=dict(
            CONNECTION_SPEC,
            state=dict(type="str", choices=["engaged", "released", "query"], default="engaged"),
            key=dict(type="str", default="quantum:control:kill_switch", no_log=False),
            reason=dict(type="dict", default={}),
            policy_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    check_url(module)
    if p["state"] == "query":
        query(module, p)
    engaged = p["state"] == "engaged"
    result = {"changed": False, "engaged": engaged, "redis": {"target": None}}
    if p["policy_file"]:  # first: it survives what Redis does not
        was_set, diff = set_policy_flag(module, p["policy_file"], engaged)
        result["policy"] = {"path": p["policy_file"], "was_set": was_set, "now_set": engaged}
        if diff:
            result["changed"] = True
            result["diff"] = diff
    url, error = p["url"], None
    if not url:
        url, _state, error = container_target(p)
    persisted = " (persisted in the policy file)" if p["policy_file"] and engaged else ""
    if error:
        module.fail_json(msg=f"kill switch not set in Redis: {error}{persisted}", **result)
    result["redis"]["target"] = masked_url(url)
    client = redis_client(url, p["timeout"])
    try:
        was_set, value, changed = set_redis_key(module, client, p["key"], engaged, p["reason"])
    except RedisError as err:
        module.fail_json(msg=f"kill switch not set in Redis {masked_url(url)}: {one_line(str(err))}{persisted}",
                         **result)
    finally:
        client.close()
    result["redis"].update(was_set=was_set, value=value)
    result["changed"] |= changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
