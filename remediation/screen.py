"""Known secret values, screened out of everything qt-remediate writes: run artifacts, audit, logs.

Screening by *name* (runner.safe_env, policy.extravar_problem, audit.scrub) misses a secret under an
innocent name: `-e note=<token>`, `PROXY_URL=http://user:<password>@proxy`, a vaulted key a task
prints. So qt-remediate also collects the secret *values* it can know, and no file it or
ansible-runner writes may contain one:

- values of environment variables whose names look secret (before they are blanked for the child);
- passwords inside URLs (`scheme://user:password@host`) in any environment variable;
- the vault password (the --vault-password-file's content; an executable password script is not run);
- every value of the policy's `secret_files` (Ansible Vault files, decrypted with that password, or
  plain YAML), and the vaulted values (whole-file vault or inline `!vault`) of the inventory's and the
  playbook directory's group_vars/ and host_vars/;
- the webhook token and HMAC secret of `serve`, and the breaker notification URL.

Values shorter than MIN_LEN characters are not screened: masking "paper" or "true" everywhere would
make every artifact unreadable, and such a value is no secret anyway; nor is an existing path.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import yaml

MIN_LEN = 8
MASK = "********"
SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|CREDENTIAL|PRIVATE_KEY|HMAC", re.I)
URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^@\s/]+)@")
MAX_FILE = 1024 * 1024
MAX_FILES = 500


def secret_name(name):
    """An environment variable that holds a secret by its name (*_FILE holds a path: not a secret)."""
    return bool(SECRET_ENV.search(name)) and not name.upper().endswith("_FILE")


def url_passwords(text):
    out = []
    for raw in URL_PASSWORD.findall(str(text)):
        out += [raw, unquote(raw)]
    return out


class Screen:
    """A set of secret values; masks them in text, in nested data and in files."""

    def __init__(self, values=()):
        clean = {v.strip() for v in values if isinstance(v, str)}
        self.values = tuple(sorted((v for v in clean if len(v) >= MIN_LEN and not _a_path(v)), key=len,
                                   reverse=True))
        # the forms a value takes inside JSON files (job events, the command file): escaped quotes, \\u...
        forms = set()
        for v in self.values:
            forms.add(v.encode())
            forms.add(json.dumps(v)[1:-1].encode())
            forms.add(json.dumps(v, ensure_ascii=False)[1:-1].encode())
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self):
        return bool(self.values)

    def __len__(self):
        return len(self.values)

    def hit(self, text):
        text = str(text)
        return any(v in text for v in self.values)

    def text(self, text):
        for v in self.values:
            if v in text:
                text = text.replace(v, MASK)
        return text

    def mask(self, value):
        """A copy of `value` (str, dict, list, tuple, anything else as is) with every known secret masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.mask(k) if isinstance(k, str) else k: self.mask(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.mask(v) for v in value)
        return value

    def sweep(self, directory):
        """Mask known secrets in every file under `directory`; the relative paths that needed it.

        The safety net behind the prevention (a non-empty answer means something wrote a secret, and
        the audit says which file): afterwards no file under `directory` holds one.
        """
        found = []
        if not self._forms:
            return found
        for path in sorted(Path(directory).rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            if not any(f in data for f in self._forms):
                continue
            for form in self._forms:
                data = data.replace(form, MASK.encode())
            path.write_bytes(data)
            found.append(str(path.relative_to(directory)))
        return found


def _a_path(value):
    """A secret-named variable that holds an existing path (PASSWORD_STORE_DIR=...) holds no secret."""
    return value.startswith(("/", "~")) and os.path.exists(os.path.expanduser(value))


def known_secrets(policy, *, inventory=None, vault_password_file=None, environ=None, extra=()):
    """Every secret value qt-remediate can know for a run with this policy (see the module doc)."""
    environ = os.environ if environ is None else environ
    values = [v for v in extra if v]
    for name, value in environ.items():
        if secret_name(name):
            values.append(value)
        values += url_passwords(value)
    if policy.notify_url:  # a webhook URL is a credential as a whole (Slack-style), and may carry a password
        values += [policy.notify_url, *url_passwords(policy.notify_url)]
    password = vault_password(vault_password_file or policy.vault_password_file)
    if password:
        values.append(password)
    for path in policy.secret_files:
        values += file_values(path, password, vaulted_only=False)
    for path in _vars_files(inventory or policy.inventory, policy.playbook_dir):
        values += file_values(path, password, vaulted_only=True)
    return Screen(values)


def vault_password(path):
    """The vault password from a password *file*; None for a script (Ansible runs it; we do not)."""
    if not path:
        return None
    path = Path(path)
    try:
        if not path.is_file() or os.access(path, os.X_OK):
            return None
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _vars_files(inventory, playbook_dir):
    """group_vars/ and host_vars/ beside the inventory and the playbooks, as Ansible reads them."""
    roots = {Path(inventory).parent, Path(playbook_dir)}
    files = []
    for root in sorted(roots):
        for sub in ("group_vars", "host_vars"):
            base = root / sub
            if base.is_dir():
                files += sorted(p for p in base.rglob("*") if p.is_file())
    return files[:MAX_FILES]


class _Vaulted(str):
    """An inline `!vault |` value, still encrypted."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!vault", lambda loader, node: _Vaulted(loader.construct_scalar(node)))
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def file_values(path, password, vaulted_only):
    """The secret values of one vars file: all its values (a secret file), or only the vaulted ones."""
    try:
        path = Path(path)
        if not path.is_file() or path.stat().st_size > MAX_FILE:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if text.lstrip().startswith("$ANSIBLE_VAULT;"):
        text = _decrypt(text, password)
        if text is None:
            return []
        vaulted_only = False  # the whole file was vaulted: every value in it is a secret
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return [] if vaulted_only else [text.strip()]
    out = []
    for leaf in _leaves(doc):
        if isinstance(leaf, _Vaulted):
            plain = _decrypt(str(leaf), password)
            if plain is not None:
                out.append(plain)
        elif not vaulted_only and isinstance(leaf, (str, int, float)) and not isinstance(leaf, bool):
            out.append(str(leaf))
    return out


def _leaves(doc):
    if isinstance(doc, dict):
        for value in doc.values():
            yield from _leaves(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _leaves(value)
    elif doc is not None:
        yield doc


def _decrypt(text, password):
    if not password:
        return None
    try:
        from ansible.parsing.vault import VaultLib, VaultSecret

        return VaultLib([("default", VaultSecret(password.encode()))]).decrypt(text.strip().encode()).decode(
            "utf-8", errors="replace")
    except Exception:  # wrong password, not a vault, no ansible: nothing known from this file
        return None
