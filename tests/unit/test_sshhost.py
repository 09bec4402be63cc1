"""lab/sshhost.py and scripts/ensure_sshhost.sh without the lab: they find the sbin tools when the
root shell's PATH lacks sbin, and never ask id(1) who they are (it may be a broken stub; CI has one).
Nothing here creates users, starts sshd or installs packages."""
import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Files of the SSH host's set-up: none may run id(1).
SSH_FILES = [ROOT / "lab/sshhost.py", ROOT / "scripts/ensure_sshhost.sh", ROOT / "tests/lab/test_ssh_host.py",
             *sorted(p for p in (ROOT / "roles/prepare_host").rglob("*") if p.is_file())]
ID_CALL = re.compile(r"""\$\(\s*id\b|`\s*id\b|\bid\s+-[a-zA-Z]|["']id["']\s*[,\]]|\bcommand:\s*id\b""")


@pytest.fixture
def sshhost():
    spec = importlib.util.spec_from_file_location("sshhost", ROOT / "lab" / "sshhost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_sbin(tmp_path):
    """A directory standing in for /usr/sbin, with a `useradd` that prints its PATH."""
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    tool = sbin / "useradd"
    tool.write_text('#!/bin/sh\necho "PATH=$PATH"\n')
    tool.chmod(0o755)
    return sbin


def test_sbin_is_searched_when_path_lacks_it(sshhost, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert sshhost._path().split(os.pathsep) == ["/usr/bin", "/bin", *SBIN]
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin")  # already there: not twice, order kept
    assert sshhost._path().split(os.pathsep) == ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"]


def test_an_sbin_tool_runs_by_its_absolute_path_and_its_children_see_sbin(sshhost, fake_sbin, monkeypatch):
    monkeypatch.setattr(sshhost, "SBIN_DIRS", (str(fake_sbin),))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert sshhost._tool("useradd") == str(fake_sbin / "useradd")
    res = sshhost._run(["useradd", "--help"])
    assert res.stdout.strip() == f"PATH=/usr/bin:/bin:{fake_sbin}"


def test_a_missing_tool_is_one_line_naming_its_package(sshhost, monkeypatch, tmp_path):
    monkeypatch.setattr(sshhost, "SBIN_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sshhost.SshHostError, match=r"runuser not found .*Debian package util-linux"):
        sshhost._run(["runuser", "-u", "qt", "--", "true"])
    with pytest.raises(sshhost.SshHostError, match=r"the Debian packages .*passwd.*util-linux"):
        sshhost.Host(tmp_path / "run" / "quantum_trader", print).check_tools()


def test_the_ssh_host_files_never_run_id():
    for path in SSH_FILES:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            assert not ID_CALL.search(line), f"{path.relative_to(ROOT)}:{number} runs id(1): {line.strip()}"
    assert "os.geteuid()" in (ROOT / "lab/sshhost.py").read_text()
    assert '"${EUID}" != 0' in (ROOT / "scripts/ensure_sshhost.sh").read_text()


def test_ensure_sshhost_puts_sbin_on_path_before_apt():
    text = (ROOT / "scripts/ensure_sshhost.sh").read_text()
    export = re.search(r"^export PATH=.*$", text, re.M)
    assert export and all(d in export.group(0) for d in SBIN), "no PATH with sbin"
    assert export.start() < text.index("apt-get install")
