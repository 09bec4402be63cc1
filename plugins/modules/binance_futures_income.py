#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read Binance USD-M futures income history (realized PnL, commissions, funding fees) in a time window,
summed per income type and per symbol: the post-mortem's "PnL impact". Read-only; when the exchange cannot
answer the result is "unknown" with the reason, never a failure."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: binance_futures_income
short_description: Sum Binance USD-M futures income (realized PnL, commissions, funding) over a time window
version_added: "0.1.0"
description:
  - Reads the exchange clock (C(GET /fapi/v1/time), weight 1), then the account's income history
    (C(GET /fapi/v1/income), USER_DATA, weight 30) from
    O(start_time) to O(end_time), and sums it per income type, per symbol and per asset.
  - Pages by time - each page starts at the last record's millisecond (records are de-duplicated by
    C(incomeType) and C(tranId), which Binance keeps unique per type) - until a page is not full, at most
    O(max_pages) pages; more is reported as RV(status=partial).
  - Never fails because of the exchange - unreachable, IP banned (418), rate limited (429), key rejected, no key
    at all - the result is then RV(status=unknown) with RV(reason), so a report (the post-mortem) can still be
    written and say why the figure is missing. A 429 with a short C(Retry-After) is waited out once, as in
    M(quantum.runbooks.binance_futures_orders).
  - Read-only; check mode reads the same way. The key, the secret and request signatures never appear in
    results or messages.
options:
  start_time:
    description: Window start - ISO 8601 (C(2026-11-28T12:29:37Z); without a zone it is UTC) or epoch milliseconds.
    type: str
    required: true
  end_time:
    description: Window end, the same forms; default now.
    type: str
  symbols:
    description: Only these symbols' records (upper-cased); records without a symbol (transfers) are then left out.
    type: list
    elements: str
  income_types:
    description: Only these income types (for example C(REALIZED_PNL), C(COMMISSION), C(FUNDING_FEE)).
    type: list
    elements: str
  page_size:
    description: C(limit) of each call, 1 to 1000 (Binance's maximum).
    type: int
    default: 1000
  max_pages:
    description: At most this many calls (weight 30 each) - a bound on the run and on the weight it uses.
    type: int
    default: 10
extends_documentation_fragment:
  - quantum.runbooks.binance
  - quantum.runbooks.binance.exchange
notes:
  - Income history is the exchange's own ledger. It does not contain unrealized PnL (read
    M(quantum.runbooks.binance_futures_positions)), nor anything about orders that never reached the exchange.
  - Filters are applied after reading (one call covers every symbol and type), so O(symbols) and O(income_types) do
    not change the weight used.
seealso:
  - module: quantum.runbooks.binance_futures_positions
  - name: Binance USD-M Get Income History
    description: C(GET /fapi/v1/income), weight 30, C(limit) up to 1000.
    link: https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Income-History
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Income of the account the executor trades with, during the incident
  quantum.runbooks.binance_futures_income:
    settings_from_container: quantum_auto_executor
    futures_testnet_url: http://127.0.0.1:18081/fapi
    start_time: "2026-11-28T12:29:37Z"
    end_time: "2026-11-28T12:41:02Z"
  register: income

- name: Say what the incident cost, or why that is unknown
  ansible.builtin.debug:
    msg: "{{ income.summary }}"

- name: Only realized PnL and fees on BTCUSDT, key from BINANCE_API_KEY / BINANCE_API_SECRET
  quantum.runbooks.binance_futures_income:
    futures_url: https://fapi.binance.com/fapi
    start_time: "1764333000000"
    symbols: [BTCUSDT]
    income_types: [REALIZED_PNL, COMMISSION]
"""

RETURN = r"""
status:
  description:
    - C(ok) - every record of the window was read.
    - C(partial) - O(max_pages) was reached, or the exchange stopped answering after some pages; the sums cover
      RV(covered_until) only.
    - C(unknown) - nothing usable was read; RV(reason) says why.
  type: str
  returned: always
  sample: ok
reason:
  description: Why the status is not C(ok), one line without credentials, or null.
  type: str
  returned: always
  sample: "IP banned by Binance (HTTP 418) for 120 s, until 2026-11-28T12:43:00Z: send nothing to Binance before then"
summary:
  description: "One line for a human - C(<n> income records <start> to <end>: net <amount> <asset>), the sums per
    income type in brackets, then C(used weight <w>/<budget>); C(PARTIAL <reason>:) first when partial; or
    C(income unknown: <reason>)."
  type: str
  returned: always
start_time:
  description: The window start as sent, ISO 8601 UTC.
  type: str
  returned: always
end_time:
  description: The window end as sent, ISO 8601 UTC.
  type: str
  returned: always
covered_until:
  description: The last millisecond known to be complete (RV(end_time) when C(ok)), ISO 8601 UTC, or null.
  type: str
  returned: always
count:
  description: Number of records kept (after O(symbols) / O(income_types)); null when unknown.
  type: int
  returned: always
records:
  description: The records as Binance sends them, oldest first (C(income) is a signed decimal string).
  type: list
  elements: dict
  returned: always
  sample: [{"symbol": "BTCUSDT", "incomeType": "COMMISSION", "income": "-0.024", "asset": "USDT",
            "info": "COMMISSION", "time": 1764333012345, "tranId": 4000000031, "tradeId": "4000000030"}]
net:
  description: Sum of every record, per asset (decimal strings).
  type: dict
  returned: always
  sample: {"USDT": "-1.248"}
totals_by_type:
  description: Sum per income type, per asset.
  type: dict
  returned: always
  sample: {"COMMISSION": {"USDT": "-0.248"}, "REALIZED_PNL": {"USDT": "-1"}}
totals_by_symbol:
  description: Sum per symbol (C("") for records without one), per asset.
  type: dict
  returned: always
  sample: {"BTCUSDT": {"USDT": "-1.248"}}
totals:
  description: One row per symbol, income type and asset - C(symbol), C(incomeType), C(asset), C(income) (sum),
    C(count).
  type: list
  elements: dict
  returned: always
pages:
  description: Calls made to C(/fapi/v1/income).
  type: int
  returned: always
rate_limit:
  description: What the exchange said about limits during the run (as in M(quantum.runbooks.binance_futures_orders)).
  type: dict
  returned: always
settings_container_state:
  description: With O(settings_from_container), that container's state (C(running), C(exited), C(missing), ...).
  type: str
  returned: when settings_from_container is set
endpoint:
  description: The futures base URL used.
  type: str
  returned: always
personality:
  description: C(testnet) or C(mainnet).
  type: str
  returned: always
"""

import time
from decimal import Decimal, InvalidOperation

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils.binance_common import (
    check_exchange_params,
    connection_params,
    exchange_argument_spec,
    futures_endpoint,
    run_guarded,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.binance_exchange import (
    ExchangeError,
    describe,
    iso_utc,
    weight_text,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import parse_time

INCOME_WEIGHT = 30  # GET /fapi/v1/income
MAX_PAGE = 1000


def argument_spec():
    return exchange_argument_spec(
        start_time=dict(type="str", required=True),
        end_time=dict(type="str"),
        symbols=dict(type="list", elements="str"),
        income_types=dict(type="list", elements="str"),
        page_size=dict(type="int", default=MAX_PAGE),
        max_pages=dict(type="int", default=10),
    )


def effective_params(params, no_log_values):
    """Parameters with the container's settings applied (its keys go to ``no_log_values``), the window in
    epoch ms (``start_ms`` / ``end_ms``, None when unparsable) and the filters upper-cased."""
    p, _dummy, extra = connection_params(params, no_log_values)
    p["income_types"] = sorted({t.strip().upper() for t in p.get("income_types") or [] if t and t.strip()})
    for name, default in (("start_time", None), ("end_time", time.time())):
        try:
            p[name[:-5] + "_ms"] = int(round(parse_time(p.get(name) or default) * 1000))
        except ValueError:
            p[name[:-5] + "_ms"] = None
    return p, extra


def check_own_params(p):
    """Mistakes in the task itself (these fail); a missing key is not one - the income is then unknown."""
    if p["start_ms"] is None or p["end_ms"] is None:
        return "start_time and end_time must be ISO 8601 times or epoch milliseconds, got %r and %r" % (
            p.get("start_time"), p.get("end_time"))
    if p["end_ms"] <= p["start_ms"]:
        return "end_time must be after start_time"
    if not 1 <= p["page_size"] <= MAX_PAGE:
        return "page_size must be 1 to %d" % MAX_PAGE
    if p["max_pages"] < 1:
        return "max_pages must be at least 1"
    return check_exchange_params(dict(p, api_key="-", api_secret="-"))  # all but the key: without one it is unknown


def read_pages(ex, p):
    """(records oldest first, calls made, the ms up to which they are complete, why not to the end or None)."""
    seen, records, cursor, crowded = set(), [], p["start_ms"], []
    for calls in range(1, p["max_pages"] + 1):
        try:
            page = ex.call(INCOME_WEIGHT, "GET", "/v1/income",
                           {"startTime": cursor, "endTime": p["end_ms"], "limit": p["page_size"]})
        except ExchangeError as err:
            if not records:
                raise
            return records, calls, cursor - 1, "stopped after %d records: %s" % (
                len(records), describe(err, ex, True))
        if not isinstance(page, list):
            raise ExchangeError("unknown", "GET /fapi/v1/income answered without a list")
        for rec in page:
            key = (rec.get("incomeType"), rec.get("tranId"))
            if key not in seen:
                seen.add(key)
                records.append(rec)
        if len(page) < p["page_size"]:
            why = None if not crowded else "more than %d records in one millisecond (%s): some may be missing, " \
                "raise page_size" % (p["page_size"], ", ".join(iso_utc(ms) for ms in crowded[:3]))
            return records, calls, p["end_ms"], why
        last = max(int(rec.get("time") or 0) for rec in page)
        # the next page starts at the last millisecond (it may hold more records); a page that is all one
        # millisecond cannot be split by time, so the cursor moves past it (and the result says so)
        if last <= cursor:
            crowded.append(last)
        cursor = last + 1 if last <= cursor else last
    return records, p["max_pages"], cursor - 1, "more than %d pages of %d records: raise max_pages or shorten " \
        "the window" % (p["max_pages"], p["page_size"])


def _add(table, key, asset, amount):
    table.setdefault(key, {})
    table[key][asset] = table[key].get(asset, Decimal(0)) + amount


def _text(table):
    return {k: {a: _fmt(v) for a, v in sorted(by.items())} for k, by in sorted(table.items())}


def _fmt(number):
    return "0" if number == 0 else format(number.normalize(), "f")


def totals(records):
    """net / totals_by_type / totals_by_symbol (per asset) and the flat rows, as decimal strings."""
    by_type, by_symbol, net, rows = {}, {}, {}, {}
    for rec in records:
        try:
            amount = Decimal(str(rec.get("income")))
        except (InvalidOperation, ValueError):
            continue
        asset, kind, symbol = rec.get("asset") or "?", rec.get("incomeType") or "?", rec.get("symbol") or ""
        _add(by_type, kind, asset, amount)
        _add(by_symbol, symbol, asset, amount)
        net[asset] = net.get(asset, Decimal(0)) + amount
        row = rows.setdefault((symbol, kind, asset), [Decimal(0), 0])
        row[0] += amount
        row[1] += 1
    return {
        "net": {a: _fmt(v) for a, v in sorted(net.items())},
        "totals_by_type": _text(by_type),
        "totals_by_symbol": _text(by_symbol),
        "totals": [{"symbol": s, "incomeType": k, "asset": a, "income": _fmt(v[0]), "count": v[1]}
                   for (s, k, a), v in sorted(rows.items())],
    }


def summary(out, ex):
    parts = ", ".join("%s %s" % (kind, ", ".join("%s %s" % (v, a) for a, v in by.items()))
                      for kind, by in out["totals_by_type"].items())
    net = ", ".join("%s %s" % (v, a) for a, v in out["net"].items()) or "0"
    return "%s%d income records %s to %s: net %s%s; %s" % (
        "PARTIAL (%s): " % out["reason"] if out["status"] == "partial" else "", out["count"], out["start_time"],
        out["covered_until"], net, " (%s)" % parts if parts else "", weight_text(ex))


def read_income(ex, p):
    try:
        ex.server_now()  # guards against a ban and sets the clock before the signed calls
        records, calls, until, why = read_pages(ex, p)
    except ExchangeError as err:
        reason = describe(err, ex, reading=True)
        return {"status": "unknown", "reason": reason, "summary": "income unknown: %s" % reason}, None
    records = [r for r in records if (not p["symbols"] or r.get("symbol") in p["symbols"])
               and (not p["income_types"] or r.get("incomeType") in p["income_types"])]
    records.sort(key=lambda r: (int(r.get("time") or 0), str(r.get("tranId"))))
    out = dict(totals(records), status="partial" if why else "ok", reason=why, records=records,
               count=len(records), covered_until=iso_utc(until), start_time=iso_utc(p["start_ms"]), pages=calls)
    out["summary"] = summary(out, ex)
    return out, None


def run(p, check_mode):
    """(result, None): the income is read, or unknown with the reason - the exchange never fails the task."""
    result = {"changed": False, "status": "unknown", "reason": None, "summary": None, "count": None, "records": [],
              "net": {}, "totals_by_type": {}, "totals_by_symbol": {}, "totals": [], "pages": 0,
              "start_time": iso_utc(p["start_ms"]), "end_time": iso_utc(p["end_ms"]), "covered_until": None,
              "endpoint": futures_endpoint(p), "personality": "testnet" if p["testnet"] else "mainnet"}
    no_key = check_exchange_params(p)  # the other problems were refused by check_own_params
    if no_key:
        result.update(reason=no_key, summary="income unknown: %s" % no_key, rate_limit=None)
        return result, None
    return run_guarded(p, result, lambda ex: read_income(ex, p))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params, result = effective_params(module.params, module.no_log_values)
    failure = check_own_params(params)  # a mistake in the task fails; the exchange never does
    if failure is None:
        out, failure = run(params, module.check_mode)  # a failure here is a bug: one line, no credentials
        result.update(out)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
