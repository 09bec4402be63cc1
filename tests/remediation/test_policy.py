"""Policy file: validation names the bad key; the shipped example is the built-in default; verdict -> plan."""
import pytest

from remediation.paths import ROOT
from remediation.policy import DEFAULTS, VERDICTS, PolicyError, load, parse


def test_the_shipped_example_is_exactly_the_builtin_default():
    example = load(ROOT / "remediation" / "policy.example.yml")
    default = parse({}, "defaults")
    assert example.mitigations == default.mitigations
    assert {k: v for k, v in vars(example).items() if k != "source"} == \
           {k: v for k, v in vars(default).items() if k != "source"}


def test_defaults_follow_the_runbook():
    p = parse({}, "defaults")
    assert p.mitigations["EXECUTOR_DOWN"].playbook == p.mitigations["EXECUTOR_HUNG"].playbook \
        == "mitigate_restart_executor.yml"
    cancel = p.mitigations["ORDERS_STUCK_AT_EXCHANGE"]
    assert cancel.playbook == "mitigate_cancel_stuck_orders.yml" and cancel.extravars == {"confirm": True}
    assert cancel.enabled is False                 # opt-in flag
    assert set(p.mitigations) == {"EXECUTOR_DOWN", "EXECUTOR_HUNG", "ORDERS_STUCK_AT_EXCHANGE"}
    assert (p.dedupe_window_s, p.breaker_max, p.breaker_window_s) == (600, 3, 1800)
    assert p.diagnose_playbook == ROOT / "diagnose.yml" and p.diagnose_playbook.is_file()
    assert all(p.playbook_path(m.playbook).is_file() for m in p.mitigations.values())


@pytest.mark.parametrize("data, key, words", [
    ({"mitigation": {}}, "mitigation", "unknown key"),
    ({"breaker": {"max": 3}}, "breaker.max", "unknown key"),
    ({"breaker": {"max_mitigations": 0}}, "breaker.max_mitigations", ">= 1"),
    ({"breaker": {"max_mitigations": True}}, "breaker.max_mitigations", "an integer"),
    ({"dedupe_window_minutes": "10"}, "dedupe_window_minutes", "a number"),
    ({"dry_run": "yes"}, "dry_run", "true or false"),
    ({"version": 2}, "version", "only version 1"),
    ({"alerts": "OrderSubmitWithoutResponse"}, "alerts", "a list"),
    ({"default_host": "lab; rm -rf /"}, "default_host", "not an inventory host name"),
    ({"mitigations": {"EXECUTOR_SLOW": "mitigate_restart_executor.yml"}}, "mitigations.EXECUTOR_SLOW",
     "unknown verdict"),
    ({"mitigations": {"HEALTHY": "mitigate_restart_executor.yml"}}, "mitigations.HEALTHY", "never mitigated"),
    ({"mitigations": {"BINANCE_UNREACHABLE": "emergency_stop.yml"}}, "mitigations.BINANCE_UNREACHABLE.playbook",
     "never automatic"),
    ({"mitigations": {"BINANCE_AUTH_REJECTED": {"playbook": "rollback.yml", "extravars": {"trading_mode": "paper"}}}},
     "mitigations.BINANCE_AUTH_REJECTED.playbook", "never automatic"),
    ({"mitigations": {"CLOCK_SKEW": "rollback_testnet.yml"}}, "mitigations.CLOCK_SKEW.playbook", "never automatic"),
    ({"mitigations": {"GATE_BLOCKED": "resume_trading.yml"}}, "mitigations.GATE_BLOCKED.playbook", "never automatic"),
    ({"mitigations": {"EXECUTOR_DOWN": "../elsewhere/x.yml"}}, "mitigations.EXECUTOR_DOWN.playbook", "file name"),
    ({"mitigations": {"EXECUTOR_DOWN": "missing.yml"}}, "mitigations.EXECUTOR_DOWN.playbook", "does not exist"),
    ({"mitigations": {"EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml", "extravars":
                                        {"binance_api_secret": "x"}}}},
     "mitigations.EXECUTOR_DOWN.extravars.binance_api_secret", "looks like a secret"),
    ({"mitigations": {"EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml", "extravars": {"x": [1]}}}},
     "mitigations.EXECUTOR_DOWN.extravars.x", "string, number or boolean"),
    ({"mitigations": {"EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml", "enabled": "no"}}},
     "mitigations.EXECUTOR_DOWN.enabled", "true or false"),
    ({"mitigations": {"EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml", "when": "always"}}},
     "mitigations.EXECUTOR_DOWN.when", "unknown key"),
])
def test_validation_names_the_bad_key(data, key, words):
    with pytest.raises(PolicyError) as err:
        parse(data, "p.yml")
    assert str(err.value).startswith(f"p.yml: {key}: ") and words in str(err.value)


def test_load_reports_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load(tmp_path / "absent.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("mitigations: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load(bad)
    bad.write_text("- a list\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load(bad)


# verdict -> (playbook or None, reason prefix), with the cancel flag on and off
PLANS = {
    "HEALTHY": (None, "healthy"),
    "EXECUTOR_DOWN": ("mitigate_restart_executor.yml", "verdict"),
    "EXECUTOR_HUNG": ("mitigate_restart_executor.yml", "verdict"),
    "GATE_BLOCKED": (None, "no_automatic_mitigation"),
    "EVENT_BUS_DOWN": (None, "no_automatic_mitigation"),
    "NO_SIGNALS": (None, "no_automatic_mitigation"),
    "BINANCE_UNREACHABLE": (None, "no_automatic_mitigation"),
    "BINANCE_RATE_LIMITED": (None, "exchange_ban"),
    "BINANCE_IP_BANNED": (None, "exchange_ban"),
    "BINANCE_AUTH_REJECTED": (None, "no_automatic_mitigation"),
    "CLOCK_SKEW": (None, "no_automatic_mitigation"),
    "ORDERS_STUCK_AT_EXCHANGE": ("mitigate_cancel_stuck_orders.yml", "verdict"),
    "INCONCLUSIVE": (None, "no_automatic_mitigation"),
}


def test_plans_cover_every_verdict():
    assert set(PLANS) == set(VERDICTS)


@pytest.mark.parametrize("verdict", VERDICTS)
@pytest.mark.parametrize("cancel_enabled", [False, True])
def test_plan_per_verdict(verdict, cancel_enabled):
    mitigations = dict(DEFAULTS["mitigations"])
    mitigations["ORDERS_STUCK_AT_EXCHANGE"] = {**mitigations["ORDERS_STUCK_AT_EXCHANGE"], "enabled": cancel_enabled}
    plan = parse({"mitigations": mitigations}).plan({"primary": verdict, "findings": [{"code": verdict}],
                                                     "recommended": {"action": "ask the on-call"}})
    playbook, reason = PLANS[verdict]
    if verdict == "ORDERS_STUCK_AT_EXCHANGE" and not cancel_enabled:
        playbook, reason = None, "disabled_by_policy"
    assert (plan.playbook, plan.reason.split(":")[0].split(" ")[0]) == (playbook, reason)
    assert plan.extravars == ({"confirm": True} if playbook == "mitigate_cancel_stuck_orders.yml" else {})
    if reason == "no_automatic_mitigation":
        assert "ask the on-call" in plan.reason      # the report's advice reaches the audit log


@pytest.mark.parametrize("ban", ["BINANCE_IP_BANNED", "BINANCE_RATE_LIMITED"])
@pytest.mark.parametrize("verdict", ["EXECUTOR_DOWN", "EXECUTOR_HUNG", "ORDERS_STUCK_AT_EXCHANGE"])
def test_no_automatic_mitigation_while_the_exchange_bans(verdict, ban):
    """EXECUTOR_* outrank a ban in the verdict's precedence: the ban is then only among the findings."""
    policy = parse({"mitigations": {verdict: DEFAULTS["mitigations"]["EXECUTOR_DOWN"]["playbook"]}})
    plan = policy.plan({"primary": verdict, "findings": [{"code": verdict}, {"code": ban}]})
    assert plan.playbook is None and plan.reason.startswith("exchange_ban: " + ban)


def test_the_ban_reason_carries_retry_after():
    plan = parse({}).plan({"primary": "BINANCE_IP_BANNED", "findings": []}, retry_after_s=120)
    assert plan.reason.startswith("exchange_ban: BINANCE_IP_BANNED; Retry-After 120 s;")
