#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Documentation for the postmortem_compose action (plugins/action/postmortem_compose.py does the work
on the control node; there is nothing to run on the target)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: postmortem_compose
short_description: Compose the post-mortem's six fields, timeline and chart from the evidence (control node)
version_added: "0.1.0"
description:
  - From M(quantum.runbooks.postmortem_evidence)'s window, diagnoses and audit records, the executor's order
    events (M(quantum.runbooks.container_logs) read from the window's start with a large C(keep_last)), the income
    history (M(quantum.runbooks.binance_futures_income)) and the open positions
    (M(quantum.runbooks.binance_futures_positions), C(state=read)), computes the runbook's six fields - root cause,
    detection time, resolution time, orders affected, PnL impact, prevention - plus the timeline, and renders them as
    Markdown blocks for M(quantum.runbooks.postmortem_write).
  - Draws orders submitted vs answered over the window as a PNG with matplotlib (Agg, on the control node).
  - Missing evidence is said, not fatal - logs that could not be read, an exchange that did not answer (PnL
    C(unknown) with the reason), no matplotlib (no chart, with the reason).
  - Writes nothing; runs in check mode too.
options:
  evidence:
    description: RV(quantum.runbooks.postmortem_evidence#module:evidence).
    type: dict
    required: true
  logs:
    description: The registered result of M(quantum.runbooks.container_logs) on the executor (failed or missing is
      fine).
    type: dict
  income:
    description: The registered result of M(quantum.runbooks.binance_futures_income).
    type: dict
  positions:
    description: The registered result of M(quantum.runbooks.binance_futures_positions) (C(state=read)).
    type: dict
  chart:
    description: Draw the chart.
    type: bool
    default: true
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Compose the post-mortem
  quantum.runbooks.postmortem_compose:
    evidence: "{{ incident.evidence }}"
    logs: "{{ executor_logs }}"
    income: "{{ income }}"
    positions: "{{ positions }}"
  register: composed
"""

RETURN = r"""
postmortem:
  description:
    - The post-mortem as data - C(incident_id), C(host), C(date), C(window), C(root_cause) (C(primary),
      C(verdicts) with code, summary, step, evidence, C(other_findings)), C(symptom), C(detection) (C(ts), C(by),
      C(duration_s)), C(resolution) (C(ts), C(resolved), C(mitigations), C(duration_s)), C(orders) (C(count),
      C(counts), C(orders) with correlation_id, symbol, client_order_id, how), C(pnl) (C(status) ok, partial or
      unknown, C(reason), C(net), C(by_type), C(by_symbol), C(positions)), C(prevention), C(timeline), C(series),
      C(warnings). Times are epoch seconds.
  type: dict
  returned: success
blocks:
  description: Markdown per generated block, for M(quantum.runbooks.postmortem_write).
  type: dict
  returned: success
chart_png:
  description: The chart, base64 PNG, or null (see RV(chart_error)).
  type: str
  returned: success
chart_error:
  description: Why there is no chart, or null.
  type: str
  returned: success
fields:
  description: The six fields, one line each.
  type: list
  elements: str
  returned: success
"""
