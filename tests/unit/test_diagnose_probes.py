"""module_utils/diagnose_probes: the four reads side by side, each bounded, each failure its slice's data."""
import threading
import time

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import diagnose_probes as dp


def test_the_given_id_is_traced_as_asked():
    assert dp.pick_order("c-1", [{"correlation_id": "c-2", "age_s": 40}], 3600) == ("c-1", False, 3600)


def test_without_an_id_the_oldest_unanswered_order_is_traced_just_past_its_age():
    unanswered = [{"correlation_id": "young", "age_s": 12.2}, {"correlation_id": "old", "age_s": 90.4},
                  {"correlation_id": None, "age_s": 500}]
    assert dp.pick_order("", unanswered, 3600) == ("old", True, 151)


def test_nothing_to_trace_without_an_id_or_an_unanswered_order():
    assert dp.pick_order("", [], 3600) == (None, False, 3600)


def test_a_slice_with_a_missing_required_option_fails_alone_in_one_line():
    results = dp.run_probes({"executor": {}, "binance": None}, set())
    assert results["executor"]["failed"] is True
    assert "executor" in results["executor"]["msg"] and "container" in results["executor"]["msg"]
    assert "binance" not in results  # not asked


def test_an_unreachable_docker_is_the_slice_s_one_line_not_a_crash():
    pytest.importorskip("redis")  # ansible-test units runs without redis (the kill switch read of the slice)
    results = dp.run_probes({"executor": {"container": "x", "docker_host": "unix:///nonexistent.sock",
                                          "timeout": 1}}, set())
    assert results["executor"]["failed"] is True
    assert results["executor"]["msg"].startswith("cannot reach Docker at unix:///nonexistent.sock")


def test_probes_run_side_by_side_and_a_hung_one_is_cut_at_its_own_bound(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(dp, "stream_info", lambda p: release.wait(30) or {"reachable": True})
    monkeypatch.setattr(dp, "read_trace", lambda p, cid, auto, since: (time.sleep(0.5), {"correlation_id": cid})[1])
    monkeypatch.setattr(dp, "JOIN_SLACK_S", 0)
    started = time.monotonic()
    results = dp.run_probes({"event_bus": {"container": "quantum_redis", "timeout": 0.5},
                             "trace": {"containers": ["a"], "correlation_id": "c-9", "timeout": 1}}, set())
    took = time.monotonic() - started
    release.set()
    assert results["trace"] == {"correlation_id": "c-9"}
    assert results["event_bus"] == {"failed": True, "msg": "the event_bus probe did not finish within 1 s"}
    assert took < 1.9  # the trace's 0.5 s and the event bus's 1 s bound overlap, they do not add up


def test_the_trace_takes_the_order_from_the_executor_read_in_the_same_run(monkeypatch):
    logs = {"unanswered": [{"correlation_id": "c-old", "age_s": 30}]}
    monkeypatch.setattr(dp, "read_executor", lambda p: {"exists": True, "logs": logs})
    monkeypatch.setattr(dp, "read_switch", lambda p: {"engaged": False})
    seen = {}
    monkeypatch.setattr(dp, "read_trace", lambda p, cid, auto, since: seen.update(cid=cid, auto=auto, since=since))
    dp.run_probes({"executor": {"container": "e"}, "trace": {"containers": ["e"]}}, set())
    assert seen == {"cid": "c-old", "auto": True, "since": 90}


def test_a_redis_url_password_joins_the_no_log_values(monkeypatch):
    monkeypatch.setattr(dp, "stream_info", lambda p: {"reachable": False})
    hidden = set()
    results = dp.run_probes({"event_bus": {"url": "redis://u:s3cret-pw@127.0.0.1:1/0"}}, hidden)
    assert "s3cret-pw" in hidden and results["event_bus"] == {"reachable": False}  # with a url no library is needed


def test_a_tls_url_fails_its_slice_in_one_line():
    results = dp.run_probes({"event_bus": {"url": "rediss://u:s3cret-pw@10.0.0.1:6379/0"}}, set())
    assert results["event_bus"]["failed"] is True
    assert results["event_bus"]["msg"] == ("invalid url rediss://u:********@10.0.0.1:6379/0: rediss:// (TLS) is not "
                                           "supported by the collection's Redis client: use redis:// or unix://")


@pytest.mark.parametrize("name", sorted(dp.SPECS))
def test_every_slice_documents_its_options(name):
    """The module's DOCUMENTATION lists each slice's options (ansible-doc is the manual)."""
    import yaml

    from ansible_collections.quantum.runbooks.plugins.modules import diagnose_probes as mod
    doc = yaml.safe_load(mod.DOCUMENTATION)["options"][name]["suboptions"]
    assert set(doc) == set(dp.SPECS[name])


def test_check_1_reads_an_operator_stop_from_either_place_and_a_failed_slice_as_not_run():
    from ansible_collections.quantum.runbooks.plugins.module_utils.check_results import executor_result

    read = {"exists": True, "restart_count": 2, "state": {"status": "exited", "running": False, "exit_code": 0},
            "logs": {"last_log_age_s": 40.0, "unanswered": [{"correlation_id": "c"}]},
            "kill_switch": {"engaged": True, "since": "2026-12-03T03:00:00Z",
                            "redis": {"set": True, "value": {"by": "alice"}}, "policy": {"set": True}}}
    out = executor_result(read, 5.0)
    assert (out["status"], out["running"], out["restart_count"], out["unanswered"]) == (
        "exited", False, 2, [{"correlation_id": "c"}])
    assert out["operator_stop"] == {"engaged": True, "since": "2026-12-03T03:00:00Z",
                                    "where": ["redis", "policy file"], "detail": {"by": "alice"}}
    assert executor_result({"exists": False}, 1.0)["status"] == "missing"
    assert executor_result({"failed": True, "msg": "cannot reach Docker"}, 1.0) == {
        "check_error": "cannot reach Docker", "finished_at": 1.0}


def test_the_event_bus_slice_is_refused_as_redis_stream_info_refuses_it(monkeypatch):
    monkeypatch.setattr(dp, "stream_info", lambda p: pytest.fail("a refused slice must not be read"))
    results = dp.run_probes({"event_bus": {"container": "quantum_redis", "timeout": 0}}, set())
    assert results["event_bus"] == {"failed": True, "msg": "timeout must be > 0, got 0.0"}
