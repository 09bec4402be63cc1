"""Reading a container's log to its end (module_utils/log_follow.log_blocks, through docker_engine.Engine.logs:
tests/unit/test_docker_engine.py) and splitting it into lines (log_events.iter_lines): the same lines whatever the
block boundaries."""
import random

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import log_follow
from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import iter_lines, parse_docker_ts


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


class FakeEngine:
    """Records what log_blocks asks docker_engine.Engine.logs for."""

    def __init__(self, blocks):
        self.blocks, self.calls = blocks, []

    def logs(self, container_id, **kwargs):
        self.calls.append((container_id, kwargs))
        return iter(self.blocks)


def test_log_blocks_asks_for_the_container_s_log_with_its_tty_flag():
    engine = FakeEngine([b"a\nb", b"\n"])
    attrs = {"Id": "abc123", "Config": {"Tty": True}}
    assert list(iter_lines(log_follow.log_blocks(engine, attrs, tail=5, since=1796315892))) == ["a", "b"]
    assert engine.calls == [("abc123", {"timestamps": True, "tail": 5, "since": 1796315892, "tty": True})]
    log_follow.log_blocks(engine, {"Id": "x", "Config": {}}, timestamps=False)
    assert engine.calls[-1] == ("x", {"timestamps": False, "tail": "all", "since": None, "tty": False})


def test_docker_timestamps_same_with_the_per_second_cache():
    stamps = ["2026-11-28T03:04:05.%09dZ" % n for n in (0, 1, 500000000, 999999999)] + \
             ["2026-11-28T03:04:05Z", "2026-11-28T03:04:05.Z", "2026-11-28T03:04:05.12abZ", "2026-02-30T00:00:00Z",
              "not-a-time", "", "2026-11-28T03:04:05.5"]
    expected = [1795835045.0, 1795835045.0, 1795835045.5, 1795835045.999999, 1795835045.0, 1795835045.0,
                1795835045.0, None, None, None, None]
    for _dummy in range(2):  # the second pass comes from the cache
        assert [parse_docker_ts(s) for s in stamps] == expected
