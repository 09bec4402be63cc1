#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read Binance USD-M futures positions, or close them with reduce-only MARKET orders (the emergency stop's
optional step). A thin shell: planning and the summary live in module_utils/positions.py, rate limits and
error kinds in module_utils/binance_exchange.py."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: binance_futures_positions
short_description: Read Binance USD-M futures positions, or close them with reduce-only market orders
version_added: "0.1.0"
description:
  - The emergency stop's optional step "close positions with reduce-only market orders", done safely.
  - O(state=read) (the default) reads the exchange clock (C(GET /fapi/v1/time), weight 1) and the positions
    (C(GET /fapi/v3/positionRisk), weight 5, what python-binance 1.0.37's C(futures_position_information) reads)
    and returns the open (non-zero) ones. It never changes anything.
  - O(state=closed) reads the same way, then sends for each open position (only O(symbols) when given) one
    C(MARKET) order on the opposite side with C(reduceOnly=true) and C(quantity) = abs(C(positionAmt))
    (C(POST /fapi/v1/order), IP weight 0), its client order id starting with O(close_order_prefix).
    Reduce-only means the order can only shrink the position - it never opens or flips one, even when the
    position changed in the meantime (Binance then answers -2022 C(ReduceOnly Order is rejected.)).
  - Then it re-reads the positions and reports per symbol C(closed), C(still_open) (with the amount) or
    C(unknown). A rejected order (-2022) or an unknown outcome (5xx, no answer - Binance's 503
    C(Unknown error) may well have filled it) does not stop the run; the re-read decides.
  - Rate limits as in M(quantum.runbooks.binance_futures_orders) - C(X-MBX-USED-WEIGHT-1M) is read from every
    answer, a 429 is waited out once when its C(Retry-After) is at most O(max_backoff_s), otherwise the run stops
    (the positions are then not re-read - another request would only make it worse - and each symbol is reported
    from its order's own answer). HTTP 418 (IP banned) stops at once. A rerun is safe and finishes the job.
  - Only one-way mode (C(positionSide=BOTH)) positions are closed; with a hedge-mode position in scope the module
    sends nothing and fails.
  - Check mode reads and returns the plan (which orders would be sent); nothing is sent.
  - Idempotent - with no open position nothing is sent and C(changed) is false.
  - Fails with one line (no Python traceback), the full result attached, when the positions cannot be read, the
    key is rejected, the IP is banned, or anything is left open (or unknown) after O(state=closed) - unless
    nothing was open. The key, the secret and request signatures never appear in results or messages.
options:
  state:
    description:
      - C(read) - return the open positions; changes nothing.
      - C(closed) - close the open positions with reduce-only market orders, as described above.
    type: str
    choices: [read, closed]
    default: read
  symbols:
    description:
      - Only these symbols (for example C(BTCUSDT)), upper-cased. Default is every symbol with an open position.
      - The positions are read with one call either way (weight 5).
    type: list
    elements: str
  close_order_prefix:
    description:
      - Start of the client order id of each closing order (C(<prefix><SYMBOL>-<8 hex>), shortened to
        C(<prefix><8 hex>) past Binance's 36 characters), so the closes are recognisable in the trade history.
      - Letters, digits, C(.), C(_), C(-); at most 20 characters.
    type: str
    default: qtx-close-
extends_documentation_fragment:
  - quantum.runbooks.binance
  - quantum.runbooks.binance.exchange
notes:
  - Stop the executor (and cancel its open orders) first - a position it opens after the first read is not
    closed; it is reported as a new position and the module fails.
  - C(MARKET) orders fill at whatever the book offers; in a thin or fast market the price can be far from
    RV(positions[].markPrice).
  - Weights - time 1, positions 5 (twice with O(state=closed)); orders have IP weight 0 and count against the
    account's order limits.
seealso:
  - module: quantum.runbooks.binance_futures_orders
  - module: quantum.runbooks.binance_futures_info
  - name: Binance USD-M Position Information V3
    description: C(GET /fapi/v3/positionRisk).
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-Information-V3
  - name: Binance USD-M New Order
    description: C(reduceOnly), -2022.
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Open positions of the account the executor trades with
  quantum.runbooks.binance_futures_positions:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
  register: positions

- name: What closing would send (check mode reads only)
  quantum.runbooks.binance_futures_positions:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
    state: closed
  check_mode: true
  register: close_plan

- name: Close every open position with reduce-only market orders
  quantum.runbooks.binance_futures_positions:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
    state: closed
  register: closed

- name: Close one symbol, key from BINANCE_API_KEY / BINANCE_API_SECRET
  quantum.runbooks.binance_futures_positions:
    futures_url: https://fapi.binance.com/fapi
    state: closed
    symbols: [BTCUSDT]
"""

RETURN = r"""
summary:
  description:
    - One line for a human, parts joined by C(; ), ending with C(used weight <w>/<budget>).
    - "O(state=read): C(<n> open positions), each as C(<symbol> <LONG|SHORT> <positionAmt> uPnL <unRealizedProfit>)
      in brackets; or C(no open positions[ on <symbols>])."
    - "O(state=closed): C([PARTIAL: ]closed <c> of <t> positions), the closed ones as C(<symbol> <side> <positionAmt>)
      in brackets; then, when they apply, C(STILL OPEN <k>: <symbol> <side> <amount> [why]),
      C(UNKNOWN <u>: <symbol> <side> <positionAmt> [why]), C(<e> closed without our order),
      C(NEW POSITION since the first read: <symbol> <side> <positionAmt>: stop the executor, then rerun),
      C(stopped: <reason and what to do>), C(positions not re-read: <why>), C(rerun to close what is left).
      The why of a symbol is C(not sent), C(rejected: <code> <msg>), C(unknown: <msg>) or the order's answer."
    - "Check mode: C(check mode: would close <t> positions with reduce-only MARKET orders), each as
      C(<symbol> <side> <positionAmt>: <BUY|SELL> <quantity>) in brackets. Nothing open:
      C(nothing to close: no open positions[ on <symbols>])."
  type: str
  returned: always
  sample: "PARTIAL: closed 1 of 2 positions (BTCUSDT LONG 0.01); STILL OPEN 1: ETHUSDT SHORT -0.1 (not sent);
    stopped: rate limited by Binance (HTTP 429, Retry-After 30 s, max_backoff_s 10): rerun after 30 s;
    positions not re-read: the run stopped; used weight 6/2000"
positions:
  description:
    - The open (non-zero) positions, by symbol - O(state=read) what was read; O(state=closed) what is open at the
      end (the re-read), the first read in check mode or when nothing was open, null when not re-read.
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    positionAmt: {description: "Signed amount as Binance sends it (a string), negative for a short.", type: str}
    side: {description: "C(LONG) or C(SHORT).", type: str}
    entryPrice: {description: "Average entry price.", type: str}
    markPrice: {description: "Mark price.", type: str}
    unRealizedProfit: {description: "Unrealized profit at the mark price.", type: str}
    notional: {description: "positionAmt x markPrice (signed).", type: str}
  sample: [{"symbol": "BTCUSDT", "positionAmt": "0.01", "side": "LONG", "entryPrice": "60000",
            "markPrice": "60000", "unRealizedProfit": "0", "notional": "600"}]
open_count:
  description: Number of RV(positions), null when they are unknown.
  type: int
  returned: always
positions_before:
  description: O(state=closed) - the open positions at the first read (the same fields as RV(positions)).
  type: list
  elements: dict
  returned: always
positions_after:
  description:
    - O(state=closed) - the open positions re-read after the orders (every symbol, not only O(symbols)); null when
      nothing was sent (check mode, nothing open) or the re-read was not possible.
  type: list
  elements: dict
  returned: always
results:
  description: O(state=closed) - one entry per position to close, by symbol.
  type: list
  elements: dict
  returned: always
  contains:
    symbol: {description: "Symbol.", type: str}
    side: {description: "Position side before, C(LONG) or C(SHORT).", type: str}
    positionAmt: {description: "Amount before.", type: str}
    order_side: {description: "Side of the closing order (C(SELL) for a long, C(BUY) for a short).", type: str}
    quantity: {description: "Quantity of the closing order, abs(positionAmt).", type: str}
    client_order_id: {description: "Its client order id.", type: str}
    order_result:
      description:
        - C(planned) (check mode), C(ok) (accepted), C(error) (refused, see C(error_code), for example -2022),
          C(unknown) (5xx or no answer), C(not_attempted) (the run stopped before), or the stop kind
          C(rate_limited), C(banned), C(budget), C(unreachable), C(credentials) (not processed).
      type: str
    order_id: {description: "Exchange order id when accepted.", type: int}
    order_status: {description: "Order status in the answer (C(FILLED) for a market order that traded).", type: str}
    executed_qty: {description: "Quantity traded, from the answer.", type: str}
    error_code: {description: "Binance error code of a failed order.", type: int}
    error_msg: {description: "Error message of a failed order.", type: str}
    status:
      description:
        - C(closed) (flat now), C(still_open) (see C(amount_after)), C(unknown) (the order's outcome is unknown and
          the positions could not be re-read), or C(planned) (check mode).
      type: str
    amount_after: {description: "Amount after (C(0) when closed), null when unknown.", type: str}
  sample: [{"symbol": "ETHUSDT", "side": "SHORT", "positionAmt": "-0.1", "order_side": "BUY", "quantity": "0.1",
            "client_order_id": "qtx-close-ETHUSDT-3f9a1c2e", "order_result": "error", "order_id": null,
            "order_status": null, "executed_qty": null, "error_code": -2022,
            "error_msg": "ReduceOnly Order is rejected.", "status": "still_open", "amount_after": "-0.05"}]
rate_limit:
  description: What the exchange said about limits during the run (as in M(quantum.runbooks.binance_futures_orders)).
  type: dict
  returned: always
  contains:
    used_weight_1m: {description: "Last C(X-MBX-USED-WEIGHT-1M).", type: int}
    weight_budget: {description: "O(weight_budget).", type: int}
    retry_after_s: {description: "Last C(Retry-After) in seconds.", type: int}
    waited_s: {description: "Seconds spent waiting out short 429s.", type: float}
    banned_until: {description: "End of an IP ban (HTTP 418), ISO 8601 UTC.", type: str}
    ban_s: {description: "Length of the ban in seconds.", type: int}
endpoint:
  description: The futures base URL used.
  type: str
  returned: always
  sample: http://127.0.0.1:18081/fapi
personality:
  description: C(testnet) or C(mainnet).
  type: str
  returned: always
stop_reason:
  description: Why the run stopped before sending every order (ban, long 429, weight budget, unreachable), or null.
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

import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils import positions as pos
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

STATES = ["read", "closed"]
DEFAULT_PREFIX = "qtx-close-"
POSITION_WEIGHT = 5  # GET /fapi/v3/positionRisk
ORDER_WEIGHT = 0  # POST /fapi/v1/order: IP weight 0 (it counts against the account's order limits)


def read_positions(ex):
    """The raw positionRisk rows (GET /fapi/v3/positionRisk, as python-binance 1.0.37 read them)."""
    raw = ex.call(POSITION_WEIGHT, "GET", "/v3/positionRisk")
    if not isinstance(raw, list):
        raise ExchangeError("unknown", "GET /fapi/v3/positionRisk answered without a list")
    return raw


def first_read(ex, p, what):
    try:
        ex.server_now()  # guards against a ban and sets the clock before the signed call
        return read_positions(ex)
    except ExchangeError as err:
        raise Refused("cannot read positions at %s: %s%s" % (
            futures_endpoint(p), describe(err, ex, reading=True), what)) from None


def run_read(ex, p, check_mode):
    positions = pos.open_positions(first_read(ex, p, ""), p["symbols"])
    return {"positions": positions, "open_count": len(positions),
            "summary": pos.read_summary(positions, p["symbols"], weight_text(ex))}, None


def send_orders(ex, rows):
    """Send each closing order; the ExchangeError that stopped the run (later rows not attempted), or None."""
    for row in rows:
        try:
            answer = ex.call(ORDER_WEIGHT, "POST", "/v1/order", {
                "symbol": row["symbol"], "side": row["order_side"], "type": "MARKET", "quantity": row["quantity"],
                "reduceOnly": "true", "newClientOrderId": row["client_order_id"]})
        except ExchangeError as err:
            row.update(order_result={"api": "error"}.get(err.kind, err.kind), error_code=err.code, error_msg=err.msg)
            if err.kind in STOP_KINDS or err.hanging:  # a 5xx or a -2022 is no reason to stop, silence is
                return err
            continue
        answer = answer if isinstance(answer, dict) else {}
        row.update(order_result="ok", order_id=answer.get("orderId"), order_status=answer.get("status"),
                   executed_qty=answer.get("executedQty"))
    return None


def run_closed(ex, p, check_mode):
    raw = first_read(ex, p, "; nothing was sent")
    before = pos.open_positions(raw, p["symbols"])
    hedged = [s for s in pos.hedge_mode_symbols(raw) if not p["symbols"] or s in p["symbols"]]
    out = {"positions_before": before, "positions": before, "open_count": len(before)}
    if hedged:
        raise Refused("hedge-mode positions on %s (positionSide LONG/SHORT): this module closes one-way positions "
                      "only; nothing was sent" % ", ".join(hedged), out)
    rows = pos.plan(before, p["close_order_prefix"], uuid.uuid4().hex[:8])
    out["results"] = rows
    if check_mode or not rows:
        for row in rows:
            row.update(order_result="planned", status="planned")
        out.update(changed=bool(rows), summary=pos.close_summary(rows, p["symbols"], check_mode, [], None, None,
                                                                 weight_text(ex)))
        return out, None
    stop = send_orders(ex, rows)
    after, reread_text = None, "positions not re-read: the run stopped"
    if stop is None or stop.kind == "unknown":
        try:
            after = pos.open_positions(read_positions(ex))
            reread_text = None
        except ExchangeError as err:
            reread_text = "positions not re-read: " + describe(err, ex, reading=True)
    pos.settle(rows, after)
    scoped = [a for a in after if not p["symbols"] or a["symbol"] in p["symbols"]] if after is not None else None
    new = pos.new_positions(before, scoped)
    stop_text = "stopped: " + describe(stop, ex) if stop is not None else None
    out.update(positions_after=after, positions=scoped, open_count=len(scoped) if scoped is not None else None,
               stop_reason=stop_text,
               changed=any(r["order_result"] in ("ok", "unknown") for r in rows),
               summary=pos.close_summary(rows, p["symbols"], False, new, stop_text, reread_text, weight_text(ex)))
    left = new or any(r["status"] != "closed" for r in rows) or (
        stop is not None and stop.kind in ("banned", "credentials"))
    return out, out["summary"] if left else None


RUNNERS = {"read": run_read, "closed": run_closed}


# ---------------------------------------------------------------- the module

def argument_spec():
    return exchange_argument_spec(
        state=dict(type="str", choices=STATES, default="read"),
        symbols=dict(type="list", elements="str"),
        close_order_prefix=dict(type="str", default=DEFAULT_PREFIX),
    )


def effective_params(params, no_log_values):
    """Parameters with the container's settings applied (its keys go to ``no_log_values``), symbols
    upper-cased; plus the extra results about the container."""
    p, _dummy, extra = connection_params(params, no_log_values)
    return p, extra


def check_own_params(p):
    problem = check_exchange_params(p)
    if problem:
        return problem
    if not pos.PREFIX_PATTERN.match(p["close_order_prefix"] or ""):
        return ("close_order_prefix must be 1-20 letters, digits, '.', '_' or '-', got %r"
                % (p["close_order_prefix"],))
    return None


def run(p, check_mode):
    """(result, failure line or None). Never raises: a bug is reported without credentials."""
    result = {"changed": False, "endpoint": futures_endpoint(p), "personality": "testnet" if p["testnet"] else
              "mainnet", "summary": None, "positions": None, "open_count": None, "positions_before": [],
              "positions_after": None, "results": [], "stop_reason": None}
    return run_guarded(p, result, lambda ex: RUNNERS[p["state"]](ex, p, check_mode))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p, extra = effective_params(module.params, module.no_log_values)
    problem = check_own_params(p)
    if problem:
        module.fail_json(msg=problem, **extra)
    result, failure = run(p, module.check_mode)
    result.update(extra)
    if module._diff and p["state"] == "closed" and result["positions_before"]:
        after = [] if module.check_mode else result["positions_after"]
        result["diff"] = pos.positions_diff(result["positions_before"], after)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
