"""Issue 8 end to end on the lab: a fault fires a Prometheus alert, Alertmanager posts it to
`qt-remediate serve`, the remediation diagnoses and restarts the executor through ansible-runner,
and the alert resolves. Real prometheus and prometheus-alertmanager (Debian packages), loopback only."""
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from sim_process import free_port
from waiting import wait_for

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
QT_REMEDIATE = Path(sys.executable).parent / "qt-remediate"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url):
    try:
        with NO_PROXY.open(url, timeout=3) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def audit(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def alert_loop(lab, tmp_path):
    """Prometheus -> Alertmanager -> qt-remediate serve, on free loopback ports, all stopped afterwards."""
    for tool in ("prometheus", "prometheus-alertmanager"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: run `make prometheus` (scripts/ensure_prometheus.sh)")
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "webhook")}
    token = tmp_path / "webhook-token"
    token.write_text(secrets.token_hex(24))
    token.chmod(0o600)
    # The lab configs, pointed at this run's ports and token file.
    prom = yaml.safe_load((ALERTS / "prometheus.lab.yml").read_text())
    prom["rule_files"] = [str(ALERTS / "lab" / "execution_stuck.rules.yml")]
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{ports['alertmanager']}"]
    for job in prom["scrape_configs"]:  # qt-remediate's own /metrics: this run's serve
        if job["job_name"] == "qt_remediate":
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{ports['webhook']}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    am = yaml.safe_load((ALERTS / "alertmanager.lab.yml").read_text())
    hook = am["receivers"][0]["webhook_configs"][0]
    hook["url"] = f"http://127.0.0.1:{ports['webhook']}/alert"
    hook["http_config"]["authorization"]["credentials_file"] = str(token)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    procs = []

    def start(name, argv):
        log = (tmp_path / f"{name}.log").open("w")
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))

    start("webhook", [str(QT_REMEDIATE), "serve", "--port", str(ports["webhook"]), "--token-file", str(token),
                      "--reports-dir", str(reports)])
    start("alertmanager", ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
                           f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=",
                           f"--web.listen-address=127.0.0.1:{ports['alertmanager']}"])
    start("prometheus", ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp_path / 'prom'}",
                         f"--web.listen-address=127.0.0.1:{ports['prometheus']}"])
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    try:
        wait_for("the webhook", lambda: get_json(f"http://127.0.0.1:{ports['webhook']}/healthz"), 20, every=0.3)
        wait_for("a first scrape of the executor", lambda: (get_json(
            f"{prometheus}/api/v1/query?query=up") or {}).get("data", {}).get("result"), 30, every=0.5)
        yield {"prometheus": prometheus, "audit": reports / "audit.jsonl", "logs": tmp_path}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def firing(prometheus):
    alerts = (get_json(f"{prometheus}/api/v1/alerts") or {}).get("data", {}).get("alerts", [])
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_hung_executor_alert_is_remediated_and_resolves(alert_loop, fault):
    prometheus, log = alert_loop["prometheus"], alert_loop["audit"]

    def evidence():
        webhook = (alert_loop["logs"] / "webhook.log").read_text()[-3000:]
        return f"firing: {firing(prometheus)}\naudit: {json.dumps(audit(log))[-3000:]}\nwebhook log: {webhook}"

    def restarted():
        return [r for r in audit(log) if (r["action"], r["result"]) == ("restart_executor", "restarted")]

    assert not firing(prometheus), evidence()
    fault("executor_hang")
    wait_for("ExecutorMetricsDown to fire", lambda: "ExecutorMetricsDown" in firing(prometheus), 90, context=evidence)
    wait_for("the remediation's restart", restarted, 150, every=2, context=evidence)
    wait_for("the alert to resolve", lambda: not firing(prometheus), 90, context=evidence)
    diagnosed = [r for r in audit(log) if r["action"] == "diagnose"]
    assert diagnosed and diagnosed[0]["result"] == "EXECUTOR_HUNG", evidence()

    def decided_restart():  # the decision is written when the run ends, which can be after the resolve
        return [r for r in audit(log) if r["action"] == "remediation_decision"
                and (r["details"].get("playbook") or "").endswith("mitigate_restart_executor.yml")]
    wait_for("the run's decision record", decided_restart, 60, every=1, context=evidence)

    # Alertmanager also sends the resolution; resolved alerts never start a run.
    def resolved():
        return [r for r in audit(log)
                if r["action"] == "remediation_decision" and "resolved" in json.dumps(r["details"])]
    wait_for("the resolved notification", resolved, 30, every=1, context=evidence)
    assert len(restarted()) == 1, evidence()  # one alert, one restart: no repeat while it resolved
