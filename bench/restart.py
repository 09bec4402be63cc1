#!/usr/bin/env python
"""Quick fix 1, measured on the lab in the same run: the runbook's
`docker compose restart auto-executor; sleep 15` against
playbooks/mitigate_restart_executor.yml, both on a hung executor.

The runbook's way only waits; the playbook's way diagnoses first, restarts and
waits until a fresh intent is answered. Prints wall times, the ratio and the
time until the executor answered an intent again (readiness); no assertions.
Target (issue 5): playbook <= readiness time + 1 s.
Usage: .venv/bin/python bench/restart.py [--runs N]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"
LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml",
            "playbooks/mitigate_restart_executor.yml", "-e", "qt_audit_log=/tmp/qt-bench-audit.jsonl"]
RUNBOOK = "docker compose restart auto-executor && sleep 15"


def answered_since(epoch):
    """Seconds from `epoch` to the first ORDER_RESPONSE logged after it, or None."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    out = subprocess.run(["docker", "logs", "--since", since, "quantum_auto_executor"], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "ORDER_RESPONSE":
            stamp = datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            return max(stamp.timestamp() - epoch, 0.0)
    return None


def one(way):
    subprocess.run([*LABCTL, "fault", "executor_hang"], check=True, capture_output=True)
    start = time.time()
    if way == "runbook":
        subprocess.run(RUNBOOK, shell=True, cwd=RUN_DIR, check=True, capture_output=True)
    else:
        subprocess.run(PLAYBOOK, cwd=ROOT, check=True, capture_output=True)
    wall = time.time() - start
    return wall, answered_since(start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([*LABCTL, "up"], check=True, capture_output=True)
    try:
        results = {way: [one(way) for _dummy in range(args.runs)] for way in ("runbook", "playbook")}
    finally:
        subprocess.run([*LABCTL, "fault", "healthy"], capture_output=True, check=False)
    med = {w: statistics.median(r[0] for r in rs) for w, rs in results.items()}
    ready = {w: statistics.median(r[1] for r in rs if r[1] is not None) for w, rs in results.items()}
    print(f"median of {args.runs} runs on a hung executor (lab fault executor_hang)")
    for way in ("runbook", "playbook"):
        print(f"{way:9} wall {med[way]:6.2f}s   first intent answered after {ready[way]:6.2f}s")
    print(f"ratio playbook/runbook wall time: {med['playbook'] / med['runbook']:.2f}x; "
          f"playbook minus its own readiness: {med['playbook'] - ready['playbook']:.2f}s")


if __name__ == "__main__":
    main()
