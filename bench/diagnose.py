#!/usr/bin/env python
"""diagnose.yml against the runbook's own check commands (bench/runbook_checks.sh),
on the running lab, in the same run: healthy and under binance_timeout. The same playbook over
SSH (inventory/lab-ssh.yml: the on-call account becoming qt, pipelining on, ansible's default
ControlPersist=60s reusing the connection between runs) is timed beside it: ratio SSH / local.

Prints wall-time ratios (playbook / script) and peak memory; no thresholds,
no assertions. Targets (issue 4): <= 2.0x the script when healthy, <= 10 s
under every fault (the script itself can hang there; it is cut at --cap s).

Usage: make bench   (or: .venv/bin/python bench/diagnose.py [--runs N] [--cap S])
"""
import argparse
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
SCRIPT = ["bash", str(ROOT / "bench" / "runbook_checks.sh")]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", "diagnose.yml",
            "-e", "diagnose_report_dir=/tmp/qt-bench-reports"]
PLAYBOOK_SSH = [PLAYBOOK[0], "-i", "inventory/lab-ssh.yml", *PLAYBOOK[3:]]
PREPARE_SSH = [PLAYBOOK[0], "-i", "inventory/lab-ssh.yml", "playbooks/prepare_host.yml"]


def wall(cmd, cap):
    """Seconds the command took, or None when it was still running after `cap` seconds."""
    start = time.perf_counter()
    try:
        subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=cap, check=False)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def peak_rss_mb(cmd, cap):
    """Peak RSS (MB) of the largest process the command starts, measured in a fresh child."""
    code = ("import resource, subprocess, sys\n"
            "try:\n    subprocess.run(sys.argv[2:], capture_output=True, timeout=float(sys.argv[1]))\n"
            "except subprocess.TimeoutExpired:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(cap), *cmd], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    return int(out.stdout.strip()) / 1024  # Linux reports KiB


def median(values):
    done = [v for v in values if v is not None]
    return statistics.median(done) if len(done) == len(values) else None


def fmt(seconds, cap):
    return f"{seconds:.2f}s" if seconds is not None else f"> {cap}s (still hanging, cut)"


def bench(fault, runs, cap):
    subprocess.run([*LABCTL, "fault", fault], check=True, capture_output=True)
    script = median([wall(SCRIPT, cap) for _dummy in range(runs)])
    play = median([wall(PLAYBOOK, cap) for _dummy in range(runs)])
    ssh = median([wall(PLAYBOOK_SSH, cap) for _dummy in range(runs)])
    ratio = f"{play / script:.1f}x" if script and play else "n/a (script did not finish)"
    ssh_ratio = f"{ssh / play:.2f}x" if ssh and play else "n/a"
    print(f"{fault:16} script {fmt(script, cap):>30}  diagnose.yml {fmt(play, cap):>10}  ratio {ratio}"
          f"  | over SSH {fmt(ssh, cap):>10}  SSH/local {ssh_ratio}")
    return play


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--cap", type=float, default=30, help="seconds after which a run is cut")
    parser.add_argument("--faults", default="healthy,binance_timeout", help="comma-separated lab faults")
    args = parser.parse_args()
    print(f"median of {args.runs} runs; lab faults injected with lab/labctl; "
          f"baseline: {shlex.join(SCRIPT[1:])}")
    subprocess.run([*LABCTL, "up"], check=True, capture_output=True)
    subprocess.run(PREPARE_SSH, cwd=ROOT, check=True, capture_output=True)  # the SSH host's venv (idempotent)
    try:
        for fault in args.faults.split(","):
            bench(fault, args.runs, args.cap)
        subprocess.run([*LABCTL, "fault", "healthy"], check=True, capture_output=True)
        mb, mp = peak_rss_mb(SCRIPT, args.cap), peak_rss_mb(PLAYBOOK, args.cap)
        print(f"peak memory (healthy): script {mb:.0f} MB, diagnose.yml {mp:.0f} MB, ratio {mp / mb:.1f}x")
    finally:
        subprocess.run([*LABCTL, "fault", "healthy"], capture_output=True, check=False)
    print(f"(bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
