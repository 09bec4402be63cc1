# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The reads of runbook checks 1-4 at the same time, in one module run: the checks are independent, so
the diagnosis waits for the slowest probe instead of the sum of all of them (and starts one Python, not
five). Each check's role still interprets its own slice and owns its findings.

Read-only. Every probe keeps its own timeout; a probe that fails or overruns becomes ``{"failed": True,
"msg": ...}`` in its slice (the role records it as a check that could not run), never a failed module.
"""
from __future__ import annotations

import math
import threading
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.quantum.runbooks.plugins.module_utils import binance_connectivity
from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import DockerError, Engine, NotFound
from ansible_collections.quantum.runbooks.plugins.module_utils.log_follow import summarise, summarise_container
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_connect import (
    STREAM_INFO_SPEC,
    read_kill_switch,
    stream_info,
    stream_info_problem,
    url_secrets,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_streams import one_line

DOCKER_SPEC = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    timeout=dict(type="float", default=10.0),
)
# Each slice's options (the module documents the same), validated with their defaults.
SPECS = {
    "executor": dict(
        DOCKER_SPEC,
        container=dict(type="str", required=True),
        log_lines=dict(type="int", default=200),
        redis_container=dict(type="str", default="quantum_redis"),
        kill_switch_key=dict(type="str", default="quantum:control:kill_switch", no_log=False),
        policy_file=dict(type="path"),
    ),
    "binance": dict(
        settings_from_container=dict(type="str"),
        dotenv_path=dict(type="path"),
        futures_url=dict(type="str"),
        futures_testnet_url=dict(type="str"),
        api_key=dict(type="str", no_log=True),
        api_secret=dict(type="str", no_log=True),
        timeout=dict(type="float", default=5.0),
        stuck_after_s=dict(type="int", default=300),
        client_order_prefix=dict(type="str"),
    ),
    "event_bus": STREAM_INFO_SPEC,
    "trace": dict(
        DOCKER_SPEC,
        containers=dict(type="list", elements="str", required=True),
        max_lines=dict(type="int", default=20000),
        since_s=dict(type="int", default=3600),
        correlation_id=dict(type="str", default=""),
        unanswered=dict(type="list", elements="dict", default=[]),
    ),
}
# Slack on top of a probe's own bounds before its slice says it overran (the probes bound themselves).
JOIN_SLACK_S = 5


class SliceError(Exception):
    """A slice's options are unusable (one line)."""


def validate(name, raw, spec=None):
    """(params with defaults, no_log values) for one slice's raw options; SliceError in one line."""
    result = ArgumentSpecValidator(spec or SPECS[name]).validate(dict(raw or {}))
    if result.error_messages:
        raise SliceError("%s: %s" % (name, "; ".join(result.error_messages)))
    return result.validated_parameters, set(result._no_log_values)


def pick_order(correlation_id, unanswered, since_s):
    """(correlation id, auto-selected, seconds to look back): the given id, or the oldest unanswered order.
    An unanswered order found in the recent log is recent: look back just past its age."""
    if correlation_id:
        return correlation_id, False, since_s
    rows = sorted((u for u in unanswered or [] if u.get("correlation_id")),
                  key=lambda u: -(u.get("age_s") or 0))
    if not rows:
        return None, False, since_s
    return rows[0]["correlation_id"], True, int(math.ceil(float(rows[0].get("age_s") or 0))) + 60


# ------------------------------------------------------------------ the probes

def read_executor(p):
    """Check 1's container state and log summary (no environment: it holds secrets)."""
    engine = Engine(p["docker_host"], p["timeout"])
    try:
        attrs = engine.inspect(p["container"])  # one inspect: its state, and the log's TTY flag
    except NotFound:
        return {"exists": False}
    state = attrs.get("State") or {}
    logs = dict(exists=True, **summarise_container(engine, attrs, {
        "tail": p["log_lines"], "since": 0, "since_ts": None, "correlation_id": None, "keep_last": 20}))
    return {"exists": True, "restart_count": attrs.get("RestartCount", 0),
            "state": {"status": state.get("Status"), "running": state.get("Running"),
                      "health": (state.get("Health") or {}).get("Status"), "exit_code": state.get("ExitCode"),
                      "oom_killed": state.get("OOMKilled"), "started_at": state.get("StartedAt")},
            "logs": logs}


def read_switch(p):
    """The kill switch in Redis and in the policy file (read_kill_switch never raises for Redis trouble)."""
    return read_kill_switch({"url": None, "container": p["redis_container"], "port": 6379,
                             "timeout": min(p["timeout"], 3.0), "docker_host": p["docker_host"],
                             "key": p["kill_switch_key"], "policy_file": p["policy_file"]})


def read_trace(p, correlation_id, auto, since_s):
    if not correlation_id:
        return {"correlation_id": None}
    engine = Engine(p["docker_host"], p["timeout"])
    opts = {"tail": p["max_lines"], "since": since_s, "since_ts": None, "correlation_id": correlation_id,
            "keep_last": 0}
    containers = {name: summarise(engine, name, opts) for name in p["containers"]}
    return {"correlation_id": correlation_id, "auto_selected": auto, "since_s": since_s, "containers": containers}


def bound_of(name, p):
    """The longest a slice may take: its own timeouts (Binance: host and container probes run side by side,
    the container's with 5 s more; then up to two signed calls) plus slack."""
    timeout = p.get("timeout") or 0
    return {"binance": 3 * timeout + 6, "event_bus": 2 * timeout}.get(name, 2 * timeout) + JOIN_SLACK_S


def failure(name, p, exc):
    """One line for a probe that raised: what the check's own module said in the same case."""
    if isinstance(exc, DockerError):
        return "cannot reach Docker at %s: %s" % (p.get("docker_host"), one_line(str(exc)))
    if isinstance(exc, binance_connectivity.ParameterError):
        return str(exc)
    return one_line("%s probe failed: %s: %s" % (name, type(exc).__name__, exc))


# ------------------------------------------------------------------ running them side by side

def run_probes(raw, no_log_values):
    """{slice: result} for the slices given in ``raw`` ({name: options or None}). Secrets met on the way (Redis
    URL passwords, Binance keys from options or the container) are added to ``no_log_values``."""
    params, results, threads = {}, {}, {}
    for name, options in raw.items():
        if options is None:
            continue
        try:
            params[name], hidden = validate(name, options)
        except SliceError as err:
            results[name] = {"failed": True, "msg": str(err)}
            continue
        no_log_values.update(hidden)
        if name == "event_bus":
            no_log_values.update(url_secrets(params[name].get("url")))
        why = stream_info_problem(params[name]) if name == "event_bus" else None  # as redis_stream_info checks
        if why:
            results[name] = {"failed": True, "msg": why}
            params.pop(name)

    executor_done = threading.Event()

    def guarded(name, work):
        try:
            results[name] = work()
        except Exception as exc:  # a probe's failure is its slice's data, not the module's
            results[name] = {"failed": True, "msg": failure(name, params[name], exc)}
        finally:
            if name == "executor":
                executor_done.set()

    def executor():
        switch = {}
        side = threading.Thread(target=lambda: switch.update(read_switch(params["executor"])), daemon=True)
        side.start()
        out = read_executor(params["executor"])
        side.join(bound_of("executor", params["executor"]))
        out["kill_switch"] = switch or {"engaged": False, "since": None,
                                        "redis": {"target": None, "error": "the kill switch read did not finish"}}
        return out

    def binance():
        full, hidden = validate("binance", {k: v for k, v in params["binance"].items() if v is not None},
                                spec=binance_connectivity.argument_spec())
        no_log_values.update(hidden)
        return binance_connectivity.connectivity(full, no_log_values)

    def trace():
        p = params["trace"]
        unanswered = p["unanswered"]
        if not p["correlation_id"] and "executor" in params:  # the executor's log read in this run
            executor_done.wait(bound_of("executor", params["executor"]))
            unanswered = ((results.get("executor") or {}).get("logs") or {}).get("unanswered") or []
        return read_trace(p, *pick_order(p["correlation_id"], unanswered, p["since_s"]))

    work = {"executor": executor, "binance": binance, "event_bus": lambda: stream_info(params["event_bus"]),
            "trace": trace}
    started = time.monotonic()
    for name in params:
        threads[name] = threading.Thread(target=guarded, args=(name, work[name]), daemon=True)
        threads[name].start()
    for name, thread in threads.items():
        bound = bound_of(name, params[name])
        if name == "trace" and "executor" in params:  # it may wait for the executor's log first
            bound += bound_of("executor", params["executor"])
        thread.join(max(0.0, started + bound - time.monotonic()))
        if thread.is_alive():  # daemon: it dies with the module
            results[name] = {"failed": True, "msg": "the %s probe did not finish within %g s" % (name, bound)}
    return dict(results)  # a copy: a late probe cannot change what is returned
