# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The post-mortem's Markdown, block by block, from ``postmortem_fields.compose``'s data: pure functions,
no Ansible, no I/O.

* ``render_blocks``: {block name: Markdown} - the generated parts ``postmortem_document`` puts between
  markers (evidence text can forge no marker and break no table);
* ``field_lines``: the six fields in one line each (the play's summary).
"""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.positions import amount
from ansible_collections.quantum.runbooks.plugins.module_utils.postmortem_document import BLOCKS, CHART_TOKEN
from ansible_collections.quantum.runbooks.plugins.module_utils.postmortem_fields import MAX_LISTED_ORDERS
from ansible_collections.quantum.runbooks.plugins.module_utils.timestamps import duration, when


def signed(value):
    """'+1.5', '-0.2' or '0' for a decimal string; anything else as it is."""
    number = amount(value)
    if number is None:
        return str(value)
    text = format(number.normalize(), "f") if number != 0 else "0"
    return text if text.startswith("-") or text == "0" else "+" + text


def amounts(by_asset):
    """'-1.25 USDT, +0.1 BNB': signed amounts by asset, in asset order."""
    return ", ".join("%s %s" % (signed(v), a) for a, v in sorted(by_asset.items()))


def field_lines(pm):
    """The six fields in one line each (the play's summary)."""
    root, det, res, orders, money = pm["root_cause"], pm["detection"], pm["resolution"], pm["orders"], pm["pnl"]
    first = root["verdicts"][0] if root["verdicts"] else None
    causes = ", ".join(v["code"] for v in root["verdicts"])
    c = orders["counts"]
    return [
        "1. Root cause: %s" % ("%s - %s%s" % (first["code"], first["summary"] or "see evidence",
                                              " (also %s)" % causes if len(root["verdicts"]) > 1 else "")
                               if first else "no failing verdict in the window - fill in by hand"),
        "2. Detection time: %s after the first symptom (%s -> %s, by %s)" % (
            duration(det["duration_s"]), when(pm["symptom"]["ts"]), when(det["ts"]), det["by"] or "nothing"),
        "3. Resolution time: %s" % ("%s after detection (%s, after %s)" % (
            duration(res["duration_s"]), when(res["ts"]),
            ", ".join("%s %s" % (m["action"], m["result"]) for m in res["mitigations"]) or "no recorded mitigation")
            if res["resolved"] else "not resolved (no HEALTHY diagnosis after a mitigation yet)"),
        "4. Orders affected: %d (%d without answer, %d lost on restart, %d cancelled, %d errored)%s" % (
            orders["count"], c["unanswered"], c["lost_on_restart"], c["cancelled"], c["errored"],
            "" if orders["logs"] == "complete" else "; logs %s" % orders["logs"]),
        "5. PnL impact: %s" % (money_text(money) if money["status"] != "unknown" else "unknown - %s" % money["reason"]),
        "6. Prevention: %s" % "; ".join("%s: %d suggestions" % (p["code"], len(p["items"])) for p in pm["prevention"]),
    ]


def money_text(money):
    net = amounts(money["net"]) or "0"
    parts = ", ".join("%s %s" % (t, amounts(by)) for t, by in sorted(money["by_type"].items()))
    return "net %s in the window from %d income records%s%s" % (
        net, money["records"] or 0, " (%s)" % parts if parts else "",
        "; PARTIAL" if money["status"] == "partial" else "")


def _safe(text):
    """Evidence text inside our Markdown: no marker can be forged, no table broken."""
    return str(text).replace("<!--", "&lt;!--").replace("-->", "--&gt;").replace("\r", " ").replace("\n", " ")


def _cell(text):
    return _safe("" if text is None else text).replace("|", "\\|")


def _md_root(pm):
    root = pm["root_cause"]
    if not root["verdicts"]:
        return "**Prefilled:** no failing diagnosis in the window - the cause must be written by hand."
    lines = []
    for i, v in enumerate(root["verdicts"]):
        head = "**Prefilled:** " if i == 0 else "Then: "
        seen = "1 diagnosis at %s" % when(v["first_seen"]) if v["diagnoses"] == 1 else \
            "%d diagnoses from %s to %s" % (v["diagnoses"], when(v["first_seen"]), when(v["last_seen"]))
        lines.append("%s`%s` - %s (runbook %s); the primary verdict of %s (`%s`)." % (
            head, v["code"], _safe(v["summary"] or "no summary recorded"), _safe(v["step"] or "step unknown"),
            seen, _safe(v["source"])))
        lines += ["", "Evidence:", ""] + ["- %s" % _safe(e) for e in v["evidence"][:8]] + [""] if v["evidence"] \
            else ["", "Evidence: only the finding codes were recorded (audit log).", ""]
    if root["other_findings"]:
        lines.append("Also found: " + "; ".join("`%s` %s" % (o["code"], _safe(o["summary"] or ""))
                                                for o in root["other_findings"]) + ".")
    return "\n".join(lines).strip()


def _md_detection(pm):
    s, d = pm["symptom"], pm["detection"]
    return "\n".join([
        "**Prefilled:** %s after the first symptom." % duration(d["duration_s"]), "",
        "- First symptom: %s - %s" % (when(s["ts"]), _safe(s["text"])),
        "- Detected: %s - %s" % (when(d["ts"]), _safe(d["by"] or "not detected")),
    ])


def _md_resolution(pm):
    r = pm["resolution"]
    if r["resolved"]:
        head = "**Prefilled:** %s after detection; HEALTHY again at %s (`%s`)." % (
            duration(r["duration_s"]), when(r["ts"]), _safe(r["by"]))
    elif r["end_kind"] == "given":
        head = "**Prefilled:** no HEALTHY diagnosis after a mitigation before the given end (%s)." % \
            when(pm["window"]["end"])
    else:
        head = "**Prefilled:** not resolved when this was written (no HEALTHY diagnosis after a mitigation)."
    lines = [head, ""]
    if r["end_kind"] == "healthy_without_mitigation":
        lines += ["No mitigation or rollback was recorded: it recovered on its own, or was fixed by hand.", ""]
    lines += ["- %s - %s: %s" % (when(m["ts"]), m["action"], m["result"]) for m in r["mitigations"]] or \
        ["- no mitigation or rollback in the audit log"]
    return "\n".join(lines)


def _md_orders(pm):
    o = pm["orders"]
    c = o["counts"]
    lines = ["**Prefilled:** %d orders - %d submitted without an answer, %d lost on an executor restart, "
             "%d cancelled, %d errored." % (o["count"], c["unanswered"], c["lost_on_restart"], c["cancelled"],
                                            c["errored"])]
    if o["logs"] != "complete":
        lines += ["", "Executor logs %s: the count may be low." % _safe(o["logs"])]
    if o["orders"]:
        lines += ["", "| correlation id | symbol | client order id | submitted | what happened |",
                  "|---|---|---|---|---|"]
        lines += ["| %s | %s | %s | %s | %s |" % (_cell(r["correlation_id"]), _cell(r["symbol"]),
                                                  _cell(r["client_order_id"]), when(r["submitted_at"]),
                                                  _cell("; ".join(r["how"]))) for r in o["orders"]]
        if not o["listed_all"]:
            lines += ["", "Only the first %d are listed." % MAX_LISTED_ORDERS]
    return "\n".join(lines)


def _md_pnl(pm):
    m = pm["pnl"]
    span = "from %s to %s UTC" % (when(m["start"]), when(m["end"]))
    if m["status"] == "unknown":
        lines = ["**Prefilled:** unknown - %s." % _safe(m["reason"]), "",
                 "Fill in by hand from the exchange's income history (`GET /fapi/v1/income`) %s." % span]
    else:
        lines = ["**Prefilled:** %s." % _safe(money_text(m)), ""]
        if m["by_type"]:
            lines += ["| income type | amount |", "|---|---|"] + [
                "| %s | %s |" % (_cell(t), amounts(by)) for t, by in sorted(m["by_type"].items())] + [""]
        if m["by_symbol"]:
            lines += ["By symbol: " + "; ".join("%s %s" % (s or "(none)", amounts(by))
                                                for s, by in sorted(m["by_symbol"].items())), ""]
        lines += ["Includes: every income record the exchange booked for the account %s (`%s`, %s) - "
                  "realized PnL of fills, commissions, funding fees and any other income type above. The window "
                  "also covers normal trading before the first symptom." % (
                      span, m["personality"] or "?", _safe(m["endpoint"] or "?")),
                  "Excludes: unrealized PnL of open positions (at the mark price, below when read), the "
                  "opportunity cost of orders that never reached the exchange, and fills after the window."]
        if m["positions"] is None:
            lines += ["", "Open positions: not read (%s)." % _safe(m.get("positions_reason"))]
        elif m["positions"]:
            lines += ["", "Open positions %s: " % ("now" if m["positions_now"] else "when written (after the window)")
                      + "; ".join("%s %s %s, uPnL %s" % (
                          p["symbol"], p["side"], p["positionAmt"], signed(p["unRealizedProfit"]))
                          for p in m["positions"])]
        else:
            lines += ["", "Open positions %s: none." % ("now" if m["positions_now"] else "when written")]
    lines += [""] + ["Warning: %s." % _safe(w) for w in m["warnings"]] if m["warnings"] else []
    return "\n".join(lines)


def _md_prevention(pm):
    lines = ["**Prefilled** from the reviewed table (keyed to the verdict):", ""]
    for p in pm["prevention"]:
        lines += ["- [ ] `%s`: %s" % (p["code"], item) for item in p["items"]]
    return "\n".join(lines)


def _md_timeline(pm):
    rows = ["| time (UTC) | kind | event | who |", "|---|---|---|---|"]
    rows += ["| %s | %s | %s | %s |" % (when(t["ts"]), t["kind"], _cell(t["text"]), _cell(t.get("who") or ""))
             for t in pm["timeline"]]
    return "\n".join(rows) if pm["timeline"] else "No diagnosis or audit record in the window."


def _md_chart(pm):
    s = pm["series"]
    return "\n".join([
        "![Orders submitted vs answered](%s)" % CHART_TOKEN, "",
        "Per %s from %s: %d ORDER_SUBMIT, %d answered (ORDER_RESPONSE or ORDER_ERROR, %d errors)." % (
            duration(s["bucket_s"]), when(s["start"]), sum(s["submitted"]), sum(s["answered"]), sum(s["errors"])),
    ])


def _md_summary(pm):
    w = pm["window"]
    rows = [
        "# Post-mortem: Execution Stuck - %s" % pm["date"], "",
        "| | |", "|---|---|",
        "| Incident id | `%s` |" % pm["incident_id"],
        "| Host | %s |" % _cell(pm["host"]),
        "| Window (UTC) | %s to %s (%s) |" % (when(w["start"]), when(w["end"]), duration(w["end"] - w["start"])),
        "| Window from | %s%s |" % ("operator" if w["anchor_kind"] == "given" else "first failing diagnosis",
                                    " minus %s lookback" % duration(w["lookback_s"]) if w["lookback_s"] else ""),
        "| Window to | %s |" % {"healthy_after_mitigation": "first HEALTHY diagnosis after a mitigation",
                                "healthy_without_mitigation": "first HEALTHY diagnosis (no mitigation recorded)",
                                "given": "operator", "now": "now (not resolved)"}[w["end_kind"]],
        "| Status | DRAFT - prefilled from evidence; every field needs a human's confirmation |",
    ]
    rows += ["", "In one line each:", ""] + ["- %s" % _safe(line) for line in field_lines(pm)]
    rows += [""] + ["Warning: %s." % _safe(w) for w in pm["warnings"]] if pm["warnings"] else []
    return "\n".join(rows)


RENDER = {"summary": _md_summary, "root_cause": _md_root, "detection": _md_detection, "resolution": _md_resolution,
          "orders_affected": _md_orders, "pnl_impact": _md_pnl, "prevention": _md_prevention,
          "timeline": _md_timeline, "chart": _md_chart}


def render_blocks(pm, chart_error=None):
    """{block name: Markdown} - the generated parts, without their markers."""
    blocks = {name: RENDER[name](pm) for name in BLOCKS}
    if chart_error:
        blocks["chart"] = "No chart: %s." % _safe(chart_error)
    return blocks
