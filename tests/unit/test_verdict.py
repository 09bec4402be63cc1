"""The verdict's rules and precedence, without the lab."""
import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import PRECEDENCE, VERDICTS, decide

RUNNING = {"exists": True, "running": True, "status": "running", "health": "healthy", "last_log_age_s": 1.0,
           "trailing_blocks": 0, "unanswered": [], "last_outcome": {"event": "ORDER_RESPONSE"}}
PROBE_OK = {"reachable": True, "http_status": 200, "clock_offset_ms": 3, "rate_limit": "ok", "latency_ms": 4}
BINANCE_OK = {"endpoint": "http://sim/fapi", "personality": "testnet", "host": PROBE_OK, "container": PROBE_OK,
              "path_finding": "both_ok", "account": {"status": "ok"}, "open_orders": {"stuck_count": 0}}
BUS_OK = {"reachable": True, "ping": True,
          "streams": {"quantum:stream:intent": {"exists": True, "length": 50, "last_age_s": 1.5}}}


def checks(executor=None, binance=None, event_bus=None, trace=None):
    return {"executor": dict(RUNNING, **(executor or {})), "binance": dict(BINANCE_OK, **(binance or {})),
            "event_bus": dict(BUS_OK, **(event_bus or {})), "trace": trace}


def primary(**kw):
    return decide(checks(**kw))["primary"]


def test_all_good_is_healthy_with_no_next_command():
    v = decide(checks())
    assert v["primary"] == "HEALTHY" and v["findings"] == [] and v["recommended"]["command"] is None


@pytest.mark.parametrize("kw,code", [
    ({"executor": {"running": False, "status": "exited", "exit_code": 137}}, "EXECUTOR_DOWN"),
    ({"executor": {"exists": False}}, "EXECUTOR_DOWN"),
    ({"executor": {"health": "unhealthy"}}, "EXECUTOR_HUNG"),
    ({"executor": {"last_log_age_s": 45}}, "EXECUTOR_HUNG"),
    ({"executor": {"trailing_blocks": 3, "top_block_reason": "NOTIONAL_ABOVE_LIMIT"}}, "GATE_BLOCKED"),
    ({"event_bus": {"reachable": False, "ping": False, "error": "refused"}}, "EVENT_BUS_DOWN"),
    ({"event_bus": {"streams": {"quantum:stream:intent": {"exists": True, "length": 9, "last_age_s": 901}}}},
     "NO_SIGNALS"),
    ({"binance": {"host": dict(PROBE_OK, rate_limit="ip_banned", http_status=418)}}, "BINANCE_IP_BANNED"),
    ({"binance": {"container": dict(PROBE_OK, rate_limit="rate_limited", http_status=429)}}, "BINANCE_RATE_LIMITED"),
    ({"binance": {"container": {"reachable": False, "error_kind": "timeout"}, "path_finding": "host_only"}},
     "BINANCE_UNREACHABLE"),
    ({"executor": {"unanswered": [{"correlation_id": "c1", "age_s": 120}]}}, "BINANCE_UNREACHABLE"),
    ({"binance": {"host": dict(PROBE_OK, clock_offset_ms=30000)}}, "CLOCK_SKEW"),
    ({"binance": {"account": {"status": "rejected", "error_code": -2015}}}, "BINANCE_AUTH_REJECTED"),
    ({"executor": {"last_outcome": {"event": "ORDER_ERROR", "error_code": -2015}}}, "BINANCE_AUTH_REJECTED"),
    ({"binance": {"open_orders": {"stuck_count": 2, "own_count": 2, "foreign_count": 0}}},
     "ORDERS_STUCK_AT_EXCHANGE"),
])
def test_each_rule_names_its_cause(kw, code):
    v = decide(checks(**kw))
    assert v["primary"] == code
    assert all(f["evidence"] for f in v["findings"])


def test_fresh_unanswered_order_is_not_yet_a_finding():
    assert primary(executor={"unanswered": [{"correlation_id": "c1", "age_s": 3}]}) == "HEALTHY"


def test_an_old_error_followed_by_a_good_answer_is_history_not_a_finding():
    assert primary(executor={"last_outcome": {"event": "ORDER_RESPONSE", "exchange_status": "FILLED"}}) == "HEALTHY"


def test_precedence_most_upstream_wins_and_all_findings_are_kept():
    v = decide(checks(executor={"health": "unhealthy"},
                      binance={"host": dict(PROBE_OK, rate_limit="rate_limited", http_status=429)}))
    assert v["primary"] == "EXECUTOR_HUNG"
    assert [f["code"] for f in v["findings"]] == ["EXECUTOR_HUNG", "BINANCE_RATE_LIMITED"]
    v = decide(checks(event_bus={"reachable": False, "ping": False}, executor={"running": False}))
    assert v["primary"] == "EVENT_BUS_DOWN"


def test_precedence_lists_every_verdict_code_once():
    assert len(PRECEDENCE) == len(set(PRECEDENCE)) == 13
    assert set(VERDICTS) == set(PRECEDENCE) | {"HEALTHY", "INCONCLUSIVE"}


STOP = {"engaged": True, "since": "2026-12-03T03:12:00Z", "where": ["redis", "policy file"],
        "detail": {"by": "alice", "at": "2026-12-03T03:12:00Z", "via": "emergency_stop.yml"}}


@pytest.mark.parametrize("executor", [
    {"running": False, "status": "exited", "exit_code": 0},   # emergency_stop.yml stopped it
    {"trailing_blocks": 5, "top_block_reason": "KILL_SWITCH"},  # the executor honours the switch
    {"running": False, "status": "exited", "health": "unhealthy"},
])
def test_an_operator_stop_is_its_own_verdict_and_never_recommends_a_restart(executor):
    v = decide(checks(executor=dict(executor, operator_stop=STOP)))
    assert v["primary"] == "OPERATOR_STOPPED"
    assert "2026-12-03T03:12:00Z" in v["findings"][0]["summary"]
    assert "by alice: via=emergency_stop.yml" in v["findings"][0]["evidence"]
    assert v["recommended"]["playbook"] == "resume_trading.yml"
    assert "EXECUTOR_DOWN" not in [f["code"] for f in v["findings"]]


def test_a_released_kill_switch_is_no_stop():
    v = decide(checks(executor={"running": False, "status": "exited", "operator_stop": {"engaged": False}}))
    assert v["primary"] == "EXECUTOR_DOWN"


@pytest.mark.parametrize("dotenv,running,real,want", [
    ({"PAPER_TRADING": "true", "BINANCE_USE_TESTNET": "false"}, {"BINANCE_USE_TESTNET": "false"}, "live", "paper"),
    ({"BINANCE_USE_TESTNET": "true"}, {"BINANCE_USE_TESTNET": "false"}, "live", "testnet"),
    ({"BINANCE_USE_TESTNET": "false"}, {"BINANCE_USE_TESTNET": "true"}, "testnet", "live"),
])
def test_a_trading_mode_mismatch_names_the_real_mode_first_and_the_exact_rollback(dotenv, running, real, want):
    v = decide(checks(binance={"dotenv": dotenv, "running_env": running}))
    assert v["primary"] == "TRADING_MODE_MISMATCH"
    assert v["findings"][0]["summary"].startswith(f"the running executor trades {real.upper()}")
    assert v["recommended"]["command"].endswith(f"playbooks/rollback.yml -e trading_mode={want}")


def test_same_mode_spelled_differently_is_no_mismatch():
    v = decide(checks(binance={"dotenv": {"BINANCE_USE_TESTNET": "1"}, "running_env": {"BINANCE_USE_TESTNET": "true"}}))
    assert v["primary"] == "HEALTHY"


def test_an_unreadable_env_is_a_finding_not_an_empty_field():
    v = decide(checks(binance={"dotenv": {}, "dotenv_error": "cannot read /p/.env: Permission denied"}))
    assert [f["code"] for f in v["findings"]] == ["ENV_UNREADABLE"]
    assert "Permission denied" in v["findings"][0]["evidence"][0]


def test_a_check_that_could_not_run_makes_it_inconclusive_not_healthy():
    c = checks()
    c["event_bus"] = {"check_error": "module failed"}
    v = decide(c)
    assert v["primary"] == "INCONCLUSIVE"
    assert v["missing_checks"] == ["3. Check Redis Event Bus"]


def test_a_finding_still_wins_over_a_missing_check():
    c = checks(executor={"running": False})
    c["binance"] = {"check_error": "boom"}
    assert decide(c)["primary"] == "EXECUTOR_DOWN"


def test_recommendation_is_an_exact_command_line():
    v = decide(checks(executor={"running": False}), inventory="inventory/production.yml")
    assert v["recommended"]["command"] == (
        "ansible-playbook -i inventory/production.yml playbooks/mitigate_restart_executor.yml")


def test_env_drift_is_reported_but_never_primary():
    v = decide(checks(binance={"env_drift": [{"key": "PAPER_TRADING", "dotenv": "true", "running": "false"}]}))
    assert v["primary"] == "HEALTHY"
    assert v["findings"][0]["code"] == "ENV_DRIFT"
    assert "PAPER_TRADING: .env=true running=false" in v["findings"][0]["evidence"]


def test_thresholds_can_be_overridden():
    kw = {"event_bus": {"streams": {"quantum:stream:intent": {"exists": True, "length": 9, "last_age_s": 8}}}}
    assert decide(checks(**kw))["primary"] == "HEALTHY"
    assert decide(checks(**kw), {"no_signal_after_s": 6})["primary"] == "NO_SIGNALS"


def test_inconclusive_names_what_could_not_run():
    c = checks()
    c["binance"] = {"check_error": "host unreachable: ssh: connect to host 127.0.0.1 port 1"}
    v = decide(c)
    assert v["primary"] == "INCONCLUSIVE"
    assert v["findings"][-1]["evidence"] == [
        "2. Check Binance API Connectivity: host unreachable: ssh: connect to host 127.0.0.1 port 1"]


def test_a_hung_executor_shows_the_intent_backlog():
    bus = {"streams": {"quantum:stream:intent": {"exists": True, "length": 50, "last_age_s": 1,
                                                 "groups": [{"name": "executor", "lag": 8, "pending": 2}]}}}
    v = decide(checks(executor={"health": "unhealthy"}, event_bus=bus))
    assert "intents waiting in group 'executor': lag 8, pending 2" in v["findings"][0]["evidence"]


def test_a_missing_playbook_falls_back_to_the_manual_step():
    v = decide(checks(executor={"running": False}), available_playbooks=["diagnose.yml"])
    assert v["recommended"]["command"] is None
    assert "docker compose up -d auto-executor" in v["recommended"]["action"]
    v = decide(checks(executor={"running": False}), available_playbooks=["mitigate_restart_executor.yml"])
    assert v["recommended"]["playbook"] == "mitigate_restart_executor.yml"


def test_orders_lost_on_restart_are_reported_but_never_primary():
    lost = [{"correlation_id": "c-lost", "symbol": "BTCUSDT", "age_s": 400}]
    v = decide(checks(executor={"lost_on_restart": lost}))
    assert v["primary"] == "HEALTHY"
    assert [(f["code"], f["severity"]) for f in v["findings"]] == [("ORDERS_LOST_ON_RESTART", "info")]
    assert v["findings"][0]["evidence"] == ["correlation_id c-lost (BTCUSDT)"]


def test_fleet_rows_put_the_worst_verdict_first_and_a_missing_report_on_top():
    from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import fleet_rows, fleet_table

    def report(primary, command=None, action="act"):
        return {"verdict": {"primary": primary, "recommended": {"command": command, "action": action}}}
    rows = fleet_rows({"b-healthy": report("HEALTHY", action="Nothing to do."),
                       "a-healthy": report("HEALTHY", action="Nothing to do."),
                       "blind": report("INCONCLUSIVE"),
                       "hung": report("EXECUTOR_HUNG", "ansible-playbook -i inv mitigate_restart_executor.yml"),
                       "redis": report("EVENT_BUS_DOWN"),
                       "gone": None})
    assert [r["host"] for r in rows] == ["gone", "redis", "hung", "blind", "a-healthy", "b-healthy"]
    assert rows[2]["next"].endswith("mitigate_restart_executor.yml")  # the command wins over the action
    lines = fleet_table(rows)
    assert lines[0].split() == ["HOST", "VERDICT", "NEXT"]
    # the verdict column starts after the widest host name, on every line
    assert all(line[len("a-healthy") + 2:].startswith(r["verdict"]) for line, r in zip(lines[1:], rows, strict=True))
