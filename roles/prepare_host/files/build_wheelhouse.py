# Copyright: qt-runbooks contributors; Apache-2.0
"""Build (or take) a wheelhouse for a target Python on the controller, closed over the target's markers.

Runs on the control node with the Python running Ansible (roles/prepare_host, preflight.yml):

  python build_wheelhouse.py --dest DIR --python-version 3.11.2 --abi cp311 --machine x86_64 \
      --platform manylinux_2_36_x86_64 ... [--source DIR] -- requests==2.34.2 ... pip==26.3

`pip download --python-version` picks wheels for the target but evaluates environment markers for
the Python running pip (redis-py, once a pin here, needs async-timeout only below 3.11.3: a 3.11.7
controller would leave it out for a 3.11.2 target). So every wheel's Requires-Dist is evaluated again for the target
and what is missing is downloaded, until nothing is. With --source the wheels come from a
directory (an air-gapped controller): nothing is downloaded, a gap is an error.

DIR ends up with the wheels, wheelhouse.tar (the same wheels, reproducible: one transfer to the
target) and wheelhouse.json (the pinned requirements, the pip wheel). Prints a JSON summary with
"changed". Exit 1 with one line on stderr when the wheelhouse cannot be completed.
"""
import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pip vendors it
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class WheelhouseError(Exception):
    pass


def target_environment(python_version, machine):
    env = default_environment()
    major_minor = ".".join(python_version.split(".")[:2])
    env.update(python_version=major_minor, python_full_version=python_version, implementation_version=python_version,
               implementation_name="cpython", platform_python_implementation="CPython", platform_machine=machine,
               sys_platform="linux", platform_system="Linux", os_name="posix", platform_release="", platform_version="")
    return env


def wheels(directory):
    """{canonical name: (version, filename)} of the wheels in `directory`."""
    out = {}
    for path in sorted(Path(directory).glob("*.whl")):
        match = WHEEL.match(path.name)
        if match:
            out[canonicalize_name(match.group("name"))] = (match.group("version"), path.name)
    return out


def requires(wheel_path):
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel_path) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        text = whl.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("Requires-Dist:")]


def unmet(directory, roots, env):
    """Requirements (strings) that the target needs and no wheel in `directory` satisfies."""
    have = wheels(directory)
    todo = [(Requirement(r), "") for r in roots]
    seen, missing = set(), []
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(dict(env, extra=extra)):
            continue
        name = canonicalize_name(req.name)
        key = (name, str(req.specifier), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        found = have.get(name)
        if not found or not req.specifier.contains(Version(found[0]), prereleases=True):
            missing.append(f"{req.name}{req.specifier}")
            continue
        for line in requires(Path(directory) / found[1]):
            dep = Requirement(line)
            for wanted_extra in ("", *sorted(req.extras)):
                todo.append((dep, wanted_extra))
    return sorted(set(missing))


def pip_download(dest, args, requirements):
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--abi", args.abi,
           "--python-version", args.python_version, "--dest", str(dest),
           *(f"--platform={p}" for p in args.platform), *requirements]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        last = [line for line in res.stderr.strip().splitlines() if line.startswith("ERROR")] or \
            res.stderr.strip().splitlines() or ["no output"]
        raise WheelhouseError(f"pip download failed: {last[-1]}")


def write_tar(directory):
    """wheelhouse.tar of the wheels, byte-identical for the same wheels (sorted, no times, no owners)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(Path(directory).glob("*.whl")):
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    (Path(directory) / "wheelhouse.tar").write_bytes(buf.getvalue())


def build(args):
    dest = Path(args.dest)
    env = target_environment(args.python_version, args.machine)
    roots = list(args.requirements)
    work = dest.with_name(dest.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    added = []
    if args.source:
        for path in Path(args.source).glob("*.whl"):
            shutil.copy2(path, work / path.name)
    else:
        pip_download(work, args, roots)
    for _dummy in range(10):
        missing = unmet(work, roots, env)
        if not missing:
            break
        if args.source:
            raise WheelhouseError(f"the wheelhouse {args.source} lacks, for Python {args.python_version} on "
                                  f"{args.machine}: {', '.join(missing)}")
        added += missing
        pip_download(work, args, missing)
    else:
        raise WheelhouseError(f"the wheelhouse does not close over the target's markers: {', '.join(missing)}")
    have = wheels(work)
    pip_wheel = have.get("pip", (None, None))[1]
    if not pip_wheel:
        raise WheelhouseError("the wheelhouse has no pip wheel (pip runs from its wheel on the target)")
    lock = {"python_version": args.python_version, "abi": args.abi, "machine": args.machine,
            "requirements": sorted(f"{n}=={v}" for n, (v, _dummy) in have.items() if n != "pip"),
            "pip_wheel": pip_wheel, "added_for_markers": added}
    (work / "wheelhouse.json").write_text(json.dumps(lock, indent=1) + "\n")
    write_tar(work)
    old = dest / "wheelhouse.json"
    changed = not (old.exists() and json.loads(old.read_text()) == lock and (dest / "wheelhouse.tar").exists()
                   and (dest / "wheelhouse.tar").read_bytes() == (work / "wheelhouse.tar").read_bytes())
    if changed:
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(work, dest)
    else:
        shutil.rmtree(work)
    return dict(lock, changed=changed, wheelhouse=str(dest))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dest", required=True)
    parser.add_argument("--python-version", required=True, help="the target's full version, e.g. 3.11.2")
    parser.add_argument("--abi", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--platform", action="append", required=True)
    parser.add_argument("--source", help="take the wheels from this directory (no download)")
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(build(args)))
    except (WheelhouseError, OSError, ValueError, zipfile.BadZipFile, StopIteration) as err:
        print(f"build_wheelhouse: {err or type(err).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
