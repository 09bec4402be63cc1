# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""How the modules reach Redis: a URL, or the Redis container's IP (as `docker exec
quantum_redis redis-cli` would), with every call bounded by a timeout and no retries.

A password in O(url) (`redis://user:PASSWORD@host`, `?password=PASSWORD`) is a secret: `RedisModule`
(the AnsibleModule every Redis-using module is built with) hides it, raw and URL-decoded, in the result,
the invocation, every message (also when an argument fails validation) and the syslog line Ansible
writes; `masked_url()` is the URL to show."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, Engine
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_resp import TLS_UNSUPPORTED, Redis, parse_url
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_streams import (
    DEFAULT_IDLE_AFTER_MS,
    DEFAULT_STREAMS,
    ContainerUnavailable,
    RedisError,
    one_line,
    probe,
    resolve_container_url,
)

MASK = "********"
# userinfo as written, also with an unencoded / # @ in the password (urlsplit stops at those): from "//" to the
# last "@" before any "?"
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^?]*)@[^@]*$")

# The options every Redis-using module shares.
CONNECTION_SPEC = dict(
    url=dict(type="str"),
    container=dict(type="str", default="quantum_redis"),
    port=dict(type="int", default=6379),
    timeout=dict(type="float", default=3.0),
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
)
# redis_stream_info's options (the diagnosis' event bus slice takes the same).
STREAM_INFO_SPEC = dict(
    CONNECTION_SPEC,
    streams=dict(type="list", elements="str", default=list(DEFAULT_STREAMS)),
    idle_after_ms=dict(type="int", default=DEFAULT_IDLE_AFTER_MS),
)


def url_secrets(url):
    """Every form of the password in a Redis URL that could be shown: as written and URL-decoded, from the
    userinfo (also when it holds characters urlsplit stops at, like `/` or `#`) and from `?password=`."""
    found = set()
    if not url:
        return found
    found.update(re.findall(r"[?&]password=([^&]*)", url))  # as written, an unencoded `#...` included
    match = _USERINFO.match(url)
    if match and ":" in match.group("userinfo"):
        found.add(match.group("userinfo").split(":", 1)[1])
    try:
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "password":
                found.add(value)
    except ValueError:  # not even a URL (e.g. a broken IPv6 host): the userinfo match above is all there is
        pass
    found.update({unquote(value) for value in found})
    # Ansible masks its no_log values one after the other: should a shorter form go first, the rest of a longer
    # one (the `#...` urlsplit cut off) must still be masked on its own. Pieces under 4 characters are left, so
    # that a password like `a/0` does not mask every `0` of the output.
    found.update(piece for value in list(found) for piece in re.split(r"[/?#@:&]", value) if len(piece) >= 4)
    return {value for value in found if value}


def masked_url(url):
    """The URL to show: every form of its password replaced by ******** (never raises; None stays None)."""
    if not url:
        return url
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        url = url.replace(secret, MASK)
    return url


class RedisModule(AnsibleModule):
    """AnsibleModule that never shows the password of O(url): it joins Ansible's no_log values before the
    invocation is logged and before any result (exit or fail, argument errors included) is returned."""

    def _hide_url_secrets(self):
        params = getattr(self, "params", None) or {}
        url = params.get("url")
        if isinstance(url, str):
            self.no_log_values.update(url_secrets(url))

    def _log_invocation(self):  # AnsibleModule logs the invocation to syslog from __init__
        self._hide_url_secrets()
        super()._log_invocation()

    def exit_json(self, **kwargs):
        self._hide_url_secrets()
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._hide_url_secrets()
        super().fail_json(msg, **kwargs)


def url_problem(url):
    """One line (password masked) when ``url`` is set but is not a Redis URL, else None."""
    if url:
        try:
            parse_url(url)
        except ValueError as err:
            if str(err) == TLS_UNSUPPORTED:
                detail = str(err)
            elif url_secrets(url) or "@" in url:  # the message may quote a piece of a password it misparsed
                detail = "not a Redis URL (in a password, percent-encode / ? # @ : as %2F %3F %23 %40 %3A)"
            else:
                detail = str(err)
            return f"invalid url {masked_url(url)}: {detail}"
    return None


def check_url(module):
    """Fail in one line (password masked) when O(url) is set but is not a Redis URL."""
    problem = url_problem(module.params["url"])
    if problem:
        module.fail_json(msg=problem)


def stream_info_problem(p):
    """One line for stream_info options that cannot make a check (redis_stream_info's and the diagnosis' event
    bus slice), else None."""
    if p["timeout"] <= 0:
        return f"timeout must be > 0, got {p['timeout']}"
    if p["idle_after_ms"] < 0:
        return f"idle_after_ms must be >= 0, got {p['idle_after_ms']}"
    if not 0 < p["port"] < 65536:
        return f"port must be 1-65535, got {p['port']}"
    if not p["streams"]:
        return "streams must name at least one stream"
    return url_problem(p["url"]) or (None if p["url"] or p["container"] else "set url or container")


def redis_client(url, timeout):
    """A client (module_utils/redis_resp.py) that never retries and bounds every connect and read by ``timeout``."""
    return Redis.from_url(url, timeout=timeout)


def container_target(params):
    """(url, container_state, error) for O(container) mode; never raises."""
    try:
        engine = Engine(params["docker_host"], params["timeout"])
        url = resolve_container_url(params["container"], params["port"], engine)
        return url, "running", None
    except ContainerUnavailable as err:
        return None, err.state, one_line(str(err))
    except DockerError as err:
        if err.kind == "api":  # the daemon answered, but not with the container
            return None, None, one_line(f"cannot inspect container {params['container']} "
                                        f"via {params['docker_host']}: {err}")
        return None, None, one_line(f"cannot reach Docker at {params['docker_host']}: {err}")


def read_policy(path):
    """(text, policy, error): the executor's policy file as written and as parsed, or the one line that says
    why it cannot be read (then text and policy are None). A missing file is an empty policy."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return text, (json.loads(text) if text.strip() else {}), None
    except FileNotFoundError:
        return "", {}, None
    except (OSError, ValueError) as err:
        return None, None, f"cannot read the policy file {path}: {one_line(str(err))}"


def read_policy_flag(path):
    """(set, error) without writing: the query never fails on the file."""
    _text, policy, error = read_policy(path)
    if error:
        return None, error
    return bool(isinstance(policy, dict) and policy.get("kill_switch")), None


def read_kill_switch(p):
    """Read-only: is the switch engaged in Redis or in the policy file, since when, and why. ``p``: the
    connection options, ``key`` and ``policy_file``. Never raises for Redis or file trouble: it is in the result."""
    result = {"engaged": False, "since": None, "redis": {"target": None}}
    if p["policy_file"]:
        flag, error = read_policy_flag(p["policy_file"])
        result["policy"] = {"path": p["policy_file"], "set": flag, "error": error}
        result["engaged"] = bool(flag)
    url, error = p["url"], None
    if not url:
        url, _state, error = container_target(p)
    if error:
        result["redis"]["error"] = error
        return result
    result["redis"]["target"] = masked_url(url)
    client = redis_client(url, p["timeout"])
    try:
        raw = client.get(p["key"])
    except RedisError as err:
        result["redis"]["error"] = one_line(str(err))
        return result
    finally:
        client.close()
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = {"raw": raw}  # set by hand (go_live_abort.sh may store a plain string)
    value = value if isinstance(value, dict) or value is None else {"raw": value}
    result["redis"]["set"] = raw is not None
    result["redis"]["value"] = value
    if value is not None:
        result["engaged"] = True
        result["since"] = value.get("at")
    return result


def stream_info(params):
    """redis_stream_info's result (without ``changed``) for validated ``params``: PING, streams, groups."""
    result = {"reachable": False, "ping": False, "error": None, "target": None,
              "redis_version": None, "streams": {}}
    url = params["url"]
    if not url:
        url, state, error = container_target(params)
        result["container_state"] = state
        if error:
            result["error"] = error
            return result
    target = masked_url(url)
    result["target"] = target
    client = redis_client(url, params["timeout"])
    try:
        result.update(probe(client, params["streams"], params["idle_after_ms"], target=target))
    finally:
        client.close()
    return result
