"""qt-remediate test kit: stub playbooks and inventory in tmp_path, a fake runner, payloads. No lab."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from remediation.runner import RunResult

ROOT = Path(__file__).resolve().parents[2]
QT_REMEDIATE = Path(sys.executable).parent / "qt-remediate"

# Stand-ins for diagnose.yml and the mitigations: same interface (diagnose_report_dir, qt_audit_log,
# the report format), through the collection's own write_report and audit_event (so FQCNs must resolve).
STUB_DIAGNOSE = """---
- name: Stub diagnose
  hosts: all
  gather_facts: false
  tasks:
    - name: Slow diagnose, when the test asks (a real playbook mid-run, to kill its service)
      when: stub_gate is defined
      block:
        - name: Tell the test this run is under way
          ansible.builtin.file:
            path: "{{ stub_gate }}.started"
            state: touch
            mode: "0644"
        - name: Wait for the test's go
          ansible.builtin.wait_for:
            path: "{{ stub_gate }}"
            timeout: 120
    - name: Write the report as roles/diagnose_report does
      quantum.runbooks.write_report:
        dir: "{{ diagnose_report_dir }}/{{ inventory_hostname }}"
        files:
          diagnosis-latest.json: >-
            {{ {'host': inventory_hostname, 'generated_at': now(utc=true).strftime('%Y-%m-%dT%H:%M:%SZ'),
                'verdict': {'primary': stub_verdict, 'findings': stub_findings | default([]),
                            'recommended': {'action': 'stub advice'}}} | to_json }}
    - name: Audit the diagnosis
      quantum.runbooks.audit_event:
        path: "{{ qt_audit_log }}"
        action: diagnose
        result: "{{ stub_verdict }}"
"""
STUB_MITIGATION = """---
- name: Stub {name}
  hosts: all
  gather_facts: false
  tasks:
    - name: Leave a mark (check mode writes nothing)
      ansible.builtin.copy:
        dest: "{{{{ stub_marks }}}}/{name}-{{{{ inventory_hostname }}}}"
        content: "confirm={{{{ confirm | default('') }}}}\\n{{{{ 'override=' ~ qt_override_emergency_stop ~ '\\n'
                  if qt_override_emergency_stop is defined else '' }}}}"
        mode: "0644"
"""
MITIGATIONS = ("mitigate_restart_executor", "mitigate_cancel_stuck_orders", "emergency_stop")


class Kit:
    """One isolated remediation set-up: policy, inventory, stub playbooks, reports dir."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.pb = tmp_path / "pb"
        self.pb.mkdir()
        (self.pb / "diagnose.yml").write_text(STUB_DIAGNOSE)
        for name in MITIGATIONS:
            (self.pb / f"{name}.yml").write_text(STUB_MITIGATION.format(name=name))
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.reports = tmp_path / "reports"
        self.audit_log = self.reports / "audit.jsonl"
        self.inventory = tmp_path / "inventory.yml"
        self.policy_path = tmp_path / "policy.yml"
        self.set_verdict("HEALTHY")
        self.write_policy()

    def set_verdict(self, verdict, findings=(), host="lab", gate=None):
        host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "stub_verdict": verdict, "stub_findings": [{"code": c} for c in findings]}
        if gate:
            host_vars["stub_gate"] = str(gate)
        inv = {"all": {"hosts": {host: host_vars}, "vars": {"stub_marks": str(self.marks)}}}
        self.inventory.write_text(yaml.safe_dump(inv))

    def policy_data(self, **overrides):
        data = {
            "inventory": str(self.inventory), "diagnose_playbook": str(self.pb / "diagnose.yml"),
            "playbook_dir": str(self.pb), "run_timeout_s": 120,
            "mitigations": {
                "EXECUTOR_DOWN": "mitigate_restart_executor.yml",
                "EXECUTOR_HUNG": "mitigate_restart_executor.yml",
                "ORDERS_STUCK_AT_EXCHANGE": {"playbook": "mitigate_cancel_stuck_orders.yml",
                                             "extravars": {"confirm": True}, "enabled": True},
            },
        }
        data.update(overrides)
        return data

    def write_policy(self, **overrides):
        self.policy_path.write_text(yaml.safe_dump(self.policy_data(**overrides)))
        return self.policy_path

    def policy(self, **overrides):
        from remediation.policy import parse
        return parse(self.policy_data(**overrides), "test-policy")

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
        env.update(QT_REMEDIATE_POLICY=str(self.policy_path), QT_REPORTS_DIR=str(self.reports), **extra)
        return env

    def cli(self, *args, stdin=None, env=None, timeout=120):
        return subprocess.run([str(QT_REMEDIATE), *map(str, args)], input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=env or self.env(), cwd=self.tmp, check=False)

    def decisions(self):
        if not self.audit_log.exists():
            return []
        lines = [json.loads(x) for x in self.audit_log.read_text().splitlines()]
        return [x for x in lines if x["action"] == "remediation_decision"]

    def marks_present(self):
        return sorted(p.name for p in self.marks.iterdir())


class FakeRunner:
    """Records runs; 'diagnose' writes a report with the configured verdict. Optionally blocks (lock tests)."""

    def __init__(self, verdict="HEALTHY", findings=(), ok=True):
        self.verdict, self.findings, self.ok = verdict, list(findings), ok
        self.retry_after_s = None
        self.report_age_s = 0     # how old the diagnosis it writes says it is (a slow or stale diagnose)
        self.report_age_by_ident = {}   # the same per run ident (diagnose, rediagnose)
        self.extra_findings = []  # full finding dicts ({code, summary, facts}) besides the codes
        self.recommended = {"action": "advice"}
        self.error = None         # RunResult.error of a run that could not start
        self.clock = time.time    # the engine's clock (tests fake it): the report's generated_at
        self.calls = []
        self.gate = None          # threading.Event: runs wait on it when set
        self.started = threading.Event()

    def __call__(self, playbook, *, run_dir, ident, inventory, limit=None, extravars=None, check=False,
                 vault_password_file=None, timeout=None, actor=None, screen=None):
        self.calls.append({"playbook": Path(playbook).name, "ident": ident, "limit": limit, "check": check,
                           "extravars": dict(extravars or {})})
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        if self.error:
            return RunResult("error", None, 0.01, None, self.error)
        if ident in ("diagnose", "rediagnose"):
            out = Path(extravars["diagnose_report_dir"]) / limit
            out.mkdir(parents=True, exist_ok=True)
            from datetime import datetime, timezone
            age = self.report_age_by_ident.get(ident, self.report_age_s)
            stamp = datetime.fromtimestamp(self.clock() - age, timezone.utc)
            report = {"host": limit, "generated_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "verdict": {"primary": self.verdict,
                                  "findings": [{"code": c} for c in self.findings] + self.extra_findings,
                                  "recommended": self.recommended},
                      "checks": {"binance": {"evidence": {"retry_after_s": self.retry_after_s}}}}
            (out / "diagnosis-latest.json").write_text(json.dumps(report))
        status = "successful" if self.ok or ident in ("diagnose", "rediagnose") else "failed"
        return RunResult(status, 0 if status == "successful" else 2, 0.01, str(run_dir / "artifacts" / ident))

    @property
    def mitigations(self):
        return [c for c in self.calls if c["ident"] == "mitigate"]
