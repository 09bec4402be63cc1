"""Every changing playbook against a host that does not answer: one audit record and one state line
saying nothing was changed (no lab needed: nothing is reached)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = {
    "mitigate_restart_executor.yml": ("restart_executor", []),
    "mitigate_cancel_stuck_orders.yml": ("cancel_stuck_orders", ["-e", "confirm=true"]),
    "emergency_stop.yml": ("emergency_stop", ["-e", "confirm=ABORT"]),
    "resume_trading.yml": ("resume_trading", ["-e", "confirm=RESUME"]),
    "rollback.yml": ("rollback", ["-e", "trading_mode=paper"]),
    "disarm_countdown.yml": ("countdown_cancel_all", []),
}


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_a_mitigation_against_an_unreachable_host_audits_it_and_says_nothing_changed(name, tmp_path):
    inventory = tmp_path / "down.yml"
    inventory.write_text(
        "all:\n  children:\n    quantum_trader:\n      hosts:\n        down-host:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: 1\n          ansible_connection: ssh\n"
        f"          ansible_ssh_common_args: -o ConnectTimeout=3 -o UserKnownHostsFile={tmp_path}/known_hosts\n")
    audit = tmp_path / "audit.jsonl"
    action, extra = PLAYBOOKS[name]
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                          f"playbooks/{name}", *extra, "-e", f"qt_audit_log={audit}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "STATE: down-host is unreachable" in res.stdout and "nothing was changed there" in res.stdout, \
        res.stdout[-3000:]
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (record["action"], record["result"], record["host"]) == (action, "unreachable", "down-host")
