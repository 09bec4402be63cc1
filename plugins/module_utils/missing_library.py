# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The one line a module fails with when the target's Python lacks one of its libraries: the
library, the interpreter, and the command that fixes it (every module uses this, no copy)."""
from __future__ import annotations

import platform
import sys

PREPARE_HOST = "ansible-playbook -i <inventory> playbooks/prepare_host.yml"


def missing_library(library, reason=None):
    """Like Ansible's missing_required_lib, but naming our fix instead of "read the documentation"."""
    return ("Failed to import the required Python library (%s) on %s's Python %s%s: run %s - it installs the "
            "modules' libraries for the become user (offline) and prints the ansible_python_interpreter to use"
            % (library, platform.node(), sys.executable, " (%s)" % reason if reason else "", PREPARE_HOST))
