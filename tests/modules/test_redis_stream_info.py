"""redis_stream_info against a throwaway Redis of our own (never the lab's).

redis-py seeds the data; the reports are read with the collection's own client (module_utils/redis_resp.py).
A module-scoped fixture starts `qt-lab-redis:1` as `qt-test-redis-<random>` (reached
through its container IP, which is also what `container` mode does, and through a
port published on 127.0.0.1 for `url` mode) and removes it afterwards. The lab's
containers are shared with others: nothing here runs labctl or writes to quantum_redis;
the only lab test is read-only and marked `lab`.
"""
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import redis_connect
from ansible_collections.quantum.runbooks.plugins.module_utils import redis_streams as rs
from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import Engine, NotFound

redis = pytest.importorskip("redis")

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
IMAGE = "qt-lab-redis:1"
INTENT = "quantum:stream:intent"
EXECUTION = "quantum:stream:execution"
PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


# ----------------------------------------------------------------------------- helpers

def params(**overrides):
    """Module params with the documented defaults, as AnsibleModule would pass them."""
    p = {"url": None, "container": "quantum_redis", "port": 6379,
         "streams": list(rs.DEFAULT_STREAMS), "idle_after_ms": 30000, "timeout": 3.0,
         "docker_host": "unix:///var/run/docker.sock"}
    p.update(overrides)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_ip(dc, name):
    nets = dc.inspect(name)["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in nets.values() if n.get("IPAddress"))


def start_redis(dc, rm=True):
    """A fresh qt-lab-redis container with a published loopback port, PING-ready."""
    name = f"qt-test-redis-{uuid.uuid4().hex[:10]}"
    port = free_port()
    cmd = ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:6379", IMAGE]
    if rm:
        cmd.insert(3, "--rm")
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    try:
        ip = container_ip(dc, name)
        client = redis.Redis(host=ip, port=6379, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except BaseException:
        remove(name)
        raise
    # redis-py seeds; the collection's client (what the modules use) reads the reports.
    return {"name": name, "port": port, "ip": ip, "client": client,
            "resp": redis_connect.redis_client(f"redis://{host_of(ip)}:6379/0", 2.0)}


def host_of(ip):
    return f"[{ip}]" if ":" in ip else ip


def remove(name):
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def ansible_adhoc(args, check=False):
    """Run the real module with `ansible` from the repo root; the host's result dict."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
           "-m", "quantum.runbooks.redis_stream_info", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, f"ansible rc={res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    # The json callback's document comes first; ansible.cfg's timer callback may print after it.
    out, _dummy = json.JSONDecoder().raw_decode(res.stdout.lstrip())
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"], res.stdout + res.stderr


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def dc():
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        pytest.fail("no Docker engine: run `make docker`")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode:
        pytest.fail(f"image {IMAGE} missing: run `make images`")
    return Engine(timeout=30)


@pytest.fixture(scope="module")
def box(dc):
    """Our own Redis with the lab's two streams, an `executor` group and 3 unacked entries."""
    box = start_redis(dc)
    try:
        r = box["client"]
        now_ms = rs.server_time_ms(r)
        # Explicit ids in the past make ages known: first 120 s old, last 10 s old.
        ids = [r.xadd(INTENT, {"symbol": "BTCUSDT", "n": str(i)}, id=f"{now_ms - ms}-0")
               for i, ms in enumerate((120000, 90000, 60000, 30000, 10000))]
        r.xgroup_create(INTENT, "executor", id="0")
        got = r.xreadgroup("executor", "auto-executor-test", {INTENT: ">"}, count=3)  # no XACK
        assert len(got[0][1]) == 3
        r.xadd(EXECUTION, {"status": "SUBMITTED_OK"})
        r.xadd(EXECUTION, {"status": "ERROR"})
        # A user with a password for url mode (the default user stays passwordless).
        r.execute_command("ACL", "SETUSER", "tester", "on", f">{PASSWORD}", "~*", "&*", "+@all")
        box.update(ids=ids, seeded_ms=now_ms)
        yield box
    finally:
        remove(box["name"])


# ----------------------------------------------------------------------------- pure logic

def test_mask_url_hides_passwords():
    assert rs.mask_url("redis://:pw@10.0.0.1:6379/0") == "redis://:********@10.0.0.1:6379/0"
    assert rs.mask_url("redis://u:pw@h:1/2") == "redis://u:********@h:1/2"
    assert rs.mask_url("redis://h:1/0?password=pw&db=0") == "redis://h:1/0?password=********&db=0"
    assert rs.mask_url("redis://127.0.0.1:16379/0") == "redis://127.0.0.1:16379/0"
    assert rs.url_password("redis://u:pw@h:1/2") == "pw"
    assert rs.url_password("redis://h:1/0?password=q") == "q"
    assert rs.url_password("redis://h:1/0") is None


def test_entry_id_ages_use_the_given_clock():
    assert rs.parse_id("1700000000000-3") == (1700000000000, 3)
    assert rs.parse_id("junk") is None
    assert rs.id_age_s("1700000000000-0", 1700000012345) == 12.345


class _FakeDocker:
    """Just enough of docker_engine.Engine for resolve_container_url."""

    def __init__(self, attrs):
        self._attrs = attrs

    def inspect(self, name):
        if self._attrs is None:
            raise NotFound("Docker API answered HTTP 404: No such container: %s" % name, kind="api", status=404)
        return self._attrs


def test_resolve_container_url_uses_first_network_with_an_ip():
    attrs = {"State": {"Status": "running"},
             "NetworkSettings": {"Networks": {"a_net": {"IPAddress": ""}, "quantum_net": {"IPAddress": "172.18.0.5"},
                                              "z_net": {"IPAddress": "10.9.0.2"}}}}
    assert rs.resolve_container_url("quantum_redis", 6380, _FakeDocker(attrs)) == "redis://172.18.0.5:6380/0"
    with pytest.raises(rs.ContainerUnavailable) as err:
        rs.resolve_container_url("gone", 6379, _FakeDocker(None))
    assert err.value.state == "missing"
    with pytest.raises(rs.ContainerUnavailable) as err:
        rs.resolve_container_url("x", 6379, _FakeDocker({"State": {"Status": "exited"}, "NetworkSettings": {}}))
    assert err.value.state == "exited" and "not running" in str(err.value)


# ----------------------------------------------------------------------------- against our Redis

def test_report_streams_group_pending_lag_and_ages(box):
    report = rs.stream_report(box["resp"], [INTENT, EXECUTION])
    intent = report[INTENT]
    ids = box["ids"]
    assert intent["exists"] and intent["type"] == "stream" and intent["error"] is None
    assert intent["length"] == 5
    assert (intent["first_id"], intent["last_id"]) == (ids[0], ids[-1])
    # Ages against Redis TIME: 120 s and 10 s at seeding, plus the seconds since.
    since = (rs.server_time_ms(box["client"]) - box["seeded_ms"]) / 1000
    assert 120 <= intent["first_age_s"] <= 120 + since + 1
    assert 10 <= intent["last_age_s"] <= 10 + since + 1
    [group] = intent["groups"]
    assert group["name"] == "executor"
    assert group["consumers"] == 1
    assert group["pending"] == 3
    assert (group["lag"], group["lag_source"]) == (2, "xinfo")
    assert group["entries_read"] == 3
    assert group["last_delivered_id"] == ids[2]
    [consumer] = group["consumer_details"]
    assert consumer["name"] == "auto-executor-test" and consumer["pending"] == 3
    assert consumer["idle_ms"] >= 0 and consumer["idle"] is False
    assert group["idle_consumers"] == 0
    execution = report[EXECUTION]
    assert execution["exists"] and execution["length"] == 2 and execution["groups"] == []
    assert 0 <= execution["last_age_s"] < 30


def test_now_ms_overrides_the_server_clock(box):
    ids = box["ids"]
    now = rs.parse_id(ids[-1])[0] + 5000
    intent = rs.stream_report(box["resp"], [INTENT], now_ms=now)[INTENT]
    assert intent["last_age_s"] == 5.0
    assert intent["first_age_s"] == 115.0


def test_lag_is_counted_when_redis_reports_null(box):
    r, key = box["client"], "qt:test:lagnull"
    ids = [r.xadd(key, {"n": str(i)}) for i in range(6)]
    r.xgroup_create(key, "mid", id=ids[1])  # arbitrary start id: Redis cannot know entries_read
    assert r.xinfo_groups(key)[0]["lag"] is None
    [group] = rs.stream_report(box["resp"], [key])[key]["groups"]
    assert (group["lag"], group["lag_source"]) == (4, "counted")
    assert group["entries_read"] is None
    # Beyond the counting bound the lag stays unknown rather than wrong.
    [group] = rs.stream_report(box["resp"], [key], lag_count_limit=3)[key]["groups"]
    assert (group["lag"], group["lag_source"]) == (None, None)


def test_idle_consumer_detection(box):
    r, key = box["client"], "qt:test:idle"
    for i in range(4):
        r.xadd(key, {"n": str(i)})
    r.xgroup_create(key, "g", id="0")
    r.xreadgroup("g", "sleepy", {key: ">"}, count=1)
    time.sleep(0.6)
    r.xreadgroup("g", "busy", {key: ">"}, count=1)
    [group] = rs.stream_report(box["resp"], [key], idle_after_ms=300)[key]["groups"]
    by_name = {c["name"]: c for c in group["consumer_details"]}
    assert by_name["sleepy"]["idle"] is True and by_name["sleepy"]["idle_ms"] > 300
    assert by_name["busy"]["idle"] is False
    assert group["idle_consumers"] == 1
    assert group["consumers"] == 2 and group["pending"] == 2


def test_missing_stream_and_wrong_type(box):
    r = box["client"]
    r.set("qt:test:string", "x")
    report = rs.stream_report(box["resp"], ["qt:test:nope", "qt:test:string"])
    nope = report["qt:test:nope"]
    assert nope["exists"] is False and nope["length"] is None and nope["groups"] == []
    wrong = report["qt:test:string"]
    assert wrong["exists"] is True and wrong["type"] == "string" and "not a stream" in wrong["error"]


def test_url_mode_with_password_masks_it(box):
    url = f"redis://tester:{PASSWORD}@127.0.0.1:{box['port']}/0"
    result = redis_connect.stream_info(params(url=url, streams=[INTENT]))
    assert result["reachable"] and result["ping"] and result["error"] is None, result
    assert result["target"] == f"redis://tester:********@127.0.0.1:{box['port']}/0"
    assert "container_state" not in result
    assert result["streams"][INTENT]["length"] == 5
    assert PASSWORD not in json.dumps(result)
    bad = redis_connect.stream_info(params(url=f"redis://tester:wrong-{PASSWORD}@127.0.0.1:{box['port']}/0"))
    assert bad["reachable"] is True and bad["ping"] is False
    assert "AuthenticationError" in bad["error"] and PASSWORD not in json.dumps(bad)


def test_unknown_container_is_a_result(box):
    name = f"qt-test-redis-absent-{uuid.uuid4().hex[:8]}"
    result = redis_connect.stream_info(params(container=name))
    assert result["container_state"] == "missing"
    assert result["reachable"] is False and result["ping"] is False
    assert result["error"] == f"container {name} does not exist"
    assert result["target"] is None and result["streams"] == {}


def test_unreachable_docker_is_a_result():
    result = redis_connect.stream_info(params(docker_host="unix:///nonexistent/docker.sock", timeout=1))
    assert result["reachable"] is False and result["container_state"] is None
    assert "unix:///nonexistent/docker.sock" in result["error"] and "\n" not in result["error"]


def test_hung_redis_times_out_within_the_bound(box, dc):
    """docker pause = a frozen server: the kernel accepts, nobody answers."""
    subprocess.run(["docker", "pause", box["name"]], check=True, capture_output=True, timeout=30)
    try:
        start = time.monotonic()
        result = redis_connect.stream_info(params(url=f"redis://{box['ip']}:6379/0", timeout=1))
        elapsed = time.monotonic() - start
        assert result["reachable"] is False and result["ping"] is False
        assert result["error"].startswith(f"cannot reach Redis at redis://{box['ip']}:6379/0: TimeoutError")
        assert elapsed < 1 + 1.0, elapsed
        paused = redis_connect.stream_info(params(container=box["name"], timeout=1))
        assert paused["container_state"] == "paused" and "not running" in paused["error"]
    finally:
        subprocess.run(["docker", "unpause", box["name"]], capture_output=True, timeout=30, check=False)


def test_stopped_redis_is_unreachable_not_a_failure(dc):
    own = start_redis(dc, rm=False)  # kept after stop so its state reads "exited"
    try:
        own["client"].xadd(INTENT, {"n": "1"})
        subprocess.run(["docker", "stop", "-t", "2", own["name"]], check=True, capture_output=True, timeout=30)
        for p in (params(container=own["name"], timeout=1),
                  params(url=f"redis://127.0.0.1:{own['port']}/0", timeout=1),
                  params(url=f"redis://{own['ip']}:6379/0", timeout=1)):
            start = time.monotonic()
            result = redis_connect.stream_info(p)
            elapsed = time.monotonic() - start
            assert result["reachable"] is False and result["ping"] is False, result
            assert result["error"] and "\n" not in result["error"]
            assert elapsed < p["timeout"] + 1.0, (p, elapsed)
            if p["url"]:
                assert result["error"].startswith("cannot reach Redis at "), result["error"]
            else:
                assert result["container_state"] == "exited"
                assert result["error"] == f"container {own['name']} is exited, not running"
    finally:
        remove(own["name"])


# ----------------------------------------------------------------------------- the real module

def test_ansible_adhoc_container_mode_in_check_mode(box):
    result, _dummy = ansible_adhoc({"container": box["name"], "idle_after_ms": 3600000}, check=True)
    assert result["changed"] is False and not result.get("failed")
    assert result["container_state"] == "running"
    assert result["target"] == f"redis://{box['ip']}:6379/0"
    assert result["reachable"] and result["ping"] and result["error"] is None
    assert result["redis_version"].startswith("7.")
    intent = result["streams"][INTENT]
    assert intent["length"] == 5 and intent["last_id"] == box["ids"][-1]
    [group] = intent["groups"]
    assert (group["name"], group["pending"], group["lag"], group["idle_consumers"]) == ("executor", 3, 2, 0)
    assert result["streams"][EXECUTION]["length"] == 2


def test_ansible_adhoc_url_mode_masks_password_everywhere(box):
    url = f"redis://tester:{PASSWORD}@127.0.0.1:{box['port']}/0"
    result, raw = ansible_adhoc({"url": url, "streams": [INTENT, "qt:test:nope"], "timeout": 2})
    assert result["reachable"] and result["ping"], result
    assert result["streams"]["qt:test:nope"]["exists"] is False
    assert result["streams"][INTENT]["groups"][0]["pending"] == 3
    assert PASSWORD not in raw  # not in target, not in invocation.module_args
    assert "********" in result["target"]


def test_ansible_bad_argument_fails():
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    res = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
         "-m", "quantum.runbooks.redis_stream_info", "-a", json.dumps({"url": "http://nope/0"})],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode != 0
    assert "invalid url http://nope/0" in res.stdout


# ----------------------------------------------------------------------------- the lab (read-only)

@pytest.mark.lab
def test_lab_intent_stream_has_executor_group(lab):
    """Reads quantum_redis like the runbook does (container IP); writes nothing.

    The `lab` fixture itself runs `labctl up` and, at teardown, `labctl fault healthy`,
    which clears faults someone else injected: on a shared lab run `-m "not lab"`.
    """
    result = redis_connect.stream_info(params(container="quantum_redis", streams=[INTENT]))
    assert result["container_state"] == "running", result["error"]
    assert result["reachable"] and result["ping"], result["error"]
    intent = result["streams"][INTENT]
    assert intent["exists"] and intent["length"] > 0
    assert "executor" in [g["name"] for g in intent["groups"]]
