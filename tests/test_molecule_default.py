"""Molecule prints no CRITICAL line that is not a failure: before any scenario runs it loads
molecule/default/molecule.yml, and without that file it logged "CRITICAL 'molecule/default/molecule.yml' glob
failed" on every `molecule test --all`. The stub default scenario must run nothing.

Only commands that do not touch the lab: `syntax` (ansible-playbook --syntax-check) and the stub's own `test`,
with Molecule's working files in a temp dir."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MOLECULE = VENV_BIN / "molecule"

pytestmark = pytest.mark.skipif(not MOLECULE.exists(), reason=f"molecule not installed in {VENV_BIN}")


def molecule(*args, tmp_path):
    env = dict(os.environ, MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path), NO_COLOR="1",
               PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    res = subprocess.run([str(MOLECULE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


def test_a_scenario_run_prints_no_critical_glob_line(tmp_path):
    code, out = molecule("syntax", "-s", "diagnose", tmp_path=tmp_path)
    assert code == 0, out[-3000:]
    assert "glob failed" not in out and "CRITICAL" not in out, out[-3000:]
    assert "default scenario not found" not in out


def test_the_default_stub_runs_nothing(tmp_path):
    code, out = molecule("test", "-s", "default", tmp_path=tmp_path)
    assert code == 0, out[-3000:]
    assert "ansible-playbook" not in out and "CRITICAL" not in out, out[-3000:]  # no step, no playbook
    code, out = molecule("syntax", "-s", "default", tmp_path=tmp_path)  # the one step it cannot opt out of
    assert code == 0 and "CRITICAL" not in out, out[-3000:]
