# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The collection's one Docker Engine API client. Standard library only.

Standard library on purpose: the Docker SDK and community.docker's vendored ``_api`` client both need
``requests`` on the target and import in about 0.22 s; ``http.client`` imports in about 0.06 s, and the
target is a bare system Python (the fewer libraries it needs, the better).

Every read of a container in plugins/ goes through ``Engine``:

* ``Engine(base_url, timeout)``: ``unix:///path/to/docker.sock`` or plain ``tcp://host:port`` (no TLS, no
  ssh); any other URL is a ``DockerError`` of kind ``url``. One connection per request, nothing kept open;
* ``version()`` (``GET /version``), ``inspect(name)`` (``GET /containers/{name}/json``: the container's
  attrs, ``NotFound`` on 404);
* ``logs(id, ...)``: ``GET /containers/{id}/logs`` as a stream of large blocks of bytes, the 8-byte frame
  headers of a container without a TTY removed (``demultiplex``), a TTY's log as it comes;
* ``exec(container, argv, timeout)`` -> ``(exit code, stdout, stderr)``: create the exec, start it attached
  (the daemon answers 200 with the raw multiplexed stream and closes the connection at its end), read its
  exit code.

Requests use API version ``API_VERSION`` (1.41, Docker 20.10 and later, the oldest engine the lab and the
production hosts run); ``GET /version`` tells a daemon's ``ApiVersion``. Every failure is a ``DockerError``
with a one-line message and a ``kind`` (``KINDS``).
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import time
from urllib.parse import quote, urlencode, urlsplit

API_VERSION = "1.41"
DEFAULT_HOST = "unix:///var/run/docker.sock"
BLOCK = 1 << 16  # bytes per read of a log read to its end
FRAME = struct.Struct(">BxxxL")  # Docker's multiplexed stream: stream type, 3 zero bytes, payload length
_MAX_ERROR_BODY = 65536

KINDS = {
    "url": "the Docker host URL is not unix:// or tcp://",
    "permission": "this user may not open the Docker socket",
    "absent": "the Docker socket does not exist: the engine is not reachable",
    "refused": "nothing listens at the Docker host: the engine is not reachable",
    "timeout": "the engine did not answer in time",
    "api": "the engine answered with an HTTP error (NotFound for 404)",
    "other": "the connection failed or broke, or the answer was not the Docker API's",
}


class DockerError(Exception):
    """One line saying what failed; ``kind`` is one of ``KINDS``, ``status`` the HTTP status if any."""

    def __init__(self, msg, kind="other", status=None):
        super().__init__(msg)
        self.msg, self.kind, self.status = msg, kind, status


class NotFound(DockerError):
    """404: no such container (or exec)."""


def parse_base_url(base_url):
    """``('unix', path)`` or ``('tcp', host, port)`` for a Docker host URL; DockerError(kind='url') otherwise."""
    url = str(base_url or "")
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "unix" and rest.startswith("/"):
        return "unix", rest
    if sep and scheme in ("tcp", "http") and rest:
        try:
            parts = urlsplit("http://" + rest)
            host, port = parts.hostname, parts.port or 2375
        except ValueError:
            host = port = None
        if host and parts.path in ("", "/"):
            return "tcp", host, port
    raise DockerError("unsupported Docker host %r: use unix:///path/to/docker.sock or tcp://host:port "
                      "(no TLS, no ssh)" % url, kind="url")


class _UnixConnection(http.client.HTTPConnection):
    """HTTP on a unix socket."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _one_line(text):
    return " ".join(str(text).split())


class Engine:
    """A Docker daemon's API. No network call is made before a method is called."""

    def __init__(self, base_url=DEFAULT_HOST, timeout=30.0):
        self.base_url, self.timeout = base_url, float(timeout)
        self.address = parse_base_url(base_url)
        self.where = self.address[1] if self.address[0] == "unix" else "%s:%s" % self.address[1:]

    # ------------------------------------------------------------ the calls

    def version(self):
        """``GET /version`` (unversioned: also an older daemon answers): Version, ApiVersion, ..."""
        return self._json("GET", "/version", versioned=False)

    def inspect(self, name):
        """The container's attrs (``GET /containers/{name}/json``); NotFound when there is none."""
        return self._json("GET", "/containers/%s/json" % quote(str(name), safe=""))

    def logs(self, container_id, since=None, until=None, tail=None, timestamps=True, tty=False, follow=False,
             block=BLOCK):
        """The container's log (stdout and stderr) as blocks of bytes. ``tty``: the container has a TTY (its log
        is not multiplexed; ``Config.Tty`` of ``inspect``). ``tail``: lines from the end (None or < 0: all);
        ``since``/``until``: epoch seconds (fractions allowed). Not followed, each read waits for a full block
        (a million-line log in few reads); followed, a read returns what has arrived, and a log silent for longer
        than the client's timeout ends in a DockerError of kind ``timeout`` (``log_follow.follow`` reopens it from
        its last line).
        """
        query = {"stdout": 1, "stderr": 1, "timestamps": int(bool(timestamps)), "follow": int(bool(follow)),
                 "tail": tail if isinstance(tail, int) and tail >= 0 else "all"}
        for name, value in (("since", since), ("until", until)):
            if value:
                query[name] = value if isinstance(value, int) else "%.9f" % float(value)
        conn, response = self._request("GET", "/containers/%s/logs" % quote(str(container_id), safe=""), query)
        read = response.read1 if follow else response.read
        try:
            reads = iter(lambda: self._read(read, block), b"")
            if tty:
                yield from reads
            else:
                yield from demultiplex(reads)
        finally:
            conn.close()

    def exec(self, container, argv, timeout=None):
        """Run ``argv`` in the running container: ``(exit code, stdout bytes, stderr bytes)``. DockerError of
        kind ``timeout`` when it has not ended within ``timeout`` seconds (default: the client's); the process
        is not killed (as with ``docker exec``, whose client was killed)."""
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        created = self._json("POST", "/containers/%s/exec" % quote(str(container), safe=""),
                             body={"AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": False,
                                   "Cmd": [str(arg) for arg in argv]})
        exec_path = "/exec/%s" % quote(str(created.get("Id", "")), safe="")
        conn, response = self._request("POST", exec_path + "/start", body={"Detach": False, "Tty": False},
                                       timeout=limit)

        overrun = DockerError("%s did not finish within %g s" % (argv[0] if argv else "exec", limit), kind="timeout")

        def bounded_read():  # the socket's timeout bounds one read; the deadline the whole run
            left = deadline - time.monotonic()
            if left <= 0:
                raise overrun
            conn.raw_sock.settimeout(left)
            return self._read(response.read1, BLOCK)

        try:
            out = split_streams(iter(bounded_read, b""))
        except DockerError as err:
            raise overrun if err.kind == "timeout" else err from None
        finally:
            conn.close()
        # The stream ends when the process has; the exit code may be recorded a moment later.
        while True:
            state = self._json("GET", exec_path + "/json")
            if not state.get("Running") or time.monotonic() >= deadline:
                return state.get("ExitCode"), out[1], out[2]
            time.sleep(0.02)

    # ------------------------------------------------------------ HTTP

    def _connection(self, timeout):
        timeout = self.timeout if timeout is None else timeout
        if self.address[0] == "unix":
            return _UnixConnection(self.address[1], timeout)
        return http.client.HTTPConnection(self.address[1], self.address[2], timeout=timeout)

    def _request(self, method, path, query=None, body=None, timeout=None, versioned=True):
        """(connection, response) of a 2xx answer, its body unread; DockerError otherwise."""
        url = ("/v%s%s" % (API_VERSION, path) if versioned else path) + ("?" + urlencode(query) if query else "")
        conn = self._connection(timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise self._connect_error(exc) from None
        conn.raw_sock = conn.sock  # http.client drops conn.sock once a response reads to the connection's end
        headers = {"Host": "docker", "User-Agent": "qt-runbooks-docker/1"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, url, body=data, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._broken(exc) from None
        if response.status >= 300:
            try:
                text = response.read(_MAX_ERROR_BODY).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            finally:
                conn.close()
            raise api_error(response.status, response.reason, text)
        return conn, response

    def _json(self, method, path, body=None, versioned=True):
        conn, response = self._request(method, path, body=body, versioned=versioned)
        try:
            text = self._read(response.read)
        finally:
            conn.close()
        if not text and method == "POST":
            return {}
        try:
            return json.loads(text.decode("utf-8"))
        except ValueError:
            raise DockerError("%s %s: the answer is not JSON: %s" % (method, path, _one_line(text[:200])),
                              kind="other") from None

    def _read(self, read, *size):
        try:
            return read(*size)
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(exc) from None

    def _connect_error(self, exc):
        where = self.where
        if isinstance(exc, PermissionError):
            return DockerError("permission denied on %s" % where, kind="permission")
        if isinstance(exc, FileNotFoundError):
            return DockerError("%s does not exist (is the Docker engine running?)" % where, kind="absent")
        if isinstance(exc, ConnectionRefusedError):
            return DockerError("connection refused by %s (is the Docker engine running?)" % where, kind="refused")
        return self._broken(exc)

    def _broken(self, exc):
        if isinstance(exc, socket.timeout):
            return DockerError("no answer from %s within %g s" % (self.where, self.timeout), kind="timeout")
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return DockerError("%s: %s" % (self.where, _one_line(detail)), kind="other")


def engine_from_env(timeout=30.0):
    """An Engine for DOCKER_HOST, or the default socket: where the docker CLI would go (without its contexts)."""
    return Engine(os.environ.get("DOCKER_HOST") or DEFAULT_HOST, timeout)


def api_error(status, reason, text):
    """The DockerError (NotFound for 404) of an HTTP error answer; the daemon's JSON ``message`` when it sent one."""
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    message = _one_line(message or text or reason or "")
    cls = NotFound if status == 404 else DockerError
    return cls("Docker API answered HTTP %s: %s" % (status, message[:500]), kind="api", status=status)


# ---------------------------------------------------------------- the multiplexed stream

def demultiplex(reads):
    """Docker's multiplexed stream (8-byte header, payload; stdout and stderr alike) from arbitrary reads ->
    one bytes object per read with the payloads of the frames it completed. Only the unfinished last frame
    is carried over, so memory stays at about one read whatever the stream's size; an incomplete frame at
    the end is dropped."""
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


def split_streams(reads):
    """A whole multiplexed stream -> {0: stdin, 1: stdout, 2: stderr} as bytes."""
    out, buf = {0: bytearray(), 1: bytearray(), 2: bytearray()}, bytearray()
    for data in reads:
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= FRAME.size:
            kind, size = FRAME.unpack_from(buf, pos)
            stop = pos + FRAME.size + size
            if stop > end:
                break
            out.setdefault(kind, bytearray()).extend(buf[pos + FRAME.size:stop])
            pos = stop
        del buf[:pos]
    return {kind: bytes(data) for kind, data in out.items()}
