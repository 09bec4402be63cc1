#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Managed state in a docker compose `.env`: set keys in place (or own the whole file), checked by compose."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dotenv_keys
short_description: Set keys in a docker compose C(.env) file in place, checked by compose's own parser
version_added: "0.2.0"
description:
  - Manages keys of a C(.env) file the way docker compose v2 reads it (the parser in
    C(module_utils/dotenv.py) is a port of compose-go's, checked against C(docker compose config)).
    Replaces C(echo "KEY=value" >> .env), which appends a duplicate on every run and, on a file without a
    final newline, glues the new text onto the last line.
  - B(Keyed mode) (O(keys)) - each key ends up exactly once - its first occurrence is rewritten in place
    (C(export) prefix, spacing, trailing comment and line ending kept), later duplicates are removed, absent keys
    are appended. Comments, blank lines and all other keys stay byte for byte.
  - B(Templated mode) (O(content)) - the caller renders the whole file; only the O(managed) keys may change
    their effective value, so a template that would drop or alter any other key is refused.
  - O(state=read) returns the effective values, for a one-time import of a hand-kept file into templated mode.
  - With compose available (O(oracle)), the current file and the new content are both parsed by
    C(docker compose config) as a service C(env_file); the change is refused unless compose sees exactly the
    intended difference. No Docker daemon is needed.
  - The write is atomic (a temporary file in the same directory, then a rename) and keeps the file's mode and
    owner; the old file is kept as a timestamped backup. A refused change leaves the file byte for byte as it was.
  - Values of keys matching O(secret_patterns) are masked as C(********) in every output (changes, diff,
    messages, the invocation) - except RV(values) of O(state=read), which the caller must register with C(no_log).
  - Supports check mode and diff mode.
options:
  path:
    description:
      - The C(.env) file. A symlink is followed (the file it points to is replaced; the link stays).
    type: path
    required: true
  keys:
    description:
      - Keyed mode - variable name -> wanted value. Values must be strings; booleans are written as
        C(true)/C(false) and numbers as written.
      - Values are quoted only when needed, so compose reads back exactly the string given (no C($) expansion).
    type: dict
    default: {}
  content:
    description:
      - Templated mode - the whole new file text (e.g. C(lookup('ansible.builtin.template', ...))).
        Mutually exclusive with O(keys).
      - Every key not in O(managed) must keep its effective value.
    type: str
  managed:
    description:
      - Names of the keys allowed to change. Defaults to the names in O(keys). In keyed mode every key in
        O(keys) must be listed.
    type: list
    elements: str
  state:
    description:
      - V(present) sets the keys (or the content).
      - V(read) changes nothing and returns RV(values) and RV(keys_in_order).
    type: str
    choices: [present, read]
    default: present
  create:
    description: Create the file (mode 0600) when it does not exist. When V(false), a missing file is an error.
    type: bool
    default: false
  secret_patterns:
    description: Case-insensitive substrings of a key name that make its value secret (masked in all output).
    type: list
    elements: str
    default: [KEY, SECRET, TOKEN, PASSWORD, PASSPHRASE, PRIVATE, CREDENTIAL]
  backup:
    description:
      - Before replacing the file, copy it to C(PATH.YYYYmmddTHHMMSSffffffZ.bak) next to it (same mode and
        owner). No backup is made when nothing changes.
    type: bool
    default: true
  backup_keep:
    description: How many backups of this file to keep; older ones are deleted after a new one is made.
    type: int
    default: 10
  oracle:
    description:
      - V(compose) parses the current file and the new content with O(compose_command) and fails when the
        effective environments differ in anything but the managed keys, when a managed key does not come out
        as wanted, when compose rejects the new content, or when the builtin parser and compose disagree on the
        current file (a parser bug - please report it).
      - V(builtin) uses only the Python parser. V(auto) uses compose when C(compose_command version) runs.
      - Compose runs with only C(PATH), C(HOME) and C(DOCKER_CONFIG) from the environment, so values do not depend
        on who runs the task; the builtin parser uses the same environment (bare C(KEY) lines and C($VAR)).
    type: str
    choices: [auto, compose, builtin]
    default: auto
  compose_command:
    description: How to run compose v2 (e.g. V([docker-compose]) for the standalone binary).
    type: list
    elements: str
    default: [docker, compose]
notes:
  - The rules compose applies and the few cases this module refuses although compose accepts them
    (NUL bytes, a variable with an empty name) are in C(docs/dotenv.md).
  - Bytes that are not UTF-8 (compose accepts them in values and comments) are kept byte for byte; in every
    output (diff, changes, effective, values) each such byte is shown as U+FFFD, as C(docker compose config)
    does.
  - A changed C(.env) only reaches a container when it is recreated (C(docker compose up -d)), not on restart.
requirements:
  - docker compose v2 on the target for O(oracle=compose) (optional with V(auto))
author:
  - qt-runbooks contributors
"""

EXAMPLES = r"""
- name: Roll back to the testnet (instead of echo "BINANCE_USE_TESTNET=true" >> .env)
  quantum.runbooks.dotenv_keys:
    path: /home/qt/quantum_trader/.env
    keys:
      BINANCE_USE_TESTNET: "true"
      PAPER_TRADING: "false"
  register: env_change

- name: Own the whole file from a template; only the mode keys may change
  quantum.runbooks.dotenv_keys:
    path: /home/qt/quantum_trader/.env
    content: "{{ lookup('ansible.builtin.template', 'env.j2') }}"
    managed: [BINANCE_USE_TESTNET, PAPER_TRADING, BINANCE_API_KEY, BINANCE_API_SECRET]
    backup_keep: 5

- name: Import a hand-kept file (once) before switching to templated mode
  quantum.runbooks.dotenv_keys:
    path: /home/qt/quantum_trader/.env
    state: read
  register: env_now
  no_log: true
"""

RETURN = r"""
changed:
  description: Whether the file was (in check mode, would be) rewritten.
  type: bool
  returned: always
path:
  description: The file managed (symlinks resolved).
  type: str
  returned: always
oracle:
  description: The parser that checked the change - C(compose) or C(builtin).
  type: str
  returned: always
  sample: compose
changes:
  description:
    - One entry per managed key that changed - C(key), C(before) (the effective old value, i.e. what compose
      used - the last occurrence; null when unset), C(after) (null when a template drops it),
      C(duplicates_collapsed) (occurrences removed) and C(added) (the key was not in the file). Secrets masked.
  type: list
  elements: dict
  returned: when state=present
  sample: [{key: BINANCE_USE_TESTNET, before: "false", after: "true", duplicates_collapsed: 2, added: false}]
effective:
  description: Managed key -> its effective value after the task (null when unset); secrets masked.
  type: dict
  returned: when state=present
  sample: {BINANCE_USE_TESTNET: "true", BINANCE_API_SECRET: "********"}
backup_file:
  description: The backup made by this run, or null when none was made.
  type: str
  returned: when state=present
  sample: /home/qt/quantum_trader/.env.20250101T120000123456Z.bak
backups_removed:
  description: Old backups deleted to stay within O(backup_keep).
  type: list
  elements: str
  returned: when state=present
diff:
  description: C(before)/C(after) file text with secret values masked, and C(before_header)/C(after_header).
  type: dict
  returned: when state=present
values:
  description:
    - Every key's effective value (B(not masked) - register with C(no_log)).
    - A byte that is not UTF-8 reads U+FFFD here, so a template rendered from these values cannot keep such a
      byte of an unmanaged key (templated mode then refuses the change; keyed mode keeps the bytes).
  type: dict
  returned: when state=read
keys_in_order:
  description: The keys of RV(values) in the order they are first set in the file.
  type: list
  elements: str
  returned: when state=read
inherited:
  description: Bare C(KEY) lines (the value comes from the environment compose runs in), kept verbatim.
  type: list
  elements: str
  returned: when state=read
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.dotenv import (
    DEFAULT_SECRET_PATTERNS,
    MASK,
    DotenvEditError,
    DotenvError,
    diff_keys,
    encode,
    is_secret,
    masked_text,
    parse,
    printable,
    set_keys,
)

MIN_MASKED_SUBSTRING = 8  # shorter secret values are masked by key only, not wherever they occur ("true")


class Masker:
    """Masks secret values: by key name, and as substrings of any text shown (expanded into other values).

    Everything it returns is printable: a byte of the file that is not UTF-8 is shown as U+FFFD (after masking,
    and a secret is also learnt in that form, so it is masked either way)."""

    def __init__(self, patterns):
        self.patterns, self.values = patterns, set()

    def learn(self, values):
        for key, value in values.items():
            if value and is_secret(key, self.patterns) and len(value) >= MIN_MASKED_SUBSTRING:
                self.values.update((value, printable(value)))

    def text(self, text):
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return printable(text)

    def value(self, key, value):
        if value is None:
            return None
        return MASK if is_secret(key, self.patterns) else self.text(value)

    def doc(self, doc, changed=()):
        return self.text(masked_text(doc, self.patterns, changed))


class Run:
    """One task: the module, its parameters, the masker, and a fail() that never shows a secret."""

    def __init__(self, module):
        self.module, self.p = module, module.params
        self.path = os.path.realpath(self.p["path"])
        self.masker = Masker(self.p["secret_patterns"])
        self.env = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}

    def invocation(self):
        args = dict(self.p, content=None if self.p["content"] is None else "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
        keys = self.p["keys"] or {}
        args["keys"] = {k: self.masker.value(k, v) if isinstance(v, str) else v for k, v in keys.items()}
        return {"module_args": args}

    def fail(self, msg, **extra):
        self.module.fail_json(msg=self.masker.text(msg), path=self.path, invocation=self.invocation(), **extra)

    def exit(self, **result):
        self.module.exit_json(path=self.path, invocation=self.invocation(), **result)


# ----------------------------------------------------------------------------------------------- compose


def compose_available(run):
    try:
        res = subprocess.run([*run.p["compose_command"], "version"], env=run.env, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def compose_env(run, env_path):
    """(environment, None) as compose reads env_path as a service env_file, or (None, error line)."""
    workdir = tempfile.mkdtemp(prefix="dotenv_keys.")
    try:
        compose_file = os.path.join(workdir, "compose.yml")
        service = {"image": "scratch", "env_file": [env_path.replace("$", "$$")]}  # compose interpolates the file
        with open(compose_file, "w", encoding="utf-8") as handle:
            json.dump({"services": {"probe": service}}, handle)  # JSON is YAML
        cmd = [
            *run.p["compose_command"],
            "-f",
            compose_file,
            "--project-directory",
            workdir,
            "-p",
            "dotenv-keys-probe",
            "config",
            "--format",
            "json",
        ]
        try:
            res = subprocess.run(cmd, env=run.env, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as err:
            return None, f"cannot run {' '.join(cmd[:2])}: {err}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if res.returncode:
        return None, compose_error(res.stderr.decode("utf-8", "replace"))
    environment = json.loads(res.stdout)["services"]["probe"].get("environment") or {}
    # `config` writes a literal $ as $$ (its output can be read again)
    return {k: v.replace("$$", "$") for k, v in environment.items() if v is not None}, None


def compose_error(stderr):
    """compose's error without the file content it quotes (which may hold a secret)."""
    lines = [line for line in stderr.splitlines() if line.strip() and "level=warning" not in line]
    line = lines[-1] if lines else "no message"
    return re.split(r"[\"']", line, maxsplit=1)[0].rstrip(" :")


def differing(left, right, skip=()):
    return sorted(k for k in set(left) | set(right) if k not in skip and left.get(k) != right.get(k))


def as_compose_shows(values):
    """Our values as `config --format json` prints them: a byte that is not UTF-8 as U+FFFD."""
    return {k: printable(v) for k, v in values.items()}


def check_current_with_compose(run, current):
    composed, error = compose_env(run, run.path)
    if error:
        run.fail(
            f"docker compose refuses {run.path} but the builtin parser accepts it (a parser bug, please "
            f"report it): {error}"
        )
    keys = differing(composed, as_compose_shows(current.values))
    if keys:
        run.fail(
            f"the builtin parser and docker compose read {run.path} differently for {', '.join(keys)} "
            "(a parser bug, please report it); file left alone"
        )


def check_candidate_with_compose(run, candidate_path, expected, managed):
    expected = as_compose_shows(expected)
    composed, error = compose_env(run, candidate_path)
    if error:
        run.fail(
            f"docker compose refuses the new content for {run.path}: {error.replace(candidate_path, 'it')}; "
            "file left alone"
        )
    others = differing(composed, expected, skip=managed)
    if others:
        run.fail(
            f"docker compose reads the new content with other values for {', '.join(others)} "
            "(not managed); file left alone"
        )
    wrong = [k for k in managed if composed.get(k) != expected.get(k)]
    if wrong:
        run.fail(f"docker compose does not read {', '.join(wrong)} as wanted from the new content; file left alone")


# ----------------------------------------------------------------------------------------------- files


def read_current(run):
    """(bytes, existed)."""
    try:
        with open(run.path, "rb") as handle:
            return handle.read(), True
    except FileNotFoundError:
        if run.p["create"] and run.p["state"] == "present":
            return b"", False
        run.fail(f"{run.path} does not exist (set create: true to create it)")
    except OSError as err:
        run.fail(f"cannot read {run.path}: {err.strerror}")


def write_candidate(run, data):
    """The new content in a 0600 temp file next to the target (so the final rename is atomic)."""
    directory = os.path.dirname(run.path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(run.path)}.", suffix=".tmp")
    except OSError as err:
        if not run.module.check_mode:
            run.fail(f"cannot write in {directory}: {err.strerror}; {run.path} unchanged")
        fd, tmp = tempfile.mkstemp(prefix="dotenv_keys.", suffix=".tmp")  # check mode: only compose reads it
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return tmp


def make_backup(run, data):
    """PATH.<UTC stamp>.bak with the old bytes, the old mode and owner; created 0600 so it never leaks."""
    stat = os.stat(run.path)
    backup = f"{run.path}.{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.bak"
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        os.fchmod(handle.fileno(), stat.st_mode & 0o7777)
        try:
            os.fchown(handle.fileno(), stat.st_uid, stat.st_gid)
        except PermissionError:
            pass  # not root: the backup is ours, like the file we could write
    return backup


def prune_backups(run):
    directory, base = os.path.split(run.path)
    pattern = re.compile(re.escape(base) + r"\.\d{8}T\d{12}Z\.bak")
    backups = sorted(name for name in os.listdir(directory) if pattern.fullmatch(name))
    removed = [os.path.join(directory, name) for name in backups[: -run.p["backup_keep"]]]
    for path in removed:
        os.remove(path)
    return removed


def replace_file(run, tmp, data, existed):
    """Backup, atomic rename, prune; returns (backup_file, backups_removed)."""
    if existed and not os.access(run.path, os.W_OK):
        run.fail(f"{run.path} is not writable; file unchanged")
    backup = None
    try:
        if existed and run.p["backup"]:
            backup = make_backup(run, data)
        run.module.atomic_move(tmp, run.path)  # keeps the existing file's mode and owner
        if not existed:
            os.chmod(run.path, 0o600)  # a new .env holds secrets
        return backup, prune_backups(run) if backup else []
    except OSError as err:
        run.fail(f"cannot replace {run.path}: {err.strerror}; file unchanged")


# ----------------------------------------------------------------------------------------------- the task


def as_string(run, key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        run.fail(f"keys: the value of {key} must be a string, not {type(value).__name__}")
    return value


def parse_or_fail(run, data, what):
    try:
        return parse(data, run.env, what)
    except DotenvError as err:
        run.fail(err.safe + ("" if what == run.path else f"; {run.path} unchanged"), line=err.line)


def desired_content(run, data, existed, current, keys, managed):
    """(new text, new parsed file, changes, expected environment) in either mode."""
    if run.p["content"] is None:
        try:
            text, changes = set_keys(data, keys, run.env, run.path)
        except DotenvEditError as err:
            run.fail(f"{run.path}: {err}; file unchanged")
        return text, parse(text, run.env, run.path), changes, dict(current.values, **keys)
    text = run.p["content"]
    candidate = parse_or_fail(run, text, f"{run.path} (new content)")
    if not existed:  # a new file: nothing to preserve
        return text, candidate, diff_keys(current, candidate, managed), dict(candidate.values)
    changed = differing(current.values, candidate.values, skip=managed)
    if changed:
        which = [f"{k} ({'dropped' if k not in candidate.values else 'changed'})" for k in changed]
        run.fail(
            f"the new content for {run.path} would change keys that are not managed: {', '.join(which)}; "
            "add them to the template (or to managed); file unchanged"
        )
    expected = {k: v for k, v in current.values.items() if k not in managed}
    expected.update((k, candidate.values[k]) for k in managed if k in candidate.values)
    return text, candidate, diff_keys(current, candidate, managed), expected


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            keys=dict(type="dict", default={}, no_log=False),  # masked by key name instead (see Masker)
            content=dict(type="str", no_log=True),
            managed=dict(type="list", elements="str"),
            state=dict(type="str", choices=["present", "read"], default="present"),
            create=dict(type="bool", default=False),
            secret_patterns=dict(type="list", elements="str", default=list(DEFAULT_SECRET_PATTERNS)),
            backup=dict(type="bool", default=True),
            backup_keep=dict(type="int", default=10),
            oracle=dict(type="str", choices=["auto", "compose", "builtin"], default="auto"),
            compose_command=dict(type="list", elements="str", default=["docker", "compose"]),
        ),
        mutually_exclusive=[("keys", "content")],
        supports_check_mode=True,
    )
    run = Run(module)
    p = run.p
    keys = {k: as_string(run, k, v) for k, v in (p["keys"] or {}).items()}
    run.masker.learn(keys)
    managed = list(keys) if p["managed"] is None else p["managed"]
    if set(keys) - set(managed):
        run.fail(f"keys not listed in managed: {', '.join(sorted(set(keys) - set(managed)))}")
    if p["backup_keep"] < 1:
        run.fail("backup_keep must be at least 1")

    data, existed = read_current(run)
    current = parse_or_fail(run, data, run.path)
    run.masker.learn(current.values)
    oracle = p["oracle"]
    if oracle != "builtin":
        available = compose_available(run)
        if oracle == "compose" and not available:
            run.fail(f"oracle=compose but `{' '.join(p['compose_command'])} version` does not run")
        oracle = "compose" if available else "builtin"
    if oracle == "compose" and existed:
        check_current_with_compose(run, current)

    if p["state"] == "read":
        run.exit(
            changed=False,
            oracle=oracle,
            values=as_compose_shows(current.values),  # the caller registers it with no_log
            keys_in_order=current.keys_in_order,
            inherited=list(dict.fromkeys(a.key for a in current.assignments if a.inherited and a.key)),
        )

    text, candidate, changes, expected = desired_content(run, data, existed, current, keys, managed)
    run.masker.learn(candidate.values)
    try:
        new_data = encode(text)  # the bytes of untouched lines exactly as they were, UTF-8 or not
    except UnicodeEncodeError:
        run.fail(f"the new content for {run.path} is not valid Unicode text; file unchanged")
    changed = new_data != data or not existed
    backup, removed = None, []
    if changed:
        tmp = write_candidate(run, new_data)
        try:
            if oracle == "compose":
                check_candidate_with_compose(run, tmp, expected, managed)
            if not module.check_mode:
                backup, removed = replace_file(run, tmp, data, existed)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    mask = run.masker
    secrets_changed = {c["key"] for c in changes if is_secret(c["key"], mask.patterns) and c["before"] != c["after"]}
    run.exit(
        changed=changed,
        oracle=oracle,
        backup_file=backup,
        backups_removed=removed,
        changes=[
            dict(c, before=mask.value(c["key"], c["before"]),
                 after=mask.value(c["key"], c["after"]) + (" (changed)" if c["key"] in secrets_changed else ""))
            for c in changes
        ],
        effective={k: mask.value(k, candidate.values.get(k)) for k in managed},
        diff={
            "before": mask.doc(current) if existed else "",
            "after": mask.doc(candidate, secrets_changed),
            "before_header": run.path,
            "after_header": run.path,
        },
    )


if __name__ == "__main__":
    main()
