"""Shared by every test: the collection on sys.path, and the rule that a test using the lab says so.

Nothing here needs the lab or imports a test helper: `ansible-test units` loads this file for
tests/unit. The lab fixtures are in lab_fixtures.py, the local simulator's in sim_process.py,
loaded by the conftest.py of the directories that use them (tests/lab, tests/modules)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Import module_utils as Ansible does: ansible_collections.quantum.runbooks.... A checkout already at
# .../ansible_collections/quantum/runbooks (as ansible-test wants it) is importable as it is; elsewhere
# .collections/ansible_collections/quantum/runbooks links back to the checkout (made by `make venv`,
# or here; git-ignored) - ansible.cfg's collections_path for the playbooks the tests run.
if ROOT.parts[-3:] == ("ansible_collections", "quantum", "runbooks"):
    sys.path.insert(0, str(ROOT.parents[2]))
else:
    _LINK = ROOT / ".collections" / "ansible_collections" / "quantum" / "runbooks"
    if not _LINK.is_symlink():
        _LINK.parent.mkdir(parents=True, exist_ok=True)
        _LINK.symlink_to("../../..")
    sys.path.insert(0, str(ROOT / ".collections"))


def pytest_collection_modifyitems(config, items):
    """A test that uses the lab must say so: `make test` runs the unmarked tests beside the lab tests,
    and an unmarked test that starts or heals the lab would break the lab test running at that moment."""
    for item in items:
        if "lab_session" in item.fixturenames and not ({"lab", "integration"} & {m.name for m in item.iter_markers()}):
            raise pytest.UsageError(f"{item.nodeid} uses the lab: mark it @pytest.mark.lab (or integration)")
