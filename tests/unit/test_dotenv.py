"""module_utils/dotenv: the compose-faithful `.env` parser and the in-place editor.

The reference is compose itself: every well-formed corpus file (tests/fixtures/dotenv/), every rule snippet
and a bounded random corpus are read by `docker compose config` as a service env_file and must come out the
same. No Docker daemon is needed; the compose plugin is linked by `make venv`.
"""

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils.dotenv import (
    DotenvEditError,
    DotenvError,
    effective_values,
    encode,
    masked_text,
    parse,
    printable,
    quote_value,
    set_keys,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dotenv"
WELL_FORMED = sorted(p for p in FIXTURES.glob("*.env") if not p.name.startswith("bad_"))
# The environment both parsers see (bare keys and $VAR read it first); nothing leaks in from the shell.
# fmt: off
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
       "QT_FROM_ENV": "from-env", "BARE_SET": "bare-value", "BARE_EXPORTED_SET": "exported", "QT_EMPTY": "",
       "LOG_LEVEL": "from-env"}
# fmt: on

# file -> (line compose/we report, start of the reason, what compose does with it)
MALFORMED = {
    "bad_key_space.env": (3, "key cannot contain a space", "same"),
    "bad_unterminated_double.env": (5, "unterminated quoted value", "same"),  # compose: the line where the file ends
    "bad_unterminated_single.env": (2, "unterminated quoted value", "same"),
    "bad_escaped_last_quote.env": (3, "unterminated quoted value", "same"),  # '...\' escapes its closing quote
    "bad_garbage_line.env": (3, 'unexpected character "}" in variable name', "same"),
    "bad_shell_command.env": (2, "key cannot contain a space", "same"),
    "bad_pipe_command.env": (3, "key cannot contain a space", "same"),
    "bad_required_var.env": (2, "required variable QT_UNSET is missing a value", "no line"),
    "bad_template.env": (3, "Invalid template", "no line"),
    "bad_template_empty.env": (1, "Invalid template", "no line"),
    "bad_zero_length.env": (2, "zero length string", "no line"),
    "bad_invalid_utf8_key.env": (2, 'unexpected character "\ufffd" in variable name', "same"),  # in a value: fine
    # stricter than compose: it accepts these, but the container gets a broken environment (or none)
    "bad_nul.env": (2, "NUL byte", "accepts"),
    "bad_empty_key.env": (2, "variable with an empty name", "accepts"),
    "bad_bare_key_at_eof.env": (2, "variable with an empty name", "accepts"),
    "bad_text_after_quote.env": (2, "variable with an empty name", "accepts"),
}

# The rules, one snippet each: (text, what compose sets). Checked against our parser and against compose.
RULES = [
    ("A=1\nA=2\n", {"A": "2"}),  # last one wins
    ("a=1\nA=2\n", {"a": "1", "A": "2"}),  # case-sensitive
    ("export A=1\n", {"A": "1"}),
    ("exportA=1\n", {"exportA": "1"}),
    ("A: v\n", {"A": "v"}),
    ("  A  =  v w  \n", {"A": "v w"}),
    ("A=b=c\n", {"A": "b=c"}),
    ("A=a#b\n", {"A": "a#b"}),
    ("A= # x\n", {"A": "# x"}),
    ("A=x #c\n", {"A": "x"}),
    ("A=x\t#c\n", {"A": "x\t#c"}),  # only space + '#' starts a comment
    ("A='$HOME \\n'\n", {"A": "$HOME \\n"}),
    ('A="\\t\\n\\"\\\\\\$HOME"\n', {"A": '\t\n"\\$HOME'}),
    ("A='it\\'s'\n", {"A": "it's"}),
    ('A="line1\nline2"\n', {"A": "line1\nline2"}),
    ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("A=1\rB=2\n", {"A": "1\rB=2"}),  # a lone CR is not a line break
    ("\ufeffA=1\n", {"A": "1"}),
    ("A=1", {"A": "1"}),
    ("A=false\nB=2A=true\n", {"A": "false", "B": "2A=true"}),  # the `echo >> .env` glue
    ("B=1\nC=$B-${B}-$$B\n", {"B": "1", "C": "1-1-$B"}),
    ("LOG_LEVEL=file\nC=$LOG_LEVEL\n", {"LOG_LEVEL": "file", "C": "from-env"}),  # the environment wins
    ("A=${QT_UNSET:-d}|${QT_EMPTY:-e}|${QT_EMPTY-f}|${QT_FROM_ENV:+g}\n", {"A": "d|e||g"}),
    ("A=${QT_UNSET:-${QT_FROM_ENV}}\n", {"A": "from-env"}),
    ("A=$ $1 $-\n", {"A": "$ $1 $-"}),
    ("BARE_SET\nBARE_UNSET\n", {"BARE_SET": "bare-value"}),
    ("K=old\nK\n", {"K": "old"}),  # a bare key the environment does not set leaves K alone
    ('A="x" B=2\n', {"A": "x", "B": "2"}),
    ("A=x\u00a0\n", {"A": "x"}),
    ("A=\u2003x\n", {"A": "\u2003x"}),
    ('A="\\0101\\z"\n', {"A": "A\\z"}),
]


# ----------------------------------------------------------------------------------------------- the oracle


def _compose_ok():
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, env=ENV).returncode == 0


HAS_COMPOSE = _compose_ok()
needs_compose = pytest.mark.skipif(not HAS_COMPOSE, reason="docker compose v2 not found (`make venv` links it)")
if not HAS_COMPOSE and (os.environ.get("QT_REQUIRE_TOOLS") or os.environ.get("CI")):  # `make test`: fail, not skip
    pytest.fail("docker compose v2 not found and QT_REQUIRE_TOOLS/CI is set (`make venv` links it)", pytrace=False)


def _compose_config(paths):
    """Each file read by compose as a service env_file: {i: environment} or the error message."""
    with tempfile.TemporaryDirectory() as workdir:
        services = {f"s{i}": {"image": "scratch", "env_file": [str(p)]} for i, p in enumerate(paths)}
        (Path(workdir) / "compose.yml").write_text(json.dumps({"services": services}))
        res = subprocess.run(
            [
                "docker",
                "compose",
                "-f",
                f"{workdir}/compose.yml",
                "--project-directory",
                workdir,
                "-p",
                "probe",
                "config",
                "--format",
                "json",
            ],
            capture_output=True,
            env=ENV,
        )
    if res.returncode:
        err = res.stderr.decode("utf-8", "replace")
        return err[err.find("failed to read") :].replace("\r", "").rstrip()
    out = json.loads(res.stdout)["services"]
    # `config` prints a literal $ as $$
    return [
        {k: v.replace("$$", "$") for k, v in (out[f"s{i}"].get("environment") or {}).items()} for i in range(len(paths))
    ]


def compose_read(paths):
    """[environment or error message] for each file, one compose run for all when they are all valid."""
    batch = _compose_config(paths) if paths else []
    return batch if isinstance(batch, list) else [_one(p) for p in paths]


def _one(path):
    res = _compose_config([path])
    return res[0] if isinstance(res, list) else res.replace(str(path), "PATH")


def shown(values):
    """Our values as `config --format json` shows them: a byte that is not UTF-8 as U+FFFD."""
    return {k: printable(v) for k, v in values.items()}


def compose_read_texts(texts, tmp_path):
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"case{i}.env")
        paths[-1].write_bytes(encode(text) if isinstance(text, str) else text)
    return compose_read(paths)


# ----------------------------------------------------------------------------------------------- corpus


@needs_compose
def test_every_well_formed_corpus_file_reads_as_compose_reads_it():
    composed = compose_read(WELL_FORMED)
    for path, want in zip(WELL_FORMED, composed, strict=True):
        assert shown(parse(path.read_bytes(), ENV, str(path)).values) == want, path.name


def test_corpus_lists_every_malformed_file():
    assert sorted(p.name for p in FIXTURES.glob("bad_*.env")) == sorted(MALFORMED)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_names_file_and_line(name):
    line, reason, _ = MALFORMED[name]
    path = FIXTURES / name
    with pytest.raises(DotenvError) as caught:
        parse(path.read_bytes(), ENV, str(path))
    err = caught.value
    assert err.line == line and err.reason.startswith(reason)
    assert err.safe.startswith(f"failed to read {path}: line {line}: {reason}")
    assert "\n" not in err.safe


@needs_compose
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_against_compose(name):
    line, reason, compose_does = MALFORMED[name]
    path = FIXTURES / name
    with pytest.raises(DotenvError) as caught:
        parse(path.read_bytes(), ENV, "PATH")
    composed = _one(path)
    if compose_does == "accepts":
        assert isinstance(composed, dict), composed
    elif compose_does == "same":
        assert composed == str(caught.value)
    else:  # compose does not say which line; we do
        assert composed == str(caught.value).replace(f"line {line}: ", "")


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_entries_cover_the_file_byte_for_byte(path):
    data = path.read_bytes()
    doc = parse(data, ENV)
    assert encode(("\ufeff" if doc.bom else "") + "".join(e.raw for e in doc.entries)) == data
    lines = [e.line for e in doc.entries]
    assert lines == sorted(lines) and all(e.line == doc.text.count("\n", 0, e.start) + 1 for e in doc.entries)
    for stmt in doc.assignments:
        assert doc.text.startswith(stmt.key, stmt.key_end - len(stmt.key))


def test_entries_of_a_small_file():
    doc = parse("# c\r\nexport A='x' # note\r\n\r\nB=\"1\n2\"\nC\n")
    assert [(e.kind, e.line, e.raw, e.key) for e in doc.entries] == [
        ("comment", 1, "# c\r\n", None),
        ("assignment", 2, "export A='x' # note\r\n", "A"),
        ("blank", 3, "\r\n", None),
        ("assignment", 4, 'B="1\n2"\n', "B"),
        ("assignment", 6, "C\n", "C"),
    ]
    a, b, c = doc.assignments
    assert a.export and a.value == "x" and doc.text[a.value_start : a.value_end] == "'x'"
    assert b.value == "1\n2" and b.end_line == 5
    assert c.inherited and c.value is None and "C" not in doc.values


@needs_compose
def test_rules_table_matches_our_parser_and_compose(tmp_path):
    composed = compose_read_texts([text for text, _ in RULES], tmp_path)
    for (text, want), got in zip(RULES, composed, strict=True):
        assert parse(text, ENV).values == want, text
        assert got == want, text


@pytest.mark.parametrize("text, want", RULES)
def test_rules_table(text, want):
    assert parse(text, ENV).values == want


# ----------------------------------------------------------------------------------------------- editor


def test_set_keys_collapses_appended_duplicates_in_place():
    text = (
        "# mode\r\nexport BINANCE_USE_TESTNET=false # was live\r\nPAPER_TRADING=false\r\n"
        "BINANCE_USE_TESTNET=true\r\nLOG_LEVEL=INFO\r\nBINANCE_USE_TESTNET=maybe\r\n"
    )
    new, changes = set_keys(text, {"BINANCE_USE_TESTNET": "true"})
    assert new == ("# mode\r\nexport BINANCE_USE_TESTNET=true # was live\r\nPAPER_TRADING=false\r\nLOG_LEVEL=INFO\r\n")
    assert changes == [
        {
            "key": "BINANCE_USE_TESTNET",
            "before": "maybe",
            "after": "true",  # what compose used
            "duplicates_collapsed": 2,
            "added": False,
        }
    ]


def test_set_keys_appends_on_a_new_line_when_the_file_lacks_a_final_newline():
    text = (FIXTURES / "no_trailing_newline.env").read_text()
    new, changes = set_keys(text, {"BINANCE_USE_TESTNET": "true", "NEW": "1"})
    assert new == "# no final newline\nBINANCE_USE_TESTNET=true\nPAPER_TRADING=false\nNEW=1\n"
    assert changes[1] == {"key": "NEW", "before": None, "after": "1", "duplicates_collapsed": 0, "added": True}
    crlf, _ = set_keys("A=1\r\nB=2", {"C": "3"})
    assert crlf == "A=1\r\nB=2\r\nC=3\r\n"  # the file's dominant line ending


def test_set_keys_repairs_the_echo_glue_case():
    text = (FIXTURES / "echo_glue.env").read_text()
    assert parse(text).values["PAPER_TRADING"] == "falseBINANCE_USE_TESTNET=true"  # what the runbook did
    new, _ = set_keys(text, {"PAPER_TRADING": "false", "BINANCE_USE_TESTNET": "true"})
    assert parse(new).values == {"BINANCE_USE_TESTNET": "true", "PAPER_TRADING": "false"}
    assert new.splitlines()[0] == text.splitlines()[0]


def test_set_keys_is_idempotent_and_leaves_equal_keys_alone():
    text = "A=1\nB='two words'\n"
    assert set_keys(text, {"A": "1", "B": "two words"}) == (text, [])
    once, _ = set_keys(text, {"A": "x y", "C": "$HOME"})
    assert set_keys(once, {"A": "x y", "C": "$HOME"}) == (once, [])


def test_set_keys_keeps_bom_export_and_comments():
    text = "\ufeff# top\nexport A=1 # keep me\n\n# end\n"
    new, _ = set_keys(text, {"A": "2"})
    assert new == "\ufeff# top\nexport A=2 # keep me\n\n# end\n"
    quoted, _ = set_keys('A="1"# tight\n', {"A": "2"})
    assert quoted == "A='2'# tight\n" and parse(quoted).values == {"A": "2"}
    empty, _ = set_keys("A=1 # c\n", {"A": ""})
    assert empty == "A='' # c\n" and parse(empty).values == {"A": ""}


def test_set_keys_turns_a_bare_key_into_an_assignment():
    new, changes = set_keys("BARE_SET\nX=1\n", {"BARE_SET": "v"}, ENV)
    assert new == "BARE_SET=v\nX=1\n" and changes[0]["before"] == "bare-value"


def test_set_keys_refuses_a_change_that_moves_another_key():
    with pytest.raises(DotenvEditError, match="would also change URL"):
        set_keys("HOST=a\nURL=http://$HOST/\n", {"HOST": "b"})


@pytest.mark.parametrize("key", ["", "A B", "A=B", "#A", "A$", None])
def test_set_keys_refuses_bad_names(key):
    with pytest.raises(DotenvEditError):
        set_keys("A=1\n", {key: "x"})


def test_set_keys_refuses_values_it_cannot_write():
    with pytest.raises(DotenvEditError):
        set_keys("A=1\n", {"A": "a\x00b"})
    with pytest.raises(DotenvEditError):
        set_keys("A=1\n", {"A": True})


# fmt: off
QUOTING = ["plain", "", "two words", "$HOME", "$$", "it's", 'say "hi"', "back\\slash", "ends\\", "#hash", "a #b",
           " lead", "trail ", "multi\nline", "cr\rlf\r\n", "tab\there", "${QT_FROM_ENV}", "'\"$\\", "\\n", "é🚀",
           "x=y", "`cmd`", "\\0101"]
# fmt: on


@pytest.mark.parametrize("value", QUOTING)
def test_quote_value_reads_back_exactly(value):
    assert parse(f"K={quote_value(value)}\n", ENV).values == {"K": value}


@needs_compose
def test_quote_value_reads_back_exactly_in_compose(tmp_path):
    composed = compose_read_texts([f"K={quote_value(v)}\n" for v in QUOTING], tmp_path)
    assert composed == [{"K": v} for v in QUOTING]


# ----------------------------------------------------------------------------------------------- property

# fmt: off
VALUE_PARTS = ["a", "Z9", " ", "#", " #", "$", "$$", "${QT_FROM_ENV}", "$BASE", "'", '"', "\\", "\\n", "\n", "\r",
               "\r\n", "\t", "é", "🚀", "=", ":", "{", "}", "`", "\\0101", "export "]
# fmt: on


def random_value(rng):
    return "".join(rng.choice(VALUE_PARTS) for _ in range(rng.randint(0, 5)))


def references(doc, key):
    """Whether another statement's raw value mentions $key (then changing key may change it)."""
    pattern = re.compile(r"\$\{?" + re.escape(key) + r"(?![A-Za-z0-9_])")
    return any(pattern.search(doc.text[a.value_start : a.value_end]) for a in doc.assignments if a.key != key)


def untouched(doc, keys):
    return [e.raw for e in doc.entries if not any(a.key in keys for a in e.assignments)]


def property_cases(path, count):
    """(data, desired) pairs for one corpus file, from a seed fixed per file."""
    rng = random.Random(path.name)
    data = path.read_bytes()
    names = [a.key for a in parse(data, ENV).assignments if a.key] + ["NEW_KEY", "OTHER.NEW"]
    for _ in range(count):
        keys = rng.sample(sorted(set(names)), k=min(len(set(names)), rng.randint(1, 3)))
        yield data, {k: random_value(rng) for k in keys}


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_set_keys_property_parse_after_equals_parse_before_updated(path):
    for data, desired in property_cases(path, 40):
        before = parse(data, ENV)
        try:
            new, changes = set_keys(data, desired, ENV)
        except DotenvEditError:
            assert any(references(before, k) for k in desired), desired
            continue
        after = parse(new, ENV)
        assert after.values == {**before.values, **desired}
        assert all(len(after.occurrences(k)) == 1 for k in desired)
        kept, was = untouched(after, desired), untouched(before, desired)
        if was and not was[-1].endswith("\n") and kept != was:  # a final line ending added before appending
            was[-1] += before.newline
        assert kept == was  # everything else byte for byte
        assert {c["key"] for c in changes} <= set(desired)


@needs_compose
def test_set_keys_property_holds_in_compose(tmp_path):
    texts, wanted = [], []
    for path in WELL_FORMED:
        for data, desired in property_cases(path, 4):
            try:
                new, _ = set_keys(data, desired, ENV)
            except DotenvEditError:
                continue
            texts.append(new)
            wanted.append(shown({**parse(data, ENV).values, **desired}))
    assert compose_read_texts(texts, tmp_path) == wanted


# ----------------------------------------------------------------------------------------------- random corpus

# fmt: off
LINE_PARTS = ["a", "Z", "0", " ", "\t", "#", " #", "$", "$$", "${", "}", ":", "-", "?", ":-", "\\", "\\\\", "'", '"',
              "\n", "\r\n", "QT_FROM_ENV", "${QT_FROM_ENV}", "$A", "${QT_UNSET:-d}", "${A:+r}", "\\n", "\\$", '\\"',
              "\\0101", "é", "=", "\u00a0", "export ", "\udcff", "\udce9"]  # the last two: bytes that are not UTF-8
# fmt: on


def has_raw_byte(text):
    return text != printable(text)


def random_file(rng):
    lines = []
    for _ in range(rng.randint(1, 6)):
        key = rng.choice(["A", "B", "BARE_SET", "K.1", "QT_EMPTY", "LOG_LEVEL"])
        value = "".join(rng.choice(LINE_PARTS) for _ in range(rng.randint(0, 6)))
        quote = rng.choice(["", "", "'", '"'])
        lines.append(
            rng.choice(["", "export ", "  "]) + key + rng.choice(["=", ":", " = "]) + quote + value + quote
            if rng.random() > 0.15
            else rng.choice(["# c", "", key])
        )
    newline = rng.choice(["\n", "\r\n"])
    return newline.join(lines) + rng.choice([newline, ""])


@needs_compose
def test_random_files_read_as_compose_reads_them(tmp_path):
    rng = random.Random(20251128)
    ok, refused = [], []
    for _ in range(300):
        text = random_file(rng)
        try:
            ok.append((text, parse(text, ENV, "PATH").values))
        except DotenvError as err:
            refused.append((text, err))
    assert len(ok) > 150 and any(has_raw_byte(t) for t, _ in ok) and any(has_raw_byte(t) for t, _ in refused)
    assert compose_read_texts([t for t, _ in ok], tmp_path) == [shown(v) for _, v in ok]
    for i, (text, err) in enumerate(refused[:8]):  # compose says the same (it omits the line for templates)
        path = tmp_path / f"refused{i}.env"
        path.write_bytes(encode(text))
        composed = _one(path)
        if "empty name" in err.reason:
            assert isinstance(composed, dict)
        else:
            ours = str(err).replace("\r", "").rstrip()  # as _compose_config normalises compose's message
            assert composed in (ours, ours.replace(f"line {err.line}: ", ""))


# ----------------------------------------------------------------------------------------------- the rest


def test_masked_text_hides_secret_values_only():
    doc = parse((FIXTURES / "real_world.env").read_bytes())
    masked = masked_text(doc)
    assert "AbCdEf0123456789" not in masked and "s3cr3t" not in masked and "p@ss" not in masked
    assert "BINANCE_API_SECRET=********\n" in masked and "REDIS_URL=redis://quantum_redis:6379/0" in masked
    assert masked.count("\n") == doc.text.count("\n")


def test_effective_values_keeps_its_contract():
    text = "BINANCE_USE_TESTNET=false\nPAPER_TRADING='true'\nBINANCE_USE_TESTNET=true # appended\n"
    assert effective_values(text) == {"BINANCE_USE_TESTNET": "true", "PAPER_TRADING": "true"}
    assert effective_values(text, ["PAPER_TRADING"]) == {"PAPER_TRADING": "true"}
    # a file compose would refuse is still read line by line (binance_futures_info reports, never crashes)
    assert effective_values("PAPER_TRADING=true\nnot valid at all\n", ["PAPER_TRADING"]) == {"PAPER_TRADING": "true"}


def test_nul_byte_is_refused_with_its_line():
    with pytest.raises(DotenvError, match=r"failed to read f: line 3: NUL byte"):
        parse(b"A=1\n\nB=\x00\n", path="f")


def test_bytes_that_are_not_utf8_are_read_as_compose_reads_them():
    doc = parse(b"# \xe9t\xe9\nA=x\xff #c\nB='\xc3'\nC=\"\\\xfe$A\"\n")
    assert shown(doc.values) == {"A": "x\ufffd", "B": "\ufffd", "C": "\\\ufffdx\ufffd"}
    assert encode(doc.text) == b"# \xe9t\xe9\nA=x\xff #c\nB='\xc3'\nC=\"\\\xfe$A\"\n"
    with pytest.raises(DotenvError) as caught:  # in a key compose refuses it, naming the rune it decodes to
        parse(b"A=1\nB\xff=2\n", path="f")
    assert str(caught.value) == 'failed to read f: line 2: unexpected character "\ufffd" in variable name "B\\xff=2"'
    assert caught.value.safe == 'failed to read f: line 2: unexpected character "\ufffd" in variable name'


def test_set_keys_keeps_bytes_that_are_not_utf8_on_every_other_line():
    data = (FIXTURES / "invalid_utf8.env").read_bytes()
    new, changes = set_keys(data, {"BINANCE_USE_TESTNET": "true", "NOTE": "plain"}, ENV)
    assert [c["key"] for c in changes] == ["BINANCE_USE_TESTNET", "NOTE"]
    old_lines, new_lines = data.splitlines(keepends=True), encode(new).splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert changed == [4, 5]
    assert new_lines[4:6] == [b"BINANCE_USE_TESTNET=true\n", b"NOTE=plain # Latin-1 in a plain value\n"]
    want = dict(shown(parse(data, ENV).values), BINANCE_USE_TESTNET="true", NOTE="plain")
    assert shown(parse(encode(new), ENV).values) == want
    masked = masked_text(parse(new, ENV))
    assert "s3cr" not in masked and printable(masked).encode("utf-8")  # printable: no lone surrogates left


def test_a_value_that_is_not_valid_text_is_refused():
    with pytest.raises(DotenvEditError, match="valid Unicode"):
        quote_value("a\udcffb")


def test_unterminated_quote_safe_message_says_where_it_opens():
    with pytest.raises(DotenvError) as caught:
        parse("A=1\nSECRET='hunter2\nB=2\n", path="x.env")
    assert caught.value.line == 4 and "hunter2" in str(caught.value)  # compose's wording quotes the content ...
    assert caught.value.safe == "failed to read x.env: line 4: unterminated quoted value (the quote opens on line 2)"
