# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Which open orders are stuck, which call cancels them, and the one-line summary. Plain Python, no I/O.

Used by the ``binance_futures_orders`` module; importable and testable without Ansible or an exchange.
"""
from __future__ import annotations

BATCH_MAX = 10  # DELETE /fapi/v1/batchOrders takes at most 10 ids
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
FILLED_STATUSES = ("FILLED", "PARTIALLY_FILLED")
ROW_FIELDS = ("symbol", "orderId", "clientOrderId", "side", "type", "price", "origQty", "executedQty", "status",
              "time")


def order_row(order, now_ms, prefix):
    """The fields of an open order worth returning, with its age (exchange clock) and whether it is ours."""
    row = {name: order.get(name) for name in ROW_FIELDS}
    created = order.get("time")
    row["age_s"] = round((now_ms - created) / 1000.0, 1) if isinstance(created, (int, float)) else None
    row["own"] = bool(prefix) and str(order.get("clientOrderId") or "").startswith(prefix)
    return row


def classify(orders, now_ms, prefix, include_foreign, stuck_after_s):
    """(targets, kept), oldest first; each kept order says why (``foreign`` before ``fresh``).

    An order without a creation time is kept as ``fresh``: its age is unknown, so it is not provably stuck.
    """
    targets, kept = [], []
    for order in orders:
        row = order_row(order, now_ms, prefix)
        if not (row["own"] or include_foreign):
            kept.append(dict(row, reason="foreign"))
        elif row["age_s"] is None or row["age_s"] < stuck_after_s:
            kept.append(dict(row, reason="fresh"))
        else:
            targets.append(row)

    def oldest_first(rows):
        return sorted(rows, key=lambda r: (-(r["age_s"] or 0), r["symbol"] or "", r["orderId"] or 0))

    return oldest_first(targets), oldest_first(kept)


def plan_calls(targets, open_counts):
    """The cheapest exact cancel per symbol: ``[{"symbol", "kind", "ids"}]``, symbols in order.

    ``all_open_orders`` (one call) when every open order of the symbol is a target and there are several;
    ``single`` for one target (same weight as cancel-all, and it cannot hit an order placed after the
    listing); otherwise ``batch`` calls of at most 10 ids.
    """
    by_symbol = {}
    for row in targets:
        by_symbol.setdefault(row["symbol"], []).append(row["orderId"])
    calls = []
    for symbol in sorted(by_symbol):
        ids = by_symbol[symbol]
        if len(ids) == 1:
            calls.append({"symbol": symbol, "kind": "single", "ids": ids})
        elif len(ids) == open_counts.get(symbol, 0):
            calls.append({"symbol": symbol, "kind": "all_open_orders", "ids": ids})
        else:
            for start in range(0, len(ids), BATCH_MAX):
                calls.append({"symbol": symbol, "kind": "batch", "ids": ids[start:start + BATCH_MAX]})
    return calls


def open_counts(orders):
    counts = {}
    for order in orders:
        counts[order.get("symbol")] = counts.get(order.get("symbol"), 0) + 1
    return counts


def position_opened(status, executed_qty):
    """True when the order traded at all: filled, partly filled, or cancelled after a partial fill."""
    try:
        traded = float(executed_qty or 0) > 0
    except (TypeError, ValueError):
        traded = False
    return status in FILLED_STATUSES or traded


def cancelled_by_us(row):
    """Our cancel took effect: acknowledged, or an unknown outcome that reconciliation found CANCELED."""
    return row["outcome"] == "cancelled" or (row["outcome"] == "unknown" and row["final_status"] == "CANCELED")


def not_done(row):
    """A target that may still be resting (or whose fate nobody knows): the rerun's work."""
    if row["final_status"] in OPEN_STATUSES or row["outcome"] in ("error", "not_attempted"):
        return True
    return row["outcome"] == "unknown" and row["final_status"] == "UNKNOWN"


# ---------------------------------------------------------------- the line a human reads at 3 a.m.

def _ids(rows, limit=5):
    names = ["%s %s" % (r["symbol"], r["orderId"]) for r in rows[:limit]]
    return ", ".join(names) + (" and %d more" % (len(rows) - limit) if len(rows) > limit else "")


def _kept(kept):
    if not kept:
        return "kept none"
    fresh = sum(1 for r in kept if r["reason"] == "fresh")
    foreign = len(kept) - fresh
    return "kept %d (%d fresh, %d foreign)" % (len(kept), fresh, foreign)


def _plan(calls):
    return ", ".join("%s: %s %d" % (c["symbol"], c["kind"], len(c["ids"])) for c in calls)


def cancel_summary(which, targets, kept, calls, results, check_mode, stop_text, weight_text):
    """One line: what was (or would be) cancelled, what is left to do and why, positions opened."""
    if check_mode:
        head = ("check mode: would cancel %d %s (%s)" % (len(targets), which, _plan(calls)) if targets
                else "check mode: nothing to cancel, no %s" % which)
        return "; ".join([head, _kept(kept), weight_text])
    if not targets:
        return "; ".join(["nothing to cancel: no %s" % which, _kept(kept), weight_text])
    done = [r for r in results if cancelled_by_us(r)]
    left = [r for r in results if not_done(r)]
    gone = [r for r in results if r["outcome"] == "already_gone"]
    opened = [r for r in results if r["position_opened"]]
    parts = ["%scancelled %d of %d %s (%s)" % ("PARTIAL: " if left else "", len(done), len(targets), which,
                                               _plan(calls))]
    if left:
        parts.append("NOT DONE %d: %s" % (len(left), _ids(left)))
    if stop_text:
        parts.append(stop_text)
    if gone:
        parts.append("%d already gone" % len(gone))
    if opened:
        parts.append("POSITION OPENED by %d (%s): check positions" % (len(opened), ", ".join(
            "%s %s %s %s" % (r["symbol"], r["orderId"], r["final_status"], r["executedQty"]) for r in opened[:5])))
    parts += [_kept(kept), weight_text]
    return "; ".join(parts)


# ---------------------------------------------------------------- --diff: open orders per symbol

def _order_line(row):
    return "  %s %s %s %s@%s age %ss%s" % (row["orderId"], row["clientOrderId"], row["side"], row["origQty"],
                                           row["price"], row["age_s"], " (kept: %s)" % row["reason"]
                                           if row.get("reason") else "")


def cancel_diff(targets, kept, results, check_mode):
    """Ansible's diff dict: the listed open orders per symbol before, and what remains open after."""
    final = {r["orderId"]: r for r in results}

    def still_open(row):
        if check_mode:
            return False  # the plan: every target gone
        r = final.get(row["orderId"])
        return r is None or r["final_status"] in OPEN_STATUSES or not_done(r)

    def text(rows):
        out = []
        for symbol in sorted({r["symbol"] for r in rows}):
            mine = [r for r in rows if r["symbol"] == symbol]
            out.append("%s: %d open\n" % (symbol, len(mine)) + "".join(_order_line(r) + "\n" for r in mine))
        return "".join(out) or "(no open orders)\n"

    after = kept + [t for t in targets if still_open(t)]
    return {"before": text(targets + kept), "after": text(after),
            "before_header": "open orders (listed)", "after_header": "open orders (after)"}
