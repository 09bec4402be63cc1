# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Open positions, the reduce-only orders that close them, what each ended as, and the one-line summary.
Plain Python, no I/O.

Used by the ``binance_futures_positions`` module; importable and testable without Ansible or an exchange.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

POSITION_FIELDS = ("symbol", "positionAmt", "side", "entryPrice", "markPrice", "unRealizedProfit", "notional")
CLOSING_SIDE = {"LONG": "SELL", "SHORT": "BUY"}
CLIENT_ID_MAX = 36  # Binance: ^[.A-Z:/a-z0-9_-]{1,36}$
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,20}$")  # no ':' or '/': form encoding can break the signature
NOT_SENT = ("not_attempted", "rate_limited", "banned", "budget", "unreachable", "credentials")


def amount(value):
    """A Binance decimal string as Decimal; None when it is not a number."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def open_positions(raw, symbols=()):
    """The non-zero positions of a positionRisk answer (only ``symbols`` when given), sorted by symbol."""
    rows = []
    for item in raw or []:
        amt = amount(item.get("positionAmt"))
        if not amt or (symbols and item.get("symbol") not in symbols):
            continue
        row = {name: item.get(name) for name in POSITION_FIELDS}
        row["side"] = "LONG" if amt > 0 else "SHORT"
        rows.append(row)
    return sorted(rows, key=lambda r: r["symbol"] or "")


def hedge_mode_symbols(raw):
    """Symbols with an open position on a hedge-mode side (positionSide LONG/SHORT rather than BOTH)."""
    return sorted({i.get("symbol") for i in raw or [] if amount(i.get("positionAmt"))
                   and str(i.get("positionSide") or "BOTH").upper() != "BOTH"})


def client_order_id(prefix, symbol, token):
    """``<prefix><SYMBOL>-<token>``, or ``<prefix><token>`` when that would pass Binance's 36 characters."""
    full = "%s%s-%s" % (prefix, symbol, token)
    return full if len(full) <= CLIENT_ID_MAX else (prefix + token)[:CLIENT_ID_MAX]


def plan(positions, prefix, token):
    """One result row per position: the reduce-only MARKET order that closes it (one-way mode)."""
    rows = []
    for pos in positions:
        amt = amount(pos["positionAmt"])
        rows.append({
            "symbol": pos["symbol"], "side": pos["side"], "positionAmt": pos["positionAmt"],
            "order_side": CLOSING_SIDE[pos["side"]], "quantity": str(abs(amt)),
            "client_order_id": client_order_id(prefix, pos["symbol"], token),
            "order_result": "not_attempted", "order_id": None, "order_status": None, "executed_qty": None,
            "error_code": None, "error_msg": None, "status": None, "amount_after": None,
        })
    return rows


def settle(rows, after):
    """Each row's ``status``: ``closed``, ``still_open`` (``amount_after``) or ``unknown``.

    ``after`` is the re-read positions (a list) or None when they could not be re-read; then the order's own
    answer decides: FILLED for the whole quantity is closed, a request that was never processed leaves the
    position as it was, anything else (5xx, no answer, a rejection) is unknown.
    """
    left = {p["symbol"]: p["positionAmt"] for p in after} if after is not None else None
    for row in rows:
        if left is not None:
            row["amount_after"] = left.get(row["symbol"], "0")
            row["status"] = "closed" if row["amount_after"] == "0" else "still_open"
        elif row["order_result"] == "ok" and row["order_status"] == "FILLED" and \
                amount(row["executed_qty"]) == amount(row["quantity"]):
            row["status"] = "closed"
        elif row["order_result"] in NOT_SENT:
            row["status"], row["amount_after"] = "still_open", row["positionAmt"]
        else:
            row["status"] = "unknown"
    return rows


def new_positions(before, after):
    """Positions open after the run on symbols that were flat before (the executor still trading?)."""
    had = {p["symbol"] for p in before}
    return [p for p in after or [] if p["symbol"] not in had]


# ---------------------------------------------------------------- the line a human reads at 3 a.m.

def _pos(p):
    return "%s %s %s" % (p["symbol"], p["side"], p["positionAmt"])


def _scope(symbols):
    return " on %s" % ", ".join(symbols) if symbols else ""


def read_summary(positions, symbols, weight_text):
    if not positions:
        return "no open positions%s; %s" % (_scope(symbols), weight_text)
    return "%d open position%s%s (%s); %s" % (
        len(positions), "" if len(positions) == 1 else "s", _scope(symbols),
        ", ".join("%s uPnL %s" % (_pos(p), p["unRealizedProfit"]) for p in positions), weight_text)


def _why(row):
    if row["order_result"] in NOT_SENT:
        return "not sent"
    if row["order_result"] == "ok":
        return "order %s %s %s" % (row["order_id"], row["order_status"], row["executed_qty"])
    what = "%s %s" % (row["error_code"], row["error_msg"]) if row["error_code"] is not None else row["error_msg"]
    return "%s: %s" % ("rejected" if row["order_result"] == "error" else row["order_result"], what)


def close_summary(rows, symbols, check_mode, new, stop_text, reread_text, weight_text):
    """One line: what was (or would be) closed, what is left open and why, what nobody knows."""
    if not rows:
        return "nothing to close: no open positions%s; %s" % (_scope(symbols), weight_text)
    if check_mode:
        return "check mode: would close %d position%s with reduce-only MARKET orders (%s); %s" % (
            len(rows), "" if len(rows) == 1 else "s",
            ", ".join("%s: %s %s" % (_pos(r), r["order_side"], r["quantity"]) for r in rows), weight_text)
    closed = [r for r in rows if r["status"] == "closed"]
    still = [r for r in rows if r["status"] == "still_open"]
    unknown = [r for r in rows if r["status"] == "unknown"]
    elsewhere = [r for r in closed if r["order_result"] != "ok"]
    bad = still or unknown or new
    parts = ["%sclosed %d of %d positions%s" % ("PARTIAL: " if bad else "", len(closed), len(rows),
                                                " (%s)" % ", ".join(_pos(r) for r in closed) if closed else "")]
    if still:
        parts.append("STILL OPEN %d: %s" % (len(still), ", ".join(
            "%s %s %s (%s)" % (r["symbol"], r["side"], r["amount_after"], _why(r)) for r in still)))
    if unknown:
        parts.append("UNKNOWN %d: %s" % (len(unknown), ", ".join(
            "%s (%s)" % (_pos(r), _why(r)) for r in unknown)))
    if elsewhere:
        parts.append("%d closed without our order (%s)" % (len(elsewhere), ", ".join(
            "%s %s" % (r["symbol"], _why(r)) for r in elsewhere)))
    if new:
        parts.append("NEW POSITION since the first read: %s: stop the executor, then rerun"
                     % ", ".join(_pos(p) for p in new))
    if stop_text:
        parts.append(stop_text)
    if reread_text:
        parts.append(reread_text)
    if bad and not stop_text:
        parts.append("rerun to close what is left")
    parts.append(weight_text)
    return "; ".join(parts)


def positions_diff(before, after):
    """Ansible's diff dict: open positions before and after (the plan's after is flat in check mode)."""
    def text(rows):
        return "".join("%s %s %s entry %s\n" % (p["symbol"], p["side"], p["positionAmt"], p["entryPrice"])
                       for p in rows) or "(no open positions)\n"
    return {"before": text(before), "after": text(after) if after is not None else "(not re-read)\n",
            "before_header": "open positions (before)", "after_header": "open positions (after)"}
