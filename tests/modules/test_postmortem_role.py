"""The role quantum.runbooks.postmortem end to end through ansible-playbook, without the lab: the audit log
and diagnosis reports are fixtures written relative to now, the exchange is lab/images/binance_sim/sim.py as
a local process (income seeded with POST /_sim/income; GET /_sim/income is the PnL oracle), the executor's
settings come from a stand-in Docker API on a unix socket (DOCKER_HOST: the inspect data of a pretend
container) and its logs are unreachable (container_logs gets a Docker socket that does not exist) - so the
no-logs path is covered here and the logs path in the lab's Molecule scenario."""
import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from sim_process import KEYS, assert_no_secrets

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_document, timestamps

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CONTAINER = "qt-test-executor"
PLAY = """---
- name: Post-mortem with a pretend executor
  hosts: localhost
  gather_facts: false
  module_defaults:
    quantum.runbooks.container_logs: {docker_host: "unix:///nonexistent/qt-test-docker.sock", timeout: 2}
  roles:
    - role: quantum.runbooks.postmortem
"""


class FakeDockerApi(http.server.BaseHTTPRequestHandler):
    """`GET /containers/<name>/json` answers for the pretend executor only (testnet, the sim's keys); anything
    else is a 404, as dockerd says it."""

    def do_GET(self):
        key, secret = KEYS["testnet"]
        env = ["BINANCE_USE_TESTNET=true", "BINANCE_FUTURES_TESTNET_URL=http://binance-sim:8081/fapi",
               "BINANCE_API_KEY=" + key, "BINANCE_API_SECRET=" + secret]
        if self.path.endswith("/containers/%s/json" % CONTAINER):
            status, doc = 200, {"Id": "f00d", "State": {"Status": "running"}, "Config": {"Env": env, "Tty": False}}
        else:
            status, doc = 404, {"message": "No such container"}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):  # a unix socket's peer has no address
        return "unix"

    def log_message(self, *args):
        pass


def fake_docker(path):
    """The stand-in Docker API on the unix socket ``path`` (served until the test process ends)."""
    server = socketserver.ThreadingUnixStreamServer(str(path), FakeDockerApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Lab:
    """The files a real run would have left on the control node, the target's project dir, and the runner."""

    def __init__(self, tmp, sim):
        self.tmp, self.sim = tmp, sim
        self.reports, self.project = tmp / "reports", tmp / "project"
        (self.reports / "localhost").mkdir(parents=True)
        self.audit = self.reports / "audit.jsonl"
        self.docker_sock = tmp / "docker.sock"
        self.docker = fake_docker(self.docker_sock)
        (tmp / "postmortem.yml").write_text(PLAY)

    def diagnose(self, ts, verdict, findings=()):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
        name = "diagnosis-%s.json" % stamp
        report = {"host": "localhost", "generated_at": timestamps.iso(ts), "duration_s": 2.0,
                  "verdict": {"primary": verdict, "findings": list(findings)}}
        (self.reports / "localhost" / name).write_text(json.dumps(report))
        self.record(ts, "diagnose", verdict, {"findings": [f["code"] for f in findings],
                                              "report": str(self.reports / "localhost" / name)})

    def record(self, ts, action, result, details):
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts)), "who": "oncall",
                "host": "localhost", "action": action, "result": result, "check_mode": False, "details": details}
        with self.audit.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def play(self, *extra, check=False, diff=False):
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")), NO_PROXY="127.0.0.1,localhost",
                   DOCKER_HOST="unix://%s" % self.docker_sock)
        env.pop("BINANCE_API_KEY", None)
        env.pop("BINANCE_API_SECRET", None)
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(self.tmp / "postmortem.yml"),
               "-e", "ansible_python_interpreter=%s" % (VENV_BIN / "python"),
               "-e", "qt_project_dir=%s" % self.project, "-e", "postmortem_reports_dir=%s" % self.reports,
               "-e", "postmortem_audit_log=%s" % self.audit, "-e", "postmortem_container=%s" % CONTAINER,
               "-e", "postmortem_futures_testnet_url=%s" % self.sim.url(), "-e", "postmortem_lookback_s=60"]
        cmd += list(extra) + (["--check"] if check else []) + (["--diff"] if diff else [])
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.stdout.lstrip().startswith("{"), res.stdout[-2000:] + res.stderr[-3000:]
        out, _dummy = json.JSONDecoder().raw_decode(res.stdout.lstrip())
        assert_no_secrets(res.stdout + res.stderr)
        tasks = {t["task"]["name"].split(" : ", 1)[-1]: t["hosts"]["localhost"] for p in out["plays"]
                 for t in p["tasks"]}
        return tasks, out["stats"]["localhost"], res


def seed_income(sim, *records):
    status, body = sim.ctl("POST", "/_sim/income", {"records": list(records)})
    assert status == 200, body


def income_oracle(sim, start, end):
    total = sum((Decimal(r["income"]) for r in sim.ctl("GET", "/_sim/income?personality=testnet")[1]
                 if start * 1000 <= r["time"] <= end * 1000), Decimal(0))
    return format(total.normalize(), "f")


UNREACHABLE = {"code": "BINANCE_UNREACHABLE", "check": "binance", "step": "2. Check Binance API Connectivity",
               "severity": "critical", "summary": "Binance does not answer",
               "evidence": ["endpoint: http://binance-sim:8081/fapi (testnet)", "from host: timeout (no answer)"]}
CANCEL = {"summary": "cancelled 1", "orders": [{"symbol": "BTCUSDT", "orderId": 4000000123, "clientOrderId": "qtx-aaa",
                                                "age_s": 601.0, "outcome": "cancelled", "final_status": "CANCELED",
                                                "position_opened": False}]}


def test_role_writes_updates_and_numbers_post_mortems(tmp_path, sim):
    lab = Lab(tmp_path, sim)
    now = int(time.time())
    lab.diagnose(now - 400, "HEALTHY")
    lab.diagnose(now - 120, "BINANCE_UNREACHABLE", [UNREACHABLE])
    lab.record(now - 100, "cancel_stuck_orders", "cancelled", CANCEL)
    lab.record(now - 90, "restart_executor", "restarted", {"verdict_before": "BINANCE_UNREACHABLE"})
    lab.diagnose(now - 60, "HEALTHY")
    seed_income(sim, {"incomeType": "COMMISSION", "income": "-0.1", "symbol": "BTCUSDT", "time": (now - 250) * 1000},
                {"incomeType": "REALIZED_PNL", "income": "2", "symbol": "BTCUSDT", "time": (now - 170) * 1000},
                {"incomeType": "FUNDING_FEE", "income": "-0.3", "symbol": "ETHUSDT", "time": (now - 150) * 1000},
                {"incomeType": "TRANSFER", "income": "50", "time": (now - 30) * 1000})
    window = (now - 180, now - 60)
    assert income_oracle(sim, *window) == "1.7"
    incident = "execution_stuck-%s" % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - 120))
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 120))
    folder = lab.project / "RUNBOOKS" / "postmortems"
    md, png = folder / ("%s_execution_stuck.md" % day), folder / ("%s_execution_stuck.png" % day)
    audit_before = lab.audit.read_bytes()

    # check mode: the plan and the diff, nothing written anywhere
    tasks, stats, res = lab.play(check=True, diff=True)
    assert stats["failures"] == 0, res.stdout[-3000:]
    written = tasks["Write the post-mortem on the target (a new file, or this incident's own with human edits kept)"]
    assert written["changed"] is True and written["path"] == str(md) and "+# Post-mortem" not in written["diff"][0]
    assert "# Post-mortem: Execution Stuck - %s" % day in written["diff"][0]["after"]
    assert not folder.exists() and not (lab.reports / "localhost" / "postmortems").exists()
    assert lab.audit.read_bytes() == audit_before
    summary = tasks["Summary"]["msg"]
    assert summary[0] == "POST-MORTEM %s (would be created)" % md

    # for real
    tasks, stats, res = lab.play()
    assert stats["failures"] == 0, res.stdout[-3000:]
    fields = tasks["Summary"]["msg"]
    assert fields[0] == "POST-MORTEM %s (created)" % md
    assert fields[1] == "1. Root cause: BINANCE_UNREACHABLE - Binance does not answer"
    assert fields[2].startswith("2. Detection time: 0 s after the first symptom (") and \
        fields[2].endswith("by diagnosis BINANCE_UNREACHABLE)")
    assert fields[3].startswith("3. Resolution time: 1 min 00 s after detection (") and \
        fields[3].endswith("after cancel_stuck_orders cancelled, restart_executor restarted)")
    assert fields[4].startswith("4. Orders affected: 1 (0 without answer, 0 lost on restart, 1 cancelled, 0 errored); "
                                "logs unavailable: cannot read the executor's logs: ")
    assert fields[5] == ("5. PnL impact: net +1.7 USDT in the window from 2 income records "
                         "(FUNDING_FEE -0.3 USDT, REALIZED_PNL +2 USDT)")
    assert fields[6] == "6. Prevention: BINANCE_UNREACHABLE: 2 suggestions"
    assert fields[7] == "no chart: unavailable: cannot read the executor's logs: " + fields[4].split(": ", 3)[3]
    text = md.read_text()
    assert postmortem_document.incident_of(text) == incident and not png.exists()
    assert "|  | BTCUSDT | qtx-aaa | unknown | cancelled (orderId 4000000123) |" in text  # no log: no correlation id
    assert "from host: timeout (no answer)" in text and "Open positions: not read" in text
    assert (lab.reports / "localhost" / "postmortems" / md.name).read_text() == text
    last = json.loads(lab.audit.read_text().splitlines()[-1])
    assert (last["action"], last["result"], last["details"]["incident_id"]) == ("postmortem", "created", incident)
    assert last["details"]["window_ms"] == [window[0] * 1000, window[1] * 1000]
    assert (last["details"]["orders_affected"], last["details"]["pnl_net"], last["details"]["verdicts"]) == (
        1, {"USDT": "1.7"}, ["BINANCE_UNREACHABLE"])
    assert_no_secrets(text)

    # the same evidence again: nothing changes (idempotent)
    tasks, stats, res = lab.play()
    assert stats["changed"] == 0 and stats["failures"] == 0, res.stdout[-3000:]
    assert tasks["Summary"]["msg"][0] == "POST-MORTEM %s (unchanged)" % md

    # a human edits: a rerun keeps the edit, and only the control node's copy follows it
    md.write_text(text.replace("_Human notes:_", "_Human notes:_ the VPN to the exchange was down", 1))
    tasks, stats, res = lab.play()
    assert stats["changed"] == 1 and tasks["Copy it to the control node's reports"]["changed"] is True
    assert "the VPN to the exchange was down" in md.read_text()
    assert (lab.reports / "localhost" / "postmortems" / md.name).read_text() == md.read_text()
    assert tasks["Summary"]["msg"][0] == "POST-MORTEM %s (unchanged)" % md

    # a second incident the same day, still open: a new file; positions are read while it lasts
    sim.client().futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    lab.diagnose(time.time() - 1, "CLOCK_SKEW")
    first = md.read_text()
    tasks, stats, res = lab.play()
    assert stats["failures"] == 0, res.stdout[-3000:]
    second = tasks["Summary"]["msg"][0]
    day2 = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 1))
    assert second == "POST-MORTEM %s (created)" % (folder / ("%s_execution_stuck%s.md" % (day2, "-2" if day2 == day
                                                                                          else "")))
    assert md.read_text() == first
    assert "Open positions now: BTCUSDT LONG 0.01, uPnL 0" in Path(second.split(" ")[1]).read_text()

    # the first incident again, by its id and window: only generated blocks change, the edit stays
    tasks, stats, res = lab.play("-e", "incident_id=%s" % incident,
                                 "-e", "incident_start=%s" % timestamps.iso(window[0]),
                                 "-e", "incident_end=%s" % timestamps.iso(window[1]))
    assert stats["failures"] == 0, res.stdout[-3000:]
    assert tasks["Summary"]["msg"][0] == "POST-MORTEM %s (updated)" % md
    text = md.read_text()
    assert "the VPN to the exchange was down" in text and "| Window from | operator |" in text


def test_no_incident_fails_with_one_clear_line(tmp_path, sim):
    lab = Lab(tmp_path, sim)
    lab.diagnose(time.time() - 10, "HEALTHY")
    lab.audit.write_text(lab.audit.read_text() + "garbage\n")
    tasks, stats, res = lab.play()
    failed = tasks["Find the incident window (control node; fails clearly without a failing diagnosis or with a bad "
                   "time)"]
    assert stats["failures"] == 1 and failed["msg"].startswith("no post-mortem: no failing diagnosis in 1 diagnoses")
    tasks, stats, res = lab.play("-e", "incident_start=yesterday")
    assert "incident_start: not an ISO 8601 time: 'yesterday' (use ISO 8601 UTC" in json.dumps(tasks)
