"""`serve` on loopback with a fake runner: auth, limits, schema, fuzzing, concurrency. A bad request never runs."""
import hashlib
import hmac
import http.client
import json
import random
import shutil
import socket
import subprocess
import threading
import time

import pytest
from alert_payload import alert, payload
from kit import FakeRunner

from remediation.alertmanager import MAX_BODY
from remediation.engine import Engine
from remediation.server import SIGNATURE_HEADER, Service, make_server

TOKEN = "t-" + "x" * 30
SECRET = "hmac-secret-0123456789"


@pytest.fixture
def webhook(kit):
    runner = FakeRunner("EXECUTOR_HUNG")
    logs = []
    service = Service(Engine(kit.policy(), kit.reports, runner=runner, trigger="webhook"), token=TOKEN,
                      hmac_secret=SECRET, log=logs.append)
    httpd = make_server(service, "127.0.0.1", 0, quiet=True)
    service.start()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook = Hook(httpd.server_address[1], service, runner, logs)
    yield hook
    httpd.shutdown()
    httpd.server_close()
    service.stop(timeout=10)
    assert not any(line.startswith("error") for line in logs), logs


class Hook:
    def __init__(self, port, service, runner, logs):
        self.port, self.service, self.runner, self.logs = port, service, runner, logs

    def request(self, body=b"", method="POST", path="/alert", token=TOKEN, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=hdrs)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, (json.loads(data) if data else None)

    def post(self, doc, **kwargs):
        return self.request(json.dumps(doc).encode(), **kwargs)

    def settle(self):
        self.service.jobs.join()


def test_good_token_is_accepted_with_the_decisions_and_runs_in_the_background(webhook, kit):
    status, body = webhook.post(payload(alert("0a01"), alert("0a02", status="resolved")))
    assert status == 202
    assert [(d["result"], d["reason"].split(":")[0]) for d in body["decisions"]] == [
        ("queued", "queued"), ("skipped", "resolved")]
    assert body["decisions"][0]["run_id"]
    webhook.settle()
    assert [c["ident"] for c in webhook.runner.calls] == ["diagnose", "mitigate"]
    assert [(r["result"], r["who"]) for r in kit.decisions()] == [("skipped", "qt-remediate/webhook"),
                                                                  ("ran", "qt-remediate/webhook")]


@pytest.mark.parametrize("token, headers", [
    (None, {}), ("wrong-token-" + "y" * 20, {}), (TOKEN[:-1], {}), (TOKEN + "z", {}),
    (None, {"Authorization": f"Basic {TOKEN}"}), (None, {"Authorization": TOKEN}),
    (None, {SIGNATURE_HEADER: "sha256=" + "0" * 64}),
], ids=["none", "wrong", "truncated", "extended", "basic-scheme", "no-scheme", "bad-signature"])
def test_missing_or_bad_credentials_get_401_and_never_run(webhook, kit, token, headers):
    status, body = webhook.post(payload(), token=token, headers=headers)
    assert status == 401 and body == {"error": "unauthorized"}
    webhook.settle()
    assert webhook.runner.calls == [] and kit.decisions() == []


def test_hmac_signature_is_an_alternative_to_the_token(webhook):
    body = json.dumps(payload(alert("0b01"))).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert webhook.request(body, token=None, headers={SIGNATURE_HEADER: good})[0] == 202
    tampered = body.replace(b"0b01", b"0b02")
    assert webhook.request(tampered, token=None, headers={SIGNATURE_HEADER: good})[0] == 401
    webhook.settle()
    assert len([c for c in webhook.runner.calls if c["ident"] == "diagnose"]) == 1


@pytest.mark.parametrize("body, field", [
    (b"{not json", "body: not JSON"),
    (b"\xff\xfe\x00garbage", "body: not JSON"),
    (b"[1, 2]", "body: must be a JSON object"),
    (b"[" * 100000, "body: not JSON"),                                     # deep nesting: no RecursionError crash
    (json.dumps({**payload(), "version": "3"}).encode(), "version: must be \"4\""),
    (json.dumps({**payload(), "alerts": []}).encode(), "alerts: must be a non-empty list"),
    (json.dumps(payload({**alert(), "fingerprint": None})).encode(), "alerts[0].fingerprint"),
    (json.dumps(payload({**alert(), "fingerprint": "../../etc"})).encode(), "alerts[0].fingerprint"),
    (json.dumps(payload({**alert(), "labels": {"severity": "critical"}})).encode(), "alerts[0].labels.alertname"),
    (json.dumps(payload({**alert(), "labels": {"alertname": "X", "n": 1}})).encode(), "alerts[0].labels.n"),
    (json.dumps(payload({**alert(), "status": "pending"}, status="firing")).encode(), "alerts[0].status"),
])
def test_malformed_or_schema_invalid_bodies_get_400_naming_the_problem(webhook, kit, body, field):
    status, answer = webhook.request(body)
    assert status == 400 and answer["error"].startswith(field)
    webhook.settle()
    assert webhook.runner.calls == [] and kit.decisions() == []


def test_a_body_over_the_limit_gets_413_without_being_parsed(webhook, kit):
    doc = payload(alert("0c01"))
    doc["padding"] = "x" * MAX_BODY
    status, answer = webhook.post(doc)
    assert status == 413 and "larger than" in answer["error"]
    webhook.settle()
    assert webhook.runner.calls == [] and kit.decisions() == []


@pytest.mark.parametrize("method, path, code", [
    ("GET", "/alert", 405), ("PUT", "/alert", 405), ("DELETE", "/alert", 405),
    ("POST", "/", 404), ("POST", "/alerts", 404), ("GET", "/etc/passwd", 404),
])
def test_wrong_method_or_path(webhook, method, path, code):
    assert webhook.request(json.dumps(payload()).encode(), method=method, path=path)[0] == code
    webhook.settle()
    assert webhook.runner.calls == []


def test_healthz(webhook):
    assert webhook.request(method="GET", path="/healthz", token=None) == (
        200, {"status": "ok", "queued": 0, "busy_hosts": []})


def raw(port, data, read=True):
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s.recv(200).split(b"\r\n", 1)[0] if read else b""


def test_chunked_truncated_and_lying_bodies(webhook):
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    assert raw(webhook.port, b"POST /alert HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") == b"HTTP/1.0 411 Length Required"
    assert raw(webhook.port, b"POST /alert HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Content-Length: 100\r\n\r\n{\"a\":") == b"HTTP/1.0 400 Bad Request"
    assert raw(webhook.port, b"POST /alert HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Content-Length: -5\r\n\r\n") == b"HTTP/1.0 400 Bad Request"
    raw(webhook.port, b"\x00\x01garbage\r\n\r\n")
    assert webhook.request(method="GET", path="/healthz", token=None)[0] == 200   # still serving
    assert webhook.runner.calls == []


def fuzz_bodies(rng, n):
    """Random bytes, random JSON, and valid payloads with one field broken or replaced (seeded)."""
    junk = [None, True, 0, -1, 1e308, "", "4", "firing", [], {}, [[]], {"a": {}}, "x" * 300, "\u0000\ud7ff"]
    for i in range(n):
        kind = i % 3
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _dummy in range(rng.randint(0, 300)))
        elif kind == 1:
            yield json.dumps(rng.choice(junk + [{"version": "4", "status": "firing", "alerts": rng.choice(junk)}]))\
                .encode()
        else:
            doc = payload(alert(f"{i:04x}"))
            target = doc if rng.random() < 0.5 else doc["alerts"][0]
            key = rng.choice(sorted(target))
            target[key] = rng.choice(junk)
            yield json.dumps(doc).encode()


def test_1000_fuzzed_bodies_never_crash_and_never_run_without_auth(webhook, kit):
    rng = random.Random(20261128)
    bodies = list(fuzz_bodies(rng, 1000))
    seen = {}
    for i, body in enumerate(bodies[:500]):        # first half: no or wrong credentials
        status, _dummy = webhook.request(body, token=None if i % 2 else "nope-" + "z" * 20)
        seen[status] = seen.get(status, 0) + 1
    webhook.settle()
    assert seen == {401: 500} and webhook.runner.calls == [] and kit.decisions() == []

    queued = 0
    for body in bodies[500:]:                       # second half: authorised
        status, answer = webhook.request(body)
        seen[status] = seen.get(status, 0) + 1
        assert status in (202, 400, 413), (status, body[:80])
        if status == 202:
            queued += sum(d["result"] == "queued" for d in answer["decisions"])
    webhook.settle()
    assert seen[400] > 300 and seen.get(202, 0) > 0      # the fuzzer reaches both sides
    assert len([c for c in webhook.runner.calls if c["ident"] == "diagnose"]) == queued
    assert webhook.request(method="GET", path="/healthz", token=None)[0] == 200


def test_100_identical_alerts_at_once_start_exactly_one_run(webhook, kit):
    body = json.dumps(payload(alert("0d01"))).encode()
    results = []
    lock = threading.Lock()

    def send():
        status, answer = webhook.request(body)
        with lock:
            results.append((status, answer["decisions"][0]["result"], answer["decisions"][0]["reason"].split(":")[0]))

    threads = [threading.Thread(target=send) for _dummy in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    webhook.settle()
    assert len(results) == 100 and all(r[0] == 202 for r in results)
    assert sorted(r[1] for r in results).count("queued") == 1
    assert sum(r[2] == "duplicate" for r in results) == 99
    assert len([c for c in webhook.runner.calls if c["ident"] == "diagnose"]) == 1


# --- GET /metrics ------------------------------------------------------------------------------------


def scrape(webhook):
    conn = http.client.HTTPConnection("127.0.0.1", webhook.port, timeout=10)
    conn.request("GET", "/metrics")               # no credentials: nothing secret, nothing changed
    res = conn.getresponse()
    text = res.read().decode()
    conn.close()
    assert res.status == 200 and res.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return text, samples


def test_metrics_show_decisions_runs_the_last_run_and_the_breaker(webhook, kit):
    _dummy, before = scrape(webhook)
    assert before["qt_remediate_breaker_open"] == 0 and before['qt_remediate_decisions_total{result="ran"}'] == 0
    assert before["qt_remediate_last_run_timestamp_seconds"] == 0 and before["qt_remediate_state_readable"] == 1
    webhook.post(payload(alert("0f01"), alert("0f02", status="resolved")))
    webhook.settle()
    text, after = scrape(webhook)
    assert after['qt_remediate_decisions_total{result="ran"}'] == 1
    assert after['qt_remediate_decisions_total{result="skipped"}'] == 1
    assert after['qt_remediate_runs_total{step="diagnose",status="successful"}'] == 1
    assert after['qt_remediate_runs_total{step="mitigate",status="successful"}'] == 1
    assert after['qt_remediate_recent_mitigations{host="lab"}'] == 1
    assert abs(after["qt_remediate_last_run_timestamp_seconds"] - time.time()) < 60
    assert after["qt_remediate_breaker_open"] == 0 and after["qt_remediate_inflight_alerts"] == 0

    with webhook.service.engine.store.transaction() as st:   # as _count_mitigation leaves it
        st["breaker"] = {"open": True, "opened_at": "2026-12-03T10:00:00Z", "opened_ts": 1_796_292_000.0,
                         "why": "test", "run_id": "r1", "host": "lab"}
    _dummy, opened = scrape(webhook)
    assert opened["qt_remediate_breaker_open"] == 1
    assert opened["qt_remediate_breaker_opened_timestamp_seconds"] == 1_796_292_000.0
    promtool = shutil.which("promtool")
    if promtool:  # the exposition format, as Prometheus' own linter reads it
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30,
                              check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_metrics_say_when_the_state_cannot_be_read(webhook, kit):
    (kit.reports / "remediation").mkdir(parents=True, exist_ok=True)
    (kit.reports / "remediation" / "state.json").write_text("{torn")
    _dummy, samples = scrape(webhook)
    assert samples["qt_remediate_state_readable"] == 0
