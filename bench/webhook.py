#!/usr/bin/env python3
"""qt-remediate serve, measured on loopback with a stub diagnose playbook (no lab, nothing changed).

1. Latency from posting an alert to ansible-runner starting the diagnose run (the run's
   artifacts/<ident>/command file appears), over N alerts with distinct fingerprints, one at a time
   (one host: a second alert while a run is going is skipped as locked, by design).
2. 100 identical alerts posted within about 1 s from 20 threads: exactly one run must start.
Prints the figures; exits 1 only if the burst did not start exactly one run. No timing assertions.
Usage: .venv/bin/python bench/webhook.py [--alerts 20]
"""
import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

QT_REMEDIATE = Path(sys.executable).parent / "qt-remediate"
STUB_DIAGNOSE = """---
- name: Stub diagnose (always healthy, so each alert is one quick run)
  hosts: all
  gather_facts: false
  tasks:
    - name: Healthy report (write_report runs on the controller: no module round trip)
      quantum.runbooks.write_report:
        dir: "{{ diagnose_report_dir }}/{{ inventory_hostname }}"
        files:
          # generated_at: qt-remediate never acts on a diagnosis older than max_report_age_minutes
          diagnosis-latest.json: >-
            {{ {'host': 'lab', 'generated_at': now(utc=true).strftime('%Y-%m-%dT%H:%M:%SZ'),
                'verdict': {'primary': 'HEALTHY'}} | to_json }}
"""


def setup(work):
    pb = work / "pb"
    pb.mkdir()
    (pb / "diagnose.yml").write_text(STUB_DIAGNOSE)
    (work / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"lab": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    (work / "policy.yml").write_text(json.dumps({
        "inventory": str(work / "inventory.yml"), "diagnose_playbook": str(pb / "diagnose.yml"),
        "playbook_dir": str(pb), "mitigations": {}}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(server, port):
    if server.poll() is not None:
        raise SystemExit(f"qt-remediate serve exited with rc {server.returncode}")
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def payload(fingerprint):
    return json.dumps({"version": "4", "status": "firing", "receiver": "bench", "alerts": [{
        "status": "firing", "labels": {"alertname": "OrderSubmitWithoutResponse", "qt_host": "lab"},
        "annotations": {}, "startsAt": "2026-11-28T00:00:00Z", "fingerprint": fingerprint}]}).encode()


def post(port, token, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/alert", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.status, json.loads(res.read())["decisions"][0]


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit(f"timed out after {timeout} s")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=20, help="alerts for the latency figure (default 20, max 200)")
    args = ap.parse_args()
    n = max(1, min(args.alerts, 200))
    with tempfile.TemporaryDirectory(prefix="qt-bench-webhook-") as tmp:
        work = Path(tmp)
        setup(work)
        reports, port, token = work / "reports", free_port(), secrets.token_hex(16)
        env = {**os.environ, "QT_REMEDIATE_TOKEN": token, "QT_REMEDIATE_POLICY": str(work / "policy.yml"),
               "QT_REPORTS_DIR": str(reports)}
        server = subprocess.Popen([str(QT_REMEDIATE), "serve", "--port", str(port), "--quiet"], env=env,
                                  stderr=open(work / "serve.log", "w"), start_new_session=True)
        runs = reports / "remediation" / "runs"
        audit = reports / "audit.jsonl"

        def decided(run_id):
            """The decision is audited and the host is free again for the next alert."""
            if not (audit.exists() and run_id in audit.read_text()):
                return False
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as res:
                return not json.loads(res.read())["busy_hosts"]

        try:
            wait_for(lambda: listening(server, port), 30)
            latencies = []
            for i in range(n):
                sent = time.time()
                status, decision = post(port, token, payload(f"{i:016x}"))
                assert status == 202 and decision["result"] == "queued", decision
                command = runs / decision["run_id"] / "diagnose" / "artifacts" / "diagnose" / "command"
                wait_for(command.exists, 60)
                latencies.append(command.stat().st_mtime - sent)
                run_id = decision["run_id"]
                wait_for(lambda run_id=run_id: decided(run_id), 120)   # one host: wait before the next alert
            ms = [x * 1000 for x in latencies]
            print(f"alert posted -> ansible-runner started, {n} alerts: median {statistics.median(ms):.1f} ms, "
                  f"p95 {pct(ms, 95):.1f} ms, max {max(ms):.1f} ms")

            before = {p.name for p in runs.iterdir()}
            answers, lock = [], threading.Lock()
            body = payload("b" * 16)

            def burst(count):
                for _ in range(count):
                    t0 = time.monotonic()
                    status, decision = post(port, token, body)
                    with lock:
                        answers.append((status, decision["result"], decision.get("run_id"), time.monotonic() - t0))

            started = time.monotonic()
            threads = [threading.Thread(target=burst, args=(5,)) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            took = time.monotonic() - started
            queued = [a[2] for a in answers if a[1] == "queued"]
            for run_id in queued:
                wait_for(lambda run_id=run_id: decided(run_id), 120)
            new_runs = {p.name for p in runs.iterdir()} - before
            answer_ms = [a[3] * 1000 for a in answers]
            print(f"burst: {len(answers)} identical alerts in {took:.2f} s -> {len(queued)} queued, "
                  f"{sum(a[1] == 'skipped' for a in answers)} skipped as duplicates, {len(new_runs)} run(s) started; "
                  f"202 answered in median {statistics.median(answer_ms):.1f} ms, p95 {pct(answer_ms, 95):.1f} ms")
            ok = len(answers) == 100 and len(queued) == 1 and len(new_runs) == 1
            print("exactly one run: " + ("yes" if ok else "NO"))
            return 0 if ok else 1
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
