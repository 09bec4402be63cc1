"""module_utils/docker_engine against the real Docker daemon, and the collection's reads that go through it
(log_follow, the Binance container settings and in-container probe, the Redis container lookup).

Throwaway containers of our own only: `qt-lab-base:bookworm-1` as `qtde-test-<random>`, removed afterwards.
Nothing here runs labctl or touches the lab's containers. The same client without a daemon:
tests/unit/test_docker_engine.py.
"""
import os
import shutil
import subprocess
import time
import uuid

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_common, binance_connectivity, log_follow
from ansible_collections.quantum.runbooks.plugins.module_utils import docker_engine as de
from ansible_collections.quantum.runbooks.plugins.module_utils import redis_streams as rs
from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary, iter_lines, split_line

IMAGE = os.environ.get("BASE_IMAGE", "qt-lab-base:bookworm-1")
REQUIRED = bool(os.environ.get("QT_REQUIRE_TOOLS") or os.environ.get("CI"))


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def engine_ready():
    if not shutil.which("docker"):
        return "no docker CLI"
    if docker("info", check=False).returncode:
        return "no Docker engine answers (make docker)"
    if docker("image", "inspect", IMAGE, check=False).returncode:
        return f"the lab's base image {IMAGE} is missing (lab/images/base/build_base.sh)"
    return None


@pytest.fixture(scope="module")
def start():
    """start(shell command, *docker run options) -> name of a running throwaway container."""
    why = engine_ready()
    if why:
        if REQUIRED:
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    names = []

    def run(command, *options):
        name = f"qtde-test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        docker("run", "-d", "--name", name, "--label", "qtde-test=1", *options, IMAGE, "sh", "-c", command)
        return name

    yield run
    for name in names:
        docker("rm", "-f", name, check=False)


def wait_for_log(engine, attrs, text, timeout=20):
    deadline = time.monotonic() + timeout
    while text not in b"".join(engine.logs(attrs["Id"], tty=log_follow.container_tty(attrs))).decode():
        assert time.monotonic() < deadline, f"{text!r} not logged in {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def plain(start):
    """A container without TTY: two lines on stdout and stderr, a second apart, then asleep."""
    name = start("echo out1; echo err1 >&2; sleep 1.5; echo out2; echo err2 >&2; echo done; exec sleep 300",
                 "-e", "BINANCE_USE_TESTNET=true", "-e", "BINANCE_API_KEY=qtde-key", "-e", "LOG_LEVEL=DEBUG")
    engine = de.Engine()
    attrs = engine.inspect(name)
    wait_for_log(engine, attrs, "done")
    return name, attrs


def lines_of(blocks):
    return list(iter_lines(blocks))


def test_inspect_a_running_container_and_a_missing_one(plain):
    name, attrs = plain
    assert attrs["Name"] == "/" + name and attrs["State"]["Status"] == "running"
    assert attrs["Config"]["Tty"] is False and attrs["Id"].startswith(de.Engine().inspect(attrs["Id"][:12])["Id"])
    with pytest.raises(de.NotFound) as err:
        de.Engine().inspect(f"qtde-test-absent-{uuid.uuid4().hex[:8]}")
    assert err.value.status == 404 and "No such container" in str(err.value)


def test_version_tells_the_api_version():
    if engine_ready():
        pytest.skip(engine_ready())
    version = de.Engine().version()
    assert version["ApiVersion"] >= de.API_VERSION  # string compare holds for 1.41 .. 1.99


def test_logs_demultiplexed_with_tail_since_and_until(plain):
    _name, attrs = plain
    engine = de.Engine()
    plain_lines = lines_of(engine.logs(attrs["Id"], timestamps=False))
    assert sorted(plain_lines) == sorted(["out1", "err1", "out2", "err2", "done"])  # stdout and stderr, no headers
    stamped = lines_of(engine.logs(attrs["Id"]))
    stamps = {split_line(line)[1]: split_line(line)[0] for line in stamped}
    assert set(stamps) == set(plain_lines) and all(stamps.values())
    assert len(lines_of(engine.logs(attrs["Id"], tail=2, timestamps=False))) == 2
    assert lines_of(engine.logs(attrs["Id"], tail=0)) == []
    later = lines_of(engine.logs(attrs["Id"], since=stamps["out2"] - 0.01, timestamps=False))
    assert sorted(later) == sorted(["out2", "err2", "done"])
    earlier = lines_of(engine.logs(attrs["Id"], until=stamps["out1"] + 0.5, timestamps=False))
    assert sorted(earlier) == sorted(["out1", "err1"])


def test_a_tty_log_is_not_multiplexed(start):
    name = start("echo tty-line; printf 'second\\n'; exec sleep 300", "-t")
    engine = de.Engine()
    attrs = engine.inspect(name)
    assert log_follow.container_tty(attrs)
    wait_for_log(engine, attrs, "second")
    raw = b"".join(engine.logs(attrs["Id"], timestamps=False, tty=True))
    assert raw == b"tty-line\r\nsecond\r\n"  # a TTY's \r\n, and no 8-byte frame headers


def test_a_large_log_reads_whole_in_large_blocks(start):
    count = 100000
    name = start(f"python3 -c 'import sys; sys.stdout.write(\"\".join(\"line %d\\n\" % i for i in range({count})))'"
                 "; echo end; exec sleep 300")
    engine = de.Engine()
    attrs = engine.inspect(name)
    wait_for_log(engine, attrs, "end", timeout=60)
    blocks = list(log_follow.log_blocks(engine, attrs, timestamps=False))
    got = lines_of(blocks)
    assert got[:2] == ["line 0", "line 1"] and got[-2:] == [f"line {count - 1}", "end"] and len(got) == count + 1
    assert len(blocks) < 40  # about 1 MiB in 64 KiB blocks, not one per line


def test_follow_sees_lines_as_they_are_logged(start):
    name = start('sleep 1; echo \'{"event": "PREFLIGHT"}\'; sleep 0.5; echo \'{"event": "WOULD_SUBMIT"}\'; '
                 "exec sleep 300")
    engine = de.Engine()
    attrs = engine.inspect(name)
    summary = LogSummary(keep_last=5)
    started = time.monotonic()
    wait = log_follow.follow(engine, attrs, {"timestamps": True, "since": time.time() - 60}, summary,
                             ["PREFLIGHT"], ["WOULD_SUBMIT", "ORDER_RESPONSE"], 20)
    assert wait["met"] is True and time.monotonic() - started < 10, wait
    assert summary.counts["PREFLIGHT"] == 1


def test_follow_outlasts_a_log_silent_longer_than_the_client_timeout(start):
    name = start('echo \'{"event": "PREFLIGHT"}\'; sleep 2.5; echo \'{"event": "ORDER_RESPONSE"}\'; exec sleep 300')
    engine = de.Engine(timeout=1)  # each followed read times out during the silence: reopened from its last line
    attrs = engine.inspect(name)
    summary = LogSummary(keep_last=5)
    wait = log_follow.follow(engine, attrs, {"timestamps": True, "since": time.time() - 60}, summary,
                             ["PREFLIGHT"], ["ORDER_RESPONSE"], 20)
    assert wait["met"] is True and wait["waited_s"] < 10, wait
    assert summary.counts["PREFLIGHT"] == 1 and summary.counts["ORDER_RESPONSE"] == 1  # nothing read twice


def test_exec_exit_code_stdout_stderr(plain):
    _name, attrs = plain
    engine = de.Engine()
    script = "echo to-out; echo to-err >&2; exit 7"
    assert engine.exec(attrs["Id"], ["sh", "-c", script]) == (7, b"to-out\n", b"to-err\n")
    code, out, err = engine.exec(attrs["Name"].lstrip("/"), ["python3", "-c", "print('x' * 200000)"])
    assert code == 0 and out == b"x" * 200000 + b"\n" and err == b""  # bigger than a block, by name
    code, _out, _err = engine.exec(attrs["Id"], ["/no/such/binary"])
    assert code != 0


def test_exec_timeout(plain):
    _name, attrs = plain
    started = time.monotonic()
    with pytest.raises(de.DockerError) as err:
        de.Engine().exec(attrs["Id"], ["sleep", "10"], timeout=1)
    assert err.value.kind == "timeout" and time.monotonic() - started < 3
    assert str(err.value) == "sleep did not finish within 1 s"


def test_exec_in_a_stopped_container_is_an_api_error(start):
    name = start("exit 0")
    engine = de.Engine()
    deadline = time.monotonic() + 20
    while engine.inspect(name)["State"]["Status"] != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with pytest.raises(de.DockerError) as err:
        engine.exec(name, ["true"])
    assert err.value.kind == "api" and err.value.status == 409 and "is not running" in str(err.value)


def test_a_bad_socket_path_is_one_line(tmp_path):
    with pytest.raises(de.DockerError) as err:
        de.Engine(f"unix://{tmp_path}/docker.sock", timeout=2).inspect("x")
    assert err.value.kind == "absent" and str(err.value) == (
        f"{tmp_path}/docker.sock does not exist (is the Docker engine running?)")


# ---------------------------------------------------------------- the callers

def test_binance_settings_come_from_the_inspect_data(plain, monkeypatch):
    name, _attrs = plain
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    state, env = binance_common.container_settings(name)
    assert state == "running"
    assert env == {"BINANCE_USE_TESTNET": "true", "BINANCE_API_KEY": "qtde-key"}  # only the settings' keys
    assert binance_common.container_settings(f"qtde-test-absent-{uuid.uuid4().hex[:8]}") == ("missing", {})
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert binance_common.container_settings(name) == ("missing", {})


def test_binance_probe_runs_inside_the_container_as_python3_c(plain):
    _name, attrs = plain
    probe, error = binance_connectivity.probe_in_container(attrs["Id"], "http://127.0.0.1:9/fapi", 2)
    assert error is None, error
    assert probe["url"] == "http://127.0.0.1:9/fapi/v1/time" and probe["reachable"] is False
    assert probe["error_kind"] == "refused"
    probe, error = binance_connectivity.probe_in_container(f"qtde-test-absent-{uuid.uuid4().hex[:8]}",
                                                           "http://127.0.0.1:9/fapi", 2)
    assert probe is None and error.startswith("docker exec failed: Docker API answered HTTP 404")


def test_redis_lookup_of_a_missing_and_a_running_container(plain):
    name, attrs = plain
    engine = de.Engine()
    assert rs.container_state(f"qtde-test-absent-{uuid.uuid4().hex[:8]}", engine) == ("missing", None)
    state, found = rs.container_state(name, engine)
    assert state == "running" and found["Id"] == attrs["Id"]
    ip = next(n["IPAddress"] for n in attrs["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))
    assert rs.resolve_container_url(name, 6379, engine) == f"redis://{ip}:6379/0"
