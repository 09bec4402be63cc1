"""Alertmanager webhook bodies (version 4), as qt-remediate receives them: for the remediation tests
and the lab tests that send an alert by hand."""


def alert(fingerprint="a1b2c3d4e5f60718", status="firing", name="OrderSubmitWithoutResponse", **labels):
    return {"status": status, "labels": {"alertname": name, "severity": "critical", **labels},
            "annotations": {"summary": "orders submitted without a response"},
            "startsAt": "2026-11-28T02:21:33.194Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:19090/graph", "fingerprint": fingerprint}


def payload(*alerts, status=None):
    alerts = list(alerts) or [alert()]
    name = (alerts[0].get("labels") or {}).get("alertname", "")
    return {"receiver": "qt-remediate", "status": status or alerts[0]["status"], "version": "4",
            "truncatedAlerts": 0, "groupKey": "{}:{alertname=\"OrderSubmitWithoutResponse\"}",
            "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name}, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:19093", "alerts": alerts}
