"""module_utils/redis_resp against a real Redis, side by side with redis-py: the same replies, the same errors.

Two throwaway containers of `qt-lab-redis:1` of our own (`qtresp-live-<random>`, one started with
`--requirepass`), reached through a port Docker picks on 127.0.0.1, removed afterwards; never the lab's.
redis-py (requirements-dev.txt) seeds the data and is the reference: every command the collection sends is
asked of both clients and the answers compared (XINFO's idle times move between the two calls: compared
within a bound). The stream report and the probe's lines are compared whole.
"""
import json
import subprocess
import time
import uuid

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import redis_connect
from ansible_collections.quantum.runbooks.plugins.module_utils import redis_resp as rr
from ansible_collections.quantum.runbooks.plugins.module_utils import redis_streams as rs

redis = pytest.importorskip("redis")

IMAGE = "qt-lab-redis:1"
INTENT = "quantum:stream:intent"
PASSWORD = "pw-" + uuid.uuid4().hex[:10]


def start(*command):
    name = f"qtresp-live-{uuid.uuid4().hex[:10]}"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode:
        pytest.skip(f"image {IMAGE} missing (make images)")
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-p", "127.0.0.1::6379", IMAGE, *command],
                   check=True, capture_output=True, timeout=60)
    try:
        port = int(subprocess.run(["docker", "port", name, "6379/tcp"], check=True, capture_output=True, text=True,
                                  timeout=30).stdout.splitlines()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + 15
        while True:
            try:
                rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=1).ping()
                break
            except rr.AuthenticationError:
                break
            except rr.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except BaseException:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)
        raise
    return name, port


@pytest.fixture(scope="module")
def plain():
    name, port = start()
    r = redis.Redis(port=port, decode_responses=True)
    now = r.time()[0] * 1000
    ids = [r.xadd(INTENT, {"symbol": "BTCUSDT", "n": str(i)}, id=f"{now - ms}-0")
           for i, ms in enumerate((120000, 90000, 60000, 30000, 10000))]
    r.xgroup_create(INTENT, "executor", id="0")
    r.xreadgroup("executor", "auto-executor-test", {INTENT: ">"}, count=3)  # 3 pending
    r.xgroup_create(INTENT, "idle", id="0")
    r.xgroup_createconsumer(INTENT, "idle", "never-read")
    r.xgroup_create(INTENT, "mid", id=ids[1])  # lag null: counted
    r.xadd("empty", {"a": "1"}, id="1-1")
    r.xdel("empty", "1-1")
    r.xgroup_create("empty", "g", id="$")
    r.set("str", "x")
    r.set("utf8", "café ✓")
    yield port, r
    r.close()
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def locked():
    name, port = start("redis-server", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD)
    yield port
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def without_idle(value):
    if isinstance(value, (list, tuple)):  # tuples stay tuples: redis-py's (id, fields) shape is compared too
        return type(value)(without_idle(v) for v in value)
    if isinstance(value, dict):
        return {k: without_idle(v) for k, v in value.items() if k not in ("idle", "idle_ms", "inactive", "inactive_ms")}
    return value


def outcome(call):
    try:
        return "ok", call()
    except (redis.RedisError, rr.RedisError) as err:
        return type(err).__name__, str(err)


CALLS = [
    ("ping", ()), ("get", ("str",)), ("get", ("nope",)), ("get", ("utf8",)), ("type", (INTENT,)), ("type", ("str",)),
    ("type", ("nope",)), ("xinfo_stream", (INTENT,)), ("xinfo_stream", ("empty",)), ("xinfo_stream", ("nope",)),
    ("xinfo_stream", ("str",)), ("xinfo_groups", (INTENT,)), ("xinfo_groups", ("empty",)), ("xinfo_groups", ("nope",)),
    ("xinfo_consumers", (INTENT, "executor")), ("xinfo_consumers", (INTENT, "idle")),
    ("xinfo_consumers", (INTENT, "nogroup")), ("xrange", (INTENT,)), ("xrange", ("empty",)), ("xrange", ("str",)),
]


@pytest.mark.parametrize("method, args", CALLS, ids=[f"{m}{list(a)}" for m, a in CALLS])
def test_each_command_answers_as_redis_py(plain, method, args):
    port, theirs = plain
    ours = rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=2)
    got, want = outcome(lambda: getattr(ours, method)(*args)), outcome(lambda: getattr(theirs, method)(*args))
    assert without_idle(got) == without_idle(want)
    assert json.dumps(got, sort_keys=True).replace(" ", "") is not None  # JSON-able, as a module result must be
    if method.startswith("xinfo_consumers") and got[0] == "ok":
        assert all(abs(a["idle"] - b["idle"]) < 2000 for a, b in zip(got[1], want[1], strict=True))


def test_xrange_with_an_exclusive_start_and_count(plain):
    port, theirs = plain
    ours = rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=2)
    after_first = f"({theirs.xrange(INTENT)[0][0]}"
    assert ours.xrange(INTENT, min=after_first, max="+", count=2) == theirs.xrange(INTENT, min=after_first, max="+",
                                                                                   count=2)


def test_time_info_set_delete_as_redis_py(plain):
    port, theirs = plain
    ours = rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=2)
    assert abs(ours.time()[0] - theirs.time()[0]) <= 1 and isinstance(ours.time()[1], int)
    mine, ref = ours.info("server"), theirs.info("server")
    assert set(mine) == set(ref) and mine["redis_version"] == ref["redis_version"]
    assert ours.set("qt:k", json.dumps({"by": "é"})) is True and theirs.get("qt:k") == json.dumps({"by": "é"})
    assert ours.delete("qt:k") == 1 and ours.delete("qt:k") == 0 and theirs.get("qt:k") is None


def test_the_stream_report_is_the_same_with_either_client(plain):
    port, theirs = plain
    ours = rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=2)
    now = theirs.time()[0] * 1000
    streams = [INTENT, "empty", "nope", "str"]
    got = rs.stream_report(ours, streams, now_ms=now, idle_after_ms=3600000)
    want = rs.stream_report(theirs, streams, now_ms=now, idle_after_ms=3600000)
    assert without_idle(got) == without_idle(want)
    assert {g["name"]: (g["lag"], g["lag_source"]) for g in got[INTENT]["groups"]} == {
        "executor": (2, "xinfo"), "idle": (5, "xinfo"), "mid": (3, "counted")}


def test_a_report_through_stream_info(plain):
    port, _theirs = plain
    result = redis_connect.stream_info({"url": f"redis://127.0.0.1:{port}/0", "streams": [INTENT, "str"],
                                        "idle_after_ms": 30000, "timeout": 2.0, "container": None, "port": 6379,
                                        "docker_host": "unix:///nonexistent"})
    assert result["reachable"] and result["ping"] and result["error"] is None
    assert result["redis_version"].startswith("7.") and result["streams"][INTENT]["length"] == 5
    assert result["streams"]["str"]["error"] == "str is a string, not a stream"


@pytest.mark.parametrize("userinfo", ["", ":wrong@", "default:wrong@", "nobody:x@"])
def test_auth_failures_read_as_with_redis_py(locked, userinfo):
    url = f"redis://{userinfo}127.0.0.1:{locked}/0"
    got = outcome(lambda: rr.Redis.from_url(url, timeout=2).get("k"))
    want = outcome(lambda: redis.Redis.from_url(url, decode_responses=True).get("k"))
    assert got == want and got[0] == "AuthenticationError"


@pytest.mark.parametrize("form", ["redis://:{pw}@127.0.0.1:{port}/0", "redis://default:{pw}@127.0.0.1:{port}/2",
                                  "redis://127.0.0.1:{port}/1?password={pw}"])
def test_auth_and_select(locked, form):
    url = form.format(pw=PASSWORD, port=locked)
    ours = rr.Redis.from_url(url, timeout=2)
    assert ours.set("db-mark", url[-1]) and ours.ping()
    assert redis.Redis.from_url(url, decode_responses=True).get("db-mark") == url[-1]


def test_probe_lines_are_redis_py_lines(locked):
    """What the modules show for a refused connection, a missing password and a wrong one."""
    urls = [f"redis://127.0.0.1:{locked}/0", f"redis://:wrong@127.0.0.1:{locked}/0", "redis://127.0.0.1:1/0",
            f"redis://:{PASSWORD}@127.0.0.1:{locked}/99"]
    for url in urls:
        ours = rs.probe(rr.Redis.from_url(url, timeout=2), [INTENT], target=url)
        # probe catches our exceptions, not redis-py's: the line must end with what redis-py raised here.
        kind, message = outcome(lambda u=url: redis.Redis.from_url(u, decode_responses=True).ping())
        assert ours["error"] and ours["error"].endswith(f"{kind}: {message}"), (ours["error"], kind, message)
