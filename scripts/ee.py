"""`make ee`: build the AWX execution environment (execution-environment.yml) on this machine and run
diagnose.yml in it with ansible-navigator against the lab's SSH host, the way AWX runs a job: the
playbook from the project checkout, everything else (ansible-core, the collections, their Python and
system dependencies) from the image.

    ee.py build [--force] [--no-cache]
                              the image qt-runbooks-ee:<galaxy.yml version>; skipped when an image of
                              that tag already holds the same content (label qt.ee.hash)
    ee.py diagnose            diagnose.yml in that image over SSH; prints the verdict
    ee.py                     both (make ee)

Offline: no container registry and no Galaxy. The base image is the lab's local Debian, the
collections are tarballs (ours from galaxy.yml, community.docker & co. from the venv's pinned
`ansible` package), the Python wheels a wheelhouse downloaded on the host. What that changes in the
definition is scripts/ee-offline.yml, with the reason for each key. Run with the venv's Python.
"""
import argparse
import email.parser
import functools
import gzip
import hashlib
import http.server
import importlib.metadata
import importlib.resources
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import yaml
from ansible_builder.user_definition import UserDefinition
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / "execution-environment.yml"
EE_DIR = ROOT / "execution-environment"
OVERLAY = ROOT / "scripts" / "ee-offline.yml"
BUILD = ROOT / "build" / "ee"
IMAGE = "qt-runbooks-ee"
HASH_LABEL = "qt.ee.hash"
# Where the wheelhouse is served during the build. A fixed port keeps Docker's layer cache valid
# (the URL is part of a build step); a busy one falls back to any free port.
WHEELS_PORT = int(os.environ.get("EE_WHEELS_PORT", "18770"))
INVENTORY = "inventory/lab-ssh.yml"
HOST = "lab-ssh"
# AWX sets the collections path of a job itself: the image's, never a checkout's link (ansible.cfg's
# ./.collections would otherwise hand the EE this checkout's collection instead of the installed one).
EE_COLLECTIONS = "/usr/share/ansible/collections"
# ansible-builder's builder stage installs these before anything else (containerfile.py).
BUILDER_STAGE_PIP = ["bindep", "pyyaml", "packaging"]


class EEError(Exception):
    """One line for the user."""


def log(msg):
    print(f"ee: {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    except FileNotFoundError:
        raise EEError(f"{cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise EEError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} took more than {timeout} s") from None


def tool(name):
    path = BIN / name
    if not path.exists():
        raise EEError(f"{name} is missing from {BIN}: run `make venv` (requirements-dev.txt pins it)")
    return str(path)


def load(path):
    return yaml.safe_load(Path(path).read_text())


def galaxy():
    return load(ROOT / "galaxy.yml")


def image_tag():
    return f"{IMAGE}:{galaxy()['version']}"


def docker_ready():
    if not shutil.which("docker"):
        raise EEError("docker is not installed: run `make docker`")
    if run(["docker", "info"], timeout=60).returncode:
        raise EEError("no Docker engine answers: run `make docker` (or start dockerd)")


def image_label(tag, label=HASH_LABEL):
    """The label's value on a local image, '' if the image or the label is missing."""
    res = run(["docker", "image", "inspect", "-f", f'{{{{ index .Config.Labels "{label}" }}}}', tag], timeout=60)
    value = res.stdout.strip() if res.returncode == 0 else ""
    return "" if value == "<no value>" else value


# ---------------------------------------------------------------- collections

def _installed_collections():
    """The venv's `ansible` package: site-packages/ansible_collections."""
    return Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"


def _manifest(path):
    return json.loads((path / "MANIFEST.json").read_text())["collection_info"]


def _tar_member(tar, name, data=None, directory=False):
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def pack_installed(path, out_dir):
    """An installed collection back into a Galaxy artifact (tarball). The `ansible` package ships each
    collection without its tests/, docs/ and CI files but with the original FILES.json: the artifact
    lists what is there (FILES.json rewritten, MANIFEST.json's checksum of it updated), and every file
    is checked against its original checksum first. Byte-for-byte reproducible."""
    manifest = json.loads((path / "MANIFEST.json").read_text())
    info = manifest["collection_info"]
    files = json.loads((path / "FILES.json").read_text())
    kept = []
    for entry in files["files"]:
        target = path / entry["name"]
        if entry["ftype"] == "dir":
            if target.is_dir():
                kept.append(entry)
        elif target.is_file():
            if hashlib.sha256(target.read_bytes()).hexdigest() != entry["chksum_sha256"]:
                raise EEError(f"{target} differs from its FILES.json: reinstall the venv (make venv)")
            kept.append(entry)
    files_json = json.dumps({**files, "files": kept}, indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    top = f"{info['namespace']}-{info['name']}-{info['version']}"
    target = out_dir / f"{top}.tar.gz"
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        # Galaxy's layout: MANIFEST.json, FILES.json and the files at the top of the archive.
        _tar_member(tar, "MANIFEST.json", json.dumps(manifest, indent=4).encode())
        _tar_member(tar, "FILES.json", files_json)
        for entry in kept:
            if entry["name"] == ".":
                continue
            if entry["ftype"] == "dir":
                _tar_member(tar, entry["name"], directory=True)
            else:
                _tar_member(tar, entry["name"], (path / entry["name"]).read_bytes())
    return target


def collections(out_dir):
    """Every collection of the EE as a tarball in out_dir, and the requirements file that installs them.
    Returns {fqcn: tarball}."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    res = run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out_dir), str(ROOT)],
              timeout=300)
    if res.returncode:
        raise EEError(f"ansible-galaxy collection build failed: {(res.stdout + res.stderr).strip()[-400:]}")
    meta = galaxy()
    tarballs = {f"{meta['namespace']}.{meta['name']}":
                out_dir / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"}
    wanted = {c["name"]: c["version"] for c in load(EE_DIR / "requirements.yml")["collections"]
              if c.get("type") != "file"}
    installed = _installed_collections()
    todo = list(wanted)
    while todo:  # the listed collections and what they depend on (community.docker needs one more)
        fqcn = todo.pop(0)
        if fqcn in tarballs:
            continue
        path = installed.joinpath(*fqcn.split("."))
        if not (path / "MANIFEST.json").is_file():
            raise EEError(f"{fqcn} is not in the venv's `ansible` package ({installed}): run `make venv`")
        info = _manifest(path)
        if fqcn in wanted and info["version"] != wanted[fqcn]:
            raise EEError(f"the venv has {fqcn} {info['version']}, execution-environment/requirements.yml wants "
                          f"{wanted[fqcn]}: align requirements.txt's `ansible` pin and requirements.yml")
        tarballs[fqcn] = pack_installed(path, out_dir)
        todo.extend(info.get("dependencies") or {})
    reqs = {"collections": [{"name": f"collections/{t.name}", "type": "file"} for t in tarballs.values()]}
    (out_dir.parent / "requirements.yml").write_text(
        "---\n# Written by scripts/ee.py: every collection of the EE as a tarball (no Galaxy).\n"
        + yaml.safe_dump(reqs, sort_keys=False))
    return tarballs


def content_id(tarball):
    """What a collection tarball holds, independent of when it was packed: MANIFEST.json + FILES.json
    (which has every file's sha256)."""
    h = hashlib.sha256()
    with tarfile.open(tarball) as tar:
        for name in ("MANIFEST.json", "FILES.json"):
            h.update(tar.extractfile(name).read())
    return h.hexdigest()


# ---------------------------------------------------------------- definition

def definition(build_dir):
    """build_dir/execution-environment.yml: the committed definition with scripts/ee-offline.yml put in."""
    ee = load(EE_FILE)
    overlay = load(OVERLAY)
    for key in ("python", "system"):  # relative to the committed file: absolute from build/ee
        ee["dependencies"][key] = str(ROOT / ee["dependencies"][key])
    ee["images"] = overlay["images"]
    ee["dependencies"]["galaxy"] = overlay["dependencies"]["galaxy"]
    ee.setdefault("options", {}).update(overlay["options"])
    ee["options"].pop("tags", None)  # tagged by the build
    ee.setdefault("build_arg_defaults", {}).update(overlay["build_arg_defaults"])
    files = []
    for entry in overlay["additional_build_files"]:
        src = entry["src"]
        files.append({"src": str(ROOT / src) if "/" in src else src, "dest": entry["dest"]})
    ee["additional_build_files"] = files
    steps = ee.setdefault("additional_build_steps", {})
    for section, lines in overlay["additional_build_steps"].items():
        mine = list(steps.get(section) or [])
        steps[section] = lines + mine if section.startswith("prepend") else mine + lines
    path = build_dir / "execution-environment.yml"
    path.write_text("---\n# Written by scripts/ee.py: execution-environment.yml + scripts/ee-offline.yml.\n"
                    + yaml.safe_dump(ee, sort_keys=False, width=200))
    return path, ee


# ---------------------------------------------------------------- wheels

def image_python(ee):
    """The marker environment of the base image's Python (the one the build installs with), read by its
    own pip's packaging: `pip download` on the host evaluates markers for the host's Python, not this."""
    base, pycmd = ee["images"]["base_image"]["name"], ee["dependencies"]["python_interpreter"]["python_path"]
    res = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", pycmd, base, "-c",
               "import json; from pip._vendor.packaging.markers import default_environment as d; "
               "print(json.dumps(d()))"], timeout=120)
    if res.returncode:
        raise EEError(f"cannot read {pycmd}'s environment in {base}: {res.stderr.strip()[-300:]}")
    return json.loads(res.stdout)


def _platform_args(env):
    """Wheels for the image's CPython on this CPU (as labctl's)."""
    arch = env["platform_machine"]
    args = ["--python-version", env["python_full_version"], "--implementation", "cp",
            "--abi", "cp" + env["python_version"].replace(".", ""), "--only-binary=:all:"]
    for plat in ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux1", "manylinux_2_5"):
        args += ["--platform", f"{plat}_{arch}"]
    return args


def pip_requirements(ee_path, tarballs, work):
    """Every Python requirement the image build installs: ansible-core/ansible-runner, the builder
    stage's tools, what ansible-builder's own introspect script finds in the collections (as the
    build runs it) plus the definition's requirements file, and the container init (dumb-init)."""
    definition = UserDefinition(str(ee_path))
    definition.validate()  # fills in ansible-builder's defaults
    ee = definition.raw
    root = work / "collections"
    for fqcn, tarball in tarballs.items():
        target = root / "ansible_collections" / fqcn.replace(".", "/")
        target.mkdir(parents=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(target, filter="data")
    introspect = importlib.resources.files("ansible_builder._target_scripts") / "introspect.py"
    out = work / "requirements.txt"
    with importlib.resources.as_file(introspect) as script:
        res = run([sys.executable, str(script), "introspect", str(root), "--user-pip", ee["dependencies"]["python"],
                   "--write-pip", str(out)], timeout=120)
    if res.returncode:
        raise EEError(f"ansible-builder's introspect failed: {(res.stdout + res.stderr).strip()[-400:]}")
    lines = [*definition.ansible_ref_install_list.split(), *BUILDER_STAGE_PIP,
             definition.container_init.get("package_pip", "")]
    lines += [line.split("#", 1)[0].strip() for line in out.read_text().splitlines()]
    return sorted({line for line in lines if line})


def _unmet(wheel_dir, env):
    """Requirements of the downloaded wheels that the image's Python needs and no wheel here provides
    (e.g. redis's `async-timeout; python_full_version < "3.11.3"` for Debian's 3.11.2)."""
    have = {canonicalize_name(w.name.split("-")[0]) for w in wheel_dir.glob("*.whl")}
    unmet = set()
    for wheel in wheel_dir.glob("*.whl"):
        with zipfile.ZipFile(wheel) as whl:
            meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
            headers = email.parser.Parser().parsestr(whl.read(meta).decode())
        for line in headers.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate({**env, "extra": ""}):
                continue
            if canonicalize_name(req.name) not in have:
                req.marker = None
                unmet.add(str(req))
    return sorted(unmet)


def _download(wheel_dir, reqs, env):
    req_file = wheel_dir / "requirements.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    res = run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheel_dir), "-r", str(req_file),
               *_platform_args(env)], timeout=900)
    if res.returncode:
        errors = [line for line in res.stderr.splitlines() if "ERROR" in line] or res.stderr.splitlines()[-3:]
        raise EEError(f"pip download failed: {' '.join(errors)[-400:]}")


def wheel_set(ee_path, ee, tarballs):
    """(requirements, id) of the wheels the build needs: the id changes with them or the base image."""
    with tempfile.TemporaryDirectory() as tmp:
        reqs = pip_requirements(ee_path, tarballs, Path(tmp))
    base_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", ee["images"]["base_image"]["name"]],
                  timeout=60).stdout.strip()
    return reqs, hashlib.sha256(json.dumps([base_id, reqs]).encode()).hexdigest()


def wheels(ee, reqs, wheels_id, wheel_dir):
    """wheel_dir: every wheel the build installs (pip download on the host, once per set)."""
    stamp = wheel_dir / ".stamp"
    if stamp.is_file() and stamp.read_text() == wheels_id:
        return
    env = image_python(ee)
    shutil.rmtree(wheel_dir, ignore_errors=True)
    wheel_dir.mkdir(parents=True)
    log(f"downloading wheels for Python {env['python_full_version']} ({len(reqs)} requirements)...")
    _download(wheel_dir, reqs, env)
    for _round in range(5):  # pip evaluated the markers for the host's Python: add what the image's needs
        unmet = _unmet(wheel_dir, env)
        if not unmet:
            break
        log(f"adding what Python {env['python_full_version']} needs besides: {', '.join(unmet)}")
        _download(wheel_dir, unmet, env)
    else:
        raise EEError(f"the wheelhouse still misses {', '.join(unmet)}")
    stamp.write_text(wheels_id)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    """The wheelhouse over HTTP on 127.0.0.1, in a thread of this process (gone when the build is)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELS_PORT), handler)
    except OSError:
        log(f"port {WHEELS_PORT} is busy: serving the wheels on another port (Docker's layer cache will not match)")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- build

def content_hash(ee_path, tarballs, wheels_id):
    """What the image holds, as one value (its label qt.ee.hash): the definition written from the
    committed one, the files it names, the collections' content, the wheel set, the builder, the base."""
    h = hashlib.sha256()
    h.update(ee_path.read_text().replace(str(ROOT), "<checkout>").encode())  # the same in any clone
    for key in ("python", "system"):
        h.update(Path(load(ee_path)["dependencies"][key]).read_bytes())
    h.update((ROOT / "scripts" / "ee-apt-dnf").read_bytes())
    for fqcn in sorted(tarballs):
        h.update(f"{fqcn}:{content_id(tarballs[fqcn])}".encode())
    h.update(wheels_id.encode())
    h.update(importlib.metadata.version("ansible-builder").encode())
    base = load(ee_path)["images"]["base_image"]["name"]
    h.update(run(["docker", "image", "inspect", "-f", "{{.Id}}", base], timeout=60).stdout.strip().encode())
    return h.hexdigest()[:16]


def plan():
    """Everything the build needs except the wheels' download, and the label the image should carry."""
    docker_ready()
    base = load(OVERLAY)["images"]["base_image"]["name"]
    if run(["docker", "image", "inspect", base], timeout=60).returncode:
        raise EEError(f"the base image {base} is missing: run lab/images/base/build_base.sh (part of `make setup`)")
    BUILD.mkdir(parents=True, exist_ok=True)
    tarballs = collections(BUILD / "collections")
    ee_path, ee = definition(BUILD)
    reqs, wheels_id = wheel_set(ee_path, ee, tarballs)
    return {"tag": image_tag(), "digest": content_hash(ee_path, tarballs, wheels_id), "ee_path": ee_path, "ee": ee,
            "reqs": reqs, "wheels_id": wheels_id}


def status():
    """(tag, True when the local image of that tag holds this checkout's collections and definition)."""
    p = plan()
    return p["tag"], image_label(p["tag"]) == p["digest"]


def build(force=False, no_cache=False):
    """Build (or keep) the image; returns its tag. no_cache: without Docker's layer cache (a cold build)."""
    started = time.monotonic()
    p = plan()
    tag, digest = p["tag"], p["digest"]
    if not force and image_label(tag) == digest:
        log(f"{tag} is up to date (same collections, definition and wheels: {HASH_LABEL}={digest})")
        return tag
    wheels(p["ee"], p["reqs"], p["wheels_id"], BUILD / "wheels")
    previous = run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], timeout=60).stdout.strip()
    server = serve(BUILD / "wheels")
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    log_file = BUILD / "build.log"
    log(f"building {tag} (log: {log_file.relative_to(ROOT)})...")
    cmd = [tool("ansible-builder"), "build", "-f", str(p["ee_path"]), "-c", str(BUILD / "context"),
           "--container-runtime", "docker", "-t", tag, "--build-arg", f"EE_WHEELS_URL={url}",
           "--extra-build-cli-args", f"--network host --label {HASH_LABEL}={digest}", "-v", "3",
           *(["--no-cache"] if no_cache else [])]
    try:
        with open(log_file, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False,
                                  env=dict(os.environ, DOCKER_BUILDKIT="0"), cwd=BUILD)
    except subprocess.TimeoutExpired:
        raise EEError(f"ansible-builder build took more than 30 min: see {log_file}") from None
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode:
        print("\n".join(log_file.read_text().splitlines()[-15:]), file=sys.stderr)
        raise EEError(f"ansible-builder build failed (rc {proc.returncode}): see {log_file}")
    log(f"built {tag} in {time.monotonic() - started:.0f} s")
    if previous and run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], timeout=60).stdout.strip() != previous:
        run(["docker", "image", "rm", previous], timeout=120)  # the image this one replaces (kept if in use)
    return tag


# ---------------------------------------------------------------- run

def _ssh_target(inventory):
    """(address, port, private key file) of the inventory's SSH host, as its variables say."""
    path = ROOT / inventory
    host = load(path)["all"]["children"]["quantum_trader"]["hosts"][HOST]
    key = Path(host["ansible_ssh_private_key_file"].replace("{{ inventory_dir }}", str(path.parent)))
    return host["ansible_host"], int(host.get("ansible_port", 22)), key


def ssh_host_ready(inventory=INVENTORY):
    """The directory of the SSH host's key (and pinned known_hosts), once the host answers as an SSH server."""
    address, port, key = _ssh_target(inventory)
    if not key.is_file():
        raise EEError(f"no lab SSH host: {key.resolve()} is missing (start the lab: make lab-up)")
    try:
        with socket.create_connection((address, port), timeout=5) as sock:
            sock.settimeout(5)
            banner = sock.recv(64)
    except OSError as err:
        raise EEError(f"the lab's SSH host does not answer on {address}:{port} ({err.strerror or err}): "
                      "start the lab (make lab-up)") from None
    if not banner.startswith(b"SSH-"):
        raise EEError(f"{address}:{port} answers, but not as an SSH server")
    return key.resolve().parent


def navigator_command(tag, ssh_dir, report_dir, inventory=INVENTORY):
    """ansible-navigator running diagnose.yml in the image: ansible-runner in the container, the way an
    AWX job runs, with the project (this checkout) mounted at its own path."""
    return [
        tool("ansible-navigator"), "run", "diagnose.yml", "-i", inventory,
        "--ee", "true", "--eei", tag, "--pull-policy", "never", "--container-engine", "docker",
        "--mode", "stdout", "--playbook-artifact-enable", "false", "--display-color", "false",
        "--log-file", str(BUILD / "navigator.log"),
        # The SSH host listens on the Docker host's loopback. Root in the container, as navigator
        # makes it for podman: the image's user (1000) could not read the 0600 key nor write reports.
        "--container-options=--network=host", "--container-options=--user=0",
        # The inventory's key and pinned known_hosts, read-only, at their real path (the path the
        # inventory names may pass through a link).
        "--eev", f"{ssh_dir}:{ssh_dir}:ro",
        "--eev", f"{report_dir}:{report_dir}",
        "--senv", f"ANSIBLE_COLLECTIONS_PATH={EE_COLLECTIONS}",
        "-e", f"diagnose_report_dir={report_dir}",
    ]


# ansible-runner's event stream, interleaved with the play's output when it is not a terminal:
# ESC[K, base64 event data, ESC[<n>D (a terminal erases them again).
RUNNER_EVENTS = re.compile(r"\x1b\[K(?:[A-Za-z0-9+/=]*\x1b\[\d+D)?")


def diagnose(report_dir=None, inventory=INVENTORY, tag=None, echo=False, timeout=600):
    """Run diagnose.yml in the image (its output printed as it comes with echo). Returns (the JSON
    report, seconds, the output)."""
    docker_ready()
    tag = tag or image_tag()
    if run(["docker", "image", "inspect", tag], timeout=60).returncode:
        raise EEError(f"no image {tag}: run `make ee` (or scripts/ee.py build)")
    ssh_dir = ssh_host_ready(inventory)
    report_dir = Path(report_dir or ROOT / "reports" / "ee").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    BUILD.mkdir(parents=True, exist_ok=True)  # the navigator's log
    latest = report_dir / HOST / "diagnosis-latest.json"
    latest.unlink(missing_ok=True)
    started = time.monotonic()
    cmd = navigator_command(tag, ssh_dir, report_dir, inventory)
    lines = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                line = RUNNER_EVENTS.sub("", line)
                lines.append(line)
                if echo:
                    print(line, end="", flush=True)
        finally:
            watchdog.cancel()
        rc = proc.wait()
    took = time.monotonic() - started
    output = "".join(lines)
    if took >= timeout:
        raise EEError(f"diagnose.yml in {tag} took more than {timeout} s")
    if rc or not latest.is_file():
        if not echo:
            print(output[-3000:], file=sys.stderr)
        raise EEError(f"diagnose.yml in {tag} failed (rc {rc}); navigator log: {BUILD / 'navigator.log'}")
    return json.loads(latest.read_text()), took, output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", nargs="?", choices=["build", "diagnose", "all"], default="all")
    parser.add_argument("--force", action="store_true", help="build even when the image is up to date")
    parser.add_argument("--no-cache", action="store_true", help="without Docker's layer cache (implies --force)")
    args = parser.parse_args(argv)
    try:
        if args.action in ("build", "all"):
            started = time.monotonic()
            tag = build(force=args.force or args.no_cache, no_cache=args.no_cache)
            build_s = time.monotonic() - started
        if args.action in ("diagnose", "all"):
            report, took, _output = diagnose(echo=True)
            verdict = report["verdict"]
            print(f"\nEE verdict for {HOST} ({image_tag()}, diagnose.yml via ansible-navigator over SSH): "
                  f"{verdict['primary']}  [{took:.0f} s]")
            print(f"Report: {ROOT / 'reports' / 'ee' / HOST / 'diagnosis-latest.md'} (and .json)")
        if args.action == "all":
            print(f"Image {tag}: {build_s:.0f} s to build or check")
    except EEError as err:
        print(f"ee: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
