# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The collection's one Redis client: RESP2 over a socket. Standard library only.

It replaces redis-py on the target (about 110 ms and redis.asyncio, jwt and cryptography per module run)
with the few commands the modules send, and answers them in the shapes redis-py gave them with
``decode_responses=True``, so the callers' results stay the same:

* ``parse_url(url)``: ``redis://[user:password@]host:port/db`` (``?password=``, ``?db=``, ``?username=``
  too) and ``unix:///path``, read as redis-py 5 reads them, with its ValueError messages; ``rediss://``
  (TLS) raises ``TLS_UNSUPPORTED``;
* ``Reader``: the RESP2 parser, fed bytes as they come (a reply split over reads, nested arrays, nulls);
  an error reply becomes the exception redis-py raised for it (``error_from_reply``);
* ``Redis``: one connection, made on the first command (AUTH and SELECT when the URL says so), every
  connect and read bounded by ``timeout``, no retries; closed on a network error, reopened by the next
  command. Its commands are the collection's: ``ping get set delete type time info xrange xinfo_stream
  xinfo_groups xinfo_consumers``, plus ``execute_command`` (the raw decoded reply).

The exceptions have redis-py's names and hierarchy (``ConnectionError``, ``TimeoutError``,
``AuthenticationError``, ``ResponseError``, ...) and its messages (``Error 111 connecting to h:6379.
Connection refused.``, ``Timeout reading from socket``): the modules show ``type(err).__name__`` and the
message, and those lines stay what they were.
"""
from __future__ import annotations

import socket
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_PORT = 6379
TLS_UNSUPPORTED = "rediss:// (TLS) is not supported by the collection's Redis client: use redis:// or unix://"
SERVER_CLOSED = "Connection closed by server."
_READ_SIZE = 65536


# ---------------------------------------------------------------- exceptions (redis.exceptions' names)

class RedisError(Exception):
    pass


class ConnectionError(RedisError):  # noqa: A001 - redis-py's name, shown in the modules' messages
    pass


class TimeoutError(RedisError):  # noqa: A001 - redis-py's name, shown in the modules' messages
    pass


class AuthenticationError(ConnectionError):
    pass


class BusyLoadingError(ConnectionError):
    pass


class InvalidResponse(RedisError):
    pass


class ResponseError(RedisError):
    pass


class OutOfMemoryError(ResponseError):
    pass


class ReadOnlyError(ResponseError):
    pass


class NoPermissionError(ResponseError):
    pass


class ExecAbortError(ResponseError):
    pass


class NoScriptError(ResponseError):
    pass


class AuthenticationWrongNumberOfArgsError(ResponseError):
    """AUTH with a user name to a Redis < 6: sent again with the password only."""


# redis-py 5's BaseParser.EXCEPTION_CLASSES: an error reply's first word picks the class and is cut off the
# message ("WRONGPASS invalid ..." -> AuthenticationError("invalid ...")); for ERR, the rest of the message
# picks it. Any other reply ("WRONGTYPE Operation ...") is a ResponseError with the whole text.
_NO_PASSWORD_SET = ("AUTH <password> called without any password configured for the default user. "
                    "Are you sure your configuration is correct?")
ERROR_CLASSES = {
    "ERR": {
        "max number of clients reached": ConnectionError,
        "invalid password": AuthenticationError,
        "wrong number of arguments for 'auth' command": AuthenticationWrongNumberOfArgsError,
        "wrong number of arguments for 'AUTH' command": AuthenticationWrongNumberOfArgsError,
        _NO_PASSWORD_SET: AuthenticationError,
        "Client sent AUTH, but no password is set": AuthenticationError,
    },
    "OOM": OutOfMemoryError,
    "WRONGPASS": AuthenticationError,
    "EXECABORT": ExecAbortError,
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "NOAUTH": AuthenticationError,
    "NOPERM": NoPermissionError,
}


def error_from_reply(text):
    """The exception for an error reply's text (without the leading ``-``), as redis-py makes it."""
    code = text.split(" ")[0]
    if code not in ERROR_CLASSES:
        return ResponseError(text)
    rest = text[len(code) + 1:]
    cls = ERROR_CLASSES[code]
    if isinstance(cls, dict):
        cls = cls.get(rest, ResponseError)
    return cls(rest)


# ---------------------------------------------------------------- URLs

# redis-py 5.3's URL_QUERY_ARGUMENT_PARSERS (a bad value fails the URL) and the other options it passes on.
def _to_bool(value):
    return None if value == "" else value.upper() not in ("0", "F", "FALSE", "N", "NO")


_QUERY_PARSERS = {"db": int, "socket_timeout": float, "socket_connect_timeout": float, "socket_keepalive": _to_bool,
                  "retry_on_timeout": _to_bool, "retry_on_error": list, "max_connections": int,
                  "health_check_interval": int, "ssl_check_hostname": _to_bool, "timeout": float}
# Options that change nothing for one connection without retries: accepted and left aside.
_IGNORED = {"socket_keepalive", "retry_on_timeout", "retry_on_error", "max_connections", "health_check_interval",
            "ssl_check_hostname", "timeout", "client_name", "encoding", "encoding_errors", "decode_responses"}
_USED = {"db", "username", "password", "socket_timeout", "socket_connect_timeout"}


def parse_url(url):
    """{scheme, host, port, path, db, username, password[, socket_timeout, socket_connect_timeout]} of a Redis
    URL, read as redis-py 5's ``parse_url`` reads it; ValueError with its message (one line) otherwise."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("Redis URL must specify one of the following schemes (redis://, rediss://, unix://)")
    if url.startswith("rediss://"):
        raise ValueError(TLS_UNSUPPORTED)
    parts = urlparse(url)
    out = {"scheme": parts.scheme, "host": "localhost", "port": DEFAULT_PORT, "path": None, "db": 0,
           "username": None, "password": None}
    for name, values in parse_qs(parts.query).items():
        value = unquote(values[0])
        if name in _QUERY_PARSERS:
            try:
                parsed = _QUERY_PARSERS[name](value)
            except (TypeError, ValueError):
                raise ValueError(f"Invalid value for '{name}' in connection URL.") from None
        elif name not in _USED | _IGNORED:
            raise ValueError(f"the option '{name}' is not supported by the collection's Redis client")
        else:
            parsed = value
        if name in _USED:
            out[name] = parsed
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        out["path"] = unquote(parts.path) if parts.path else ""
        return out
    if parts.hostname:
        out["host"] = unquote(parts.hostname)
    if parts.port:  # raises ValueError for a port out of range or not a number
        out["port"] = int(parts.port)
    if parts.path and "db" not in parse_qs(parts.query):
        try:
            out["db"] = int(unquote(parts.path).replace("/", ""))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------- RESP2

class _Incomplete(Exception):
    """Not a whole reply yet."""


NOT_READY = object()


class Reader:
    """RESP2 replies from bytes fed in any pieces: ``feed(data)``, then ``gets()`` until it returns NOT_READY.

    Simple strings and bulk strings come back as bytes, integers as int, nulls (``$-1``, ``*-1``) as None,
    arrays as lists (nested). An error reply at the top raises its exception (``error_from_reply``); inside
    an array it is the exception object, as redis-py returns it. Anything else raises InvalidResponse.
    """

    def __init__(self):
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data):
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def gets(self):
        try:
            reply, pos = self._parse(self._pos)
        except _Incomplete:
            return NOT_READY
        self._pos = pos
        if pos > _READ_SIZE and pos * 2 > len(self._buf):  # drop what was read, now and then
            del self._buf[:pos]
            self._pos = 0
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def _line(self, pos):
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos):
        raw, pos = self._line(pos)
        kind, rest = raw[:1], raw[1:]
        if kind == b"+":
            return rest, pos
        if kind == b"-":
            return error_from_reply(rest.decode("utf-8", errors="replace")), pos
        try:
            if kind == b":":
                return int(rest), pos
            if kind == b"$":
                size = int(rest)
                if size < 0:
                    return None, pos
                if len(self._buf) < pos + size + 2:
                    raise _Incomplete
                return bytes(self._buf[pos:pos + size]), pos + size + 2
            if kind == b"*":
                count = int(rest)
                if count < 0:
                    return None, pos
                items = []
                for _dummy in range(count):
                    item, pos = self._parse(pos)
                    items.append(item)
                return items, pos
        except ValueError:
            pass
        raise InvalidResponse(f"Protocol Error: {raw!r}")


def pack(*args):
    """One command as a RESP array of bulk strings (str as UTF-8, int and float as their text)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            arg = repr(arg).encode()
        elif not isinstance(arg, (bytes, bytearray)):
            raise TypeError(f"cannot send a {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def decode(reply):
    """bytes -> str (UTF-8; an invalid byte becomes U+FFFD), in lists too: redis-py's decode_responses."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8", errors="replace")
    if isinstance(reply, list):
        return [decode(item) for item in reply]
    return reply


# ---------------------------------------------------------------- replies in redis-py's shapes

def pairs(flat):
    """[k1, v1, k2, v2, ...] -> {k1: v1, ...} (None -> {})."""
    if flat is None:
        return {}
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def entry(raw):
    """A stream entry [id, [field, value, ...]] -> (id, {field: value}); (None, None) for a null entry."""
    return (None, None) if raw is None else (raw[0], pairs(raw[1]))


def xinfo_stream_reply(flat):
    """XINFO STREAM's key/value array as redis-py's dict: first-entry / last-entry as (id, {field: value})."""
    info = pairs(flat)
    for key in ("first-entry", "last-entry"):
        value = info.get(key)
        if value is not None and value[0] is not None:
            info[key] = entry(value)
    return info


def info_reply(text):
    """INFO's text as {field: value}: every value the text after the first ':' (a str, as the callers read
    ``redis_version``); section headers and blank lines skipped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            out[key] = value
    return out


# ---------------------------------------------------------------- the client

def _error_message(where, err):
    """redis-py's format_error_message for a failed connect."""
    if not err.args:
        return f"Error connecting to {where}."
    if len(err.args) == 1:
        return f"Error {err.args[0]} connecting to {where}."
    return f"Error {err.args[0]} connecting to {where}. {err.args[1]}."


class Redis:
    """One connection to one Redis, opened by the first command; no retries, no pool."""

    def __init__(self, host="localhost", port=DEFAULT_PORT, db=0, username=None, password=None, path=None,
                 socket_timeout=None, socket_connect_timeout=None):
        self.host, self.port, self.path, self.db = host, int(port), path, db
        self.username, self.password = username, password
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self._sock = None
        self._reader = None

    @classmethod
    def from_url(cls, url, timeout=None):
        """A client for a Redis URL with every connect and read bounded by ``timeout`` (the URL's
        socket_timeout / socket_connect_timeout win, as in redis-py). ValueError for a URL it cannot use."""
        opts = parse_url(url)
        return cls(host=opts["host"], port=opts["port"], db=opts["db"], username=opts["username"],
                   password=opts["password"], path=opts["path"],
                   socket_timeout=opts.get("socket_timeout", timeout),
                   socket_connect_timeout=opts.get("socket_connect_timeout", timeout))

    @property
    def where(self):
        return self.path if self.path is not None else f"{self.host}:{self.port}"

    # ------------------------------------------------------------ the connection

    def _open_socket(self):
        if self.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.socket_connect_timeout)
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            sock.settimeout(self.socket_timeout)
            return sock
        err = None
        for family, socktype, proto, _dummy, address in socket.getaddrinfo(self.host, self.port, 0,
                                                                           socket.SOCK_STREAM):
            sock = None
            try:
                sock = socket.socket(family, socktype, proto)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.socket_connect_timeout)
                sock.connect(address)
                sock.settimeout(self.socket_timeout)
                return sock
            except OSError as exc:
                err = exc
                if sock is not None:
                    sock.close()
        raise err if err is not None else OSError("socket.getaddrinfo returned an empty list")

    def connect(self):
        """Open the socket, then AUTH and SELECT as the URL says (redis-py's on_connect, RESP2)."""
        if self._sock is not None:
            return
        try:
            self._sock = self._open_socket()
        except socket.timeout:
            raise TimeoutError("Timeout connecting to server") from None
        except OSError as err:
            raise ConnectionError(_error_message(self.where, err)) from None
        self._reader = Reader()
        try:
            if self.username or self.password:
                auth = (self.username, self.password or "") if self.username else (self.password,)
                try:
                    reply = self._call(*(("AUTH",) + auth))
                except AuthenticationWrongNumberOfArgsError:  # Redis < 6: no user names
                    reply = self._call("AUTH", auth[-1])
                if decode(reply) != "OK":
                    raise AuthenticationError("Invalid Username or Password")
            if self.db:
                if decode(self._call("SELECT", self.db)) != "OK":
                    raise ConnectionError("Invalid Database")
        except RedisError:
            self.close()
            raise

    def close(self):
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _send(self, data):
        try:
            self._sock.sendall(data)
        except socket.timeout:
            self.close()
            raise TimeoutError("Timeout writing to socket") from None
        except OSError as err:
            self.close()
            errno, text = ("UNKNOWN", err.args[0]) if len(err.args) == 1 else err.args[:2]
            raise ConnectionError(f"Error {errno} while writing to socket. {text}.") from None

    def _read(self):
        try:
            while True:
                reply = self._reader.gets()
                if reply is not NOT_READY:
                    return reply
                data = self._sock.recv(_READ_SIZE)
                if not data:
                    raise ConnectionError(SERVER_CLOSED)
                self._reader.feed(data)
        except ResponseError:
            raise  # the whole reply was read: the connection stays usable
        except socket.timeout:
            self.close()
            raise TimeoutError("Timeout reading from socket") from None
        except OSError as err:
            where = self.where
            self.close()
            raise ConnectionError(f"Error while reading from {where} : {err.args}") from None
        except BaseException:
            self.close()
            raise

    def _call(self, *args):
        self._send(pack(*args))
        return self._read()

    def execute_command(self, *args):
        """Send one command, return its reply decoded (bytes -> str); an error reply raises."""
        self.connect()
        return decode(self._call(*args))

    # ------------------------------------------------------------ the collection's commands

    def ping(self):
        return self.execute_command("PING") == "PONG"

    def get(self, key):
        return self.execute_command("GET", key)

    def set(self, key, value):
        return self.execute_command("SET", key, value) == "OK"

    def delete(self, *keys):
        return self.execute_command("DEL", *keys)

    def type(self, key):
        return self.execute_command("TYPE", key)

    def time(self):
        """(seconds, microseconds) of the server's clock."""
        sec, usec = self.execute_command("TIME")
        return int(sec), int(usec)

    def info(self, section=None):
        return info_reply(self.execute_command(*(("INFO", section) if section else ("INFO",))))

    def xrange(self, name, min="-", max="+", count=None):  # noqa: A002 - redis-py's argument names
        args = ("XRANGE", name, min, max) + (("COUNT", count) if count is not None else ())
        return [entry(raw) for raw in self.execute_command(*args)]

    def xinfo_stream(self, name):
        return xinfo_stream_reply(self.execute_command("XINFO", "STREAM", name))

    def xinfo_groups(self, name):
        return [pairs(group) for group in self.execute_command("XINFO", "GROUPS", name)]

    def xinfo_consumers(self, name, groupname):
        return [pairs(consumer) for consumer in self.execute_command("XINFO", "CONSUMERS", name, groupname)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
