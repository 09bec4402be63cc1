# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read-only Redis stream / consumer-group report (what `XINFO` shows a runbook).

Plain Python, importable without Ansible. The clients are passed in, so the logic
works with the collection's Redis client (``redis_resp.Redis``) and its Docker client
(``docker_engine.Engine``, or anything with its ``inspect``), both standard library only:

- ``stream_report(client, streams, now_ms=None, idle_after_ms=30000)``: per stream
  length, first/last entry ids and their ages, and per consumer group pending, lag
  and idle consumers. Ages compare the ms part of entry ids with Redis ``TIME``
  (the server's clock, not this host's).
- ``resolve_container_url(container, port, engine)``: ``redis://<ip>:<port>/0``
  for a container, from its first network's IP (no published port needed).
- ``probe(client, streams, idle_after_ms)``: PING, version and report; connection
  problems become ``reachable: false`` plus a one-line ``error``, never an exception.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import NotFound
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_resp import (
    AuthenticationError,
    BusyLoadingError,
    InvalidResponse,
    RedisError,
    ResponseError,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_resp import ConnectionError as RedisConnectionError
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_resp import TimeoutError as RedisTimeoutError

DEFAULT_STREAMS = ("quantum:stream:intent", "quantum:stream:execution")
DEFAULT_IDLE_AFTER_MS = 30000
# When XINFO GROUPS cannot give the lag (Redis < 7, or after XDEL / a group created at
# an arbitrary id), the entries after last-delivered-id are counted, at most this many.
LAG_COUNT_LIMIT = 1000
MASK = "********"


class ContainerUnavailable(Exception):
    """The container is missing, not running, or has no IP; ``state`` says which."""

    def __init__(self, state, msg):
        super().__init__(msg)
        self.state = state


# --------------------------------------------------------------------------- helpers

def one_line(text, limit=400):
    """Collapse an error text to one line of at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def url_password(url):
    """The password in a Redis URL (userinfo or ``?password=``), or None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.password:
        return parts.password
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password" and value:
            return value
    return None


def mask_url(url):
    """The URL with any password replaced by ``********``."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None and "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _dummy in pairs):
            query = urlencode([(k, MASK if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_id(entry_id):
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; None for anything else."""
    if entry_id is None:
        return None
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _dummy, seq = str(entry_id).partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return None


def id_age_s(entry_id, now_ms):
    """Seconds between the entry id's ms timestamp and ``now_ms`` (3 decimals)."""
    parsed = parse_id(entry_id)
    if parsed is None or now_ms is None:
        return None
    return round((now_ms - parsed[0]) / 1000.0, 3)


def server_time_ms(client):
    """Redis ``TIME`` in ms (the server's clock)."""
    sec, usec = client.time()
    return int(sec) * 1000 + int(usec) // 1000


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _get(mapping, *names):
    """First present key among ``names`` (the XINFO field names are decoded; spelled with '-')."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


# --------------------------------------------------------------------------- report

def _count_after(client, key, after_id, limit):
    """Entries with id > after_id, or None when there are more than ``limit``."""
    entries = client.xrange(key, min=f"({after_id}", max="+", count=limit + 1)
    return len(entries) if len(entries) <= limit else None


def _lag(client, key, group, stream, lag_count_limit):
    """(lag, source): source ``xinfo`` (Redis said), ``counted`` (we counted) or None."""
    lag = _get(group, "lag")
    if lag is not None:
        return int(lag), "xinfo"
    delivered = parse_id(_get(group, "last-delivered-id", "last_delivered_id"))
    if delivered is None:
        return None, None
    length = stream["length"]
    first, last = parse_id(stream["first_id"]), parse_id(stream["last_id"])
    if length == 0 or (last is not None and delivered >= last):
        return 0, "counted"
    if first is not None and delivered < first:
        return length, "counted"
    try:
        count = _count_after(client, key, _text(_get(group, "last-delivered-id", "last_delivered_id")),
                             lag_count_limit)
    except ResponseError:  # exclusive ranges "(id" need Redis >= 6.2
        return None, None
    return (count, "counted") if count is not None else (None, None)


def _consumers(client, key, group_name, idle_after_ms):
    details = []
    for c in client.xinfo_consumers(key, group_name):
        idle = _get(c, "idle")
        inactive = _get(c, "inactive")  # Redis >= 7.2; -1 = never read successfully
        idle = int(idle) if idle is not None else None
        inactive = int(inactive) if inactive is not None and int(inactive) >= 0 else None
        details.append({
            "name": _text(_get(c, "name")),
            "pending": int(_get(c, "pending") or 0),
            "idle_ms": idle,
            "inactive_ms": inactive,
            "idle": idle is not None and idle > idle_after_ms,
        })
    return details


def _stream(client, key, now_ms, idle_after_ms, lag_count_limit):
    report = {
        "exists": False, "type": None, "error": None, "length": None,
        "first_id": None, "first_age_s": None, "last_id": None, "last_age_s": None,
        "last_generated_id": None, "groups": [],
    }
    key_type = _text(client.type(key))
    if key_type == "none":
        return report
    report.update(exists=True, type=key_type)
    if key_type != "stream":
        report["error"] = f"{key} is a {key_type}, not a stream"
        return report
    info = client.xinfo_stream(key)
    first, last = info.get("first-entry"), info.get("last-entry")
    report.update(
        length=int(info.get("length") or 0),
        first_id=_text(first[0]) if first else None,
        last_id=_text(last[0]) if last else None,
        last_generated_id=_text(info.get("last-generated-id")),
    )
    report["first_age_s"] = id_age_s(report["first_id"], now_ms)
    report["last_age_s"] = id_age_s(report["last_id"], now_ms)
    for group in client.xinfo_groups(key):
        name = _text(_get(group, "name"))
        lag, lag_source = _lag(client, key, group, report, lag_count_limit)
        entries_read = _get(group, "entries-read", "entries_read")
        details = _consumers(client, key, name, idle_after_ms)
        report["groups"].append({
            "name": name,
            "consumers": int(_get(group, "consumers") or 0),
            "pending": int(_get(group, "pending") or 0),
            "lag": lag,
            "lag_source": lag_source,
            "last_delivered_id": _text(_get(group, "last-delivered-id", "last_delivered_id")),
            "entries_read": int(entries_read) if entries_read is not None else None,
            "idle_consumers": sum(1 for d in details if d["idle"]),
            "consumer_details": details,
        })
    return report


def stream_report(client, streams, now_ms=None, idle_after_ms=DEFAULT_IDLE_AFTER_MS,
                  lag_count_limit=LAG_COUNT_LIMIT):
    """Report each stream in ``streams`` (dict keyed by stream name, in order).

    ``client`` is a ``redis_resp.Redis``. ``now_ms`` defaults
    to Redis ``TIME``. Connection errors propagate (``probe`` turns them into results).
    """
    if now_ms is None:
        now_ms = server_time_ms(client)
    return {key: _stream(client, key, now_ms, idle_after_ms, lag_count_limit) for key in streams}


# --------------------------------------------------------------------------- probe

def probe(client, streams, idle_after_ms=DEFAULT_IDLE_AFTER_MS, target=None):
    """PING, version and ``stream_report`` as a result dict; never raises RedisError/OSError.

    ``reachable`` is true once the server answered anything (even an auth error);
    ``ping`` is true when PING got PONG.
    """
    result = {"reachable": False, "ping": False, "error": None, "redis_version": None, "streams": {}}
    where = f" at {target}" if target else ""
    step = "PING"
    try:
        result["ping"] = bool(client.ping())
        result["reachable"] = True
        step = "INFO server"
        result["redis_version"] = _text(client.info("server").get("redis_version"))
        step = "stream report"
        result["streams"] = stream_report(client, streams, idle_after_ms=idle_after_ms)
    except (AuthenticationError, BusyLoadingError) as err:  # the server answered
        result["reachable"] = True
        result["error"] = one_line(f"Redis{where} refused {step}: {type(err).__name__}: {err}")
    except (RedisConnectionError, RedisTimeoutError, OSError) as err:  # refused, timeout, DNS, reset
        verb = "cannot reach Redis" if step == "PING" else f"lost Redis during {step}"
        result["error"] = one_line(f"{verb}{where}: {type(err).__name__}: {err}")
    except InvalidResponse as err:  # something answered, but not in the Redis protocol
        result["reachable"] = False
        result["error"] = one_line(f"not a Redis server{where} ({step}): {type(err).__name__}: {err}")
    except RedisError as err:  # ResponseError etc.: reachable, but the command failed
        result["reachable"] = True
        result["error"] = one_line(f"Redis{where} {step} failed: {type(err).__name__}: {err}")
    return result


# --------------------------------------------------------------------------- docker

def container_state(container, engine):
    """(Docker's state of ``container`` (running, exited, paused, ...) or ``missing``, its inspect data)."""
    try:
        attrs = engine.inspect(container)
    except NotFound:
        return "missing", None
    return (attrs.get("State") or {}).get("Status") or "unknown", attrs


def resolve_container_url(container, port, engine):
    """``redis://<IP on the container's first network>:<port>/0``.

    Raises ContainerUnavailable (with ``.state``) when the container is missing, not
    running or has no IP; other DockerErrors (daemon unreachable) propagate.
    """
    state, attrs = container_state(container, engine)
    if state == "missing":
        raise ContainerUnavailable(state, f"container {container} does not exist")
    if state != "running":
        raise ContainerUnavailable(state, f"container {container} is {state}, not running")
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for settings in networks.values():
        ip = (settings or {}).get("IPAddress")
        if ip:
            host = f"[{ip}]" if ":" in ip else ip
            return f"redis://{host}:{int(port)}/0"
    raise ContainerUnavailable(state, f"container {container} is running but has no IP on any network "
                                      f"(networks: {', '.join(networks) or 'none'})")
