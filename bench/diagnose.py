#!/usr/bin/env python
"""Time to verdict, measured on the running lab in one run against two baselines measured in the
same run: the runbook's own check commands as a script (bench/runbook_checks.sh) and Ansible's floor
(a one-task playbook on the same inventory). Prints ratios; no thresholds, no assertions.

- diagnose.yml on the healthy lab and under each lab fault (wall and controller CPU; the verdict
  is printed so a wrong one shows);
- the same playbook over SSH (inventory/lab-ssh.yml: the on-call account becoming qt, pipelining,
  ControlPersist reusing the connection): SSH / local;
- a fleet: the lab listed as 1, 5, 10 and 20 inventory hosts (default forks): wall, CPU per host and
  the controller's peak memory (the largest process), and the ratio to one host; over SSH (the production
  path: the probes run on the host, so the CPU is the controller's alone) and locally (the controller also
  runs every host's probe module).

Goals (issue 15): healthy <= 2.5x the script; every fault <= 4 s; SSH <= 1.3x local; <= 1 CPU-second
per host; 20 hosts <= 3x one host; peak memory flat from 1 to 20 hosts.

Usage: make bench   (or: .venv/bin/python bench/diagnose.py [--runs N] [--faults a,b] [--fleet 1,5,10,20])
"""
import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
SCRIPT = ["bash", str(ROOT / "bench" / "runbook_checks.sh")]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
REPORTS = tempfile.mkdtemp(prefix="qt-bench-reports-")
# Keep the bench's diagnoses out of the lab's audit log (the post-mortem's timeline).
EXTRA = ["-e", f"diagnose_report_dir={REPORTS}", "-e", f"qt_audit_log={REPORTS}/audit.jsonl"]


def playbook(inventory, name="diagnose.yml"):
    return [ANSIBLE_PLAYBOOK, "-i", str(inventory), name, *EXTRA]


def measure(cmd, cap):
    """(wall s, CPU s of the command and all its children, peak RSS MB of its largest process); wall None when
    it was cut at `cap` s. Run through a fresh Python so the RSS is this command's alone."""
    code = ("import json, resource, subprocess, sys, time\n"
            "t = time.perf_counter(); cut = False\n"
            "try:\n    subprocess.run(sys.argv[2:], capture_output=True, timeout=float(sys.argv[1]))\n"
            "except subprocess.TimeoutExpired:\n    cut = True\n"
            "wall = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps([None if cut else wall, r.ru_utime + r.ru_stime, r.ru_maxrss / 1024]))")
    out = subprocess.run([sys.executable, "-c", code, str(cap), *cmd], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return json.loads(out.stdout)


def medians(cmd, runs, cap):
    rows = [measure(cmd, cap) for _dummy in range(runs)]
    walls = [r[0] for r in rows]
    wall = statistics.median(walls) if None not in walls else None
    return wall, statistics.median(r[1] for r in rows), max(r[2] for r in rows)


def verdict(report_dir, host):
    try:
        return json.loads((Path(report_dir) / host / "diagnosis-latest.json").read_text())["verdict"]["primary"]
    except (OSError, ValueError, KeyError):
        return "?"


def fmt(seconds, cap):
    return f"{seconds:6.2f}s" if seconds is not None else f"> {cap:g}s (cut)"


def ratio(a, b):
    return f"{a / b:5.2f}x" if a and b else "  n/a"


def fleet_inventory(hosts, directory, source="lab.yml"):
    """inventory/<source> with its one host listed `hosts` times (NAME01..NAMENN), paths made absolute."""
    inv = yaml.safe_load((ROOT / "inventory" / source).read_text())
    group = inv["all"]["children"]["quantum_trader"]

    def absolute(value):
        return value.replace("{{ inventory_dir }}/..", str(ROOT)) if isinstance(value, str) else value
    (name, host), = group["hosts"].items()
    host = {k: absolute(v) for k, v in host.items()}
    group["vars"] = {k: absolute(v) for k, v in group["vars"].items()}
    group["hosts"] = {f"{name}{i:02d}": dict(host) for i in range(1, hosts + 1)}
    path = Path(directory) / f"fleet-{Path(source).stem}-{hosts}.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def bench_faults(faults, runs, cap, base):
    local, ssh = ROOT / "inventory" / "lab.yml", ROOT / "inventory" / "lab-ssh.yml"
    print(f"\n{'fault':16} {'verdict':26} {'diagnose.yml':>13} {'CPU':>7}  {'/script':>7} {'/floor':>7}"
          f"  {'over SSH':>9} {'SSH/local':>9}")
    for fault in faults:
        subprocess.run([*LABCTL, "fault", fault], check=True, capture_output=True)
        wall, cpu, _mb = medians(playbook(local), runs, cap)
        seen = verdict(REPORTS, "lab")
        ssh_wall = medians(playbook(ssh), runs, cap)[0] if fault in ("healthy", "binance_timeout") else None
        print(f"{fault:16} {seen:26} {fmt(wall, cap):>13} {cpu:6.2f}s  {ratio(wall, base['script']):>7}"
              f" {ratio(wall, base['floor']):>7}  {fmt(ssh_wall, cap) if ssh_wall else '':>9}"
              f" {ratio(ssh_wall, wall) if ssh_wall else '':>9}")


def bench_fleet(sizes, runs, cap, source, what):
    """The lab as a fleet. Over SSH the modules run under sshd, so the CPU is the controller's alone (the
    production path); locally every module also runs on the controller and counts in its CPU."""
    print(f"\nfleet, {what}\n{'hosts':>5} {'wall':>8} {'/1 host':>8} {'CPU/host':>9} {'peak MB':>8}  verdicts")
    one = None
    with tempfile.TemporaryDirectory(prefix="qt-bench-fleet-") as tmp:
        for hosts in sizes:
            inventory = fleet_inventory(hosts, tmp, source)
            wall, cpu, mb = medians(playbook(inventory), runs, cap)
            one = one or (wall if hosts == 1 else None)
            try:
                rows = json.loads(Path(REPORTS, "fleet-latest.json").read_text())["hosts"] if hosts > 1 else []
            except (OSError, ValueError):
                rows = []
            first = next(iter(yaml.safe_load(inventory.read_text())["all"]["children"]["quantum_trader"]["hosts"]))
            seen = sorted({r["verdict"] for r in rows}) or [verdict(REPORTS, first)]
            print(f"{hosts:5} {fmt(wall, cap):>8} {ratio(wall, one):>8} {cpu / hosts:8.2f}s {mb:8.0f}  {seen}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--cap", type=float, default=30, help="seconds after which a run is cut")
    parser.add_argument("--faults", default=None, help="comma-separated lab faults (default: all of labctl faults)")
    parser.add_argument("--fleet", default="1,5,10,20", help="fleet sizes (hosts), empty to skip")
    args = parser.parse_args()
    faults = args.faults.split(",") if args.faults else list(json.loads(subprocess.run(
        [*LABCTL, "faults"], check=True, capture_output=True, text=True).stdout))
    print(f"median of {args.runs} runs; {os.cpu_count()} CPUs; lab faults injected with lab/labctl")
    subprocess.run([*LABCTL, "up"], check=True, capture_output=True)
    subprocess.run([ANSIBLE_PLAYBOOK, "-i", "inventory/lab-ssh.yml", "playbooks/prepare_host.yml"], cwd=ROOT,
                   check=True, capture_output=True)  # the SSH host's venv (idempotent)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as one_task:
            one_task.write("- hosts: quantum_trader\n  gather_facts: false\n  tasks:\n"
                           "    - ansible.builtin.ping:\n")
            one_task.flush()
            floor = medians(playbook(ROOT / "inventory" / "lab.yml", one_task.name), args.runs, args.cap)
        script = medians(SCRIPT, args.runs, args.cap)
        print(f"baselines: script ({shlex.join(SCRIPT[1:])}) {script[0]:.2f}s wall {script[1]:.2f}s CPU "
              f"{script[2]:.0f} MB; one-task playbook (floor) {floor[0]:.2f}s wall {floor[1]:.2f}s CPU "
              f"{floor[2]:.0f} MB")
        bench_faults(faults, args.runs, args.cap, {"script": script[0], "floor": floor[0]})
        subprocess.run([*LABCTL, "fault", "healthy"], check=True, capture_output=True)
        if args.fleet:
            sizes = [int(n) for n in args.fleet.split(",")]
            bench_fleet(sizes, args.runs, args.cap, "lab-ssh.yml",
                        "over SSH (inventory/lab-ssh.yml listed N times): the controller's CPU alone")
            bench_fleet(sizes, args.runs, args.cap, "lab.yml",
                        "local (inventory/lab.yml listed N times): the controller also runs every host's probes")
    finally:
        subprocess.run([*LABCTL, "fault", "healthy"], capture_output=True, check=False)
    print(f"(bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; reports in {REPORTS})")


if __name__ == "__main__":
    main()
