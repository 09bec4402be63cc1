"""Reading a container's log to its end in large blocks (module_utils/log_follow.log_blocks) and splitting it
into lines (log_events.iter_lines): the same lines whatever the block and frame boundaries, bounded memory."""
import random
import struct

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import log_follow
from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import iter_lines, parse_docker_ts


def frame(payload, stream=1):
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def cuts(blob, rng, n):
    points = sorted(rng.sample(range(1, len(blob)), min(n, len(blob) - 1)))
    return [blob[a:b] for a, b in zip([0] + points, points + [len(blob)], strict=True)]


def old_iter_lines(chunks):
    """The line splitter before blocks (one line split off at a time): the reference for the same lines."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode("utf-8", "replace")
    if buf:
        yield buf.decode("utf-8", "replace")


LOG = (b'2026-11-28T03:04:05.000000001Z {"event": "A"}\n' + b"\n" + b"\xff\xfe not utf-8 \xc3\n"
       + b"2026-11-28T03:04:06Z " + b"x" * 70000 + b"\n" + b"\r\n" + b"last line without newline")


@pytest.mark.parametrize("seed", range(20))
def test_iter_lines_gives_the_same_lines_for_any_chunking(seed):
    rng = random.Random(seed)
    chunks = cuts(LOG, rng, rng.choice([1, 3, 50, 400]))
    assert list(iter_lines(chunks)) == list(old_iter_lines(chunks)) == list(old_iter_lines([LOG]))


def test_iter_lines_splits_a_block_of_many_lines():
    block = b"".join(b"line %d\n" % i for i in range(5000))
    assert list(iter_lines([block])) == ["line %d" % i for i in range(5000)]
    assert list(iter_lines([b"a\nb", b"", b"c\n", b"\n"])) == ["a", "bc", ""]


@pytest.mark.parametrize("seed", range(20))
def test_demultiplex_any_read_boundaries(seed):
    rng = random.Random(seed)
    payloads = [b"%d %s\n" % (i, b"y" * rng.randrange(0, 300)) for i in range(300)]
    stream = b"".join(frame(p, stream=rng.choice([1, 2])) for p in payloads)  # stdout and stderr alike
    out = list(log_follow.demultiplex(cuts(stream, rng, rng.choice([1, 7, 100, 2000]))))
    assert b"".join(out) == b"".join(payloads)
    assert all(out)  # a read that completed no frame yields nothing


def test_demultiplex_keeps_only_the_unfinished_frame():
    big = frame(b"z" * 100000)
    reads = [big[:10], big[10:50000], big[50000:], frame(b"end\n")[:3]]
    assert list(log_follow.demultiplex(reads)) == [b"z" * 100000]  # an incomplete last frame is dropped


class FakeRaw:
    def __init__(self, data):
        self.data, self.sizes = data, []

    def read(self, size):
        self.sizes.append(size)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


class FakeResponse:
    def __init__(self, data, status=200):
        self.raw, self.status_code, self.closed = FakeRaw(data), status, False

    def close(self):
        self.closed = True


class FakeApi:
    base_url, api_version, timeout = "http+docker://localhost", "1.41", 30

    def __init__(self, response):
        self.response, self.calls = response, []

    def get(self, url, **kwargs):
        self.calls.append((url, kwargs))
        return self.response


class FakeContainer:
    id = "abc123"

    def __init__(self, response, tty=False):
        self.client = type("Client", (), {})()
        self.client.api = FakeApi(response)
        self.attrs = {"Config": {"Tty": tty}}


def test_log_blocks_asks_like_container_logs_and_reads_large_blocks():
    lines = [b"2026-11-28T03:04:%02dZ {\"event\": \"E%d\"}\n" % (i % 60, i) for i in range(20000)]
    response = FakeResponse(b"".join(frame(line) for line in lines))
    container = FakeContainer(response)
    got = list(iter_lines(log_follow.log_blocks(container, tail=-1, since=1796315892)))
    assert got == [line[:-1].decode() for line in lines]
    url, kwargs = container.client.api.calls[0]
    assert url == "http+docker://localhost/v1.41/containers/abc123/logs"
    assert kwargs == {"params": {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0, "tail": "all",
                                 "since": 1796315892}, "stream": True, "timeout": 30}
    assert set(response.raw.sizes) == {log_follow.BLOCK} and len(response.raw.sizes) < 20
    assert response.closed


def test_log_blocks_tail_and_tty():
    response = FakeResponse(b"raw tty output\nline two\n")
    container = FakeContainer(response, tty=True)  # a TTY's log is not multiplexed
    lines = list(iter_lines(log_follow.log_blocks(container, tail=5, timestamps=False)))
    assert lines == ["raw tty output", "line two"]
    params = container.client.api.calls[0][1]["params"]
    assert params["tail"] == 5 and params["timestamps"] == 0 and "since" not in params


def test_log_blocks_closes_the_response_when_the_reader_stops_early():
    response = FakeResponse(b"".join(frame(b"%d\n" % i) for i in range(100000)))
    stream = log_follow.log_blocks(FakeContainer(response))
    next(stream)
    stream.close()
    assert response.closed


def test_log_blocks_error_is_a_docker_exception():
    docker_errors = pytest.importorskip("docker.errors")
    requests = pytest.importorskip("requests")
    response = requests.Response()
    response.status_code, response._content = 404, b'{"message": "No such container: abc123"}'
    response.raw = FakeRaw(b"")
    with pytest.raises(docker_errors.NotFound):
        list(log_follow.log_blocks(FakeContainer(response)))


def test_docker_timestamps_same_with_the_per_second_cache():
    stamps = ["2026-11-28T03:04:05.%09dZ" % n for n in (0, 1, 500000000, 999999999)] + \
             ["2026-11-28T03:04:05Z", "2026-11-28T03:04:05.Z", "2026-11-28T03:04:05.12abZ", "2026-02-30T00:00:00Z",
              "not-a-time", "", "2026-11-28T03:04:05.5"]
    expected = [1795835045.0, 1795835045.0, 1795835045.5, 1795835045.999999, 1795835045.0, 1795835045.0,
                1795835045.0, None, None, None, None]
    for _dummy in range(2):  # the second pass comes from the cache
        assert [parse_docker_ts(s) for s in stamps] == expected
