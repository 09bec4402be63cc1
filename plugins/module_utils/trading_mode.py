# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The trading mode (paper / testnet / live) that a set of executor settings means: pure, no Ansible."""
from __future__ import annotations

MODE_KEYS = ("BINANCE_USE_TESTNET", "PAPER_TRADING")
TRUE = ("true", "1", "yes")  # what the executor's parse_bool accepts


def trading_mode_of(values):
    """paper / testnet / live from BINANCE_USE_TESTNET and PAPER_TRADING, read as the executor reads them."""
    values = values or {}
    if str(values.get("PAPER_TRADING", "")).strip().lower() in TRUE:
        return "paper"
    return "testnet" if str(values.get("BINANCE_USE_TESTNET", "")).strip().lower() in TRUE else "live"
