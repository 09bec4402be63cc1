"""Shared fixtures: the collection on sys.path, and the running lab."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sim_process import SimProcess

ROOT = Path(__file__).resolve().parents[1]
# Import module_utils as Ansible does: ansible_collections.quantum.runbooks....
sys.path.insert(0, str(ROOT / ".collections"))

LABCTL = [sys.executable, str(ROOT / "lab" / "labctl")]
RUN_DIR = ROOT / "lab" / "run" / "quantum_trader"


def labctl(*args, timeout=600):
    res = subprocess.run([*LABCTL, *args], capture_output=True, text=True, timeout=timeout)
    if res.returncode:
        raise AssertionError(f"labctl {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def pytest_collection_modifyitems(config, items):
    """A test that uses the lab must say so: `make test` runs the unmarked tests beside the lab tests,
    and an unmarked test that starts or heals the lab would break the lab test running at that moment."""
    for item in items:
        if "lab_session" in item.fixturenames and not ({"lab", "integration"} & {m.name for m in item.iter_markers()}):
            raise pytest.UsageError(f"{item.nodeid} uses the lab: mark it @pytest.mark.lab (or integration)")


_FAULTED = []  # set by `fault`: the next test that needs a healthy lab heals it first


@pytest.fixture(scope="session")
def lab_session():
    """The lab, up (once per session); healthy again at the end, for Molecule."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("no Docker engine: run `make docker` (or `make test`, which starts one)")
    status = json.loads(labctl("up"))
    yield status
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


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory):
    """The Binance simulator as a local process (no lab needed)."""
    server = SimProcess(tmp_path_factory.mktemp("binance_sim"))
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server):
    """The simulator, reset before and after the test (a reset also releases held requests)."""
    assert sim_server.ctl("POST", "/_sim/reset")[0] == 200
    yield sim_server
    sim_server.ctl("POST", "/_sim/reset")
