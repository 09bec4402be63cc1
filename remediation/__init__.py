"""qt-remediate: alert- and CI-triggered remediation for the "Execution Stuck" runbook.

One decision path (engine.py) for the webhook (server.py), the EDA rulebook, `alert`, `replay` and
`run --verdict-from-diagnosis`; playbooks run through ansible-runner (runner.py); policy in policy.py;
lock, dedupe and breaker state in state.py; every decision goes to the audit log.
"""

from . import paths  # noqa: F401,E402  (first: puts the collection's module_utils on sys.path)
