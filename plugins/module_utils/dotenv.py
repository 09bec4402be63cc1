# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read effective values from a docker compose `.env` file (the subset of
compose's rules that single-line settings use; see docs and
shared reference dotenv.md). Last assignment wins, as in compose."""
from __future__ import annotations

import re

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*?)\s*$")


def parse_value(raw):
    """Unquote a single-line value the way compose does."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        if raw[0] == '"':
            inner = inner.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        return inner
    cut = raw.find(" #")  # an unquoted comment starts at space + '#'
    return (raw[:cut] if cut >= 0 else raw).rstrip()


def effective_values(text, keys=None):
    """{key: value} for `keys` (all keys when None), last occurrence winning."""
    values = {}
    for line in text.replace("\r\n", "\n").lstrip("\ufeff").split("\n"):
        match = _LINE.match(line)
        if match and not line.lstrip().startswith("#") and (keys is None or match.group(1) in keys):
            values[match.group(1)] = parse_value(match.group(2))
    return values
