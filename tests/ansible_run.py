"""Run one of our modules for real, the way a playbook would: `ansible localhost -m ...`."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def run_module(module, args, check=False, diff=False, timeout=120):
    """(the host's result dict, stdout+stderr) of `ansible localhost -m quantum.runbooks.<module>`."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
           "-m", f"quantum.runbooks.{module}", "-a", json.dumps(args)]
    cmd += ["--check"] if check else []
    cmd += ["--diff"] if diff else []
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    # The json callback's document comes first; ansible.cfg's timer callback may print after it.
    out, _dummy = json.JSONDecoder().raw_decode(res.stdout.lstrip())
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"], res.stdout + res.stderr
