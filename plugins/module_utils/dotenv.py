# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Parse and edit a docker compose `.env` file exactly as compose v2 reads it.

The parser is a port of compose-go's dotenv parser and `${}` template engine (compose 2.40.3), checked
against `docker compose config` (tests/unit/test_dotenv.py, docs/dotenv.md). On top of compose's result it
keeps where every statement sits in the text, so `set_keys` rewrites only the bytes it must.

Bytes that are not UTF-8 are read as compose reads them (it works on raw bytes): each one becomes a lone
surrogate (Python's `surrogateescape`), so offsets still index the text, `encode()` gives back the exact bytes,
and `printable()` shows each as U+FFFD, as `docker compose config --format json` does.

Stricter than compose on purpose (compose accepts these, but the container would get a broken or surprising
environment): NUL bytes, and a variable with an empty name (`=value`, or a bare `KEY` on the last line without
a final newline, which compose reads as the *value* of an empty-named variable).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MASK = "********"
BOM = "\ufeff"

# compose-go: isSpace (no line break) and Go's unicode.IsSpace
_SPACE = "\t\v\f\r \x85\xa0"
_UNICODE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_EXPORT = re.compile(r"export[\t\n\f\r ]+")  # Go's \s is ASCII only
# compose-go's pattern is case-insensitive [_a-z]: Go's case folding also admits the Kelvin sign and long s.
_NAME = "[_A-Za-z\u212a\u017f][_A-Za-z0-9\u212a\u017f]*"
_TEMPLATE = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_NAME})|\{{(?:(?P<braced>{_NAME}(?::?[-+?](?:.*))?)\}}|(?P<invalid>)))"
)
_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0[0-9]{0,3})')
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")
_SAFE_UNQUOTED = re.compile(r"[A-Za-z0-9_./:@%+,=^~-]*")
DEFAULT_SECRET_PATTERNS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "PRIVATE", "CREDENTIAL")


class DotenvError(Exception):
    """A file compose would refuse (or that we refuse, see the module docstring).

    `str()` reads like compose (`failed to read PATH: line N: reason detail`); `safe` leaves out `detail`,
    the quoted file content, so it can be shown even when the line holds a secret."""

    def __init__(self, reason, line=None, path=None, detail="", hint=""):
        self.reason, self.line, self.path, self.detail, self.hint = reason, line, path, detail, hint
        super().__init__(self._format(with_detail=True))

    def _format(self, with_detail):
        where = f"line {self.line}: " if self.line else ""
        detail = self.detail if with_detail else self.hint
        return f"failed to read {self.path or '.env'}: {where}{self.reason}{detail}"

    @property
    def safe(self):
        return self._format(with_detail=False)

    def __str__(self):
        return self._format(with_detail=True)


@dataclass
class Assignment:
    """One `KEY=value` (or bare `KEY`) statement. Offsets index the text without its BOM."""

    key: str
    value: str | None  # what compose sets; None for a bare key that the environment does not define
    line: int
    start: int  # first character of the statement (`export` included)
    key_end: int
    value_start: int  # raw value span, quotes included; empty for a bare key
    value_end: int
    end_line: int
    inherited: bool = False  # bare `KEY`: the value comes from the calling environment
    export: bool = False


@dataclass
class Entry:
    """Whole lines of the file: a blank line, a comment, or the statement(s) they hold."""

    kind: str  # blank | comment | assignment
    raw: str  # exact text, line ending(s) included
    line: int  # 1-based number of the first line
    start: int
    assignments: list = field(default_factory=list)

    @property
    def key(self):
        return self.assignments[0].key if self.assignments else None

    @property
    def value(self):
        return self.assignments[0].value if self.assignments else None


@dataclass
class Dotenv:
    text: str  # without the BOM
    bom: bool
    entries: list
    values: dict  # effective environment (what compose passes), in order of first definition

    @property
    def assignments(self):
        return [a for e in self.entries for a in e.assignments]

    @property
    def keys_in_order(self):
        return list(self.values)

    def occurrences(self, key):
        return [a for a in self.assignments if a.key == key]

    @property
    def newline(self):
        """The file's dominant line ending (LF for a file without any)."""
        crlf = self.text.count("\r\n")
        return "\r\n" if crlf > self.text.count("\n") - crlf else "\n"


# ----------------------------------------------------------------------------------------------- decoding


_RAW_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as surrogateescape decodes it


def decode(data, path=None):
    """Bytes -> text, byte for byte: a byte that is not UTF-8 becomes a lone surrogate (compose passes such
    bytes on, so we keep them). Refuses NUL bytes with the line they are on."""
    text = data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")
    nul = text.find("\x00")
    if nul >= 0:
        raise DotenvError("NUL byte", text.count("\n", 0, nul) + 1, path)
    return text


def encode(text):
    """Text from `decode` (or `set_keys`) -> the exact bytes, raw non-UTF-8 bytes included."""
    return text.encode("utf-8", "surrogateescape")


def printable(text):
    """`text` with each raw non-UTF-8 byte shown as U+FFFD (what `docker compose config --format json` shows),
    so it can be printed and sent as JSON. None stays None."""
    return text if text is None else _RAW_BYTE.sub("\ufffd", text)


# ----------------------------------------------------------------------------------------------- templates


class _TemplateError(Exception):
    pass


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _go_quote(text):
    """Go's %q, which compose uses to quote file content in its messages."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif _RAW_BYTE.fullmatch(char):
            out.append(f"\\x{ord(char) - 0xDC00:02x}")  # Go quotes a byte that is not UTF-8 as \xNN
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _brace_close(text):
    """Index of the `}` closing the first `${` (compose-go getFirstBraceClosingIndex)."""
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text.startswith("${", i):
            depth += 1
            i += 1
        i += 1
    return -1


def _operator(text):
    found = [(text.find(op), op) for op in _OPERATORS if op in text]
    return min(found)[1] if found else None


def _apply_operator(op, body, lookup):
    """(value, applied) for `${name<op>arg}`; raises for `?`/`:?` on a missing value."""
    name, sep, arg = body.partition(op)
    if not sep:
        return "", False
    value = lookup(name)
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            reason = substitute(arg, lookup)
            raise _TemplateError(f"required variable {name} is missing a value", f": {reason}" if reason else "")
        return value, True
    arg = substitute(arg, lookup)  # compose expands the argument even when it is not used
    if op in (":-", "-"):
        return (arg if value is None or (op == ":-" and value == "") else value), True
    present = value is not None and (op == "+" or value != "")
    return (arg if present else (value or "")), True


def _replace(match_text, lookup):
    op = _operator(match_text)
    close = _brace_close(match_text)
    rest = ""
    if close > -1:
        match_text, rest = match_text[: close + 1], match_text[close + 1 :]
    groups = _TEMPLATE.match(match_text).groupdict()
    if groups["escaped"]:
        return "$"
    if groups["named"]:
        return lookup(groups["named"]) or ""
    body = groups["braced"]
    if not body:
        raise _TemplateError("invalid template")
    if op:
        value, applied = _apply_operator(op, body, lookup)
        if applied:
            return value + substitute(rest, lookup)
    return lookup(body) or ""


def substitute(template, lookup):
    """compose-go template.Substitute: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
    `${VAR:+r}`, `${VAR+r}`, nested. `lookup(name)` returns the value or None. Raises _TemplateError."""
    out, pos, first_error = [], 0, None
    for match in _TEMPLATE.finditer(template):
        out.append(template[pos : match.start()])
        try:
            out.append(_replace(match.group(0), lookup))
        except _TemplateError as err:
            first_error = first_error or err
        pos = match.end()
    if first_error:
        if first_error.args == ("invalid template",):
            raise _TemplateError("Invalid template", ": " + _go_quote(template))
        raise first_error
    return "".join(out) + template[pos:]


def _unescape(match):
    text = match.group(0)
    if text == "\\$":
        return "$$"  # a literal dollar for the template engine
    if text.startswith("\\0"):
        text = "\\" + text[2:]  # compose rewrites `\0ooo` to Go's `\ooo`
    body = text[1:]
    if body in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[body]
    if len(body) == 3 and all(c in "01234567" for c in body) and int(body, 8) < 256:
        return chr(int(body, 8))
    return text  # not an escape Go knows: kept as written


# ----------------------------------------------------------------------------------------------- parser


def _is_key_char(char):
    return char in "_.-[]" or unicodedata.category(char)[0] in "LN"


class _Parser:
    """compose-go's dotenv parser over one string, recording positions. `self.line` follows compose's counter,
    so error line numbers are the ones compose prints."""

    def __init__(self, text, env, path):
        self.text, self.env, self.path = text, env, path
        self.line = 1
        self.values = {}
        self.empty_key_line = 0

    def error(self, reason, detail="", line=None, hint=""):
        return DotenvError(reason, line or self.line, self.path, detail, hint)

    def lookup(self, name):
        if name in self.env:  # compose asks the environment first, then the keys read so far
            return self.env[name]
        return self.values.get(name)

    def statement_start(self, pos):
        text = self.text
        while True:
            while pos < len(text) and text[pos] in _UNICODE_SPACE:
                self.line += text[pos] == "\n"
                pos += 1
            if pos >= len(text):
                return None
            if text[pos] != "#":
                return pos
            pos = text.find("\n", pos)
            if pos < 0:
                return None

    def locate_key(self, pos):
        """(key, key_end, rest, inherited, export) for the statement at pos."""
        text, export = self.text, False
        match = _EXPORT.match(text, pos)
        if match:
            pos, export = pos + len("export"), True
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
        if pos >= len(text):
            raise self.error("zero length string")
        key, offset, inherited = "", pos, False
        for i in range(pos, len(text)):
            char = text[i]
            if char in _SPACE:
                continue
            if char in "=:\n":
                key, offset, inherited = text[pos:i], i + 1, char == "\n"
                break
            if not _is_key_char(char):
                line = text[pos:].split("\n", 1)[0]
                shown = printable(char)  # compose names a raw byte as the rune it decodes to: U+FFFD
                raise self.error(f"unexpected character {_go_quote(shown)} in variable name", " " + _go_quote(line))
        if inherited and " " not in key:
            self.line += 1
        key = key.rstrip(_UNICODE_SPACE)
        key_end = pos + len(key)
        while offset < len(text) and text[offset] in _SPACE:
            offset += 1
        return key, key_end, offset, inherited, export

    def extract_value(self, pos, stmt_line):
        """(value, value_end, rest) for the value starting at pos."""
        text = self.text
        quote = text[pos] if pos < len(text) and text[pos] in "'\"" else None
        if quote is None:
            end = text.find("\n", pos)
            end, rest = (len(text), len(text)) if end < 0 else (end, end + 1)
            self.line += 1
            raw = text[pos:end].split(" #", 1)[0].rstrip(_UNICODE_SPACE)
            return self.expand(raw, stmt_line), pos + len(raw), rest
        chars, escaped = [], False
        for i in range(pos + 1, len(text)):
            char = text[i]
            self.line += char == "\n"
            if char != quote:
                if not escaped and char == "\\":
                    escaped = True
                    continue
                if escaped:
                    escaped = False
                    chars.append("\\")
                chars.append(char)
                continue
            if escaped:  # an escaped quote does not end the value
                escaped = False
                chars.append(char)
                continue
            value = "".join(chars)
            if quote == '"':
                value = self.expand(_ESCAPE.sub(_unescape, value), stmt_line)
            return value, i + 1, i + 1
        # compose names the line where the file ends; the safe message also says where the quote opened
        opened = text.count("\n", 0, pos) + 1
        raise self.error(
            "unterminated quoted value",
            " " + printable(text[pos:].split("\n", 1)[0]),
            hint=f" (the quote opens on line {opened})",
        )

    def expand(self, value, stmt_line):
        try:
            return substitute(value, self.lookup)
        except _TemplateError as err:
            raise self.error(*err.args, line=stmt_line) from None

    def statements(self):
        pos = 0
        while True:
            start = self.statement_start(pos)
            if start is None:
                return
            line = self.text.count("\n", 0, start) + 1
            key, key_end, rest, inherited, export = self.locate_key(start)
            if " " in key:
                raise self.error("key cannot contain a space")
            if inherited:
                value = self.env.get(key)
                if value is not None:  # an undefined bare key leaves an earlier value alone
                    self.values[key] = value
                yield Assignment(key, value, line, start, key_end, key_end, key_end, line, True, export)
                pos = rest
                continue
            value, value_end, pos = self.extract_value(rest, line)
            if key == "" and not self.empty_key_line:
                self.empty_key_line = line  # refused once the whole file parses, so compose's own errors come first
            self.values[key] = value
            end_line = line + self.text.count("\n", start, value_end)
            yield Assignment(key, value, line, start, key_end, rest, value_end, end_line, False, export)


def _line_end(text, pos):
    end = text.find("\n", pos)
    return len(text) if end < 0 else end + 1


def _entries(text, statements):
    """Group the statements into whole-line entries, with blank and comment lines in between."""
    entries, pos, queue = [], 0, list(statements)
    while pos < len(text):
        end = _line_end(text, pos)
        group = []
        while queue and queue[0].start < end:
            stmt = queue.pop(0)
            group.append(stmt)
            end = max(end, _line_end(text, max(stmt.value_end - 1, stmt.start)))
        raw = text[pos:end]
        kind = "assignment" if group else ("comment" if raw.strip(_UNICODE_SPACE).startswith("#") else "blank")
        entries.append(Entry(kind, raw, text.count("\n", 0, pos) + 1, pos, group))
        pos = end
    return entries


def parse(data, env=None, path=None):
    """Parse `.env` content (bytes or str) into a line-preserving Dotenv; raises DotenvError.

    `env` is the calling environment compose would see (bare keys and `$VAR` read it first); None means empty."""
    text = decode(data, path)
    bom = text.startswith(BOM)
    text = text[1:] if bom else text
    parser = _Parser(text, dict(env or {}), path)
    statements = list(parser.statements())
    if parser.empty_key_line:
        raise DotenvError(
            "variable with an empty name (a line `=value`, or a bare KEY on the last line without a "
            "final newline): compose cannot create the container",
            parser.empty_key_line,
            path,
        )
    return Dotenv(text, bom, _entries(text, statements), parser.values)


# ----------------------------------------------------------------------------------------------- editor


class DotenvEditError(ValueError):
    """A wanted change that cannot be made safely (bad key name or value, or a side effect on another key)."""


def check_key(key):
    if not isinstance(key, str) or not key or not all(_is_key_char(char) for char in key):
        raise DotenvEditError(f"invalid variable name {key!r} (letters, digits and _ . - [ ] only)")


def quote_value(value, force=False):
    """How to write `value` so compose reads back exactly that string (no expansion, no trimming).

    Plain when nothing in it is special; single quotes (literal) when possible; else double quotes with
    `\\\\ \\" \\$ \\n \\r` escaped. `force` quotes even a plain value (text follows it on the line)."""
    if not isinstance(value, str):
        raise DotenvEditError(f"values must be strings, not {type(value).__name__}")
    if "\x00" in value:
        raise DotenvEditError("a value cannot hold a NUL byte")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise DotenvEditError("a value must be valid Unicode text")
    if _SAFE_UNQUOTED.fullmatch(value) and not force:
        return value
    if not any(char in value for char in "'\n\r") and not value.endswith("\\"):
        return f"'{value}'"  # a backslash before the closing quote would escape it
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def _rewrite(text, stmt, value):
    """Edit replacing the first occurrence's value in place (its `export`, spacing, comment and line ending stay)."""
    if stmt.inherited:
        return stmt.key_end, stmt.key_end, "=" + quote_value(value)
    after = text[stmt.value_end : _line_end(text, stmt.value_end)]
    # A plain value may be followed by spaces and ` # comment`; anything else on the line needs quotes.
    force = bool(after.strip(_UNICODE_SPACE)) and (value == "" or bool(after.split(" #", 1)[0].strip(_UNICODE_SPACE)))
    return stmt.value_start, stmt.value_end, quote_value(value, force=force)


def _removal(doc, stmt):
    """Edit dropping a later duplicate: its whole line(s), or only the statement when it shares a line."""
    entry = next(e for e in doc.entries if stmt in e.assignments)
    if len(entry.assignments) == 1:
        return entry.start, entry.start + len(entry.raw), ""
    return stmt.start, stmt.value_end, ""


def _apply(text, edits):
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def set_keys(data, desired, env=None, path=None):
    """Set each key of `desired` exactly once; returns (new text, changes).

    The first occurrence is rewritten in place, later duplicates are removed, absent keys are appended (after a
    line break if the file lacks a final one). Everything else is kept byte for byte. The result is parsed
    again: if any other key would change (it expands a managed key), DotenvEditError is raised."""
    doc = parse(data, env, path)
    edits, added, changes = [], [], []
    for key, value in desired.items():
        check_key(key)
        quote_value(value)
        found, before = doc.occurrences(key), doc.values.get(key)
        if len(found) == 1 and not found[0].inherited and before == value:
            continue
        if found:
            edits.append(_rewrite(doc.text, found[0], value))
            edits.extend(_removal(doc, stmt) for stmt in found[1:])
        else:
            added.append(f"{key}={quote_value(value)}")
        changes.append(
            {
                "key": key,
                "before": before,
                "after": value,
                "duplicates_collapsed": max(len(found) - 1, 0),
                "added": not found,
            }
        )
    text = _apply(doc.text, edits)
    if added:
        if text and not text.endswith("\n"):
            text += doc.newline  # never glue onto the last line (the runbook's `echo >> .env` bug)
        text += "".join(line + doc.newline for line in added)
    text = (BOM if doc.bom else "") + text
    _verify(doc, text, desired, env, path)
    return text, changes


def _verify(before, text, desired, env, path):
    after = parse(text, env, path)
    expected = dict(before.values, **desired)
    others = sorted(
        k for k in set(expected) | set(after.values) if k not in desired and expected.get(k) != after.values.get(k)
    )
    if others:
        raise DotenvEditError(
            f"setting {', '.join(desired)} would also change {', '.join(others)} "
            "(they expand a managed key): edit the file by hand"
        )
    wrong = [k for k in desired if after.values.get(k) != desired[k] or len(after.occurrences(k)) != 1]
    if wrong:
        raise DotenvEditError(f"internal error: {', '.join(wrong)} not set as wanted; file left alone")


def diff_keys(before, after, keys):
    """Change records for `keys` between two parsed files (templated mode)."""
    changes = []
    for key in keys:
        old, new = before.values.get(key), after.values.get(key)
        count_old, count_new = len(before.occurrences(key)), len(after.occurrences(key))
        if old != new or count_old != count_new:
            changes.append(
                {
                    "key": key,
                    "before": old,
                    "after": new,
                    "duplicates_collapsed": max(count_old - count_new, 0),
                    "added": count_old == 0,
                }
            )
    return changes


# ----------------------------------------------------------------------------------------------- masking


def is_secret(key, patterns=DEFAULT_SECRET_PATTERNS):
    upper = key.upper()
    return any(pattern.upper() in upper for pattern in patterns)


def masked_text(doc, patterns=DEFAULT_SECRET_PATTERNS, changed=()):
    """The file text with the raw value of every secret key replaced by MASK (for diffs); keys in
    `changed` read "******** (changed)", so a diff still shows that a secret changed, never what to."""
    edits = [
        (a.value_start, a.value_end, MASK + (" (changed)" if a.key in changed else ""))
        for a in doc.assignments
        if not a.inherited and a.value_end > a.value_start and is_secret(a.key, patterns)
    ]
    return (BOM if doc.bom else "") + _apply(doc.text, edits)


# ----------------------------------------------------------------------------------------------- simple reads

_LENIENT_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*?)\s*$")


def _lenient_values(text):
    """Line by line, for a file compose would refuse: still say what the mode keys look like."""
    values = {}
    for line in text.replace("\r\n", "\n").lstrip(BOM).split("\n"):
        match = _LENIENT_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            raw = match.group(2)
            if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
                values[match.group(1)] = raw[1:-1]
            else:
                values[match.group(1)] = raw.split(" #", 1)[0].rstrip()
    return values


def effective_values(text, keys=None, env=None):
    """{key: value} compose would use for `keys` (all keys when None), last assignment winning.

    Never raises: a file compose would refuse is read line by line instead."""
    try:
        values = parse(text, env).values
    except DotenvError:
        values = _lenient_values(text)
    return {k: v for k, v in values.items() if keys is None or k in keys}
