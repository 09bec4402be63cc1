"""A crash loses nothing, for real: `qt-remediate serve` SIGKILLed while a real ansible-playbook runs its
diagnose; started again, it audits the run as interrupted, and the next copy of the alert is acted on."""
import http.client
import json
import re
import secrets
import signal
import subprocess

from alert_payload import alert, payload
from kit import QT_REMEDIATE
from waiting import wait_for


def test_serve_killed_mid_run_audits_interrupted_and_acts_on_the_next_copy(kit, tmp_path):
    gate = tmp_path / "go"                            # the stub diagnose waits for this file
    started = tmp_path / "go.started"                 # ... after touching this one
    kit.set_verdict("EXECUTOR_HUNG", gate=gate)
    token = secrets.token_hex(16)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    procs = []
    port = []                                          # the port serve #1 got from the kernel

    def start(n):
        log = tmp_path / f"serve-{n}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([str(QT_REMEDIATE), "serve", "--port", str(port[0] if port else 0),
                                     "--token-file", str(token_file), "--quiet"],
                                    env=kit.env(), stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        listening = wait_for(f"serve #{n} to listen", lambda: proc.poll() is None and re.search(
            r"listening on http://127\.0\.0\.1:(\d+)/", log.read_text()), 30, log.read_text)
        port[:] = [int(listening.group(1))]
        return proc, log

    def post(fingerprint):
        conn = http.client.HTTPConnection("127.0.0.1", port[0], timeout=10)
        conn.request("POST", "/alert", body=json.dumps(payload(alert(fingerprint))),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        res = conn.getresponse()
        body = json.loads(res.read())
        conn.close()
        assert res.status == 202, body
        [decision] = body["decisions"]
        return decision

    def state():
        return json.loads((kit.reports / "remediation" / "state.json").read_text())

    def context():
        return f"audit: {kit.decisions()}\nlogs: {[p.read_text()[-1500:] for p in tmp_path.glob('serve-*.log')]}"

    try:
        first, _dummy = start(1)
        queued = post("fe01")
        assert queued["result"] == "queued"
        wait_for("the diagnose playbook to be under way", started.exists, 90, context)
        assert state()["inflight"]["fe01"]["started"] and "fe01" not in state()["dedupe"]
        first.send_signal(signal.SIGKILL)             # mid-run: nothing gets to clean up
        first.wait(10)
        assert kit.decisions() == []                  # the run never ended
        assert state()["inflight"]["fe01"]["run_id"] == queued["run_id"]

        second, log = start(2)
        [interrupted] = kit.decisions()
        assert interrupted["result"] == "interrupted" and interrupted["host"] == "lab"
        assert interrupted["details"]["run_id"] == queued["run_id"] and interrupted["details"]["fingerprint"] == "fe01"
        assert f"interrupted: run {queued['run_id']} (webhook, pid {first.pid}) was started" in log.read_text()
        assert state()["inflight"] == {} and "fe01" not in state()["dedupe"]

        gate.write_text("go")                         # this time the diagnose runs through
        again = post("fe01")                          # the next copy of the same alert is acted on
        assert again["result"] == "queued" and again["run_id"] != queued["run_id"]
        final = wait_for("the new run to end", lambda: [d for d in kit.decisions()
                                                        if d["details"]["run_id"] == again["run_id"]], 120, context)
        assert final[0]["result"] == "ran" and final[0]["details"]["verdict"] == "EXECUTOR_HUNG"
        assert kit.marks_present() == ["mitigate_restart_executor-lab"]
        # the run's decision is audited before its fingerprint moves from in flight to seen (engine.execute)
        seen = wait_for("the fingerprint to count as seen", lambda: state()["dedupe"].get("fe01"), 10, context)
        assert seen["run_id"] == again["run_id"] and "fe01" not in state()["inflight"]
        status = kit.cli("status")
        assert "interrupted" in status.stdout and queued["run_id"] in status.stdout
    finally:
        gate.write_text("go")                         # an orphaned playbook of the first run ends too
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
