#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Cancel stuck Binance USD-M futures orders (runbook quick fix 2), arm/disarm the dead-man switch,
re-read orders. The module is a thin shell: planning lives in module_utils/stuck_orders.py, rate limits
and error kinds in module_utils/binance_exchange.py."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: binance_futures_orders
short_description: Cancel stuck Binance USD-M futures orders safely; arm or disarm the dead-man switch
version_added: "0.1.0"
description:
  - The "Execution Stuck" runbook's quick fix 2, done safely. The runbook's
    C(futures_cancel_all_open_orders()) without a symbol is rejected by Binance (the symbol is mandatory)
    and, with one, would also cancel fresh orders and a human's manual orders.
  - O(state=cancelled) reads the exchange clock (C(GET /fapi/v1/time), weight 1; signed requests then use
    that clock, so a skewed host clock cannot cause -1021), lists open orders (one C(GET /fapi/v1/openOrders)
    without symbol, weight 40, or one per O(symbols) entry, weight 1 each) and classifies each open order as
    a target (client order id starts with O(client_order_prefix), or any with O(include_foreign_orders), and
    at least O(stuck_after_minutes) old on the exchange clock) or kept (reason C(foreign) or C(fresh)).
  - Per symbol it sends the cheapest exact cancel (weight 1 each) -
    C(DELETE /fapi/v1/allOpenOrders) when several orders are open there and all are targets,
    C(DELETE /fapi/v1/order) for a single target,
    C(DELETE /fapi/v1/batchOrders) (at most 10 ids per call) when some but not all are targets.
  - Then it reconciles - every target is re-read (C(GET /fapi/v1/order), weight 1) and reported as it ended
    (C(CANCELED), C(FILLED), C(PARTIALLY_FILLED), C(NEW) still open, C(UNKNOWN)). An order that traded before
    the cancel reached it is flagged RV(results[].position_opened) with a warning - a position is now open.
  - Cancelling an order that is no longer open (Binance -2011 C(Unknown order sent.)) is recorded as
    C(already_gone), not a failure. A 5xx, read timeout or dropped connection leaves the cancel's outcome
    C(unknown); reconciliation decides (Binance's 503 C(Unknown error) may well have cancelled it).
  - Rate limits - C(X-MBX-USED-WEIGHT-1M) is read from every answer and no call is sent that would pass
    O(weight_budget). On HTTP 429 the module waits C(Retry-After) once if it is at most O(max_backoff_s),
    else it stops. On HTTP 418 (IP banned) it stops at once and reports until when. Stopping leaves a
    partial result; a rerun is safe and finishes the job (it lists again and only cancels what is still open).
  - O(state=countdown_armed) / O(state=countdown_disarmed) set Binance's dead-man switch
    (C(POST /fapi/v1/countdownCancelAll), weight 10 per symbol) - if it is not refreshed within O(countdown_ms),
    Binance cancels every open order of that symbol. O(countdown_ms=0) is what disarming sends.
  - O(state=reconciled) only re-reads the orders in O(order_ids) (read-only).
  - Check mode lists and plans (targets, kept, which call per symbol) and cancels nothing; the reads run.
  - Fails with one line (no Python traceback) when the exchange is unreachable, the key is rejected
    (-2014, -2015, -1022), the IP is banned, more than O(max_cancels) orders would be cancelled, or the
    run stopped or ended with targets possibly still open (RV(partial)); the full result is returned with the
    failure. The key, the secret and request signatures never appear in results or messages.
options:
  state:
    description:
      - C(cancelled) - cancel stuck orders as described above.
      - C(countdown_armed) - (re)arm the auto-cancel countdown of each of O(symbols) to O(countdown_ms).
        Every call restarts the timer (a heartbeat).
      - C(countdown_disarmed) - stop the countdown of each of O(symbols).
      - C(reconciled) - re-read O(order_ids) and report their status; changes nothing.
    type: str
    choices: [cancelled, countdown_armed, countdown_disarmed, reconciled]
    default: cancelled
  symbols:
    description:
      - Symbols to work on (for example C(BTCUSDT)), upper-cased.
      - With O(state=cancelled), default is every symbol with open orders (one listing call of weight 40);
        with symbols, each is listed on its own (weight 1 each).
      - Required for the countdown states (the countdown is per symbol).
    type: list
    elements: str
  client_order_prefix:
    description:
      - Client order ids starting with this prefix are the executor's own orders (its
        C(EXECUTOR_CLIENT_ORDER_PREFIX)); only those are cancelled unless O(include_foreign_orders=true).
      - Default is the container's C(EXECUTOR_CLIENT_ORDER_PREFIX) with O(settings_from_container) (read from
        its environment like the other settings), else C(qtx-).
    type: str
  include_foreign_orders:
    description: Also cancel stuck orders without O(client_order_prefix) (for example a human's manual orders).
    type: bool
    default: false
  stuck_after_minutes:
    description: Orders younger than this (exchange clock) are kept as C(fresh).
    type: float
    default: 5
  max_cancels:
    description:
      - Safety cap - when more orders than this would be cancelled, the module cancels nothing and fails with
        the plan (narrow it with O(symbols) or raise the cap).
    type: int
    default: 100
  countdown_ms:
    description:
      - With O(state=countdown_armed), the countdown in milliseconds. Binance advises against very small values;
        refresh it well before it runs out (for example every 30 s for 120000).
    type: int
    default: 120000
  order_ids:
    description:
      - With O(state=reconciled), the orders to re-read - dicts with C(symbol) and C(orderId) (or
        C(clientOrderId)), such as the RV(results) of an earlier run, or strings C(SYMBOL:ORDERID).
    type: list
    elements: raw
notes:
  - C(DELETE /fapi/v1/allOpenOrders) also cancels an order placed on that symbol after the listing (in the
    split second between the two calls); it is used only when every listed open order of the symbol is a
    target, and a single target is always cancelled by id. Stop the executor first when that matters.
  - Binance offers no way to read a running countdown, so the previous state is unknown - arming and disarming
    report C(changed) whenever the call succeeded (arming restarts the timer).
  - Weights - time 1, open orders 40 (or 1 per symbol), each cancel call 1, each re-read 1, countdown 10.
seealso:
  - module: quantum.runbooks.binance_futures_info
  - name: Binance USD-M Cancel Multiple Orders
    description: batchOrders, at most 10 ids, per-item errors.
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Cancel-Multiple-Orders
  - name: Binance USD-M Auto-Cancel All Open Orders
    description: The countdownCancelAll dead-man switch.
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Auto-Cancel-All-Open-Orders
extends_documentation_fragment:
  - quantum.runbooks.binance
  - quantum.runbooks.binance.exchange
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: What would be cancelled (check mode runs the reads only)
  quantum.runbooks.binance_futures_orders:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
  check_mode: true
  register: plan

- name: Cancel the executor's own orders resting for more than 5 minutes
  quantum.runbooks.binance_futures_orders:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
    stuck_after_minutes: 5
  register: cancel

- name: Tell the on-call engineer about positions opened by orders that filled before the cancel
  ansible.builtin.debug:
    msg: "{{ cancel.results | selectattr('position_opened') | list }}"
  when: cancel.results | selectattr('position_opened') | list | length > 0

- name: Also cancel a human's stuck orders on one symbol, key from the environment
  quantum.runbooks.binance_futures_orders:
    futures_url: https://fapi.binance.com/fapi
    symbols: [BTCUSDT]
    include_foreign_orders: true

- name: Arm the dead-man switch (refresh it every 30 s while the executor is trusted)
  quantum.runbooks.binance_futures_orders:
    settings_from_container: quantum_auto_executor
    state: countdown_armed
    symbols: [BTCUSDT, ETHUSDT]
    countdown_ms: 120000

- name: Disarm it
  quantum.runbooks.binance_futures_orders:
    settings_from_container: quantum_auto_executor
    state: countdown_disarmed
    symbols: [BTCUSDT, ETHUSDT]

- name: Re-read the orders of an earlier run (for example after an unknown outcome)
  quantum.runbooks.binance_futures_orders:
    settings_from_container: quantum_auto_executor
    state: reconciled
    order_ids: "{{ cancel.results }}"
"""

RETURN = r"""
summary:
  description:
    - One line for a human, parts joined by C(; ).
    - "O(state=cancelled): C([PARTIAL: ]cancelled <n> of <t> <prefix> orders older than <m> min
      (<symbol>: <call> <count>, ...)), then, when they apply, C(NOT DONE <k>: <symbol> <orderId>, ...),
      C(stopped: <reason and what to do>), C(<g> already gone),
      C(POSITION OPENED by <p> (<symbol> <orderId> <status> <executedQty>): check positions),
      and always C(kept <n> (<f> fresh, <o> foreign)) and C(used weight <w>/<budget>)."
    - "Check mode starts with C(check mode: would cancel), a run with no target with C(nothing to cancel: no ...)."
    - "Countdown states: C(countdown armed <s> s on <symbols>) / C(countdown disarmed on <symbols>);
      O(state=reconciled): C(re-read <n> orders: <count> <status>, ...)."
  type: str
  returned: always
  sample: "cancelled 3 of 3 qtx- orders older than 5 min (BTCUSDT: all_open_orders 2, ETHUSDT: single 1);
    kept 2 (1 fresh, 1 foreign); used weight 48/2000"
partial:
  description:
    - True when targets may still be open or their fate is unknown (the run stopped, a cancel failed, or an
      unknown outcome could not be reconciled); they are in RV(failed_ids). The module then fails.
  type: bool
  returned: always
failed_ids:
  description: Order ids of targets that may still be open or whose fate is unknown - the rerun's work.
  type: list
  elements: int
  returned: always
stop_reason:
  description: Why the run stopped early (ban, long 429, weight budget, unreachable, no answer), or null.
  type: str
  returned: always
targets:
  description: Orders chosen for cancelling (O(state=cancelled)), oldest first.
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    orderId: {description: "Exchange order id.", type: int}
    clientOrderId: {description: "Client order id.", type: str}
    side: {description: "BUY or SELL.", type: str}
    type: {description: "Order type.", type: str}
    price: {description: "Limit price (a string as Binance sends it).", type: str}
    origQty: {description: "Ordered quantity.", type: str}
    executedQty: {description: "Quantity filled when listed.", type: str}
    status: {description: "Status when listed (NEW or PARTIALLY_FILLED).", type: str}
    time: {description: "Creation time in ms, exchange clock.", type: int}
    age_s: {description: "Age in seconds on the exchange clock.", type: float}
    own: {description: "Client order id starts with O(client_order_prefix).", type: bool}
kept:
  description: Open orders left alone, oldest first; the same fields as RV(targets) plus C(reason).
  type: list
  elements: dict
  returned: always
  contains:
    reason:
      description: C(foreign) (no O(client_order_prefix), O(include_foreign_orders=false)) or C(fresh) (younger
        than O(stuck_after_minutes)).
      type: str
calls:
  description: The cancel calls, in the order sent (O(state=cancelled)).
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    kind: {description: "C(all_open_orders), C(batch) or C(single).", type: str}
    ids: {description: "Order ids the call is for.", type: list, elements: int}
    result:
      description:
        - C(planned) (check mode), C(ok), C(already_gone) (single cancel answered -2011), C(error) (refused),
          C(unknown) (5xx or no answer), C(not_attempted) (the run stopped before), or the stop kind
          C(rate_limited), C(banned), C(budget), C(unreachable), C(credentials).
      type: str
    http_status: {description: "HTTP status of a failed call.", type: int}
    error_code: {description: "Binance error code of a failed call.", type: int}
    error_msg: {description: "Error message of a failed call.", type: str}
  sample: [{"symbol": "BTCUSDT", "kind": "all_open_orders", "ids": [4000000002, 4000000003], "result": "ok",
            "http_status": null, "error_code": null, "error_msg": null}]
results:
  description: One entry per target (O(state=cancelled)) or per O(order_ids) entry (O(state=reconciled)).
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    orderId: {description: "Exchange order id.", type: int}
    clientOrderId: {description: "Client order id.", type: str}
    age_s: {description: "Age when listed, seconds (null for O(state=reconciled)).", type: float}
    call: {description: "The kind of call that cancelled it (see RV(calls[].kind)).", type: str}
    outcome:
      description:
        - What the cancel call said - C(cancelled), C(already_gone) (-2011, no longer open), C(unknown)
          (5xx or no answer), C(error) (refused, see C(error_code)), C(not_attempted), C(planned) (check mode),
          C(read) (O(state=reconciled)).
      type: str
    final_status:
      description:
        - Status after reconciliation - C(CANCELED), C(FILLED), C(PARTIALLY_FILLED), C(NEW) (still open),
          C(EXPIRED), or C(UNKNOWN) (not re-read, see C(reconcile_error)).
      type: str
    executedQty: {description: "Quantity filled, as last read.", type: str}
    position_opened:
      description: The order traded (filled, partly filled, or cancelled after a partial fill) - a position opened.
      type: bool
    reconciled: {description: "Re-read after the cancel calls.", type: bool}
    error_code: {description: "Binance error code of its cancel (-2011 for already gone).", type: int}
    error_msg: {description: "Error message of its cancel.", type: str}
    reconcile_error: {description: "Why it could not be re-read.", type: str}
  sample: [{"symbol": "ETHUSDT", "orderId": 4000000012, "clientOrderId": "qtx-7f3a", "age_s": 612.4,
            "call": "single", "outcome": "already_gone", "final_status": "FILLED", "executedQty": "0.05",
            "position_opened": true, "reconciled": true, "error_code": -2011, "error_msg": "Unknown order sent.",
            "reconcile_error": null}]
countdowns:
  description: Per symbol, the countdown sent (O(state=countdown_armed) / O(state=countdown_disarmed)).
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    countdown_ms: {description: "Countdown sent (0 disarms).", type: int}
    exchange_countdown_ms: {description: "The countdown Binance echoed.", type: int}
    result: {description: "C(ok), C(planned), C(not_attempted) or an error kind as in RV(calls[].result).", type: str}
    error_code: {description: "Binance error code.", type: int}
    error_msg: {description: "Error message.", type: str}
  sample: [{"symbol": "BTCUSDT", "countdown_ms": 120000, "exchange_countdown_ms": 120000, "result": "ok",
            "error_code": null, "error_msg": null}]
rate_limit:
  description: What the exchange said about limits during the run.
  type: dict
  returned: always
  contains:
    used_weight_1m: {description: "Last C(X-MBX-USED-WEIGHT-1M).", type: int}
    weight_budget: {description: "O(weight_budget).", type: int}
    retry_after_s: {description: "Last C(Retry-After) in seconds.", type: int}
    waited_s: {description: "Seconds spent waiting out short 429s.", type: float}
    banned_until: {description: "End of an IP ban (HTTP 418), ISO 8601 UTC.", type: str}
    ban_s: {description: "Length of the ban in seconds (its C(Retry-After)).", type: int}
  sample: {"used_weight_1m": 48, "weight_budget": 2000, "retry_after_s": null, "waited_s": 0,
           "banned_until": null, "ban_s": null}
endpoint:
  description: The futures base URL used.
  type: str
  returned: always
  sample: http://127.0.0.1:18081/fapi
personality:
  description: C(testnet) or C(mainnet).
  type: str
  returned: always
client_order_prefix:
  description: The prefix that marked own orders.
  type: str
  returned: always
settings_container_state:
  description: With O(settings_from_container), that container's state (C(running), C(exited), C(missing), ...).
  type: str
  returned: when settings_from_container is set
internal_error:
  description: The traceback of an unexpected error inside the module (a bug), credentials removed; the module fails.
  type: str
  returned: only after an internal error
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils import stuck_orders
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_common import (
    check_exchange_params,
    connection_params,
    exchange_argument_spec,
    futures_endpoint,
    run_guarded,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import (
    STOP_KINDS,
    ExchangeError,
    Refused,
    describe,
    weight_text,
)

STATES = ["cancelled", "countdown_armed", "countdown_disarmed", "reconciled"]
DEFAULT_PREFIX = "qtx-"


# ---------------------------------------------------------------- reads

def list_open_orders(ex, symbols):
    """GET /fapi/v1/openOrders: once for all symbols (weight 40), or once per symbol (weight 1 each)."""
    if not symbols:
        return list(ex.call(40, "GET", "/v1/openOrders") or [])
    orders = []
    for symbol in symbols:
        orders += ex.call(1, "GET", "/v1/openOrders", {"symbol": symbol}) or []
    return orders


def reconcile(ex, rows):
    """Re-read each row's order (final_status, executedQty); the ExchangeError that stopped it, or None."""
    for row in rows:
        try:
            ref = {"orderId": row["orderId"]} if row["orderId"] is not None else \
                {"origClientOrderId": row["clientOrderId"]}
            order = ex.call(1, "GET", "/v1/order", dict(symbol=row["symbol"], **ref))
        except ExchangeError as err:
            row["reconcile_error"] = describe(err, ex)
            if err.kind in STOP_KINDS or err.hanging:
                return err  # the rest stay as they are: not re-read
            continue
        row.update(final_status=order.get("status"), executedQty=order.get("executedQty"), reconciled=True,
                   orderId=order.get("orderId", row["orderId"]),
                   clientOrderId=order.get("clientOrderId", row["clientOrderId"]))
    return None


# ---------------------------------------------------------------- cancels

def result_row(target, kind):
    return {"symbol": target["symbol"], "orderId": target["orderId"], "clientOrderId": target["clientOrderId"],
            "age_s": target["age_s"], "call": kind, "outcome": "not_attempted", "final_status": None,
            "executedQty": target.get("executedQty"), "position_opened": False, "reconciled": False,
            "error_code": None, "error_msg": None, "reconcile_error": None}


def send_cancel(ex, call):
    """DELETE /fapi/v1/order, /fapi/v1/batchOrders (ids as a JSON array) or /fapi/v1/allOpenOrders (weight 1)."""
    symbol, ids = call["symbol"], call["ids"]
    if call["kind"] == "single":
        return ex.call(1, "DELETE", "/v1/order", {"symbol": symbol, "orderId": ids[0]})
    if call["kind"] == "batch":  # lower-case key, as python-binance sent it (the live API accepts it)
        return ex.call(1, "DELETE", "/v1/batchOrders", {"symbol": symbol, "orderidlist": ids})
    return ex.call(1, "DELETE", "/v1/allOpenOrders", {"symbol": symbol})


def record_answer(call, rows, payload):
    """A 2xx: per order, what the answer says (batch answers carry one item per id, errors included)."""
    call["result"] = "ok"
    if call["kind"] == "all_open_orders":
        items = [{}] * len(call["ids"])  # "done" for the symbol; reconciliation gives each order's fate
    elif call["kind"] == "single":
        items = [payload if isinstance(payload, dict) else {}]
    else:
        items = payload if isinstance(payload, list) and len(payload) == len(call["ids"]) else None
    if items is None:  # a batch answer we cannot map to the ids: let reconciliation decide
        for order_id in call["ids"]:
            rows[order_id].update(outcome="unknown", error_msg="unreadable batch answer")
        return
    for order_id, item in zip(call["ids"], items, strict=True):
        row = rows[order_id]
        if isinstance(item, dict) and item.get("code") is not None and item.get("code") != 200:
            gone = item["code"] == -2011
            row.update(outcome="already_gone" if gone else "error", error_code=item["code"], error_msg=item.get("msg"))
        else:
            row.update(outcome="cancelled", final_status=item.get("status") if isinstance(item, dict) else None)
            if isinstance(item, dict) and item.get("executedQty") is not None:
                row["executedQty"] = item["executedQty"]


def record_error(call, rows, err):
    gone = call["kind"] == "single" and err.code == -2011
    if gone:
        call["result"] = "already_gone"
    else:
        call["result"] = {"api": "error"}.get(err.kind, err.kind)
    call.update(http_status=err.http_status, error_code=err.code, error_msg=err.msg)
    outcome = "already_gone" if gone else "unknown" if err.kind == "unknown" else \
        "error" if err.kind == "api" else "not_attempted"  # stop kinds: the request had no effect
    for order_id in call["ids"]:
        rows[order_id].update(outcome=outcome, error_code=err.code, error_msg=err.msg)


def execute(ex, calls, rows):
    """Send the calls in order; the ExchangeError that stopped the run (later calls not attempted), or None."""
    for index, call in enumerate(calls):
        try:
            payload = send_cancel(ex, call)
        except ExchangeError as err:
            record_error(call, rows, err)
            if err.kind in STOP_KINDS or err.hanging:  # a 5xx answer is no reason to stop, silence is
                for later in calls[index + 1:]:
                    later["result"] = "not_attempted"
                return err
            continue
        record_answer(call, rows, payload)
    return None


def finish_rows(rows):
    for row in rows:
        row["final_status"] = row["final_status"] or "UNKNOWN"
        if (row["call"] == "all_open_orders" and row["outcome"] == "cancelled" and row["reconciled"]
                and row["final_status"] not in stuck_orders.OPEN_STATUSES + ("CANCELED",)):
            row["outcome"] = "already_gone"  # filled or expired before the cancel-all reached it
        row["position_opened"] = stuck_orders.position_opened(row["final_status"], row["executedQty"])


def run_cancelled(ex, p, check_mode):
    prefix, stuck_s = p["client_order_prefix"], p["stuck_after_minutes"] * 60
    which = "%s orders older than %g min" % ("own and foreign" if p["include_foreign_orders"] else prefix,
                                             p["stuck_after_minutes"])
    try:
        now_ms = ex.server_now()
        orders = list_open_orders(ex, p["symbols"])
    except ExchangeError as err:
        raise Refused("cannot list open orders at %s: %s; nothing was cancelled"
                      % (futures_endpoint(p), describe(err, ex, reading=True))) from None
    targets, kept = stuck_orders.classify(orders, now_ms, prefix, p["include_foreign_orders"], stuck_s)
    calls = stuck_orders.plan_calls(targets, stuck_orders.open_counts(orders))
    out = {"targets": targets, "kept": kept, "calls": calls, "results": [], "changed": False}
    for call in calls:
        call.update(result="planned" if check_mode else "not_attempted", http_status=None, error_code=None,
                    error_msg=None)
    if len(targets) > p["max_cancels"]:
        raise Refused("refusing to cancel %d orders, more than max_cancels %d (narrow with symbols or raise "
                      "max_cancels); nothing was cancelled" % (len(targets), p["max_cancels"]), out)
    kind_of = {order_id: call["kind"] for call in calls for order_id in call["ids"]}
    rows = {t["orderId"]: result_row(t, kind_of[t["orderId"]]) for t in targets}
    ordered = [rows[t["orderId"]] for t in targets]
    stop = None
    if check_mode:
        for row in ordered:
            row["outcome"] = "planned"
    else:
        stop = execute(ex, calls, rows)
        if ordered and (stop is None or stop.kind == "unknown"):
            stop = reconcile(ex, ordered) or stop
    finish_rows(ordered)
    if check_mode:
        for row in ordered:
            row["final_status"] = None
    out["results"] = ordered
    stop_text = "stopped: " + describe(stop, ex) if stop is not None else None
    out.update(cancel_verdict(ordered, check_mode, stop_text))
    out["changed"] = bool(targets) if check_mode else any(stuck_orders.cancelled_by_us(r) for r in ordered)
    out["summary"] = stuck_orders.cancel_summary(which, targets, kept, calls, ordered, check_mode, stop_text,
                                                 weight_text(ex))
    return out, stop


def cancel_verdict(rows, check_mode, stop_text):
    failed = [] if check_mode else [r["orderId"] for r in rows if stuck_orders.not_done(r)]
    return {"partial": bool(failed), "failed_ids": failed, "stop_reason": stop_text}


# ---------------------------------------------------------------- countdown and reconciled

def run_countdown(ex, p, check_mode):
    armed = p["state"] == "countdown_armed"
    countdown_ms = p["countdown_ms"] if armed else 0
    rows = [{"symbol": s, "countdown_ms": countdown_ms, "exchange_countdown_ms": None,
             "result": "planned" if check_mode else "not_attempted", "error_code": None, "error_msg": None}
            for s in p["symbols"]]
    stop = None
    try:
        ex.server_now()  # guards against a ban and sets the clock before the signed calls
    except ExchangeError as err:
        raise Refused("cannot set the countdown at %s: %s; no countdown was changed"
                      % (futures_endpoint(p), describe(err, ex, reading=True))) from None
    for row in [] if check_mode else rows:
        try:
            payload = ex.call(10, "POST", "/v1/countdownCancelAll",
                              {"symbol": row["symbol"], "countdownTime": countdown_ms})
        except ExchangeError as err:
            row.update(result={"api": "error"}.get(err.kind, err.kind), error_code=err.code, error_msg=err.msg)
            if err.kind in STOP_KINDS or err.hanging:
                stop = err
                break
            continue
        echoed = payload.get("countdownTime") if isinstance(payload, dict) else None
        row.update(result="ok", exchange_countdown_ms=int(echoed) if str(echoed).isdigit() else None)
    done = [r["symbol"] for r in rows if r["result"] in ("ok", "planned")]
    bad = [r for r in rows if r["result"] not in ("ok", "planned")]
    what = ("armed %g s" % (countdown_ms / 1000.0)) if armed else "disarmed"
    head = ("check mode: would set countdown %s on %s" if check_mode else "countdown %s on %s") % (
        what, ", ".join(done) or "no symbol")
    parts = [head]
    if bad:
        parts.append("FAILED on %s" % ", ".join("%s (%s)" % (r["symbol"], r["error_msg"] or r["result"]) for r in bad))
    if stop is not None:
        parts.append("stopped: " + describe(stop, ex))
    if armed and done and not check_mode:
        parts.append("refresh it within %g s or Binance cancels every open order of these symbols"
                     % (countdown_ms / 1000.0))
    parts.append(weight_text(ex))
    out = {"countdowns": rows, "changed": bool(done), "partial": bool(bad), "failed_ids": [],
           "stop_reason": "stopped: " + describe(stop, ex) if stop is not None else None, "summary": "; ".join(parts)}
    return out, stop


def parse_order_ids(items):
    """order_ids entries -> [{"symbol", "orderId", "clientOrderId"}]; raises Refused on a bad entry."""
    refs = []
    for item in items or []:
        if isinstance(item, dict):
            symbol = item.get("symbol")
            order_id = item.get("orderId", item.get("order_id"))
            client_id = item.get("clientOrderId", item.get("client_order_id"))
        else:
            symbol, _dummy, ident = str(item).partition(":")
            order_id, client_id = (ident, None) if ident.isdigit() else (None, ident or None)
        if not symbol or (order_id in (None, "") and not client_id):
            raise Refused("order_ids entry %r needs a symbol and an orderId or clientOrderId" % (item,))
        try:
            order_id = int(order_id) if order_id not in (None, "") else None
        except (TypeError, ValueError):
            raise Refused("order_ids entry %r: orderId must be a number" % (item,)) from None
        refs.append({"symbol": str(symbol).upper(), "orderId": order_id, "clientOrderId": client_id})
    return refs


def run_reconciled(ex, p, check_mode):
    rows = [dict(ref, age_s=None, call=None, outcome="read", final_status=None, executedQty=None,
                 position_opened=False, reconciled=False, error_code=None, error_msg=None, reconcile_error=None)
            for ref in parse_order_ids(p["order_ids"])]
    try:
        ex.server_now()
    except ExchangeError as err:
        raise Refused("cannot re-read orders at %s: %s" % (futures_endpoint(p), describe(err, ex, reading=True))) \
            from None
    stop = reconcile(ex, rows)
    finish_rows(rows)
    counts = {}
    for row in rows:
        counts[row["final_status"]] = counts.get(row["final_status"], 0) + 1
    parts = ["re-read %d orders: %s" % (len(rows), ", ".join("%d %s" % (n, s) for s, n in sorted(counts.items())))]
    opened = [r for r in rows if r["position_opened"]]
    if opened:
        parts.append("POSITION OPENED by %d (%s): check positions" % (len(opened), ", ".join(
            "%s %s %s" % (r["symbol"], r["orderId"], r["final_status"]) for r in opened[:5])))
    if stop is not None:
        parts.append("stopped: " + describe(stop, ex))
    parts.append(weight_text(ex))
    unread = [r["orderId"] if r["orderId"] is not None else r["clientOrderId"] for r in rows if not r["reconciled"]]
    out = {"results": rows, "changed": False, "partial": bool(unread), "failed_ids": unread,
           "stop_reason": "stopped: " + describe(stop, ex) if stop is not None else None, "summary": "; ".join(parts)}
    return out, stop


RUNNERS = {"cancelled": run_cancelled, "countdown_armed": run_countdown, "countdown_disarmed": run_countdown,
           "reconciled": run_reconciled}


# ---------------------------------------------------------------- the module

def argument_spec():
    return exchange_argument_spec(
        state=dict(type="str", choices=STATES, default="cancelled"),
        symbols=dict(type="list", elements="str"),
        client_order_prefix=dict(type="str"),
        include_foreign_orders=dict(type="bool", default=False),
        stuck_after_minutes=dict(type="float", default=5.0),
        max_cancels=dict(type="int", default=100),
        countdown_ms=dict(type="int", default=120000),
        order_ids=dict(type="list", elements="raw"),
    )


def effective_params(params, no_log_values):
    """Parameters with the container's settings applied (its keys go to ``no_log_values``), the prefix
    resolved and symbols upper-cased; plus the extra results about the container."""
    p, env, extra = connection_params(params, no_log_values)
    p["client_order_prefix"] = p.get("client_order_prefix") or env.get("EXECUTOR_CLIENT_ORDER_PREFIX") \
        or DEFAULT_PREFIX
    return p, extra


def check_own_params(p):
    problem = check_exchange_params(p)
    if problem:
        return problem
    if p["state"] in ("countdown_armed", "countdown_disarmed") and not p["symbols"]:
        return "state=%s needs symbols (the countdown is per symbol)" % p["state"]
    if p["state"] == "countdown_armed" and p["countdown_ms"] <= 0:
        return "countdown_ms must be positive to arm (state=countdown_disarmed stops the countdown)"
    if p["state"] == "reconciled" and not p.get("order_ids"):
        return "state=reconciled needs order_ids"
    for name in ("stuck_after_minutes", "max_cancels"):
        if p[name] < 0:
            return "%s must be >= 0" % name
    return None


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p, extra = effective_params(module.params, module.no_log_values)
    problem = check_own_params(p)
    if problem:
        module.fail_json(msg=problem, **extra)
    result, failure = run(p, module.check_mode)
    result.update(extra)
    if module._diff and p["state"] == "cancelled" and (result["targets"] or result["kept"]):
        result["diff"] = stuck_orders.cancel_diff(result["targets"], result["kept"], result["results"],
                                                  module.check_mode)
    for row in result.get("results", []):
        if row.get("position_opened") and not module.check_mode:
            module.warn("position opened: %s order %s ended %s with executedQty %s"
                        % (row["symbol"], row["orderId"], row["final_status"], row["executedQty"]))
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


def run(p, check_mode):
    """(result, failure line or None). Never raises: a bug is reported without credentials."""
    result = {"changed": False, "endpoint": futures_endpoint(p), "personality": "testnet" if p["testnet"] else
              "mainnet", "client_order_prefix": p["client_order_prefix"], "summary": None, "partial": False,
              "failed_ids": [], "stop_reason": None, "targets": [], "kept": [], "calls": [], "results": [],
              "countdowns": []}

    def work(ex):
        out, stop = RUNNERS[p["state"]](ex, p, check_mode)
        # a ban or a rejected key fails the run even when nothing was left to do
        failed = out["partial"] or (stop is not None and stop.kind in ("banned", "credentials"))
        return out, out["summary"] if failed else None

    return run_guarded(p, result, work)


if __name__ == "__main__":
    main()
