"""Policy file: validation names the bad key; the shipped example is the built-in default; verdict -> plan."""
import os
import re
import subprocess
import sys

import pytest
import yaml

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
    assert p.notify_url is None and p.max_report_age_by_alert == {}
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
    # a human's emergency stop, and a mode mismatch, are never mapped to a mitigation
    ({"mitigations": {"OPERATOR_STOPPED": "mitigate_restart_executor.yml"}}, "mitigations.OPERATOR_STOPPED",
     "never automatic: an emergency stop is a human's decision"),
    ({"mitigations": {"TRADING_MODE_MISMATCH": {"playbook": "mitigate_restart_executor.yml", "enabled": False}}},
     "mitigations.TRADING_MODE_MISMATCH", "never automatic: which trading mode is right is a human's call"),
    ({"mitigations": {"EXECUTOR_DOWN": {"playbook": "mitigate_restart_executor.yml",
                                        "extravars": {"qt_override_emergency_stop": True}}}},
     "mitigations.EXECUTOR_DOWN.extravars.qt_override_emergency_stop", "--override-emergency-stop"),
    ({"max_report_age_minutes": 0}, "max_report_age_minutes", ">= 0.5"),
    ({"max_report_age_minutes": {"default": 2, "DiskFull": 5}}, "max_report_age_minutes.DiskFull",
     "not one of the policy's alerts"),
    ({"max_report_age_minutes": {"NoOrdersSubmitted": "5"}}, "max_report_age_minutes.NoOrdersSubmitted", "a number"),
    ({"breaker": {"notify_url": "ftp://example.org/x"}}, "breaker.notify_url", "http:// or https://"),
    ({"breaker": {"notify_url": "https://"}}, "breaker.notify_url", "http:// or https://"),
    ({"breaker": {"notify_timeout_s": 0}}, "breaker.notify_timeout_s", ">= 1"),
    ({"secret_files": "lab/run/vault/credentials.yml"}, "secret_files", "a list"),
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
    "OPERATOR_STOPPED": (None, "operator_stopped"),
    "TRADING_MODE_MISMATCH": (None, "trading_mode_mismatch"),
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
    assert plan.refused is (reason in ("operator_stopped", "trading_mode_mismatch"))
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


# --- the verdict list is the collection's ---------------------------------------------------------


def test_the_verdict_list_is_the_collections_own():
    from ansible_collections.quantum.runbooks.plugins.module_utils import verdict
    assert VERDICTS is verdict.VERDICTS
    assert {"OPERATOR_STOPPED", "TRADING_MODE_MISMATCH"} <= set(VERDICTS)


@pytest.mark.parametrize("how", ["checkout", "installed"])
def test_the_import_works_from_a_checkout_and_from_the_installed_package(tmp_path, how):
    """Another directory, a clean sys.path: from the checkout (PYTHONPATH) or as the venv's package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_CONFIG")}
    if how == "checkout":
        env["PYTHONPATH"] = str(ROOT)
    else:
        where = subprocess.run([sys.executable, "-c", "import remediation.paths as r; print(r.ROOT)"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=60).stdout.strip()
        if where != str(ROOT):
            pytest.skip(f"the venv's editable install is another checkout ({where or 'none'}), not this one")
    code = ("import remediation.policy as p, remediation.paths as r; "
            "from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import VERDICTS; "
            "assert p.VERDICTS is VERDICTS and 'OPERATOR_STOPPED' in VERDICTS; print(r.ROOT)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT)


# --- refusals: a human's stop, a mode mismatch ------------------------------------------------------


STOP = {"code": "OPERATOR_STOPPED", "check": "executor",
        "summary": "trading stopped by an operator at 2026-12-03T09:58:00Z",
        "facts": {"since": "2026-12-03T09:58:00Z"}}


@pytest.mark.parametrize("findings, since", [
    ([STOP], "2026-12-03T09:58:00Z"),
    ([{**STOP, "facts": {}}], "2026-12-03T09:58:00Z"),                 # from the summary
    ([{"code": "OPERATOR_STOPPED"}], "an unknown time"),
])
def test_an_emergency_stop_is_one_clear_refusal(findings, since):
    plan = parse({}).plan({"primary": "OPERATOR_STOPPED", "findings": findings})
    assert plan.playbook is None and plan.refused
    assert plan.reason == (f"operator_stopped: emergency stop in force since {since}: no automatic restart "
                           "(resume with resume_trading.yml -e confirm=RESUME)")


@pytest.mark.parametrize("primary", ["EXECUTOR_DOWN", "EXECUTOR_HUNG", "ORDERS_STUCK_AT_EXCHANGE"])
def test_a_stop_among_the_findings_refuses_whatever_the_primary(primary):
    """The stop ranks first in the verdict; should anything else ever be primary, the stop still wins."""
    policy = parse({"mitigations": {**DEFAULTS["mitigations"],
                                    "ORDERS_STUCK_AT_EXCHANGE": "mitigate_cancel_stuck_orders.yml"}})
    plan = policy.plan({"primary": primary, "findings": [{"code": primary}, STOP]})
    assert plan.playbook is None and plan.reason.startswith("operator_stopped: emergency stop in force since 2026")


def test_a_mode_mismatch_needs_a_human_with_the_recommended_command():
    command = "ansible-playbook -i inventory/lab.yml playbooks/rollback.yml -e trading_mode=paper"
    mismatch = {"code": "TRADING_MODE_MISMATCH", "facts": {"running_mode": "live", "dotenv_mode": "paper"}}
    plan = parse({}).plan({"primary": "TRADING_MODE_MISMATCH", "findings": [mismatch],
                           "recommended": {"action": "...", "playbook": "rollback.yml", "command": command}})
    assert plan.refused and plan.reason == f"trading_mode_mismatch: needs a human: {command}"
    # without the report's command, the same from the finding's facts
    plan = parse({}).plan({"primary": "TRADING_MODE_MISMATCH", "findings": [mismatch]})
    assert plan.reason.startswith("trading_mode_mismatch: needs a human: rollback.yml -e trading_mode=paper")


# --- freshness: the alerts' time scale --------------------------------------------------------------


def test_the_default_report_age_is_the_alerts_own_time_scale():
    """Two minutes: the shortest `for:` of the production rules (a verdict older than that may be stale)."""
    rules = yaml.safe_load((ROOT / "alerts" / "execution_stuck.rules.yml").read_text())
    minutes = [int(m) for g in rules["groups"] for r in g["rules"] if g["name"] == "execution-stuck"
               for m in re.fullmatch(r"(\d+)m", r["for"]).groups()]
    assert parse({}).max_report_age_s == min(minutes) * 60 == 120


def test_the_report_age_may_be_set_per_alert():
    p = parse({"max_report_age_minutes": {"default": 3, "NoOrdersSubmitted": 10}})
    assert p.report_age_limit_s("NoOrdersSubmitted") == 600
    assert p.report_age_limit_s("OrderSubmitWithoutResponse") == p.report_age_limit_s(None) == 180
    assert parse({"max_report_age_minutes": 5}).report_age_limit_s("NoOrdersSubmitted") == 300


def test_a_bad_notify_url_is_refused_without_echoing_it():
    with pytest.raises(PolicyError) as err:
        parse({"breaker": {"notify_url": "gopher://user:hunter2-secret@example.org/"}}, "p.yml")
    assert "hunter2-secret" not in str(err.value)
