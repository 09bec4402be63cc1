"""The alerting rules (alerts/): promtool unit tests, the lab variant in step, the lab's
Prometheus and Alertmanager configs valid and wired to the remediation webhook.

Needs promtool and amtool (Debian packages prometheus, prometheus-alertmanager:
scripts/ensure_prometheus.sh, which `make test` runs). Under `make test` (QT_REQUIRE_TOOLS=1; also
with CI or QT_REQUIRE_PROMTOOL set) a missing tool fails the test; run on its own, pytest skips it and
says why.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
PROD_RULES = ALERTS / "execution_stuck.rules.yml"
LAB_RULES = ALERTS / "lab" / "execution_stuck.rules.yml"
PROD_TESTS = ALERTS / "tests" / "execution_stuck.test.yml"
LAB_TESTS = ALERTS / "tests" / "execution_stuck.lab.test.yml"
PROM_LAB = ALERTS / "prometheus.lab.yml"
AM_LAB = ALERTS / "alertmanager.lab.yml"
ALERT_NAMES = ["OrderSubmitWithoutResponse", "NoOrdersSubmitted", "ExecutorMetricsDown"]
REMEDIATION_ALERTS = ["RemediationBreakerOpen", "RemediationServiceDown"]
ALL_ALERTS = ALERT_NAMES + REMEDIATION_ALERTS
JOB = "quantum_auto_executor"
REMEDIATION_JOB = "qt_remediate"
# runbook_url: the external label runbook_base_url if Prometheus sets one, else docs/ of this repo
RUNBOOK_URL = re.compile(r"\{\{ with \$externalLabels\.runbook_base_url \}\}\{\{ \. \}\}/\{\{ end \}\}"
                         r"(docs/[a-z_]+\.md)#([a-z0-9-]+)")
# A PromQL / prose duration: 10s, 5m, 15m, 1h ...
DURATION = re.compile(r"\b\d+(?:ms|s|m|h|d|w|y)\b")


def tool(name):
    path = shutil.which(name)
    if path:
        return path
    how = ("run scripts/ensure_prometheus.sh as root (apt-get install -y --no-install-recommends "
           "prometheus prometheus-alertmanager)")
    if any(os.environ.get(flag) for flag in ("QT_REQUIRE_TOOLS", "CI", "QT_REQUIRE_PROMTOOL")):
        pytest.fail(f"{name} not found and QT_REQUIRE_TOOLS/CI is set, so a missing tool fails the run: {how}")
    pytest.skip(f"{name} not found: {how}")


def run(*args, cwd=ROOT):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def load(path):
    return yaml.safe_load(path.read_text())


def rules_by_name(path):
    return {r["alert"]: r for g in load(path)["groups"] for r in g["rules"]}


def normalise(text):
    return DURATION.sub("<D>", " ".join(text.split()))


def seconds(duration):
    value, unit = re.fullmatch(r"(\d+)(s|m|h)", duration).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]


# --- promtool: syntax and unit tests -------------------------------------------------


@pytest.mark.parametrize("rules", [PROD_RULES, LAB_RULES], ids=["production", "lab"])
def test_rules_pass_promtool_check(rules):
    res = run(tool("promtool"), "check", "rules", str(rules))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(ALL_ALERTS)} rules found" in res.stdout


@pytest.mark.parametrize("tests", [PROD_TESTS, LAB_TESTS], ids=["production", "lab"])
def test_promtool_unit_tests_pass(tests):
    res = run(tool("promtool"), "test", "rules", str(tests))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


@pytest.mark.parametrize("tests,rules", [(PROD_TESTS, PROD_RULES), (LAB_TESTS, LAB_RULES)],
                         ids=["production", "lab"])
def test_every_alert_is_tested_firing_and_silent(tests, rules):
    spec = load(tests)
    assert [(tests.parent / f).resolve() for f in spec["rule_files"]] == [rules.resolve()]
    firing, silent = set(), set()
    for case in spec["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == set(ALL_ALERTS), f"no firing case for {set(ALL_ALERTS) - firing}"
    assert silent == set(ALL_ALERTS), f"no silent case for {set(ALL_ALERTS) - silent}"


def test_unit_tests_catch_a_rule_that_ignores_responses(tmp_path):
    """The healthy case has an order in flight at every scrape: a rule on the gauge alone
    (no "and no ORDER_RESPONSE") must make the unit tests fail, or they prove nothing."""
    promtool = tool("promtool")
    (tmp_path / "tests").mkdir()
    shutil.copy(PROD_TESTS, tmp_path / "tests" / PROD_TESTS.name)
    text = PROD_RULES.read_text()
    guard = ('          and on(job, instance)\n'
             '          increase(orders_responded_total{job="quantum_auto_executor"}[5m]) == 0\n')
    assert text.count(guard) == 1
    (tmp_path / PROD_RULES.name).write_text(text.replace(guard, ""))
    res = run(promtool, "test", "rules", str(tmp_path / "tests" / PROD_TESTS.name))
    assert res.returncode != 0
    assert "healthy saturated executor" in res.stdout + res.stderr


# --- the rules themselves ------------------------------------------------------------


def test_production_rules_carry_the_runbook_contract():
    rules = rules_by_name(PROD_RULES)
    assert list(rules) == ALL_ALERTS
    rules = {name: rules[name] for name in ALERT_NAMES}
    # The runbook: "NoOrdersSubmitted firing for >15min".
    assert rules["NoOrdersSubmitted"]["for"] == "15m"
    # A single failed order in a quiet period must not page: `for` covers the whole window.
    oswr = rules["OrderSubmitWithoutResponse"]
    windows = {seconds(w) for w in re.findall(r"\[(\d+[smh])\]", oswr["expr"])}
    assert windows == {300} and seconds(oswr["for"]) >= 300
    for name, rule in rules.items():
        assert f'job="{JOB}"' in rule["expr"], name
        assert rule["labels"]["severity"] == "critical" and rule["labels"]["priority"] == "P0", name
        assert rule["labels"]["service"] == "quantum_trader", name
        assert {"summary", "description", "runbook_url", "correlation_id"} <= set(rule["annotations"]), name
        assert "diagnose.yml" in rule["annotations"]["description"], name


def test_lab_rules_differ_from_production_only_in_durations():
    prod, lab = load(PROD_RULES), load(LAB_RULES)
    assert [g["name"] for g in prod["groups"]] == [g["name"] for g in lab["groups"]]
    prod_rules, lab_rules = rules_by_name(PROD_RULES), rules_by_name(LAB_RULES)
    assert list(prod_rules) == list(lab_rules)
    for name, rule in prod_rules.items():
        twin = lab_rules[name]
        assert set(rule) == set(twin), name
        assert normalise(rule["expr"]) == normalise(twin["expr"]), name
        assert rule["labels"] == twin["labels"], name
        assert {k: normalise(v) for k, v in rule["annotations"].items()} == \
               {k: normalise(v) for k, v in twin["annotations"].items()}, name
        # The lab variant is the faster one, never a slower or different one.
        assert seconds(twin["for"]) < seconds(rule["for"]), name
        prod_windows = re.findall(r"\[(\d+[smh])\]", rule["expr"])
        lab_windows = re.findall(r"\[(\d+[smh])\]", twin["expr"])
        assert len(prod_windows) == len(lab_windows), name
        assert all(seconds(lw) < seconds(pw) for pw, lw in zip(prod_windows, lab_windows, strict=True)), name


def test_lab_windows_hold_enough_scrapes():
    """increase() needs two samples in its window; with the lab's 2s scrape a 10s window holds 5."""
    scrape = seconds(load(PROM_LAB)["global"]["scrape_interval"])
    for name, rule in rules_by_name(LAB_RULES).items():
        for window in re.findall(r"\[(\d+[smh])\]", rule["expr"]):
            assert seconds(window) >= 4 * scrape, (name, window)


def test_remediation_rules_watch_the_service_and_its_breaker():
    """Each rule reads a metric `qt-remediate serve` really exports, and pages a human (not itself)."""
    from remediation.engine import Engine
    from remediation.metrics import render
    from remediation.policy import parse

    exported = render(Engine(parse({}), ROOT / "reports" / "__never_written__"))
    rules = rules_by_name(PROD_RULES)
    for name in REMEDIATION_ALERTS:
        rule = rules[name]
        assert f'job="{REMEDIATION_JOB}"' in rule["expr"], name
        assert rule["labels"]["component"] == "remediation" and rule["labels"]["severity"] == "critical", name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
    breaker = rules["RemediationBreakerOpen"]["expr"]
    metric = re.match(r"(\w+)\{", breaker).group(1)
    assert f"\n{metric} 0\n" in exported, f"{metric} is not what qt-remediate exports"
    assert "qt-remediate breaker reset" in rules["RemediationBreakerOpen"]["annotations"]["description"]
    assert "absent(up{" in rules["RemediationServiceDown"]["expr"]


def test_runbook_urls_are_a_setting_pointing_at_existing_sections():
    """No placeholder host: docs/<page>.md#<section> of this repo, or under the runbook_base_url label."""
    for path in (PROD_RULES, LAB_RULES):
        assert "example.invalid" not in path.read_text(), path
        for name, rule in rules_by_name(path).items():
            url = rule["annotations"]["runbook_url"]
            match = RUNBOOK_URL.fullmatch(url)
            assert match, (name, url)
            doc = (ROOT / match.group(1)).read_text()
            # GitHub-style anchors of the Markdown headings
            anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                       for h in re.findall(r"^#+\s+(.+)$", doc, flags=re.M)}
            assert match.group(2) in anchors, (name, url)


def test_unit_tests_cover_the_runbook_url_setting():
    cases = [c for c in load(PROD_TESTS)["tests"] if c.get("external_labels", {}).get("runbook_base_url")]
    assert cases, "no promtool case sets the external label runbook_base_url"


# --- the lab's Prometheus and Alertmanager -------------------------------------------


def test_lab_prometheus_config_is_valid_and_scrapes_the_lab_executor():
    res = run(tool("promtool"), "check", "config", str(PROM_LAB))
    assert res.returncode == 0, res.stdout + res.stderr
    config = load(PROM_LAB)
    assert config["global"]["scrape_interval"] == "2s"
    assert config["global"]["evaluation_interval"] == "2s"
    # A hung executor holds the scrape: the timeout must end it within one interval.
    assert seconds(config["global"]["scrape_timeout"]) < seconds(config["global"]["scrape_interval"])
    assert [(ALERTS / f).resolve() for f in config["rule_files"]] == [LAB_RULES.resolve()]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {JOB, REMEDIATION_JOB}
    job = jobs[JOB]
    (targets,) = job["static_configs"]
    assert targets["targets"] == ["127.0.0.1:19100"]
    # The alert names the inventory host, by the label the remediation policy reads.
    host_label = load(ROOT / "remediation" / "policy.example.yml")["host_label"]
    lab_hosts = load(ROOT / "inventory" / "lab.yml")["all"]["children"]["quantum_trader"]["hosts"]
    assert targets["labels"][host_label] in lab_hosts
    for am in config["alerting"]["alertmanagers"]:
        for sc in am["static_configs"]:
            assert all(t.startswith("127.0.0.1:") for t in sc["targets"])
    # qt-remediate's /metrics is scraped where Alertmanager posts the alerts (the same serve process)
    (remediation,) = jobs[REMEDIATION_JOB]["static_configs"]
    webhook = load(AM_LAB)["receivers"][0]["webhook_configs"][0]["url"]
    assert jobs[REMEDIATION_JOB]["metrics_path"] == "/metrics"
    assert remediation["targets"] == [re.match(r"http://([^/]+)/", webhook).group(1)]


def test_lab_alertmanager_config_is_valid_and_posts_to_the_webhook():
    res = run(tool("amtool"), "check-config", str(AM_LAB))
    assert res.returncode == 0, res.stdout + res.stderr
    config = load(AM_LAB)
    receiver = config["receivers"][0]        # tests/lab/test_alert_loop.py rewrites this one's URL
    assert receiver["name"] == config["route"]["receiver"] == "qt-remediate"
    (hook,) = receiver["webhook_configs"]
    server = pytest.importorskip("remediation.server")
    assert re.fullmatch(rf"http://127\.0\.0\.1:\d+{re.escape(server.PATH)}", hook["url"]), \
        f"{hook['url']}: not the path qt-remediate serve listens on ({server.PATH})"
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer"
    assert "credentials" not in auth and auth["credentials_file"]  # the token only by file
    token = (AM_LAB.parent / auth["credentials_file"])
    assert subprocess.run(["git", "check-ignore", "-q", str(token)], cwd=ROOT).returncode == 0, \
        "the webhook token file must be git-ignored"
    route = config["route"]
    assert seconds(route["group_wait"]) <= 2 and seconds(route["group_interval"]) <= 2


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_routes_to_the_remediation(alertname):
    res = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM_LAB}",
              f"alertname={alertname}", "severity=critical", "instance=127.0.0.1:19100")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.split() == ["qt-remediate"]


@pytest.mark.parametrize("alertname", REMEDIATION_ALERTS)
def test_remediation_alerts_go_to_a_human_not_to_the_remediation(alertname):
    res = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM_LAB}",
              f"alertname={alertname}", "severity=critical", "component=remediation", "instance=127.0.0.1:19095")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.split() == ["on-call"]


def run_without_promtool(tmp_path, **env):
    """test_rules_pass_promtool_check (both rule files) in a child pytest whose PATH has no promtool."""
    run_env = {k: v for k, v in os.environ.items() if k not in ("QT_REQUIRE_TOOLS", "CI", "QT_REQUIRE_PROMTOOL")}
    run_env.update(PATH=str(tmp_path), **env)  # an empty directory
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsfE",
                          f"{__file__}::test_rules_pass_promtool_check"],
                         cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout


def test_without_promtool_the_tests_fail_under_make_test_and_skip_otherwise(tmp_path):
    code, out = run_without_promtool(tmp_path, QT_REQUIRE_TOOLS="1")  # what `make test` exports
    assert code == 1 and "promtool not found and QT_REQUIRE_TOOLS/CI is set" in out, out[-2000:]
    code, out = run_without_promtool(tmp_path)
    assert code == 0 and "2 skipped" in out and "promtool not found: run scripts/ensure_prometheus.sh" in out, out
