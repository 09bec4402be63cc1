# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read a container's log through the Docker API: to its end in large blocks, or following it until awaited
events appear."""
from __future__ import annotations

import queue
import threading
import time

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_engine import NotFound
from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary, iter_lines, split_line


def log_blocks(engine, attrs, timestamps=True, tail="all", since=None):
    """A container's whole log so far (stdout and stderr, not followed) as blocks of bytes, read 64 KiB at a time
    (``Engine.logs``). ``attrs``: the container's inspect data (its id, and whether it has a TTY).

    Reading each frame (one per log line) with two small reads, as the Docker SDK's ``container.logs`` did,
    took longer on a million-line log than the daemon took to send it: the frames are cut out of large reads,
    only the unfinished last frame is carried over, so memory stays at one block whatever the log's size.
    Not for following a log: a read waits for a full block (``follow`` reads what has arrived).
    """
    return engine.logs(attrs["Id"], timestamps=timestamps, tail=tail, since=since, tty=container_tty(attrs))


def container_tty(attrs):
    """Whether the container has a TTY (its log is then not multiplexed)."""
    return bool((attrs.get("Config") or {}).get("Tty"))


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


def follow(engine, attrs, kwargs, summary, wait_for_all, wait_for_any, timeout):
    """Feed new log lines of the container (``attrs``: its inspect data) to `summary` until the awaited events
    are in or the timeout passes.

    A reader thread follows the log (a blocking stream) and hands lines over a queue, so the wait
    ends at the deadline even when the container writes nothing. A stream that ends (the process
    exited or restarted) is opened again from its last line.
    """
    started = time.monotonic()
    deadline = started + timeout
    lines = queue.Queue()

    def reader():
        opts, last = dict(kwargs, follow=True, tty=container_tty(attrs)), [None]

        def put(line):
            epoch = split_line(line)[0]
            last[0] = epoch if epoch is not None else last[0]
            lines.put(line)

        while time.monotonic() < deadline:
            try:
                read_all(engine.logs(attrs["Id"], **opts), put)
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


def summarise(engine, name, p):
    """Stream one container's log lines through a LogSummary; {'exists': False} when it is missing.
    ``p``: tail (-1 = all), since (seconds back, 0 = no limit), since_ts (epoch, wins), correlation_id, keep_last.
    Other Docker errors (DockerError) propagate."""
    try:
        attrs = engine.inspect(name)
    except NotFound:
        return {"exists": False}
    return dict(exists=True, **summarise_container(engine, attrs, p))


def summarise_container(engine, attrs, p):
    """summarise() for a container already looked up (``attrs``: its inspect data)."""
    kwargs = {"timestamps": True}
    if p["tail"] >= 0:
        kwargs["tail"] = p["tail"]
    if p["since_ts"]:
        kwargs["since"] = float(p["since_ts"])
    elif p["since"] > 0:
        kwargs["since"] = int(time.time()) - p["since"]
    summary = LogSummary(keep_last=p["keep_last"], correlation_id=p["correlation_id"])
    read_all(log_blocks(engine, attrs, **kwargs), summary.add)
    return summary.result(time.time())
