"""module_utils/docker_engine without a Docker daemon: the multiplexed stream cut at any read boundary, the
host URLs, the error lines, and the HTTP calls against a stand-in daemon on a unix socket (a real one:
tests/modules/test_docker_engine_real.py)."""
import json
import random
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import docker_engine as de


def frame(payload, stream=1):
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def cuts(blob, rng, n):
    points = sorted(rng.sample(range(1, len(blob)), min(n, len(blob) - 1)))
    return [blob[a:b] for a, b in zip([0] + points, points + [len(blob)], strict=True)]


# ---------------------------------------------------------------- the multiplexed stream

@pytest.mark.parametrize("seed", range(20))
def test_demultiplex_any_read_boundaries(seed):
    rng = random.Random(seed)
    payloads = [b"%d %s\n" % (i, b"y" * rng.randrange(0, 300)) for i in range(300)]
    stream = b"".join(frame(p, stream=rng.choice([1, 2])) for p in payloads)  # stdout and stderr alike
    out = list(de.demultiplex(cuts(stream, rng, rng.choice([1, 7, 100, 2000]))))
    assert b"".join(out) == b"".join(payloads)
    assert all(out)  # a read that completed no frame yields nothing


def test_demultiplex_a_header_split_across_reads():
    stream = frame(b"one\n") + frame(b"two\n", 2)
    reads = [stream[:3], stream[3:8], stream[8:14], stream[14:]]  # both headers cut in two
    assert list(de.demultiplex(reads)) == [b"one\n", b"two\n"]


def test_demultiplex_keeps_only_the_unfinished_frame():
    big = frame(b"z" * 100000)  # bigger than a block
    reads = [big[:10], big[10:50000], big[50000:], frame(b"end\n")[:3]]
    assert list(de.demultiplex(reads)) == [b"z" * 100000]  # an incomplete last frame is dropped


@pytest.mark.parametrize("seed", range(10))
def test_split_streams_keeps_stdout_and_stderr_apart_in_order(seed):
    rng = random.Random(seed)
    parts = [(rng.choice([1, 2]), b"%d:%s;" % (i, b"q" * rng.randrange(0, 90000 if i == 7 else 50)))
             for i in range(60)]
    stream = b"".join(frame(payload, kind) for kind, payload in parts)
    out = de.split_streams(cuts(stream, rng, rng.choice([1, 5, 300])))
    assert out[1] == b"".join(p for k, p in parts if k == 1)
    assert out[2] == b"".join(p for k, p in parts if k == 2)
    assert out[0] == b""


# ---------------------------------------------------------------- host URLs and error lines

@pytest.mark.parametrize("url, address", [
    ("unix:///var/run/docker.sock", ("unix", "/var/run/docker.sock")),
    ("unix:///run/user/1000/docker.sock", ("unix", "/run/user/1000/docker.sock")),
    ("tcp://10.0.0.5:2375", ("tcp", "10.0.0.5", 2375)),
    ("tcp://docker.internal", ("tcp", "docker.internal", 2375)),
    ("http://127.0.0.1:2376/", ("tcp", "127.0.0.1", 2376)),
    ("tcp://[::1]:2375", ("tcp", "::1", 2375)),
])
def test_parse_base_url(url, address):
    assert de.parse_base_url(url) == address


@pytest.mark.parametrize("url", ["ssh://qt@host", "https://host:2376", "npipe:////./pipe/docker_engine",
                                 "unix://relative.sock", "/var/run/docker.sock", "tcp://", "tcp://h:notaport",
                                 "tcp://h:2375/path", "", None])
def test_any_other_url_is_one_clear_line(url):
    with pytest.raises(de.DockerError) as err:
        de.Engine(url)
    assert err.value.kind == "url" and "\n" not in str(err.value)
    assert "unix:///path/to/docker.sock or tcp://host:port" in str(err.value)


@pytest.mark.parametrize("exc, kind, words", [
    (PermissionError(13, "Permission denied"), "permission", "permission denied on /s/docker.sock"),
    (FileNotFoundError(2, "No such file"), "absent", "/s/docker.sock does not exist (is the Docker engine running?)"),
    (ConnectionRefusedError(111, "Connection refused"), "refused", "connection refused by /s/docker.sock"),
    (socket.timeout("timed out"), "timeout", "no answer from /s/docker.sock within 4 s"),
    (ConnectionResetError(104, "Connection reset by peer"), "other", "/s/docker.sock: Connection reset by peer"),
])
def test_connection_errors_map_to_one_line_and_a_kind(exc, kind, words):
    err = de.Engine("unix:///s/docker.sock", timeout=4)._connect_error(exc)
    assert isinstance(err, de.DockerError) and err.kind == kind and str(err).startswith(words)


def test_http_errors_carry_the_daemon_s_message():
    err = de.api_error(404, "Not Found", '{"message": "No such container: gone"}')
    assert isinstance(err, de.NotFound) and err.status == 404 and err.kind == "api"
    assert str(err) == "Docker API answered HTTP 404: No such container: gone"
    err = de.api_error(500, "Internal Server Error", "<html>\nboom\n</html>")
    assert not isinstance(err, de.NotFound) and str(err) == "Docker API answered HTTP 500: <html> boom </html>"
    assert str(de.api_error(409, "Conflict", "")) == "Docker API answered HTTP 409: Conflict"


def test_engine_from_env_follows_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.1.2.3:2375")
    assert de.engine_from_env(3).address == ("tcp", "10.1.2.3", 2375)
    monkeypatch.delenv("DOCKER_HOST")
    assert de.engine_from_env().base_url == de.DEFAULT_HOST


# ---------------------------------------------------------------- a stand-in daemon on a unix socket

LOG_FRAMES = [frame(b"2026-11-28T03:04:%02dZ line %d\n" % (i % 60, i), 1 + i % 2) for i in range(5000)]


class FakeDaemon:
    """Answers the few endpoints the client calls, like dockerd 20.10 does (chunked logs, a hijacked exec
    stream that ends with the connection). ``requests`` records (method, path, query, body)."""

    def __init__(self, path):
        self.path, self.requests, self.exec_sleep = str(path), [], 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _dummy = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            reader = conn.makefile("rb")
            method, target, _version = reader.readline().decode().split(" ")
            headers = {}
            for line in iter(reader.readline, b"\r\n"):
                name, _dummy, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", 0))) if "content-length" in headers else b""
            url = urlsplit(target)
            self.requests.append((method, url.path, {k: v[0] for k, v in parse_qs(url.query).items()},
                                  json.loads(body) if body else None))
            try:
                self.route(conn, method, url.path)
            except OSError:  # the client went away (a followed log closed, a timeout)
                pass

    @staticmethod
    def send_json(conn, status, doc):
        data = json.dumps(doc).encode()
        conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % (status, len(data)) + data)

    @staticmethod
    def send_chunked(conn, pieces):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")

    def route(self, conn, method, path):
        v = "/v%s" % de.API_VERSION
        if path == "/version":
            self.send_json(conn, 200, {"Version": "28.2.2", "ApiVersion": "1.51"})
        elif path == v + "/containers/plain/json":
            self.send_json(conn, 200, {"Id": "plain-id", "State": {"Status": "running"}, "Config": {"Tty": False}})
        elif path.startswith(v + "/containers/") and path.endswith("/json"):
            self.send_json(conn, 404, {"message": "No such container: %s" % path.split("/")[3]})
        elif path == v + "/containers/plain-id/logs":  # frames cut across chunks at odd places
            self.send_chunked(conn, cuts(b"".join(LOG_FRAMES), random.Random(1), 700))
        elif path == v + "/containers/tty-id/logs":
            self.send_chunked(conn, [b"raw tty output\r\n", b"line two\r\n"])
        elif path == v + "/containers/plain/exec" and method == "POST":
            self.send_json(conn, 201, {"Id": "exec-1"})
        elif path == v + "/exec/exec-1/start":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
            conn.sendall(frame(b"to stdout\n") + frame(b"to stderr\n", 2)[:5])
            time.sleep(self.exec_sleep or 0.05)
            conn.sendall(frame(b"to stderr\n", 2)[5:] + frame(b"more\n"))
        elif path == v + "/exec/exec-1/json":
            self.send_json(conn, 200, {"Running": False, "ExitCode": 3})
        else:
            self.send_json(conn, 500, {"message": "unexpected %s %s" % (method, path)})

    def close(self):
        self.sock.close()


@pytest.fixture
def daemon(tmp_path):
    fake = FakeDaemon(tmp_path / "docker.sock")
    yield fake
    fake.close()


def engine_for(daemon, timeout=5):
    return de.Engine("unix://" + daemon.path, timeout=timeout)


def test_version_and_inspect(daemon):
    engine = engine_for(daemon)
    assert engine.version()["ApiVersion"] == "1.51"
    assert engine.inspect("plain")["Id"] == "plain-id"
    with pytest.raises(de.NotFound) as err:
        engine.inspect("gone")
    assert str(err.value) == "Docker API answered HTTP 404: No such container: gone"
    assert [r[1] for r in daemon.requests] == ["/version", "/v1.41/containers/plain/json",
                                               "/v1.41/containers/gone/json"]


def test_logs_are_demultiplexed_from_chunks_in_large_blocks(daemon):
    blocks = list(engine_for(daemon).logs("plain-id", since=1796315892.25, tail=-1))
    assert b"".join(blocks) == b"".join(f[8:] for f in LOG_FRAMES)
    assert len(blocks) <= len(b"".join(LOG_FRAMES)) // de.BLOCK + 1  # not one per frame or chunk
    method, path, query, _body = daemon.requests[-1]
    assert query == {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": "0", "tail": "all",
                     "since": "1796315892.250000000"}


def test_a_tty_log_is_read_as_it_comes(daemon):
    out = b"".join(engine_for(daemon).logs("tty-id", tail=5, timestamps=False, tty=True, since=1700000000))
    assert out == b"raw tty output\r\nline two\r\n"
    assert daemon.requests[-1][2] == {"stdout": "1", "stderr": "1", "timestamps": "0", "follow": "0", "tail": "5",
                                      "since": "1700000000"}


def test_followed_logs_yield_what_has_arrived(daemon):
    stream = engine_for(daemon).logs("plain-id", follow=True, block=4096)
    first = next(stream)
    assert 0 < len(first) <= 4096 and b"".join(f[8:] for f in LOG_FRAMES).startswith(first)
    stream.close()
    assert daemon.requests[-1][2]["follow"] == "1"


def test_exec_returns_exit_code_stdout_and_stderr(daemon):
    assert engine_for(daemon).exec("plain", ["sh", "-c", "x"]) == (3, b"to stdout\nmore\n", b"to stderr\n")
    create, start, state = daemon.requests
    assert create[:2] == ("POST", "/v1.41/containers/plain/exec")
    assert create[3] == {"AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": False,
                         "Cmd": ["sh", "-c", "x"]}
    assert start[1:] == ("/v1.41/exec/exec-1/start", {}, {"Detach": False, "Tty": False})
    assert state[:2] == ("GET", "/v1.41/exec/exec-1/json")


def test_exec_is_bounded_by_its_timeout(daemon):
    daemon.exec_sleep = 3
    started = time.monotonic()
    with pytest.raises(de.DockerError) as err:
        engine_for(daemon).exec("plain", ["sleep", "3"], timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert err.value.kind == "timeout" and str(err.value) == "sleep did not finish within 0.5 s"


def test_an_http_error_is_a_docker_error(daemon):
    with pytest.raises(de.DockerError) as err:
        list(engine_for(daemon).logs("other-id"))
    assert err.value.status == 500 and "unexpected GET /v1.41/containers/other-id/logs" in str(err.value)


def test_a_missing_socket_and_a_silent_one(tmp_path):
    with pytest.raises(de.DockerError) as err:
        de.Engine("unix://%s/none.sock" % tmp_path).version()
    assert err.value.kind == "absent" and "is the Docker engine running?" in str(err.value)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)  # accepts (the kernel does), never answers
    try:
        started = time.monotonic()
        with pytest.raises(de.DockerError) as err:
            de.Engine("unix://%s/silent.sock" % tmp_path, timeout=0.3).inspect("x")
        assert err.value.kind == "timeout" and time.monotonic() - started < 1.5
    finally:
        silent.close()


def test_tcp_refused_is_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(de.DockerError) as err:
        de.Engine("tcp://127.0.0.1:%d" % port, timeout=2).version()
    assert err.value.kind == "refused" and str(err.value) == (
        "connection refused by 127.0.0.1:%d (is the Docker engine running?)" % port)
