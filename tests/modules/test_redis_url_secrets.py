"""A password in the Redis URL of kill_switch / redis_stream_info is shown nowhere: not in the result, the
invocation, a message (also for an argument error or a malformed URL) or the syslog line. The modules run for real
(`ansible localhost -m ...`) against a fake Redis on loopback (tests/modules/fake_redis.py) and an unreachable
port; no Docker, no lab."""
import json
import secrets
from urllib.parse import quote

import pytest
from ansible.module_utils import basic
from ansible_run import run_module
from fake_redis import FakeRedis

from ansible_collections.quantum.runbooks.plugins.module_utils.redis_connect import (
    CONNECTION_SPEC,
    RedisModule,
    masked_url,
    url_secrets,
)

PASSWORD = f"pw-{secrets.token_hex(8)}"  # random per run: a leak cannot hide behind a common string
ODD = f"p@ss/w#rd:{secrets.token_hex(6)}"  # needs percent-encoding in a URL
DEAD = "127.0.0.1:1"  # nothing listens on port 1


def forms(hostport, password=PASSWORD):
    return {
        "userinfo": f"redis://qt:{password}@{hostport}/0",
        "encoded": f"redis://qt:{quote(ODD, safe='')}@{hostport}/0",
        "query": f"redis://{hostport}/0?password={password}",
    }


def shown_anywhere(result, out, *secret_values):
    """Which secrets (or a piece of 4+ characters of one) show in the result or ansible's output."""
    text = json.dumps(result) + out
    pieces = {p for s in secret_values for p in [s, *s.replace("@", "/").replace("#", "/").replace(":", "/").split("/")]
              if len(p) >= 4}
    return sorted(p for p in pieces if p in text)


@pytest.fixture
def fake():
    server = FakeRedis(PASSWORD)
    yield server
    server.close()


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_kill_switch_through_a_url_with_a_password_never_shows_it(fake, form, tmp_path):
    url = forms(f"127.0.0.1:{fake.port}")[form]
    key = f"qt-test:kill_switch:{secrets.token_hex(4)}"
    args = {"url": url, "key": key, "policy_file": str(tmp_path / "policy.json")}
    preview, out = run_module("kill_switch", args, check=True, diff=True)
    assert preview["changed"] and key not in fake.data and shown_anywhere(preview, out, PASSWORD) == []

    result, out = run_module("kill_switch", dict(args, reason={"incident": "INC-7"}))
    assert not result.get("failed"), out
    assert result["changed"] and json.loads(fake.data[key])["incident"] == "INC-7"  # it did authenticate
    assert "********" in result["redis"]["target"] and "********" in result["invocation"]["module_args"]["url"]
    assert shown_anywhere(result, out, PASSWORD) == []

    released, out = run_module("kill_switch", dict(args, state="released"))
    assert released["changed"] and key not in fake.data and shown_anywhere(released, out, PASSWORD) == []


def test_kill_switch_with_the_wrong_password_fails_in_one_line_without_it(fake):
    result, out = run_module("kill_switch", {"url": forms(f"127.0.0.1:{fake.port}", "wrong-" + PASSWORD)["userinfo"]})
    assert result["failed"] and "\n" not in result["msg"] and "invalid username-password pair" in result["msg"]
    assert fake.auth_attempts and shown_anywhere(result, out, PASSWORD) == []


@pytest.mark.parametrize("module", ["kill_switch", "redis_stream_info"])
@pytest.mark.parametrize("form", ["userinfo", "encoded", "query"])
def test_unreachable_redis_never_shows_the_password(module, form):
    result, out = run_module(module, {"url": forms(DEAD)[form], "timeout": 1})
    message = result.get("msg") or result.get("error")
    assert "Connection refused" in message and "\n" not in message
    assert shown_anywhere(result, out, PASSWORD, ODD) == []


@pytest.mark.parametrize("module", ["kill_switch", "redis_stream_info"])
def test_an_argument_error_never_shows_the_password(module):
    """Ansible fails the module before its own code runs; the invocation it returns must be masked too."""
    result, out = run_module(module, {"url": forms(DEAD)["userinfo"], "timeout": "soon"})
    assert result["failed"] and "timeout" in result["msg"]
    assert shown_anywhere(result, out, PASSWORD) == []


@pytest.mark.parametrize("url", [f"redis://qt:{PASSWORD}/x@{DEAD}/0", f"redis://{DEAD}/0?password={PASSWORD}#x/y"])
def test_a_malformed_url_fails_in_one_line_without_a_piece_of_the_password(url):
    result, out = run_module("kill_switch", {"url": url, "timeout": 1})
    assert result["failed"] and "\n" not in result["msg"]
    assert shown_anywhere(result, out, PASSWORD) == []


URLS = [
    (f"redis://qt:{PASSWORD}@h:6379/0", "redis://qt:********@h:6379/0"),
    (f"rediss://:{PASSWORD}@h/0", "rediss://:********@h/0"),
    (f"redis://qt:{quote(ODD, safe='')}@h/0", "redis://qt:********@h/0"),
    (f"redis://h/0?db=1&password={PASSWORD}", "redis://h/0?db=1&password=********"),
    (f"redis://h/0?password={PASSWORD}#rest-of-it", "redis://h/0?password=********"),
    (f"redis://qt:{ODD}@h/0", None),  # not a URL urlsplit can read: still nothing of the password
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0"),
]


@pytest.mark.parametrize("url, want", URLS)
def test_masked_url(url, want):
    shown = masked_url(url)
    assert shown == want or want is None
    assert not [p for p in (PASSWORD, ODD, quote(ODD, safe=""), *ODD.replace("@", "/").replace("#", "/").split("/"))
                if len(p) >= 4 and p in shown]
    assert masked_url(None) is None and url_secrets("redis://h/0") == set()


def test_url_secrets_has_every_form_that_could_be_shown():
    assert {PASSWORD} <= url_secrets(f"redis://u:{PASSWORD}@h/0")
    assert {ODD, quote(ODD, safe="")} <= url_secrets(f"redis://u:{quote(ODD, safe='')}@h/0")
    assert {f"{PASSWORD}#x", PASSWORD} <= url_secrets(f"redis://h/0?password={PASSWORD}#x")


def test_the_syslog_line_hides_a_query_password(monkeypatch):
    """AnsibleModule logs its invocation from __init__ (syslog/journal); its heuristic only knows user:pass@."""
    url = f"redis://h:6379/0?password={PASSWORD}"
    args = json.dumps({"ANSIBLE_MODULE_ARGS": {"url": url, "_ansible_remote_tmp": "/tmp"}}).encode()
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", args)
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    basic.AnsibleModule(argument_spec=dict(CONNECTION_SPEC))
    assert PASSWORD in logged[-1]  # what a plain AnsibleModule writes
    module = RedisModule(argument_spec=dict(CONNECTION_SPEC))
    assert "url=redis://h:6379/0?password=********" in logged[-1] and PASSWORD not in logged[-1]
    assert PASSWORD in module.no_log_values
