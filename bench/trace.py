#!/usr/bin/env python
"""Runbook check 4 on a long log: the collection's correlation trace against the runbook's
`docker logs <c> 2>&1 | grep <id>`, on a throwaway container (no lab needed, the lab is not touched).

A container named qtbench_trace_<pid>, from the lab's base image, writes N JSON lines shaped like the
executor's (INTENT_RECEIVED / ORDER_SUBMIT / ORDER_RESPONSE / HEARTBEAT, one plain-text traceback line
per 1000); five of them carry the traced correlation_id (INTENT_RECEIVED and ORDER_SUBMIT at the start, an
ORDER_ERROR in the middle, the re-submit and its ORDER_RESPONSE at the end). It is removed at the end,
also on Ctrl-C. Then, each in a fresh child process:

  grep         docker logs <c> 2>&1 | grep -F <id>
  ansible      quantum.runbooks.container_logs through `ansible -i inventory/lab.yml lab -m ...`
               (names, correlation_id, since=3600 as roles/correlation_trace sends them; tail=-1, i.e.
               correlation_trace_max_lines=-1, so the whole log is read like grep does: the role's default
               20000 reads the last 20000 lines only)
  module       the same module file run on its own (python container_logs.py args.json): no controller
  in-process   the module's summarise() (module_utils log_follow + log_events) called in a plain Python
               process: the read alone, without any module start-up

Prints wall time and peak RSS (getrusage RUSAGE_CHILDREN of a wrapper: the largest process of the run)
with ratios to grep, the start-up cost of each way alone (the same runs with tail=0), and checks that
every way finds the same number of matching lines (a MISMATCH line otherwise: a defect). No thresholds,
no assertions; exit 2 when the base image is missing.
Usage: .venv/bin/python bench/trace.py [--lines 1000000] [--runs 1]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"
MODULE = ROOT / "plugins" / "modules" / "container_logs.py"
BASE_IMAGE = os.environ.get("BASE_IMAGE", "qt-lab-base:bookworm-1")  # lab/images/base/build_base.sh, labctl
CID = "5eedcafe-0f15-4e11-9d2b-7c0ffee0000f"
EXPECTED = 5
CAP = 900  # seconds after which one measured run is cut

# Runs inside the container (the base image's python3): N lines in 1000-line writes.
GENERATOR = r'''
import json, sys, time
N, CID = int(sys.argv[1]), sys.argv[2]
HITS = {0: "INTENT_RECEIVED", 1: "ORDER_SUBMIT", N // 2: "ORDER_ERROR", N - 2: "ORDER_SUBMIT", N - 1: "ORDER_RESPONSE"}
EVENTS = ("INTENT_RECEIVED", "ORDER_SUBMIT", "ORDER_RESPONSE", "HEARTBEAT")
out, buf = sys.stdout, []
for i in range(N):
    if i % 1000 == 0:
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)
        out.write("".join(buf))
        buf = []
    if i in HITS:
        buf.append(json.dumps({"ts": ts, "level": "INFO", "service": "auto-executor", "event": HITS[i],
                               "correlation_id": CID, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001",
                               "client_order_id": "qtx-" + CID.replace("-", "")[:20]}) + "\n")
    elif i % 1000 == 999:
        buf.append("Traceback (most recent call last): line %d of the noise a crashing thread prints\n" % i)
    else:
        k, n = i % 4, i // 4
        cid = "%08x-57c4-4de3-82db-%012x" % (n, n)
        corr = '"%s"' % cid if k < 3 else "null"
        buf.append('{"ts": "%s", "level": "INFO", "service": "auto-executor", "event": "%s", "correlation_id": %s, '
                   '"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.033", "price": "3000", '
                   '"client_order_id": "qtx-%08x57c44de382db", "latency_ms": %d}\n' % (ts, EVENTS[k], corr, n, i % 97))
out.write("".join(buf))
out.flush()
'''

# A fresh child: the module's own reading path, timed from after the imports.
IN_PROCESS = r'''
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import Engine
from ansible_collections.quantum.runbooks.plugins.module_utils.log_follow import summarise
params = json.loads(sys.argv[2])
start = time.perf_counter()
engine = Engine(params["docker_host"], params["timeout"])
out = {name: summarise(engine, name, params) for name in params["names"]}
print(json.dumps({"read_s": time.perf_counter() - start, "containers": out}))
'''

# Runs a command, prints its wall time and the peak RSS of its largest process (KiB), then its stdout.
WRAPPER = r'''
import resource, subprocess, sys, time
start = time.perf_counter()
try:
    proc = subprocess.run(sys.argv[2:], capture_output=True, timeout=float(sys.argv[1]))
    out, rc = proc.stdout, proc.returncode
except subprocess.TimeoutExpired:
    out, rc = b"", "timeout"
wall = time.perf_counter() - start
sys.stdout.write("%.3f %d %s\n" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc))
sys.stdout.buffer.write(out)
'''


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def measure(cmd, env=None):
    """(wall s, peak RSS MB, rc, stdout) of `cmd` run by a fresh wrapper process, in a process group of its
    own: an interrupted bench kills it with everything it started (ansible's workers, the module)."""
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(CAP), *cmd], stdout=subprocess.PIPE, cwd=ROOT,
                            env=env, start_new_session=True)
    try:
        stdout, _dummy = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode:
        raise SystemExit(f"the measuring wrapper failed (rc {proc.returncode})")
    head, _dummy, out = stdout.partition(b"\n")
    wall, rss, rc = head.decode().split()
    return float(wall), int(rss) / 1024, rc, out.decode("utf-8", "replace")


def start_container(name, lines):
    docker("run", "-d", "--name", name, "--label", "qtbench=trace", "-e", "QTBENCH_GEN=" + GENERATOR, BASE_IMAGE,
           "sh", "-c", 'python3 -c "$QTBENCH_GEN" "$0" "$1" && exec sleep infinity', str(lines), CID)
    deadline = time.monotonic() + max(120, lines / 5000)
    while time.monotonic() < deadline:  # the last line is the ORDER_RESPONSE: the whole log is written
        tail = docker("logs", "--tail", "1", name, check=False).stdout
        if CID in tail and "ORDER_RESPONSE" in tail:
            return
        if docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
            last = docker("logs", "--tail", "5", name, check=False).stderr
            raise SystemExit("the log container stopped early: " + last)
        time.sleep(1)
    raise SystemExit(f"the log container did not write {lines} lines in time")


def matches_of(result, name):
    return len(result["containers"][name]["correlation_matches"])


def run_grep(name):
    wall, rss, _rc, out = measure(["bash", "-c", 'docker logs "$0" 2>&1 | grep -F -- "$1"', name, CID])
    return wall, rss, len(out.splitlines()), None


def run_ansible(name, module_args):
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    ansible = str(Path(sys.executable).parent / "ansible")
    wall, rss, rc, out = measure([ansible, "-i", "inventory/lab.yml", "lab", "-m", "quantum.runbooks.container_logs",
                                  "-a", json.dumps(module_args)], env)
    try:
        # the JSON document first; ansible.cfg's timer callback prints its line after it
        result = json.JSONDecoder().raw_decode(out.lstrip())[0]["plays"][0]["tasks"][0]["hosts"]["lab"]
    except (ValueError, KeyError, IndexError):
        raise SystemExit(f"ansible failed (rc {rc}):\n{out[-2000:]}") from None
    if result.get("failed"):
        raise SystemExit(f"the module failed: {result.get('msg')}")
    return wall, rss, matches_of(result, name), None


def run_module(name, module_args, tmp):
    args = Path(tmp) / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    wall, rss, rc, out = measure([sys.executable, str(MODULE), str(args)], env)
    try:
        result = json.loads(out)
    except ValueError:
        raise SystemExit(f"the module failed (rc {rc}):\n{out[-2000:]}") from None
    return wall, rss, matches_of(result, name), None


def run_in_process(name, module_args):
    params = {"tail": 200, "since": 0, "since_ts": None, "keep_last": 20, "docker_host": "unix:///var/run/docker.sock",
              "timeout": 30, **module_args}
    wall, rss, rc, out = measure([sys.executable, "-c", IN_PROCESS, str(COLLECTIONS), json.dumps(params)])
    try:
        result = json.loads(out)
    except ValueError:
        raise SystemExit(f"the in-process read failed (rc {rc}):\n{out[-2000:]}") from None
    return wall, rss, matches_of(result, name), result["read_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="log lines (default 1000000, at most 5000000)")
    parser.add_argument("--runs", type=int, default=1, help="runs per way (median; default 1)")
    args = parser.parse_args()
    lines, runs = max(10, min(args.lines, 5_000_000)), max(1, min(args.runs, 9))
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        print(f"bench/trace.py: the lab's base image {BASE_IMAGE} is missing (build it: "
              f"lab/images/base/build_base.sh, or set BASE_IMAGE=...); nothing measured")
        return 2
    if not (COLLECTIONS / "ansible_collections" / "quantum" / "runbooks").exists():
        print("bench/trace.py: .collections/ansible_collections/quantum/runbooks is missing (make venv links it)")
        return 2
    name = f"qtbench_trace_{os.getpid()}"
    # Ctrl-C raises KeyboardInterrupt; a TERM or HUP does the same, so the container always goes.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    module_args = {"names": [name], "correlation_id": CID, "tail": -1, "since": 3600, "keep_last": 0}
    try:
        started = time.perf_counter()
        start_container(name, lines)
        print(f"{lines} log lines written by {name} ({BASE_IMAGE}) in {time.perf_counter() - started:.1f} s; "
              f"{EXPECTED} carry correlation_id {CID}; median of {runs} run(s)")
        with tempfile.TemporaryDirectory(prefix="qtbench-trace-") as tmp:
            ways = {"grep": lambda: run_grep(name), "ansible": lambda: run_ansible(name, module_args),
                    "module": lambda: run_module(name, module_args, tmp),
                    "in-process": lambda: run_in_process(name, module_args)}
            samples = {way: [] for way in ways}
            for _dummy in range(runs):  # interleaved, so a busy moment on the machine hits every way alike
                for way, run in ways.items():
                    samples[way].append(run())
            # The start-up cost on its own: the same runs reading nothing (tail=0).
            empty = dict(module_args, tail=0)
            startup = {"ansible": lambda: run_ansible(name, empty), "module": lambda: run_module(name, empty, tmp),
                       "in-process": lambda: run_in_process(name, empty)}
            startup = {way: statistics.median(run()[0] for _dummy in range(runs)) for way, run in startup.items()}
    finally:
        docker("rm", "-f", name, check=False)
    report(samples, startup)
    return 0


def report(samples, startup):
    med = {way: (statistics.median(s[0] for s in runs), max(s[1] for s in runs), [s[2] for s in runs],
                 [s[3] for s in runs]) for way, runs in samples.items()}
    base_wall, base_rss = med["grep"][0], med["grep"][1]
    labels = {"grep": "docker logs | grep", "ansible": "container_logs (ansible)",
              "module": "container_logs (module only)", "in-process": "summarise() in-process"}
    for way, (wall, rss, found, read_s) in med.items():
        extra = f"  (read alone {statistics.median(read_s):.2f} s)" if read_s[0] is not None else ""
        print(f"{labels[way]:30} wall {wall:7.2f} s  ({wall / base_wall:4.2f}x grep)   peak RSS {rss:6.0f} MB "
              f"({rss / base_rss:4.1f}x grep)   matching lines {found[-1]}{extra}")
    counts = {way: set(v[2]) for way, v in med.items()}
    if any(c != {EXPECTED} for c in counts.values()):
        print("MISMATCH: matching lines per way " + ", ".join(f"{w} {sorted(c)}" for w, c in counts.items())
              + f", expected {EXPECTED}")
    else:
        print(f"same matches: every way found the {EXPECTED} lines")
    print(f"start-up alone (tail=0, nothing read): ansible {startup['ansible']:.2f} s, module only "
          f"{startup['module']:.2f} s, in-process {startup['in-process']:.2f} s (python start and imports)")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the log container was removed", file=sys.stderr)
        sys.exit(130)
