"""Runbook quick fix 2 on the lab: cancel stuck orders (quick fix 3, the emergency stop, is the
Molecule scenario molecule/emergency_stop)."""
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from waiting import wait_for

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CONTROL = "http://127.0.0.1:18099"


def playbook(name, *extra, timeout=240):
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml", f"playbooks/{name}",
           *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def control(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(CONTROL + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def open_orders():
    return sorted((o["orderId"], o["clientOrderId"]) for o in control("/_sim/orders?personality=testnet")
                  if o["status"] in ("NEW", "PARTIALLY_FILLED"))


@pytest.fixture
def stuck(fault):
    """Our stuck orders plus an old manual one; no new intents, so the set stays fixed."""
    fault("stuck_orders")
    fault("stuck_orders", "no_signals")
    seeds = [("BTCUSDT", "50000", "manual-desk-1"), ("BTCUSDT", "50000", "qtx-seed-btc"),
             ("ETHUSDT", "2500", "qtx-seed-eth")]  # ours on two symbols: two cancel calls at least
    for symbol, price, cid in seeds:
        control("/_sim/orders", {"symbol": symbol, "quantity": "0.01", "price": price, "age_s": 900,
                                 "client_order_id": cid})
    before = open_orders()
    assert sum(1 for _dummy, cid in before if cid.startswith("qtx-")) >= 2
    return before


def signed_requests():
    unsigned = ("/fapi/v1/time", "/fapi/v1/ping", "/fapi/v1/exchangeInfo")
    return sum(1 for r in control("/_sim/requests?personality=testnet") if r["path"] not in unsigned)


def test_cancel_needs_confirm_check_changes_nothing_429_is_partial_and_the_rerun_finishes(stuck, tmp_path):
    res = playbook("mitigate_cancel_stuck_orders.yml")
    assert res.returncode != 0 and "confirm=true" in res.stdout and open_orders() == stuck
    before = signed_requests()
    res = playbook("mitigate_cancel_stuck_orders.yml", "--check", "--diff")
    reads = signed_requests() - before  # a check run makes the same reads (preflight, listing), no cancel
    assert res.returncode == 0, res.stdout[-3000:]
    assert "check mode: would cancel" in res.stdout and "manual-desk-1" in res.stdout  # the diff lists it as kept
    assert open_orders() == stuck

    ours = [o for o in stuck if o[1].startswith("qtx-")]
    # Let the reads and the first cancel through, then answer 429 with a Retry-After too long to wait out.
    control("/_sim/faults/next", {"after": reads + 1, "status": 429, "count": 5, "retry_after": 60})
    audit = tmp_path / "audit.jsonl"
    res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "-e", f"qt_audit_log={audit}")
    assert res.returncode != 0, res.stdout[-3000:]
    assert "PARTIAL" in res.stdout and "rate limited" in res.stdout, res.stdout[-3000:]
    assert json.loads(audit.read_text().splitlines()[-1])["result"] == "partial"
    urllib.request.urlopen(urllib.request.Request(CONTROL + "/_sim/faults", data=json.dumps(
        {"faults": ["stuck_orders"]}).encode(), method="PUT"), timeout=5)  # clears the 429s
    res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "-e", f"qt_audit_log={audit}")
    assert res.returncode == 0, res.stdout[-3000:]
    left = open_orders()
    assert not [o for o in ours if o in left] and ("manual-desk-1" in [cid for _dummy, cid in left])


def test_countdown_is_armed_then_disarmed_when_the_executor_is_healthy(stuck):
    res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "-e", "arm_countdown_cancel=true")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Arm Binance's countdownCancelAll" in res.stdout and "Disarm the countdown" in res.stdout
    assert not any(control("/_sim/state")["countdowns"].values())  # nothing left armed
    assert "stays armed" not in res.stdout


def armed():
    return sorted(s for book in control("/_sim/state")["countdowns"].values() for s in book)


def test_a_countdown_left_armed_while_the_executor_was_down_is_disarmed_by_a_later_run(stuck, fault, tmp_path):
    """The dead-man switch is never left armed by accident: a run that cannot disarm (executor down)
    remembers the symbols on the target; the next run disarms them although it cancels nothing, and
    disarm_countdown.yml does it on a human's word. Binance's own state is read back each time."""
    state = tmp_path / "countdowns.json"
    args = ["-e", "confirm=true", "-e", "arm_countdown_cancel=true",
            "-e", f"cancel_stuck_orders_countdown_state={state}"]
    fault("stuck_orders", "no_signals", "executor_crash")
    res = playbook("mitigate_cancel_stuck_orders.yml", *args)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "stays armed" in res.stdout and armed() == ["BTCUSDT", "ETHUSDT"]
    assert json.loads(state.read_text())["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert "playbooks/disarm_countdown.yml" in res.stdout

    fault("stuck_orders", "no_signals")  # the executor is back; nothing of ours is left to cancel
    res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true",
                   "-e", f"cancel_stuck_orders_countdown_state={state}")
    assert res.returncode == 0, res.stdout[-3000:]
    assert armed() == [] and json.loads(state.read_text())["symbols"] == []

    # armed again while the executor is down; the human's one-line command disarms it at once
    control("/_sim/orders", {"symbol": "ETHUSDT", "quantity": "0.01", "price": "2500", "age_s": 900,
                             "client_order_id": "qtx-seed-eth-2"})
    fault("stuck_orders", "no_signals", "executor_crash")
    assert playbook("mitigate_cancel_stuck_orders.yml", *args).returncode == 0
    assert "ETHUSDT" in armed() and armed() == json.loads(state.read_text())["symbols"]
    res = playbook("disarm_countdown.yml", "-e", f"cancel_stuck_orders_countdown_state={state}")
    assert res.returncode == 0, res.stdout[-3000:]
    assert armed() == [] and json.loads(state.read_text())["symbols"] == []


def test_cancel_is_refused_while_the_exchange_is_unreachable_and_nothing_is_cancelled(stuck, fault, tmp_path):
    audit = tmp_path / "audit.jsonl"
    fault("stuck_orders", "no_signals", "binance_down")
    res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "-e", f"qt_audit_log={audit}")
    assert res.returncode != 0, res.stdout[-3000:]
    assert "Not cancelling:" in res.stdout and "Nothing was cancelled" in res.stdout, res.stdout[-3000:]
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (record["action"], record["result"]) == ("cancel_stuck_orders", "refused_exchange")
    assert "BINANCE_UNREACHABLE" in record["details"]["findings"]
    fault("stuck_orders", "no_signals")  # the exchange is back: every order is still there
    assert set(stuck) <= set(open_orders())


def test_orders_the_market_moved_away_from_rest_and_the_cancel_takes_ours_off(lab, tmp_path):
    """The ordinary way orders get stuck: the market moves up 3 %, the executor's BUYs at the old
    price no longer cross and rest at the exchange; the cancel mitigation cancels ours, not the desk's."""
    def resting_buys():
        return {o["orderId"] for o in control("/_sim/orders?personality=testnet")
                if o["status"] == "NEW" and o["side"] == "BUY" and o["clientOrderId"].startswith("qtx-")}
    control("/_sim/orders", {"symbol": "BTCUSDT", "quantity": "0.01", "price": "50000", "age_s": 60,
                             "client_order_id": "manual-desk-move"})
    try:
        control("/_sim/market", {"shift_pct": 3})
        rested = wait_for("the executor's BUYs to rest below the moved market", resting_buys, 60, every=1)
        res = playbook("mitigate_cancel_stuck_orders.yml", "-e", "confirm=true", "-e", "stuck_after_minutes=0",
                       "-e", f"qt_audit_log={tmp_path / 'audit.jsonl'}")
        assert res.returncode == 0, res.stdout[-3000:]
        status = {o["orderId"]: o["status"] for o in control("/_sim/orders?personality=testnet")}
        assert {status[i] for i in rested} == {"CANCELED"}
        assert "manual-desk-move" in [cid for _dummy, cid in open_orders()]
    finally:
        control("/_sim/market", {"reset": True})
