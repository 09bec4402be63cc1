"""quantum.runbooks.kill_switch against the lab's Redis, on a key of its own (the executor's
real switch is never touched here) and a policy file in a temp dir."""
import json
import secrets

import pytest
import redis
from ansible_run import run_module

pytestmark = pytest.mark.lab
URL = "redis://127.0.0.1:16379/0"


@pytest.fixture
def switch(lab, tmp_path):
    key = f"qt-test:kill_switch:{secrets.token_hex(4)}"
    policy = tmp_path / "execution_policy.json"
    policy.write_text('{"max_notional_usdt": 5000}\n')
    policy.chmod(0o640)
    client = redis.Redis.from_url(URL, decode_responses=True)
    yield {"key": key, "policy_file": str(policy), "url": URL}, client, policy
    client.delete(key)


def test_engage_is_persisted_idempotent_and_released(switch):
    args, client, policy = switch
    result, _dummy = run_module("kill_switch", dict(args, reason={"incident": "INC-1"}), check=True)
    assert result["changed"] and client.get(args["key"]) is None  # check mode writes nothing ...
    assert json.loads(policy.read_text()) == {"max_notional_usdt": 5000}  # ... anywhere

    result, _dummy = run_module("kill_switch", dict(args, reason={"incident": "INC-1"}), diff=True)
    assert result["changed"] and result["engaged"]
    value = json.loads(client.get(args["key"]))
    assert value["incident"] == "INC-1" and value["by"] and value["at"]
    assert json.loads(policy.read_text()) == {"max_notional_usdt": 5000, "kill_switch": True}
    assert policy.stat().st_mode & 0o777 == 0o640  # the atomic write keeps the mode

    again, _dummy = run_module("kill_switch", dict(args, reason={"incident": "INC-2"}))
    assert not again["changed"] and json.loads(client.get(args["key"]))["incident"] == "INC-1"

    released, _dummy = run_module("kill_switch", dict(args, state="released"))
    assert released["changed"] and client.get(args["key"]) is None
    assert json.loads(policy.read_text()) == {"max_notional_usdt": 5000}


def test_redis_unreachable_fails_in_one_line_but_persists_the_policy(switch):
    args, _dummy, policy = switch
    result, out = run_module("kill_switch", dict(args, url="redis://127.0.0.1:1/0", timeout=1))
    assert result.get("failed") or "FAILED" in out
    assert "kill switch not set in Redis" in result["msg"] and "persisted in the policy file" in result["msg"]
    assert json.loads(policy.read_text())["kill_switch"] is True


def test_garbage_policy_file_is_refused_and_left_alone(switch):
    args, client, policy = switch
    policy.write_text("{not json")
    result, _dummy = run_module("kill_switch", args)
    assert "cannot read the policy file" in result["msg"]
    assert policy.read_text() == "{not json" and client.get(args["key"]) is None
