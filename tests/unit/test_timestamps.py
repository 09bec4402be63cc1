"""module_utils/timestamps.py: ISO 8601 (Z, an offset, naive UTC, nanoseconds) and epoch seconds or
milliseconds read as epoch seconds; anything else refused."""
import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import timestamps

T0 = timestamps.parse_time("2026-11-28T12:00:00Z")


@pytest.mark.parametrize("text, expected", [
    ("2026-11-28T12:00:00Z", T0), ("2026-11-28T12:00:00.5Z", T0 + 0.5), ("2026-11-28T13:00:00+01:00", T0),
    ("2026-11-28 12:00:00", T0), ("2026-11-28T12:00:00.123456789Z", T0 + 0.123456), (T0, T0),
    (str(int(T0 * 1000)), T0), (int(T0 * 1000), T0)])
def test_parse_time(text, expected):
    assert timestamps.parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["yesterday", "", None, "2026-13-01T00:00:00Z", float("nan"), True])
def test_parse_time_refuses(bad):
    with pytest.raises(ValueError):
        timestamps.parse_time(bad)
