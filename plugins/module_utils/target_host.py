# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""What a trading host needs before our modules can run there, and one clear line per gap.

Stdlib only: the module that uses this (``target_check``) runs on a bare system Python, before
``playbooks/prepare_host.yml`` has installed anything. Pure functions where possible (wheel names,
platform tags, comparisons, the problem lines); the probes (Docker socket, compose plugin, project
directory) are small and bounded.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, Engine

# The Python libraries our modules import on the target (pip name -> import name): requests, for community.docker's
# modules the roles use. The Binance, Redis and Docker clients (module_utils/binance_exchange.py, redis_resp.py,
# docker_engine.py) are standard library only.
LIBRARIES = {"requests": "requests"}
PREPARE_HOST = "ansible-playbook -i {inventory} playbooks/prepare_host.yml"


def normalize(name):
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_platforms(machine, glibc):
    """pip's --platform tags a glibc Linux host of this CPU and glibc version accepts, newest first."""
    try:
        major, minor = (int(x) for x in str(glibc).split(".")[:2])
    except ValueError:
        return []
    if major != 2:
        return []
    tags = ["manylinux_2_%d_%s" % (m, machine) for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += ["%s_%s" % (tag, machine) for m, tag in sorted(legacy.items(), reverse=True) if minor >= m]
    return tags + ["linux_%s" % machine]


def installed_distributions(site_packages):
    """{'name==version', ...} of the *.dist-info directories in a site-packages directory."""
    found = set()
    try:
        names = os.listdir(site_packages)
    except OSError:
        return found
    for name in names:
        if name.endswith(".dist-info"):
            stem = name[: -len(".dist-info")]
            dist, _dummy, version = stem.partition("-")
            if version:
                found.add("%s==%s" % (normalize(dist), version))
    return found


def _pin(requirement):
    name, _dummy, version = requirement.partition("==")
    return "%s==%s" % (normalize(name), version)


def missing_requirements(wanted, installed):
    """The 'name==version' entries of `wanted` not installed at exactly that version (sorted)."""
    return sorted({_pin(w) for w in wanted if "==" in w} - {_pin(r) for r in installed if "==" in r})


def read_pyvenv(venv):
    """pyvenv.cfg as a dict ({} when absent)."""
    out = {}
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.partition("=")
                if sep:
                    out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def venv_state(venv, python_version):
    """What is in the virtualenv at `venv`: exists, usable with this Python, installed distributions."""
    python = os.path.join(venv, "bin", "python")
    cfg = read_pyvenv(venv)
    version = cfg.get("version") or cfg.get("version_info") or ""
    state = {"path": venv, "python": python, "exists": bool(cfg) and os.path.exists(python),
             "python_version": ".".join(version.split(".")[:2]) or None, "installed": []}
    if not state["exists"]:
        state["reason"] = "no virtualenv at %s" % venv if not cfg else "%s is missing" % python
        return state
    if state["python_version"] != python_version:
        state["exists"] = False
        state["reason"] = "made with Python %s, the system Python is %s" % (state["python_version"], python_version)
        return state
    site = os.path.join(venv, "lib", "python%s" % python_version, "site-packages")
    state["installed"] = sorted(installed_distributions(site))
    return state


def importable(import_names, do_import=False):
    """{import name: None when found, else the error}; with do_import the modules are really imported."""
    import importlib
    import importlib.util

    out = {}
    for name in import_names:
        try:
            if do_import:
                importlib.import_module(name)
                out[name] = None
            else:
                out[name] = None if importlib.util.find_spec(name) is not None else "No module named %r" % name
        except Exception as err:  # a broken wheel raises anything at import
            out[name] = "%s: %s" % (type(err).__name__, err)
    return out


def docker_access(docker_host, timeout=3.0):
    """{'ok', 'version', 'error'} for the Docker API at a unix:// URL, as the current user; with ``kind``
    (permission, absent, other) when it does not answer."""
    if not docker_host.startswith("unix://"):
        return {"ok": None, "version": None, "error": None, "note": "not a unix socket: not probed"}
    try:
        version = Engine(docker_host, timeout).version().get("Version")
    except DockerError as err:
        kind = err.kind if err.kind in ("permission", "absent") else "other"
        return {"ok": False, "version": None, "error": str(err), "kind": kind}
    return {"ok": True, "version": version, "error": None}


def compose_plugin(timeout=15.0):
    """{'ok', 'version', 'error'} of `docker compose version` for the current user."""
    try:
        res = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except FileNotFoundError:
        return {"ok": False, "version": None, "error": "no docker CLI on PATH"}
    except subprocess.TimeoutExpired:
        return {"ok": False, "version": None, "error": "docker compose version did not answer in %ss" % timeout}
    if res.returncode:
        lines = (res.stderr or res.stdout).strip().splitlines()  # "docker: 'compose' is not a docker command."
        return {"ok": False, "version": None, "error": lines[0] if lines else "rc=%s" % res.returncode}
    return {"ok": True, "version": res.stdout.strip(), "error": None}


def project_state(project_dir):
    """The compose project directory and its .env, as the current user sees them."""
    out = {"path": project_dir, "exists": os.path.isdir(project_dir), "owner": None, "env": {}}
    if not out["exists"]:
        out["error"] = ("%s is not a directory" % project_dir if os.path.exists(project_dir)
                        else "%s does not exist" % project_dir)
        return out
    out["owner"] = _owner(os.stat(project_dir).st_uid)
    env = os.path.join(project_dir, ".env")
    try:
        st = os.stat(env)
        out["env"] = {"exists": True, "owner": _owner(st.st_uid), "mode": "%04o" % (st.st_mode & 0o7777),
                      "readable": os.access(env, os.R_OK)}
    except PermissionError:
        out["env"] = {"exists": None, "readable": False}
    except OSError:
        out["env"] = {"exists": False, "readable": False}
    return out


def _owner(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def current_user():
    """Who the modules run as (after become), with the groups this process really has."""
    entry = pwd.getpwuid(os.geteuid())
    groups = set()
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            groups.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            groups.add(str(gid))
    return {"name": entry.pw_name, "uid": entry.pw_uid, "home": entry.pw_dir, "groups": sorted(groups)}


def problems(facts, inventory="<inventory>"):
    """One line per gap, each naming its fix. `facts` is what target_check gathered."""
    fix = PREPARE_HOST.format(inventory=inventory)
    user = (facts.get("user") or {}).get("name", "the connecting user")
    out = []
    libs = facts.get("libraries") or {}
    missing = sorted(pip for pip, mod in LIBRARIES.items() if mod in libs and libs[mod])
    if missing:
        out.append({"code": "LIBRARIES_MISSING",
                    "msg": "the target's Python %s lacks %s: run %s (then set ansible_python_interpreter to the "
                           "interpreter it prints)" % (facts.get("python", {}).get("executable"),
                                                       ", ".join(missing), fix)})
    docker = facts.get("docker") or {}
    if docker.get("ok") is False:
        if docker.get("kind") == "permission":
            msg = ("%s cannot talk to Docker (%s): become the project's user, who is in the docker group "
                   "(ansible_become: true, ansible_become_user), or add %s to it" % (user, docker["error"], user))
        else:
            msg = "Docker is not reachable for %s: %s" % (user, docker["error"])
        out.append({"code": "DOCKER_DENIED" if docker.get("kind") == "permission" else "DOCKER_UNREACHABLE",
                    "msg": msg})
    compose = facts.get("compose") or {}
    if compose.get("ok") is False:
        out.append({"code": "COMPOSE_MISSING",
                    "msg": "`docker compose` does not work for %s (%s): install the Compose v2 plugin "
                           "(docker-compose-plugin) or link it into ~%s/.docker/cli-plugins/"
                           % (user, compose["error"], user)})
    project = facts.get("project") or {}
    if project and not project.get("exists"):
        out.append({"code": "PROJECT_MISSING",
                    "msg": "project directory %s: set qt_project_dir in the inventory to the "
                           "compose project's directory" % project.get("error", project.get("path"))})
    elif project:
        env = project.get("env") or {}
        if env.get("exists") is False:
            out.append({"code": "ENV_MISSING", "msg": "%s/.env does not exist" % project["path"]})
        elif not env.get("readable"):
            out.append({"code": "ENV_UNREADABLE",
                        "msg": "%s cannot read %s/.env (owner %s, mode %s): become its owner (ansible_become_user: %s)"
                               % (user, project["path"], env.get("owner", "?"), env.get("mode", "?"),
                                  env.get("owner", "?"))})
        expect = facts.get("expect_owner")
        if expect and project.get("owner") != expect:
            owner = project.get("owner")
            hint = (" - or become %s (ansible_become_user: %s)" % (owner, owner)
                    if owner not in ("root", "0") and owner != user else "")
            out.append({"code": "PROJECT_OWNER",
                        "msg": "project directory %s belongs to %s, not %s: chown -R %s: %s%s"
                               % (project["path"], owner, expect, expect, project["path"], hint)})
    return out
