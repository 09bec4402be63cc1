#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Is this host ready for our modules? Python, libraries, Docker, compose, the project directory."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: target_check
short_description: Check that a trading host can run this collection's modules, one clear line per gap
version_added: "0.3.0"
description:
  - Read-only probe of the target as the user the modules run as (after become). Needs nothing but
    the Python standard library, so it runs on a bare system Python before
    C(playbooks/prepare_host.yml) has installed anything.
  - "Reports the interpreter (version, CPU, glibc and the wheel platform tags pip accepts for it),
    the user and its groups, which of the modules' Python libraries are importable (O(libraries)),
    whether the Docker API answers that user (O(docker_host)), whether C(docker compose) works for it
    (O(compose)), the compose project directory and its C(.env) (O(project_dir)) and a virtualenv's
    contents (O(venv))."
  - Never fails on what it finds - it returns C(problems), one line each naming its fix; the caller
    decides (C(diagnose.yml) turns them into an INCONCLUSIVE verdict, C(prepare_host) fails with them).
options:
  libraries:
    description:
      - Check that the Python libraries the roles need import (requests, for community.docker's modules). The
        collection's own Docker, Redis and Binance clients are the standard library's.
    type: bool
    default: true
  import_libraries:
    description: Really import them (catches a broken or wrong-platform wheel; about a second), not only find them.
    type: bool
    default: false
  docker_host:
    description: Docker API to probe (C(GET /version)); a non-unix URL is not probed. Empty to skip.
    type: str
    default: unix:///var/run/docker.sock
  compose:
    description: Check C(docker compose version) for this user.
    type: bool
    default: false
  project_dir:
    description: The compose project directory; its existence, owner and C(.env) (readable by this user?) are checked.
    type: path
  expect_owner:
    description: The user the project directory should belong to (a problem otherwise).
    type: str
  venv:
    description: A virtualenv to inspect (C(~) is this user's home); its Python must match the running one.
    type: path
  venv_requirements:
    description: C(name==version) entries the virtualenv must hold; the ones it lacks are returned in C(venv.missing).
    type: list
    elements: str
    default: []
  inventory:
    description: Inventory path shown in the suggested C(prepare_host.yml) command line.
    type: str
    default: <inventory>
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Is the host prepared? (as the become user, with the inventory's interpreter)
  quantum.runbooks.target_check:
    project_dir: /home/qt/quantum_trader
  register: target

- name: Everything prepare_host checks, with the venv's interpreter
  quantum.runbooks.target_check:
    import_libraries: true
    compose: true
    project_dir: /home/qt/quantum_trader
    expect_owner: qt
  vars:
    ansible_python_interpreter: /home/qt/.local/share/qt-runbooks/venv/bin/python
"""

RETURN = r"""
python:
  description: C(executable), C(version) (major.minor), C(version_full), C(implementation), C(abi) (e.g. cp311),
    C(machine), C(libc) and C(libc_version), C(wheel_platforms) (pip --platform tags, newest first).
  type: dict
  returned: always
user:
  description: C(name), C(uid), C(home), C(groups) of the user the module runs as.
  type: dict
  returned: always
libraries:
  description: Import name -> null when importable, else the error.
  type: dict
  returned: when libraries is true
docker:
  description: C(ok), C(version), C(error), C(kind) (permission, absent, other) of the Docker API probe.
  type: dict
  returned: when docker_host is set
compose:
  description: C(ok), C(version), C(error) of C(docker compose version).
  type: dict
  returned: when compose is true
project:
  description: C(path), C(exists), C(owner), C(env) (C(exists), C(owner), C(mode), C(readable)).
  type: dict
  returned: when project_dir is set
venv:
  description: C(path), C(python), C(exists), C(python_version), C(installed), C(missing), C(reason).
  type: dict
  returned: when venv is set
problems:
  description: One entry per gap, C(code) and C(msg) (one line naming the fix).
  type: list
  elements: dict
  returned: always
problem_lines:
  description: The C(msg) of each problem.
  type: list
  elements: str
  returned: always
"""

import platform
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils import target_host as th


def python_facts():
    libc, libc_version = platform.libc_ver()
    machine = platform.machine()
    version = "%d.%d" % sys.version_info[:2]
    return {"executable": sys.executable, "version": version, "version_full": "%d.%d.%d" % sys.version_info[:3],
            "implementation": sys.implementation.name,
            "abi": "cp%d%d" % sys.version_info[:2], "machine": machine, "libc": libc or None,
            "libc_version": libc_version or None,
            "wheel_platforms": th.wheel_platforms(machine, libc_version) if libc == "glibc" else []}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            libraries=dict(type="bool", default=True),
            import_libraries=dict(type="bool", default=False),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            compose=dict(type="bool", default=False),
            project_dir=dict(type="path"),
            expect_owner=dict(type="str"),
            venv=dict(type="path"),
            venv_requirements=dict(type="list", elements="str", default=[]),
            inventory=dict(type="str", default="<inventory>"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    facts = {"python": python_facts(), "user": th.current_user()}
    if p["libraries"]:
        facts["libraries"] = th.importable(th.LIBRARIES.values(), do_import=p["import_libraries"])
    if p["docker_host"]:
        facts["docker"] = th.docker_access(p["docker_host"])
    if p["compose"]:
        facts["compose"] = th.compose_plugin()
    if p["project_dir"]:
        facts["project"] = th.project_state(p["project_dir"])
        facts["expect_owner"] = p["expect_owner"]
    if p["venv"]:
        facts["venv"] = th.venv_state(p["venv"], facts["python"]["version"])
        facts["venv"]["missing"] = th.missing_requirements(p["venv_requirements"], facts["venv"]["installed"])
    found = th.problems(facts, p["inventory"])
    facts.pop("expect_owner", None)
    module.exit_json(changed=False, problems=found, problem_lines=[f["msg"] for f in found], **facts)


if __name__ == "__main__":
    main()
