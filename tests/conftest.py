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


@pytest.fixture(scope="session")
def lab():
    """The lab, up and healthy (orders flowing). Left running afterwards for Molecule."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("no Docker engine: run `make docker` (or `make test`, which starts one)")
    status = json.loads(labctl("up"))
    yield status
    labctl("fault", "healthy")


@pytest.fixture
def fault(lab):
    """Inject faults for one test; the lab is healed afterwards."""
    def inject(*names):
        labctl("fault", *names)
    yield inject
    labctl("fault", "healthy")


@pytest.fixture(scope="session")
def lab_keys(lab):
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
