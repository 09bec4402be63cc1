"""module_utils/redis_resp: the stdlib Redis client's RESP2 parser, its XINFO/INFO conversions and its URLs.

Pure: the replies are bytes a real Redis sent (tests/unit/fixtures/redis_replies.json, qt-lab-redis:1), fed
to the parser whole, byte by byte and split at every offset; the conversions are compared with what
redis-py 5.3.1 made of the same replies (captured beside them). The errors and the connection's messages
run against a scripted server on loopback. No Redis, no redis-py, no Docker
(tests/modules/test_redis_resp_live.py compares with redis-py on a real Redis).
"""
import json
import socket
import threading
from pathlib import Path

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import redis_resp as rr

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "redis_replies.json").read_text())["replies"]


def raw(name):
    return FIXTURES[name]["raw"].encode("latin-1")


def parse(data, pieces=None):
    """Feed ``data`` in ``pieces`` (sizes; default whole) and return every reply."""
    reader, out, pos = rr.Reader(), [], 0
    for size in pieces or [len(data)]:
        reader.feed(data[pos:pos + size])
        pos += size
        while True:
            reply = reader.gets()
            if reply is rr.NOT_READY:
                break
            out.append(reply)
    assert pos == len(data)
    return out


def jsonish(value):
    """Tuples as lists, as the fixture (JSON) holds them."""
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------- the parser

def test_each_type():
    data = b"+OK\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n:1\r\n$-1\r\n"
    assert parse(data) == [b"OK", 42, -7, b"hello", b"", None, None, [], [[1], None]]


def test_bulk_strings_are_binary_safe():
    value = b"a\r\nb\x00\xff" + b"\r\n" * 3
    assert parse(b"$%d\r\n%s\r\n" % (len(value), value)) == [value]


def _safe(data, pieces=None):
    try:
        return parse(data, pieces)
    except rr.RedisError as err:
        return [repr(err)]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_a_reply_split_anywhere_parses_the_same(name):
    data = raw(name)
    whole = _safe(data)
    assert whole and _safe(data, [1] * len(data)) == whole
    for cut in range(1, len(data)):
        assert _safe(data, [cut, len(data) - cut]) == whole


def test_several_replies_in_one_read_and_a_partial_one_kept():
    reader = rr.Reader()
    reader.feed(b"+PONG\r\n:1\r\n$10\r\n01234")
    assert reader.gets() == b"PONG" and reader.gets() == 1 and reader.gets() is rr.NOT_READY
    reader.feed(b"56789\r")
    assert reader.gets() is rr.NOT_READY
    reader.feed(b"\n*1\r\n")
    assert reader.gets() == b"0123456789" and reader.gets() is rr.NOT_READY


def test_a_big_bulk_string_in_small_reads():
    value = bytes(range(256)) * 4096  # 1 MiB, CR LF inside
    data = b"$%d\r\n%s\r\n+after\r\n" % (len(value), value)
    assert parse(data, [1000] * (len(data) // 1000) + [len(data) % 1000]) == [value, b"after"]


def test_deeply_nested_arrays():
    want = 5
    for _dummy in range(50):
        want = [want]
    assert parse(b"*1\r\n" * 50 + b":5\r\n") == [want]


def test_error_replies_raise_redis_py_classes_and_messages():
    cases = {
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n":
            (rr.ResponseError, "WRONGTYPE Operation against a key holding the wrong kind of value"),
        b"-ERR no such key\r\n": (rr.ResponseError, "no such key"),
        b"-NOAUTH Authentication required.\r\n": (rr.AuthenticationError, "Authentication required."),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n":
            (rr.AuthenticationError, "invalid username-password pair or user is disabled."),
        b"-LOADING Redis is loading the dataset in memory\r\n":
            (rr.BusyLoadingError, "Redis is loading the dataset in memory"),
        b"-NOPERM this user has no permissions to run the 'xinfo' command\r\n":
            (rr.NoPermissionError, "this user has no permissions to run the 'xinfo' command"),
        b"-ERR max number of clients reached\r\n": (rr.ConnectionError, "max number of clients reached"),
        b"-ERR wrong number of arguments for 'auth' command\r\n":
            (rr.AuthenticationWrongNumberOfArgsError, "wrong number of arguments for 'auth' command"),
    }
    for data, (cls, message) in cases.items():
        with pytest.raises(cls) as err:
            parse(data)
        assert type(err.value).__name__ == cls.__name__ and str(err.value) == message  # what the modules show
    assert rr.TimeoutError.__name__ == "TimeoutError" and issubclass(rr.AuthenticationError, rr.ConnectionError)


def test_an_error_inside_an_array_is_returned_and_the_reader_goes_on():
    reader = rr.Reader()
    reader.feed(b"*2\r\n-ERR inner\r\n:1\r\n-ERR outer\r\n+OK\r\n")
    first = reader.gets()
    assert isinstance(first[0], rr.ResponseError) and first[1] == 1
    with pytest.raises(rr.ResponseError, match="outer"):
        reader.gets()
    assert reader.gets() == b"OK"


@pytest.mark.parametrize("data", [b"HTTP/1.1 400 Bad Request\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b":x\r\n", b"$ab\r\n"])
def test_not_redis_is_an_invalid_response_quoting_the_line(data):
    with pytest.raises(rr.InvalidResponse) as err:
        parse(data)
    assert str(err.value) == f"Protocol Error: {data[:-2]!r}"


def test_pack_and_decode():
    assert rr.pack("SET", "k", "é", 3, 1.5, b"\x00") == (b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$1\r\n3\r\n"
                                                         b"$3\r\n1.5\r\n$1\r\n\x00\r\n")
    with pytest.raises(TypeError):
        rr.pack("SET", "k", None)
    assert rr.decode([b"a", [b"\xc3\xa9", 1, None], b"\xff"]) == ["a", ["é", 1, None], "\ufffd"]


# ---------------------------------------------------------------- replies in redis-py's shapes

def decoded(name):
    return rr.decode(parse(raw(name))[0])


@pytest.mark.parametrize("name", ["xinfo_stream", "xinfo_stream_empty"])
def test_xinfo_stream_as_redis_py(name):
    info = rr.xinfo_stream_reply(decoded(name))
    assert jsonish(info) == FIXTURES[name]["redis_py"]
    for key in ("first-entry", "last-entry"):  # redis-py: a tuple (id, {field: value}), or None
        assert info[key] is None or (isinstance(info[key], tuple) and isinstance(info[key][1], dict))


@pytest.mark.parametrize("name", ["xinfo_groups", "xinfo_groups_empty", "xinfo_consumers", "xinfo_consumers_idle"])
def test_xinfo_groups_and_consumers_as_redis_py(name):
    assert [rr.pairs(item) for item in decoded(name)] == FIXTURES[name]["redis_py"]


def test_xrange_time_type_ping_get_as_redis_py():
    assert jsonish([rr.entry(e) for e in decoded("xrange")]) == FIXTURES["xrange"]["redis_py"]
    sec, usec = decoded("time")
    assert [int(sec), int(usec)] == FIXTURES["time"]["redis_py"]
    assert decoded("type") == FIXTURES["type"]["redis_py"] == "stream"
    assert (decoded("ping") == "PONG") is FIXTURES["ping"]["redis_py"] is True
    assert decoded("get_missing") is FIXTURES["get_missing"]["redis_py"] is None


def test_info_keeps_redis_py_keys_and_the_version_the_callers_read():
    ours, theirs = rr.info_reply(decoded("info_server")), FIXTURES["info_server"]["redis_py"]
    assert set(ours) == set(theirs) and ours["redis_version"] == theirs["redis_version"] == "7.0.15"
    # redis-py turns numbers into int/float; here every value stays the text Redis sent.
    assert all(str(theirs[k]) == ours[k] or isinstance(theirs[k], (int, float)) for k in ours)


def test_the_stream_report_from_the_captured_replies():
    """redis_streams reads the converted replies as it read redis-py's."""
    from ansible_collections.quantum.runbooks.plugins.module_utils import redis_streams as rs

    class Replay:
        def type(self, key):
            return "stream"

        def xinfo_stream(self, key):
            return rr.xinfo_stream_reply(decoded("xinfo_stream"))

        def xinfo_groups(self, key):
            return [rr.pairs(g) for g in decoded("xinfo_groups")]

        def xinfo_consumers(self, key, group):
            return [rr.pairs(c) for c in decoded("xinfo_consumers" if group == "executor" else "xinfo_consumers_idle")]

    info = FIXTURES["xinfo_stream"]["redis_py"]
    now = int(info["last-entry"][0].split("-")[0]) + 10000
    report = rs.stream_report(Replay(), ["s"], now_ms=now, idle_after_ms=500)["s"]
    assert (report["length"], report["first_age_s"], report["last_age_s"]) == (5, 120.0, 10.0)
    executor, idle = report["groups"]
    assert (executor["pending"], executor["lag"], executor["lag_source"]) == (3, 2, "xinfo")
    assert executor["entries_read"] == 3
    assert executor["consumer_details"] == [{"name": "auto-executor-test", "pending": 3, "idle_ms": 419,
                                             "inactive_ms": None, "idle": False}]
    assert (idle["entries_read"], idle["idle_consumers"], idle["consumer_details"][0]["idle"]) == (None, 1, True)


# ---------------------------------------------------------------- URLs

@pytest.mark.parametrize("url, want", [
    ("redis://h:6380/2", {"host": "h", "port": 6380, "db": 2, "username": None, "password": None}),
    ("redis://u:p%40ss@h/0", {"host": "h", "port": 6379, "db": 0, "username": "u", "password": "p@ss"}),
    ("redis://:pw@h", {"host": "h", "db": 0, "username": None, "password": "pw"}),
    ("redis://h/0?password=q%2Fr&db=4", {"host": "h", "db": 4, "password": "q/r"}),
    ("redis://[::1]:7000/1", {"host": "::1", "port": 7000, "db": 1}),
    ("redis://h/x", {"db": 0}),  # redis-py ignores a path that is not a number
    ("redis:///0", {"host": "localhost", "port": 6379}),
    ("unix:///run/redis.sock?db=3", {"path": "/run/redis.sock", "db": 3}),
    ("redis://h/0?socket_timeout=0.5&health_check_interval=0", {"socket_timeout": 0.5}),
])
def test_parse_url_reads_as_redis_py(url, want):
    got = rr.parse_url(url)
    assert {k: got.get(k) for k in want} == want


@pytest.mark.parametrize("url, message", [
    ("http://h/0", "Redis URL must specify one of the following schemes (redis://, rediss://, unix://)"),
    ("redis://h/0?db=x", "Invalid value for 'db' in connection URL."),
    ("redis://h:99999/0", "Port out of range 0-65535"),
    ("rediss://h/0", rr.TLS_UNSUPPORTED),
    ("redis://h/0?ssl_cert_reqs=none", "the option 'ssl_cert_reqs' is not supported by the collection's Redis client"),
])
def test_parse_url_refuses_in_one_line(url, message):
    with pytest.raises(ValueError) as err:
        rr.parse_url(url)
    assert str(err.value) == message


# ---------------------------------------------------------------- the connection, on a scripted server

class Scripted:
    """Loopback server: each connection gets ``script(conn, request_bytes)`` for every read it makes."""

    def __init__(self, answer):
        self.answer, self.seen = answer, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _dummy = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.seen.append(data)
                if self.answer(conn, data) is False:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def server(request):
    srv = Scripted(request.param)
    yield srv
    srv.close()


def _silent(conn, data):
    return None


def _close(conn, data):
    return False


def _auth_then_pong(conn, data):
    conn.sendall(b"+OK\r\n" if data.startswith(b"*3\r\n$4\r\nAUTH") or b"SELECT" in data else b"+PONG\r\n")


def _split(conn, data):
    for piece in (b"*2\r\n$3\r\nab", b"c\r\n", b":", b"7\r\n"):
        conn.sendall(piece)


@pytest.mark.parametrize("server", [_silent], indirect=True)
def test_a_silent_server_times_out_like_redis_py(server):
    client = rr.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", timeout=0.3)
    with pytest.raises(rr.TimeoutError, match="^Timeout reading from socket$"):
        client.ping()
    assert client._sock is None  # closed; the next command connects again


@pytest.mark.parametrize("server", [_close], indirect=True)
def test_a_server_that_hangs_up(server):
    with pytest.raises(rr.ConnectionError, match=r"^Connection closed by server\.$"):
        rr.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", timeout=1).ping()


@pytest.mark.parametrize("server", [_auth_then_pong], indirect=True)
def test_auth_and_select_are_sent_first(server):
    client = rr.Redis.from_url(f"redis://qt:s%3Acret@127.0.0.1:{server.port}/5", timeout=1)
    assert client.ping() is True
    sent = b"".join(server.seen)
    assert sent == rr.pack("AUTH", "qt", "s:cret") + rr.pack("SELECT", 5) + rr.pack("PING")


@pytest.mark.parametrize("server", [_split], indirect=True)
def test_a_reply_in_pieces_over_the_socket(server):
    assert rr.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", timeout=1).execute_command("X") == ["abc", 7]


def test_refused_has_redis_py_message():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(rr.ConnectionError) as err:
            rr.Redis.from_url(f"redis://127.0.0.1:{port}/0", timeout=1).ping()
    assert str(err.value) == f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."


def test_a_missing_unix_socket(tmp_path):
    path = tmp_path / "none.sock"
    with pytest.raises(rr.ConnectionError) as err:
        rr.Redis.from_url(f"unix://{path}", timeout=1).ping()
    assert str(err.value) == f"Error 2 connecting to {path}. No such file or directory."
