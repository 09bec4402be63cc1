"""quantum.runbooks.dotenv_keys end to end (`ansible localhost -m ...`) on .env files in a temp dir.

Compose is the oracle here too (no Docker daemon needed); a fake compose command stands in for the cases
where compose and the builtin parser would disagree."""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import ansible_run
import pytest
from ansible_run import run_module

SECRET = f"sk-old-{secrets.token_hex(12)}"  # random per run: a leak cannot hide behind a common string
NEW_SECRET = f"sk-new-{secrets.token_hex(12)}"
# What the runbook's appends leave behind: duplicates, and no final newline.
ORIGINAL = (
    f"# quantum_trader settings\nBINANCE_USE_TESTNET=false # live\nBINANCE_API_SECRET={SECRET}\n"
    "PAPER_TRADING=false\nLOG_LEVEL=INFO\nBINANCE_USE_TESTNET=true\nBINANCE_USE_TESTNET=false"
).encode()
TESTNET = {"BINANCE_USE_TESTNET": "true", "PAPER_TRADING": "false"}
HAS_COMPOSE = (
    shutil.which("docker") is not None
    and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
)
ORACLE = "compose" if HAS_COMPOSE else "builtin"
needs_compose = pytest.mark.skipif(not HAS_COMPOSE, reason="docker compose v2 not found (`make venv` links it)")
if not HAS_COMPOSE and (os.environ.get("QT_REQUIRE_TOOLS") or os.environ.get("CI")):  # `make test`: fail, not skip
    pytest.fail("docker compose v2 not found and QT_REQUIRE_TOOLS/CI is set (`make venv` links it)", pytrace=False)


@pytest.fixture
def envfile(tmp_path):
    path = tmp_path / "project" / ".env"
    path.parent.mkdir()
    path.write_bytes(ORIGINAL)
    path.chmod(0o600)
    return path


def backups(path):
    return sorted(path.parent.glob(path.name + ".*.bak"))


def dotenv_keys(path, check=False, diff=False, **args):
    return run_module("dotenv_keys", dict(args, path=str(path)), check=check, diff=diff)


def test_keyed_set_collapses_duplicates_in_place_keeps_mode_and_owner(envfile):
    if os.geteuid() == 0:
        os.chown(envfile, 65534, 65534)  # owned by someone else: the owner must survive the rename
    before = envfile.stat()
    result, out = dotenv_keys(envfile, keys=TESTNET)
    assert not result.get("failed"), out
    assert result["changed"] and result["oracle"] == ORACLE
    assert result["changes"] == [
        {"key": "BINANCE_USE_TESTNET", "before": "false", "after": "true", "duplicates_collapsed": 2, "added": False}
    ]
    assert result["effective"] == TESTNET
    assert envfile.read_text() == (
        f"# quantum_trader settings\nBINANCE_USE_TESTNET=true # live\n"
        f"BINANCE_API_SECRET={SECRET}\nPAPER_TRADING=false\nLOG_LEVEL=INFO\n"
    )
    after = envfile.stat()
    assert after.st_mode & 0o7777 == 0o600 and (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    [backup] = backups(envfile)
    assert result["backup_file"] == str(backup) and backup.read_bytes() == ORIGINAL
    assert backup.stat().st_mode & 0o7777 == 0o600 and backup.stat().st_uid == before.st_uid
    assert sorted(p.name for p in envfile.parent.iterdir()) == [".env", backup.name]  # no temp file left


def test_second_run_changes_nothing_and_makes_no_backup(envfile):
    assert dotenv_keys(envfile, keys=TESTNET)[0]["changed"]
    written = envfile.read_bytes()
    again, _ = dotenv_keys(envfile, keys=TESTNET)
    assert not again["changed"] and again["changes"] == [] and again["backup_file"] is None
    assert envfile.read_bytes() == written and len(backups(envfile)) == 1


def test_check_mode_predicts_but_leaves_every_byte(envfile):
    result, _ = dotenv_keys(envfile, check=True, diff=True, keys=TESTNET)
    assert result["changed"] and result["changes"][0]["duplicates_collapsed"] == 2
    assert "BINANCE_USE_TESTNET=true # live" in result["diff"]["after"]
    assert envfile.read_bytes() == ORIGINAL and os.listdir(envfile.parent) == [".env"]


def test_diff_and_changes_mask_secrets_everywhere(envfile):
    result, out = dotenv_keys(envfile, diff=True, keys=dict(TESTNET, BINANCE_API_SECRET=NEW_SECRET))
    assert result["changed"] and NEW_SECRET in envfile.read_text()
    for secret in (SECRET, NEW_SECRET):
        assert secret not in out and secret not in json.dumps(result)
    assert "BINANCE_API_SECRET=********\n" in result["diff"]["before"]
    assert "BINANCE_API_SECRET=******** (changed)\n" in result["diff"]["after"]  # that, never to what
    assert {
        "key": "BINANCE_API_SECRET",
        "before": "********",
        "after": "******** (changed)",
        "duplicates_collapsed": 0,
        "added": False,
    } in result["changes"]
    assert result["effective"]["BINANCE_API_SECRET"] == "********"
    assert result["invocation"]["module_args"]["keys"]["BINANCE_API_SECRET"] == "********"


def test_backups_are_rotated(envfile):
    for value in ("a", "b", "c", "d"):
        result, _ = dotenv_keys(envfile, keys={"LOG_LEVEL": value}, backup_keep=2)
        assert result["changed"]
    kept = backups(envfile)
    assert len(kept) == 2 and [b.read_text().count("LOG_LEVEL=") for b in kept] == [1, 1]
    assert "LOG_LEVEL=b\n" in kept[0].read_text() and "LOG_LEVEL=c\n" in kept[1].read_text()
    assert len(result["backups_removed"]) == 1


def test_malformed_file_fails_with_file_and_line_and_stays_byte_for_byte(envfile):
    bad = f"A=1\nBINANCE_API_SECRET='{SECRET}\nB=2\n".encode()
    envfile.write_bytes(bad)
    result, out = dotenv_keys(envfile, keys=TESTNET)
    assert result["failed"]
    assert result["msg"] == (f"failed to read {envfile}: line 4: unterminated quoted value (the quote opens on line 2)")
    assert SECRET not in out and envfile.read_bytes() == bad and backups(envfile) == []


def test_compose_would_accept_but_we_refuse_an_empty_name(envfile):
    envfile.write_bytes(b"A=1\nDEBUG")  # compose reads this as a variable named "" with the value DEBUG
    result, _ = dotenv_keys(envfile, keys=TESTNET)
    assert result["failed"] and f"{envfile}: line 2: variable with an empty name" in result["msg"]
    assert envfile.read_bytes() == b"A=1\nDEBUG"


# A hand-kept .env with bytes that are not UTF-8 (a Latin-1 editor, a pasted binary token): compose accepts it.
RAW_HEAD, RAW_TAIL = secrets.token_hex(6), secrets.token_hex(6)
RAW_SECRET = f"{RAW_HEAD}\xe9{RAW_TAIL}".encode("latin-1")  # one byte that is not UTF-8 inside a secret
NOT_UTF8 = (
    b"# quantum_trader \xe9t\xe9\nBINANCE_USE_TESTNET=false # live\nNOTE=caf\xe9 # Latin-1\n"
    b"TOKEN_BLOB='\xff\xfe'\nBINANCE_API_SECRET=" + RAW_SECRET + b"\nSIGNED_URL=https://x:${BINANCE_API_SECRET}@h/\n"
    b"PAPER_TRADING=true\nLOG_LEVEL=INFO\n"
)


def compose_reads(path):
    """The environment `docker compose config` gives a service with env_file: path."""
    work = path.parent / "compose-probe"
    work.mkdir()
    (work / "compose.yml").write_text(json.dumps({"services": {"p": {"image": "scratch", "env_file": [str(path)]}}}))
    res = subprocess.run(["docker", "compose", "--project-directory", str(work), "-p", "probe", "config", "--format",
                          "json"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, check=True)
    shutil.rmtree(work)
    return json.loads(res.stdout)["services"]["p"]["environment"]


@needs_compose
def test_bytes_that_are_not_utf8_in_other_values_do_not_block_a_rollback(envfile):
    envfile.write_bytes(NOT_UTF8)
    preview, out = dotenv_keys(envfile, check=True, diff=True, keys=TESTNET)
    assert not preview.get("failed"), out
    assert preview["changed"] and envfile.read_bytes() == NOT_UTF8  # check mode: nothing written

    result, out = dotenv_keys(envfile, diff=True, keys=TESTNET)
    assert not result.get("failed"), out
    assert result["changed"] and result["oracle"] == "compose"
    assert result["changes"] == [
        {"key": "BINANCE_USE_TESTNET", "before": "false", "after": "true", "duplicates_collapsed": 0, "added": False},
        {"key": "PAPER_TRADING", "before": "true", "after": "false", "duplicates_collapsed": 0, "added": False},
    ]
    before, after = NOT_UTF8.splitlines(keepends=True), envfile.read_bytes().splitlines(keepends=True)
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [1, 6]  # only these two
    assert after[1] == b"BINANCE_USE_TESTNET=true # live\n" and after[6] == b"PAPER_TRADING=false\n"
    assert backups(envfile)[0].read_bytes() == NOT_UTF8

    composed = compose_reads(envfile)  # compose reads the result as wanted (a raw byte shows as U+FFFD)
    assert composed["BINANCE_USE_TESTNET"] == "true" and composed["PAPER_TRADING"] == "false"
    assert composed["NOTE"] == "caf\ufffd" and composed["TOKEN_BLOB"] == "\ufffd\ufffd"

    for res, text in ((preview, out), (result, out)):
        dumped = json.dumps(res, ensure_ascii=False)
        dumped.encode("utf-8")  # printable: no lone surrogate anywhere in the result
        for part in (RAW_HEAD, RAW_TAIL):
            assert part not in text and part not in dumped  # the secret, raw or as compose shows it, nowhere
    diff = result["diff"]
    assert "# quantum_trader \ufffdt\ufffd\n" in diff["before"] and "NOTE=caf\ufffd # Latin-1\n" in diff["after"]
    assert "BINANCE_API_SECRET=********\n" in diff["after"]
    assert "SIGNED_URL=https://x:${BINANCE_API_SECRET}@h/" in diff["after"]
    assert "\\udc" not in out.lower()  # U+FFFD (the json callback writes \ufffd), never an escaped surrogate

    read, out = dotenv_keys(envfile, state="read")
    assert read["values"]["NOTE"] == "caf\ufffd" and read["values"]["SIGNED_URL"] == f"https://x:{RAW_HEAD}\ufffd{RAW_TAIL}@h/"


DROP_DAC = [
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search",
    "--inh-caps",
    "-dac_override,-dac_read_search",
    "--",
]


def test_read_only_directory_fails_clearly_and_leaves_the_file(envfile, monkeypatch):
    if os.geteuid() == 0:  # root ignores file modes: run ansible without the capabilities that let it
        if not shutil.which("setpriv") or subprocess.run([*DROP_DAC, "true"]).returncode:
            pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE (setpriv)")
        real_run = subprocess.run
        monkeypatch.setattr(ansible_run.subprocess, "run", lambda cmd, **kw: real_run([*DROP_DAC, *cmd], **kw))
    envfile.chmod(0o644)
    envfile.parent.chmod(0o555)
    try:
        result, _ = dotenv_keys(envfile, keys=TESTNET)
    finally:
        envfile.parent.chmod(0o755)
    assert result["failed"]
    assert result["msg"] == f"cannot write in {envfile.parent}: Permission denied; {envfile} unchanged"
    assert envfile.read_bytes() == ORIGINAL and backups(envfile) == []


def test_a_change_that_would_move_another_key_is_refused(envfile):
    envfile.write_text("HOST=old\nURL=http://$HOST:8080\n")
    result, _ = dotenv_keys(envfile, keys={"HOST": "new"})
    assert result["failed"] and "would also change URL" in result["msg"]
    assert envfile.read_text() == "HOST=old\nURL=http://$HOST:8080\n"


def test_templated_content_that_drops_an_unmanaged_key_is_refused(envfile):
    content = "# managed by Ansible\nBINANCE_USE_TESTNET=true\nPAPER_TRADING=false\nLOG_LEVEL=INFO\n"
    result, out = dotenv_keys(envfile, content=content, managed=list(TESTNET))
    assert result["failed"] and "not managed: BINANCE_API_SECRET (dropped)" in result["msg"]
    assert SECRET not in out and envfile.read_bytes() == ORIGINAL


def test_templated_content_changes_only_managed_keys_and_is_idempotent(envfile):
    content = (
        f"# managed by Ansible\nBINANCE_USE_TESTNET=true\nPAPER_TRADING=false\n"
        f"BINANCE_API_SECRET='{SECRET}'\nLOG_LEVEL=INFO\n"
    )
    result, out = dotenv_keys(envfile, diff=True, content=content, managed=list(TESTNET))
    assert not result.get("failed"), out
    assert result["changed"] and result["oracle"] == ORACLE and envfile.read_text() == content
    assert result["changes"] == [
        {"key": "BINANCE_USE_TESTNET", "before": "false", "after": "true", "duplicates_collapsed": 2, "added": False}
    ]
    assert SECRET not in out
    again, _ = dotenv_keys(envfile, content=content, managed=list(TESTNET))
    assert not again["changed"] and len(backups(envfile)) == 1


def test_read_returns_effective_values_for_an_import(envfile):
    envfile.write_bytes(ORIGINAL + b"\nBARE_FROM_ENV\n")
    result, _ = dotenv_keys(envfile, state="read")
    assert not result["changed"] and result["oracle"] == ORACLE
    assert result["values"] == {
        "BINANCE_USE_TESTNET": "false",
        "BINANCE_API_SECRET": SECRET,
        "PAPER_TRADING": "false",
        "LOG_LEVEL": "INFO",
    }
    assert result["keys_in_order"] == ["BINANCE_USE_TESTNET", "BINANCE_API_SECRET", "PAPER_TRADING", "LOG_LEVEL"]
    assert result["inherited"] == ["BARE_FROM_ENV"]


def test_missing_file_fails_unless_create(tmp_path):
    path = tmp_path / ".env"
    result, _ = dotenv_keys(path, keys=TESTNET)
    assert result["failed"] and result["msg"].startswith(f"{path} does not exist") and not path.exists()
    created, _ = dotenv_keys(path, keys=TESTNET, create=True)
    assert created["changed"] and created["backup_file"] is None
    assert path.read_text() == "BINANCE_USE_TESTNET=true\nPAPER_TRADING=false\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_templated_content_can_create_the_file(tmp_path):
    path = tmp_path / ".env"
    content = f"# managed by Ansible\nBINANCE_USE_TESTNET=true\nBINANCE_API_SECRET='{SECRET}'\n"
    result, out = dotenv_keys(path, content=content, managed=["BINANCE_USE_TESTNET"], create=True)
    assert result["changed"] and path.read_text() == content and path.stat().st_mode & 0o777 == 0o600
    assert result["changes"][0] == {
        "key": "BINANCE_USE_TESTNET",
        "before": None,
        "after": "true",
        "duplicates_collapsed": 0,
        "added": True,
    }
    assert SECRET not in out


def test_keys_and_content_exclude_each_other(envfile):
    result, _ = dotenv_keys(envfile, keys=TESTNET, content="A=1\n")
    assert result["failed"] and "mutually exclusive" in result["msg"]


def test_builtin_oracle_when_asked(envfile):
    result, _ = dotenv_keys(envfile, keys=TESTNET, oracle="builtin")
    assert result["changed"] and result["oracle"] == "builtin"


FAKE_COMPOSE = """
import json, subprocess, sys
mode, target, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if args == ["version"]:
    sys.exit(0)
res = subprocess.run(["docker", "compose", *args], capture_output=True, text=True)
if res.returncode:
    sys.exit(sys.stderr.write(res.stderr) and res.returncode)
data = json.loads(res.stdout)
env_file = json.load(open(args[args.index("-f") + 1]))["services"]["probe"]["env_file"][0]
if (env_file == target) == (mode == "current"):
    data["services"]["probe"]["environment"]["LOG_LEVEL"] = "not what the builtin parser read"
print(json.dumps(data))
"""


@needs_compose
@pytest.mark.parametrize(
    "mode, message",
    [
        ("candidate", "docker compose reads the new content with other values for LOG_LEVEL (not managed)"),
        ("current", "the builtin parser and docker compose read {path} differently for LOG_LEVEL"),
    ],
)
def test_compose_disagreeing_with_the_builtin_parser_stops_the_change(envfile, tmp_path, mode, message):
    fake = tmp_path / "fake_compose.py"
    fake.write_text(FAKE_COMPOSE)
    result, _ = dotenv_keys(
        envfile, keys=TESTNET, oracle="compose", compose_command=[sys.executable, str(fake), mode, str(envfile)]
    )
    assert result["failed"] and message.format(path=envfile) in result["msg"]
    assert envfile.read_bytes() == ORIGINAL and os.listdir(envfile.parent) == [".env"]


def test_compose_oracle_asked_for_but_missing_fails(envfile):
    result, _ = dotenv_keys(envfile, keys=TESTNET, oracle="compose", compose_command=["/nonexistent/compose"])
    assert result["failed"] and "oracle=compose" in result["msg"] and envfile.read_bytes() == ORIGINAL


def test_module_documentation_renders():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ansible_run.ROOT / ".collections"))
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", "module", "quantum.runbooks.dotenv_keys"],
        cwd=ansible_run.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    for heading in ("OPTIONS", "EXAMPLES", "RETURN VALUES", "secret_patterns", "backup_keep", "keys_in_order"):
        assert heading in res.stdout
