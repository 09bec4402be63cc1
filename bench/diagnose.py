#!/usr/bin/env python3
"""Wall time and peak memory of `playbooks/diagnose.yml` against the runbook's
hand-typed check 1, measured on the running lab in the same run.

Prints ratios (playbook / baseline); no thresholds, no assertions.
Usage: make bench   (or: .venv/bin/python bench/diagnose.py [--runs N])
"""
import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = [  # runbook, check 1, as pasted by a human
    "docker ps | grep quantum_auto_executor",
    "docker logs quantum_auto_executor --tail 100 2>&1 | grep ORDER_",
    "docker logs quantum_auto_executor --tail 200 2>&1 | grep GATE_BLOCKED",
]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", "playbooks/diagnose.yml"]


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_baseline():
    for line in BASELINE:
        subprocess.run(line, shell=True, capture_output=True, cwd=ROOT)


def run_playbook():
    res = subprocess.run(PLAYBOOK, capture_output=True, cwd=ROOT)
    if res.returncode:
        sys.exit(f"diagnose.yml failed:\n{res.stdout.decode()[-2000:]}")


def peak_rss_mb(shell_line):
    """Peak RSS (MB) of the largest process a shell line starts, measured in a fresh child."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1], shell=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, shell_line], capture_output=True, text=True, cwd=ROOT)
    return int(out.stdout.strip()) / 1024  # Linux reports KiB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "lab" / "labctl"), "up"], check=True, capture_output=True)
    base = [timed(run_baseline) for _ in range(args.runs)]
    play = [timed(run_playbook) for _ in range(args.runs)]
    b, p = statistics.median(base), statistics.median(play)
    print(f"diagnose wall time: baseline (runbook check 1 by hand) {b:.2f}s, playbook {p:.2f}s, "
          f"ratio {p / b:.1f}x  (median of {args.runs})")
    mb, mp = peak_rss_mb("; ".join(BASELINE)), peak_rss_mb(shlex.join(PLAYBOOK))
    print(f"peak memory: baseline {mb:.0f} MB, playbook {mp:.0f} MB, ratio {mp / mb:.1f}x")


if __name__ == "__main__":
    main()
