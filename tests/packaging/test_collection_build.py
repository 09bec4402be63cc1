"""The tarball `ansible-galaxy collection build` makes from galaxy.yml: the collection and its docs,
not the lab, the test suites, the benchmarks (nor their git-ignored results), the remediation
service or the dev tooling. Only tests/sanity ships (Automation Hub runs sanity on the tarball)."""
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SHIPPED = {"README.md", "CHANGELOG.md", "MANIFEST.json", "FILES.json", "meta", "plugins", "roles", "playbooks",
           "docs", "diagnose.yml", "inventory", "alerts", "rulebooks", "execution-environment",
           "execution-environment.yml", "requirements.txt", "requirements.yml", "ansible.cfg", ".ansible-lint",
           ".ansible-lint-ignore", "tests"}
NEVER = {"lab", "molecule", "bench", "remediation", "scripts", ".github", ".ci", ".config", ".collections",
         ".venv", "reports", "Makefile", "pyproject.toml", "requirements-dev.txt", "requirements-eda.txt"}


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    (tarball,) = out.glob("quantum-runbooks-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return [m.name for m in tar.getmembers()]


def test_only_the_collection_ships(members):
    top = {name.split("/", 1)[0] for name in members}
    assert not top & NEVER, sorted(top & NEVER)
    assert top <= SHIPPED, sorted(top - SHIPPED)
    for needed in ("meta/runtime.yml", "plugins/modules/kill_switch.py", "roles/executor_health/README.md",
                   "playbooks/diagnose.yml"):
        assert needed in members


def test_of_the_tests_only_the_sanity_ignores_ship(members):
    tests = [name for name in members if name.startswith("tests/") and name != "tests/"]
    assert tests and all(name.startswith("tests/sanity") for name in tests), tests
