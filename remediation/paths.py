"""Where things live: the checkout, and the collection's module_utils on sys.path."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# The package runs from the checkout (editable install): it needs the playbooks and roles next to it.
ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"  # ansible_collections/quantum/runbooks links back to ROOT

# Import module_utils as Ansible does (ansible_collections.quantum.runbooks...), like tests/conftest.py.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def reports_dir(override=None):
    """Audit log, state and run directories all live under one reports dir (QT_REPORTS_DIR)."""
    return Path(override or os.environ.get("QT_REPORTS_DIR") or ROOT / "reports").resolve()


def default_policy_file():
    """QT_REMEDIATE_POLICY, else config/remediation_policy.yml if present, else the shipped example."""
    env = os.environ.get("QT_REMEDIATE_POLICY")
    if env:
        return Path(env)
    local = ROOT / "config" / "remediation_policy.yml"
    return local if local.exists() else Path(__file__).with_name("policy.example.yml")


def from_root(path):
    """Policy paths are relative to the checkout, whatever the current directory."""
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else ROOT / path
