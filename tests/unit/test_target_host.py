"""What a trading host needs (module_utils/target_host), the wheelhouse builder's marker closure,
and the one-line answers on a half-prepared host - all without the lab."""
import importlib.util
import io
import json
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import target_host as th
from ansible_collections.quantum.runbooks.plugins.module_utils.missing_library import missing_library
from ansible_collections.quantum.runbooks.plugins.module_utils.verdict import decide

ROOT = Path(__file__).resolve().parents[2]
FIX = "playbooks/prepare_host.yml"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_wheelhouse",
                                                  ROOT / "roles/prepare_host/files/build_wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- pins and names

def test_role_pins_are_the_requirements_pins():
    """The target gets the versions the controller tests with (requirements.txt)."""
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    defaults = (ROOT / "roles/prepare_host/defaults/main.yml").read_text()
    role = dict(re.findall(r"^  - ([\w.-]+)==([\w.]+)$", defaults, re.M))
    assert set(role) == {"requests"}  # the Binance, Redis and Docker clients are stdlib
    assert role == {name: pins[name] for name in role}
    assert set(th.LIBRARIES) == set(role)


def test_normalize_and_missing_requirements():
    assert th.normalize("Python_Binance") == "python-binance"
    assert th.normalize("typing.extensions") == "typing-extensions"
    wanted = ["python_binance==1.0.37", "redis==5.3.1", "requests==2.34.2"]
    installed = ["python-binance==1.0.37", "redis==5.2.0"]
    assert th.missing_requirements(wanted, installed) == ["redis==5.3.1", "requests==2.34.2"]
    assert th.missing_requirements(wanted, wanted) == []


@pytest.mark.parametrize("machine,glibc,has,lacks", [
    ("x86_64", "2.36", ["manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"], []),
    ("aarch64", "2.17", ["manylinux_2_17_aarch64", "manylinux2014_aarch64"], ["manylinux_2_28_aarch64"]),
])
def test_wheel_platforms_follow_glibc(machine, glibc, has, lacks):
    tags = th.wheel_platforms(machine, glibc)
    assert set(has) <= set(tags) and not set(lacks) & set(tags)
    assert tags[0] == f"manylinux_2_{glibc.split('.')[1]}_{machine}" and tags[-1] == f"linux_{machine}"


def test_no_wheel_platform_without_a_glibc_version():
    assert th.wheel_platforms("x86_64", "") == [] and th.wheel_platforms("x86_64", "1.2") == []


# ---------------------------------------------------------------- the virtualenv as found

def make_venv(path, version="3.11.2", dists=()):
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("")
    (path / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\n")
    site = path / "lib" / f"python{'.'.join(version.split('.')[:2])}" / "site-packages"
    site.mkdir(parents=True)
    for dist in dists:
        (site / f"{dist}.dist-info").mkdir()
    return path


def test_venv_state_lists_installed_distributions(tmp_path):
    venv = make_venv(tmp_path / "venv", dists=["python_binance-1.0.37", "redis-5.3.1"])
    state = th.venv_state(str(venv), "3.11")
    assert state["exists"] and state["installed"] == ["python-binance==1.0.37", "redis==5.3.1"]


def test_venv_made_with_another_python_is_not_usable(tmp_path):
    state = th.venv_state(str(make_venv(tmp_path / "venv", version="3.9.2")), "3.11")
    assert not state["exists"] and state["python_version"] == "3.9" and "3.11" in state["reason"]


def test_no_venv(tmp_path):
    state = th.venv_state(str(tmp_path / "none"), "3.11")
    assert not state["exists"] and state["python_version"] is None and "no virtualenv" in state["reason"]


# ---------------------------------------------------------------- Docker, project

class FakeDocker:
    """A unix socket answering GET /version like the Docker API."""

    def __init__(self, path, status=200):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.status = status
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _dummy = self.sock.accept()
        conn.recv(4096)
        body = json.dumps({"Version": "28.2.2"}).encode()
        conn.sendall(b"HTTP/1.0 %d X\r\nContent-Type: application/json\r\n\r\n" % self.status + body)
        conn.close()


def test_docker_access_reads_the_engine_version(tmp_path):
    FakeDocker(tmp_path / "docker.sock")
    assert th.docker_access(f"unix://{tmp_path}/docker.sock") == {"ok": True, "version": "28.2.2", "error": None}


def test_docker_access_without_socket_is_one_line(tmp_path):
    res = th.docker_access(f"unix://{tmp_path}/none.sock")
    assert res["ok"] is False and res["kind"] == "absent" and "is the Docker engine running" in res["error"]


def test_docker_access_denied_says_so(monkeypatch):
    def denied(engine):
        raise th.DockerError("permission denied on /var/run/docker.sock", kind="permission")

    monkeypatch.setattr(th.Engine, "version", denied)
    assert th.docker_access("unix:///var/run/docker.sock") == {
        "ok": False, "version": None, "error": "permission denied on /var/run/docker.sock", "kind": "permission"}


def test_tcp_docker_host_is_not_probed():
    assert th.docker_access("tcp://10.0.0.1:2376")["ok"] is None


def test_project_state(tmp_path):
    assert th.project_state(str(tmp_path / "nope")) == {
        "path": str(tmp_path / "nope"), "exists": False, "owner": None, "env": {},
        "error": f"{tmp_path / 'nope'} does not exist"}
    (tmp_path / ".env").write_text("A=1\n")
    (tmp_path / ".env").chmod(0o600)
    state = th.project_state(str(tmp_path))
    assert state["exists"] and state["env"] == {"exists": True, "owner": state["owner"], "mode": "0600",
                                                "readable": True}


# ---------------------------------------------------------------- one line per gap

FACTS = {"python": {"executable": "/usr/bin/python3"}, "user": {"name": "oncall"}}


@pytest.mark.parametrize("extra,code,words", [
    ({"libraries": {"requests": "No module named 'requests'"}},
     "LIBRARIES_MISSING", ["/usr/bin/python3", "requests", f"-i inventory/x.yml {FIX}"]),
    ({"docker": {"ok": False, "error": "permission denied on /var/run/docker.sock", "kind": "permission"}},
     "DOCKER_DENIED", ["oncall cannot talk to Docker", "ansible_become_user"]),
    ({"docker": {"ok": False, "error": "/var/run/docker.sock does not exist", "kind": "absent"}},
     "DOCKER_UNREACHABLE", ["Docker is not reachable for oncall"]),
    ({"compose": {"ok": False, "error": "docker: 'compose' is not a docker command."}},
     "COMPOSE_MISSING", ["~oncall/.docker/cli-plugins/", "docker-compose-plugin"]),
    ({"project": {"path": "/srv/x", "exists": False, "error": "/srv/x does not exist"}},
     "PROJECT_MISSING", ["/srv/x does not exist", "qt_project_dir"]),
    ({"project": {"path": "/srv/x", "exists": True, "owner": "qt",
                  "env": {"exists": True, "owner": "qt", "mode": "0600", "readable": False}}},
     "ENV_UNREADABLE", ["oncall cannot read /srv/x/.env (owner qt, mode 0600)", "ansible_become_user: qt"]),
    ({"project": {"path": "/srv/x", "exists": True, "owner": "root",
                  "env": {"exists": True, "owner": "root", "mode": "0600", "readable": True}},
      "expect_owner": "oncall"},
     "PROJECT_OWNER", ["belongs to root, not oncall", "chown -R oncall: /srv/x"]),
])
def test_each_gap_is_one_line_naming_its_fix(extra, code, words):
    found = th.problems(dict(FACTS, **extra), "inventory/x.yml")
    assert [f["code"] for f in found] == [code]
    assert "\n" not in found[0]["msg"]
    for word in words:
        assert word in found[0]["msg"]


def test_a_ready_host_has_no_problem():
    facts = dict(FACTS, libraries=dict.fromkeys(th.LIBRARIES.values()), docker={"ok": True},
                 compose={"ok": True}, expect_owner="qt",
                 project={"path": "/p", "exists": True, "owner": "qt", "env": {"exists": True, "readable": True}})
    assert th.problems(facts) == []


def test_a_missing_library_names_the_interpreter_and_the_fix():
    msg = missing_library("redis")
    assert msg.startswith("Failed to import the required Python library (redis) on ")
    assert FIX in msg and "ansible_python_interpreter" in msg and "\n" not in msg
    assert "(needed for the kill switch)" in missing_library("redis", "needed for the kill switch")


def test_inconclusive_on_an_unprepared_host_recommends_prepare_host_and_says_it_once():
    line = f"the target's Python /usr/bin/python3 lacks redis: run ansible-playbook -i inv.yml {FIX}"
    not_run = {"check_error": line}
    verdict = decide({"executor": not_run, "binance": not_run, "event_bus": not_run, "trace": not_run},
                     inventory="inv.yml")
    assert verdict["primary"] == "INCONCLUSIVE"
    assert verdict["recommended"]["command"] == f"ansible-playbook -i inv.yml {FIX}"
    assert verdict["findings"][0]["evidence"] == [f"all checks: {line}"]


def test_inconclusive_for_another_reason_keeps_its_advice():
    verdict = decide({"executor": {"check_error": "host unreachable: timeout"}, "binance": None, "event_bus": None})
    assert verdict["primary"] == "INCONCLUSIVE" and verdict["recommended"]["playbook"] == "diagnose.yml"


# ---------------------------------------------------------------- the wheelhouse builder

def fake_wheel(directory, name, version, requires=()):
    path = directory / f"{name}-{version}-py3-none-any.whl"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires), "\nlong description\nRequires-Dist: nope\n"])
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


@pytest.fixture
def house(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    fake_wheel(d, "redis", "5.3.1", ['async-timeout>=4.0.3; python_full_version < "3.11.3"', "pyjwt>=2"])
    fake_wheel(d, "pyjwt", "2.10.1", ['cryptography>=3; extra == "crypto"'])
    fake_wheel(d, "requests", "2.34.2", ["idna<4,>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"'])
    fake_wheel(d, "idna", "3.20")
    fake_wheel(d, "pip", "26.3")
    return d


def test_markers_are_evaluated_for_the_target_python_not_the_controller(house):
    b = load_builder()
    roots = ["redis==5.3.1", "requests==2.34.2"]
    assert b.unmet(house, roots, b.target_environment("3.11.2", "x86_64")) == ["async-timeout>=4.0.3"]
    assert b.unmet(house, roots, b.target_environment("3.11.7", "x86_64")) == []


def test_extras_pull_in_their_requirements(house):
    b = load_builder()
    env = b.target_environment("3.12.1", "x86_64")
    assert b.unmet(house, ["requests[socks]==2.34.2"], env) == ["PySocks!=1.5.7,>=1.5.6"]
    assert b.unmet(house, ["requests==2.34.3"], env) == ["requests==2.34.3"]


def run_builder(capsys, *argv):
    rc = load_builder().main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_given_wheelhouse_is_taken_as_is_and_a_gap_is_one_line(house, tmp_path, capsys):
    common = ["--python-version", "3.11.2", "--abi", "cp311", "--machine", "x86_64",
              "--platform", "manylinux_2_17_x86_64", "--source", str(house)]
    rc, out, err = run_builder(capsys, "--dest", str(tmp_path / "out"), *common, "--", "redis==5.3.1", "pip==26.3")
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "lacks, for Python 3.11.2 on x86_64: async-timeout>=4.0.3" in err
    fake_wheel(house, "async_timeout", "5.0.1")
    rc, out, err = run_builder(capsys, "--dest", str(tmp_path / "out"), *common, "--", "redis==5.3.1", "pip==26.3")
    assert rc == 0, err
    lock = json.loads(out)
    assert lock["changed"] and lock["pip_wheel"] == "pip-26.3-py3-none-any.whl"
    assert "async-timeout==5.0.1" in lock["requirements"]
    assert not any(r.startswith("pip==") for r in lock["requirements"])
    tar = (tmp_path / "out" / "wheelhouse.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert sorted(archive.getnames()) == sorted(p.name for p in house.glob("*.whl"))
    rc, out, _dummy = run_builder(capsys, "--dest", str(tmp_path / "out"), *common, "--", "redis==5.3.1", "pip==26.3")
    assert rc == 0 and json.loads(out)["changed"] is False  # same wheels: same lock, byte-identical tar
    assert (tmp_path / "out" / "wheelhouse.tar").read_bytes() == tar
