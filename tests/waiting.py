"""One bounded poll for the tests that wait on something real (a process, a lab, an alert)."""
import time


def wait_for(what, probe, timeout=15, context=lambda: "", every=0.1):
    """Poll `probe` until it returns something truthy; bounded. `context` explains a timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{context()}")
