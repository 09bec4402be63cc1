# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Read a container's log through the Docker API: to its end in large blocks, or following it until awaited
events appear."""
from __future__ import annotations

import queue
import struct
import threading
import time

from ansible_collections.quantum.runbooks.plugins.module_utils.log_events import LogSummary, iter_lines, split_line

BLOCK = 1 << 16  # bytes per read of a log read to its end
FRAME = struct.Struct(">BxxxL")  # Docker's multiplexed stream: stream type, 3 zero bytes, payload length


def log_blocks(container, timestamps=True, tail="all", since=None):
    """A container's whole log so far (stdout and stderr, not followed) as blocks of bytes, read 64 KiB at a time.

    Asks the same endpoint as ``container.logs(stream=True, follow=False, ...)`` (same arguments), which reads
    each frame (one per log line) with two small reads: on a million-line log that took longer than the daemon
    took to send it. Here the frames are cut out of large reads; only the unfinished last frame is carried over,
    so memory stays at one block whatever the log's size. Not for following a log: a read waits for a full block.
    """
    api = container.client.api
    params = {"stdout": 1, "stderr": 1, "timestamps": 1 if timestamps else 0, "follow": 0,
              "tail": tail if isinstance(tail, int) and tail >= 0 else "all"}
    if since:
        params["since"] = since
    url = "%s/v%s/containers/%s/logs" % (api.base_url, api.api_version, container.id)
    response = api.get(url, params=params, stream=True, timeout=api.timeout)
    try:
        _raise_for_status(response)
        reads = iter(lambda: response.raw.read(BLOCK), b"")
        if container.attrs.get("Config", {}).get("Tty"):  # a TTY's log is not multiplexed
            yield from reads
            return
        yield from demultiplex(reads)
    finally:
        response.close()


def demultiplex(reads):
    """Docker's multiplexed stream (8-byte header, payload; stdout and stderr alike) from arbitrary reads ->
    one bytes object per read with the payloads of the frames it completed."""
    buf = bytearray()
    for data in reads:
        buf += data
        payloads, pos, end = [], 0, len(buf)
        while end - pos >= FRAME.size:
            stop = pos + FRAME.size + FRAME.unpack_from(buf, pos)[1]
            if stop > end:
                break
            payloads.append(buf[pos + FRAME.size:stop])
            pos = stop
        del buf[:pos]
        if payloads:
            yield b"".join(payloads)


def _raise_for_status(response):
    """A 4xx/5xx as the Docker SDK reports it (docker.errors.APIError, NotFound: both DockerException)."""
    if response.status_code < 400:
        return
    from docker.errors import create_api_error_from_http_exception  # only reached with the SDK installed
    from requests.exceptions import HTTPError

    try:
        response.raise_for_status()
    except HTTPError as err:
        raise create_api_error_from_http_exception(err) from None


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
    return dict(exists=True, **summarise_container(container, p))


def summarise_container(container, p):
    """summarise() for a container already looked up (its inspect data is in ``container.attrs``)."""
    kwargs = {"timestamps": True}
    if p["tail"] >= 0:
        kwargs["tail"] = p["tail"]
    if p["since_ts"]:
        kwargs["since"] = float(p["since_ts"])
    elif p["since"] > 0:
        kwargs["since"] = int(time.time()) - p["since"]
    summary = LogSummary(keep_last=p["keep_last"], correlation_id=p["correlation_id"])
    read_all(log_blocks(container, **kwargs), summary.add)
    return summary.result(time.time())
