"""The breaker tells a human: a JSON POST to the policy's breaker.notify_url, in the background, bounded by
notify_timeout_s, audited; a notification endpoint that hangs never holds up a decision."""
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from alert_payload import alert, payload
from kit import FakeRunner
from waiting import wait_for

from remediation.alertmanager import parse
from remediation.engine import Engine


class Receiver:
    """A local HTTP server that records POSTs; with `hold` set, it answers only when the test says so."""

    def __init__(self, hold=False):
        self.posts, self.release = [], threading.Event()
        if not hold:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                receiver.release.wait(30)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def breaker_lines(kit):
    lines = [json.loads(x) for x in kit.audit_log.read_text().splitlines()] if kit.audit_log.exists() else []
    return [x for x in lines if x["action"] == "remediation_breaker"]


@pytest.fixture
def receiver():
    made = []
    yield lambda **kw: made.append(Receiver(**kw)) or made[-1]
    for r in made:
        r.close()


def trip(kit, url, timeout_s=5):
    policy = kit.policy(breaker={"max_mitigations": 1, "window_minutes": 30, "notify_url": url,
                                 "notify_timeout_s": timeout_s})
    eng = Engine(policy, kit.reports, runner=FakeRunner("EXECUTOR_DOWN"))
    assert eng.handle(parse(payload(alert("ab01"))))[0].result == "ran"
    started = time.monotonic()
    [d] = eng.handle(parse(payload(alert("ab02"))))
    return eng, d, time.monotonic() - started


def test_an_opening_breaker_posts_to_the_notify_url_and_audits_it(kit, receiver):
    hook = receiver()
    secret = "hook-token-" + "5" * 24
    url = f"http://ops:{secret}@127.0.0.1:{hook.port}/hooks/{secret}?x=1"
    eng, d, _dummy = trip(kit, url)
    assert d.result == "breaker_open"
    wait_for("the notification", lambda: hook.posts)
    [post] = hook.posts
    assert post["path"] == f"/hooks/{secret}?x=1"
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(f"ops:{secret}".encode()).decode()
    body = post["body"]
    assert body["event"] == "breaker_open" and body["host"] == "lab" and body["run_id"] == d.run_id
    assert "qt-remediate breaker reset" in body["text"] and "circuit breaker OPEN" in body["text"]
    [line] = wait_for("the audit line", lambda: breaker_lines(kit))
    assert line["result"] == "notified" and line["details"]["status"] == 204
    assert line["details"]["url"] == f"http://127.0.0.1:{hook.port}/…"
    assert secret not in kit.audit_log.read_text()                  # the URL is a credential: never logged
    eng.wait_notifications(1)


def test_a_hanging_notify_endpoint_never_blocks_the_decision(kit, receiver):
    hook = receiver(hold=True)
    eng, d, took = trip(kit, f"http://127.0.0.1:{hook.port}/hook", timeout_s=3)
    assert d.result == "breaker_open" and took < 2.0, f"the decision waited {took:.1f}s for the notification"
    wait_for("the POST to arrive", lambda: hook.posts)
    [line] = wait_for("the timeout to be audited", lambda: breaker_lines(kit), timeout=20)
    assert line["result"] == "notify_failed" and "timed out" in line["details"]["error"].lower()


def test_an_unreachable_notify_endpoint_is_audited(kit, receiver):
    hook = receiver()
    port = hook.port
    hook.close()                                          # nothing listens there any more
    eng, d, _dummy = trip(kit, f"http://127.0.0.1:{port}/hook", timeout_s=2)
    assert d.result == "breaker_open"
    eng.wait_notifications(5)
    [line] = breaker_lines(kit)
    assert line["result"] == "notify_failed" and "refused" in line["details"]["error"].lower()
