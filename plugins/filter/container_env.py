# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Filters for the rollback playbooks: a container's environment and the trading mode it means."""
from __future__ import annotations

from ansible_collections.quantum.runbooks.plugins.module_utils.dotenv import quote_value
from ansible_collections.quantum.runbooks.plugins.module_utils.trading_mode import trading_mode_of

# Documentation: one <filter name>.yml per filter beside this file (this file is named after the first;
# Galaxy lists each plugin file as a filter).


def container_env(env_list, keys=None):
    pairs = (item.split("=", 1) for item in env_list or [] if "=" in item)
    return {k: v for k, v in pairs if keys is None or k in keys}


def dotenv_quote(value):
    """The value as .env text that docker compose reads back as exactly this string (templated .env)."""
    return quote_value("true" if value is True else "false" if value is False else str(value))


class FilterModule:
    def filters(self):
        return {"container_env": container_env, "trading_mode_of": trading_mode_of, "dotenv_quote": dotenv_quote}
