"""`qt-remediate serve`: the Alertmanager webhook receiver.

A request is checked in this order and refused at the first failure, before anything is decided:
path (404) -> method (405) -> credentials present (401) -> Content-Length (411/400/413) -> body read ->
HMAC if that is the credential (401) -> JSON and Alertmanager v4 schema (400). Only then does the
decision path triage the alerts; runs go to one background worker and the answer is 202 with the
decisions, without waiting for any playbook. GET /healthz (liveness) and GET /metrics (Prometheus, see
metrics.py) need no credentials: they change nothing and say nothing secret.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import metrics
from .alertmanager import MAX_BODY, PayloadError, parse_body

PATH = "/alert"
SIGNATURE_HEADER = "X-Qt-Signature-256"   # "sha256=<hex of HMAC-SHA256(secret, body)>"
DRAIN_LIMIT = 4 * MAX_BODY                 # read (and drop) at most this much of a refused body


class Service:
    """The webhook's state: credentials, the decision engine and the single run queue."""

    def __init__(self, engine, token=None, hmac_secret=None, max_body=MAX_BODY, log=None):
        if not token and not hmac_secret:
            raise ValueError("the webhook needs a token or an HMAC secret")
        self.engine = engine
        self._token = token.encode() if token else None
        self._hmac = hmac_secret.encode() if hmac_secret else None
        self.max_body = max_body
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.jobs = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="qt-remediate-worker", daemon=True)

    # -- credentials (constant-time compares) --------------------------------------------------------
    @property
    def accepts_signatures(self):
        return self._hmac is not None

    def bearer_ok(self, header):
        if not self._token or not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), self._token)

    def signature_ok(self, header, body):
        if not self._hmac or not header:
            return False
        expected = "sha256=" + hmac.new(self._hmac, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header.strip().encode(), expected.encode())

    # -- decisions and the worker --------------------------------------------------------------------
    def accept(self, alerts):
        decisions = self.engine.triage(alerts)
        for d in decisions:
            if d.result == "queued":
                self.jobs.put(d)
        return decisions

    def metrics(self):
        return metrics.render(self.engine, queued=self.jobs.qsize())

    def start(self):
        self._worker.start()

    def stop(self, timeout=None):
        """Finish the run in progress (never kill a playbook half-way), drop nothing silently."""
        self.jobs.put(None)
        self._worker.join(timeout)

    def _work(self):
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                d = self.engine.execute(job)
                self.log(f"{d.result}: {d.host} {d.alert} verdict={d.verdict} playbook={d.playbook} - {d.reason}")
            except Exception as err:  # keep serving; the error is visible and the host is released
                self.log(f"error: run {job.run_id} for {job.host}: {type(err).__name__}: {err}")
            finally:
                self.jobs.task_done()  # jobs.join() waits for the queue to be worked off (tests, bench)


class Handler(BaseHTTPRequestHandler):
    server_version = "qt-remediate"
    sys_version = ""
    timeout = 10            # a client that stalls mid-body is dropped

    @property
    def service(self):
        return self.server.service

    def _reply(self, code, payload, headers=None, content_type="application/json"):
        body = payload.encode() if isinstance(payload, str) else (json.dumps(payload) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _drain(self, length):
        """Read what the client already sent, so it gets our answer instead of a connection reset."""
        remaining = min(max(length, 0), DRAIN_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)

    def _content_length(self):
        raw = self.headers.get("Content-Length")
        if raw is None or self.headers.get("Transfer-Encoding"):
            return None
        try:
            return int(raw)
        except ValueError:
            return -1

    def do_POST(self):  # noqa: N802 (http.server's naming)
        if self.path.split("?", 1)[0] != PATH:
            return self._reply(404, {"error": f"not found; POST Alertmanager payloads to {PATH}"})
        length = self._content_length()
        bearer = self.service.bearer_ok(self.headers.get("Authorization"))
        signature = self.headers.get(SIGNATURE_HEADER)
        if not bearer and not (signature and self.service.accepts_signatures):
            self._drain(length or 0)
            return self._reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        if length is None:
            return self._reply(411, {"error": "Content-Length required"})
        if length < 0:
            return self._reply(400, {"error": "bad Content-Length"})
        if length > self.service.max_body:
            self._drain(length)
            return self._reply(413, {"error": f"body larger than {self.service.max_body} bytes"})
        body = self.rfile.read(length)
        if len(body) != length:
            return self._reply(400, {"error": "body shorter than Content-Length"})
        if not bearer and not self.service.signature_ok(signature, body):
            return self._reply(401, {"error": "unauthorized"})
        try:
            alerts = parse_body(body)
        except PayloadError as err:
            return self._reply(400, {"error": str(err)})
        try:
            decisions = self.service.accept(alerts)
        except Exception as err:  # e.g. a corrupt state file: refuse loudly, Alertmanager retries
            self.service.log(f"error: cannot decide: {type(err).__name__}: {err}")
            return self._reply(503, {"error": "cannot decide now; see the service log"})
        return self._reply(202, {"decisions": [d.as_dict() for d in decisions]})

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            return self._reply(200, {"status": "ok", "queued": self.service.jobs.qsize(),
                                     "busy_hosts": self.service.engine.busy_hosts()})
        if self.path.split("?", 1)[0] == "/metrics":
            try:
                text = self.service.metrics()
            except Exception as err:  # a scrape must never take the service down; a 500 shows as up == 0
                self.service.log(f"error: metrics: {type(err).__name__}: {err}")
                return self._reply(500, {"error": "metrics failed; see the service log"})
            return self._reply(200, text, content_type=metrics.CONTENT_TYPE)
        self._not_allowed()

    def _not_allowed(self):
        if self.path.split("?", 1)[0] == PATH:
            self._drain(self._content_length() or 0)
            return self._reply(405, {"error": "method not allowed"}, {"Allow": "POST"})
        return self._reply(404, {"error": "not found"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def log_message(self, fmt, *args):  # one short line per request; never headers (they hold the token)
        if not getattr(self.server, "quiet", False):
            self.service.log(f"{self.address_string()} {fmt % args}")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128   # listen backlog: a burst of alerts must queue, not get connection resets


def make_server(service, bind="127.0.0.1", port=0, quiet=False):
    httpd = Server((bind, port), Handler)
    httpd.service = service
    httpd.quiet = quiet
    return httpd
