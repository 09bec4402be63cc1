# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Filters for the rollback playbooks: a container's environment and the trading mode it means."""
from __future__ import annotations

DOCUMENTATION = r"""
name: container_env
short_description: A container's C(Config.Env) list as a dict, optionally only some keys
version_added: "0.2.0"
description:
  - Splits each C(KEY=value) entry at the first C(=), as Docker does.
options:
  _input:
    description: The C(Config.Env) list from community.docker.docker_container_info.
    type: list
    elements: str
    required: true
  keys:
    description: Keep only these keys.
    type: list
    elements: str
"""

from ansible_collections.quantum.runbooks.plugins.module_utils.dotenv import quote_value
from ansible_collections.quantum.runbooks.plugins.module_utils.trading_mode import trading_mode_of


def container_env(env_list, keys=None):
    pairs = (item.split("=", 1) for item in env_list or [] if "=" in item)
    return {k: v for k, v in pairs if keys is None or k in keys}


def dotenv_quote(value):
    """The value as .env text that docker compose reads back as exactly this string (templated .env)."""
    return quote_value("true" if value is True else "false" if value is False else str(value))


class FilterModule:
    def filters(self):
        return {"container_env": container_env, "trading_mode_of": trading_mode_of, "dotenv_quote": dotenv_quote}
