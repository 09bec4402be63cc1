"""Fixtures for the tests on the running lab (lab/labctl): imported by the conftest.py of each
directory that has such tests (tests/lab, and tests/modules for its integration tests). Every test
using them is marked `lab` or `integration` (checked in tests/conftest.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"

__all__ = ["fault", "lab", "lab_keys", "lab_session", "labctl"]


def labctl(*args, timeout=600):
    res = subprocess.run([*LABCTL, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode:
        raise AssertionError(f"labctl {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res.stdout


_FAULTED = []  # set by `fault`: the next test that needs a healthy lab heals it first
# Each conftest that imports `lab_session` gets its own session fixture: the lab is started once and
# healed once all the same.
_SESSION = {}


@pytest.fixture(scope="session")
def lab_session():
    """The lab, up (once per session); healthy again at the end, for Molecule."""
    if "status" not in _SESSION:
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
            pytest.fail("no Docker engine: run `make docker` (or `make test`, which starts one)")
        _SESSION["status"] = json.loads(labctl("up"))
    yield _SESSION["status"]
    if _SESSION.pop("status", None) is not None:
        labctl("fault", "healthy")


@pytest.fixture
def lab(lab_session):
    """The lab, healthy (orders flowing). Healing is deferred from the last `fault` test to here:
    a test that injects faults next does not need it (`labctl fault X` clears the others itself)."""
    if _FAULTED:
        labctl("fault", "healthy")
        _FAULTED.clear()
    return lab_session


@pytest.fixture
def fault(lab_session):
    """Inject faults for one test (exactly these; the rest are cleared). The next test that asks for
    `lab` finds it healed."""
    def inject(*names):
        _FAULTED.append(names)
        labctl("fault", *names)
    yield inject


@pytest.fixture(scope="session")
def lab_keys(lab_session):
    values = {}
    for line in (RUN_DIR / "sim.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


@pytest.fixture
def qt_owns_the_project():
    """The local inventory runs as root and may leave root's files in the project; a production host has
    one owner (labctl gives them back on every fault switch; this is for the tests that switch none)."""
    if str(ROOT / "lab") not in sys.path:
        sys.path.insert(0, str(ROOT / "lab"))
    import sshhost  # lab/ is not a package
    sshhost.give_back(RUN_DIR)
