# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read a container's log through the Docker API: all at once, or following it until awaited events appear."""
from __future__ import annotations

import queue
import threading
import time

from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary, iter_lines, split_line


def read_all(stream, consume):
    try:
        for line in iter_lines(stream):
            consume(line)
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()


def awaited(counts, wait_for_all, wait_for_any):
    return all(counts.get(e) for e in wait_for_all) and (not wait_for_any or any(counts.get(e) for e in wait_for_any))


def follow(container, kwargs, summary, wait_for_all, wait_for_any, timeout):
    """Feed new log lines to `summary` until the awaited events are in or the timeout passes.

    A reader thread follows the log (a blocking stream) and hands lines over a queue, so the wait
    ends at the deadline even when the container writes nothing. A stream that ends (the process
    exited or restarted) is opened again from its last line.
    """
    started = time.monotonic()
    deadline = started + timeout
    lines = queue.Queue()

    def reader():
        opts, last = dict(kwargs, follow=True), [None]

        def put(line):
            epoch = split_line(line)[0]
            last[0] = epoch if epoch is not None else last[0]
            lines.put(line)

        while time.monotonic() < deadline:
            try:
                read_all(container.logs(**opts), put)
            except Exception:  # a broken stream is retried; the caller reports the timeout
                pass
            if last[0] is not None:
                opts = dict(opts, since=last[0] + 1e-6, tail="all")
            time.sleep(0.25)

    threading.Thread(target=reader, daemon=True).start()  # daemon: dies with the module
    while not awaited(summary.counts, wait_for_all, wait_for_any):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            summary.add(lines.get(timeout=remaining))
        except queue.Empty:
            break
    met = awaited(summary.counts, wait_for_all, wait_for_any)
    return {"met": met, "waited_s": round(time.monotonic() - started, 3)}


def summarise(client, name, p, not_found=LookupError):
    """Stream one container's log lines through a LogSummary; {'exists': False} when it is missing.
    ``p``: tail (-1 = all), since (seconds back, 0 = no limit), since_ts (epoch, wins), correlation_id, keep_last.
    NotFound is the Docker SDK's, passed in so this file needs no Docker import."""
    try:
        container = client.containers.get(name)
    except not_found:
        return {"exists": False}
    kwargs = {"stream": True, "follow": False, "timestamps": True}
    if p["tail"] >= 0:
        kwargs["tail"] = p["tail"]
    if p["since_ts"]:
        kwargs["since"] = float(p["since_ts"])
    elif p["since"] > 0:
        kwargs["since"] = int(time.time()) - p["since"]
    summary = LogSummary(keep_last=p["keep_last"], correlation_id=p["correlation_id"])
    read_all(container.logs(**kwargs), summary.add)
    return dict(exists=True, **summary.result(time.time()))
