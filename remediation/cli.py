"""qt-remediate: alert- and CI-triggered remediation for the "Execution Stuck" runbook.

Alertmanager (serve, or the EDA rulebook through alert) and CI (run) share one decision path:
diagnose.yml, then at most the one mitigation the policy allows, under a per-host lock, with dedupe
and a circuit breaker. Playbooks run through ansible-runner; every decision is appended to the
audit log (reports/audit.jsonl). Manual: docs/remediation.md.

Exit codes: 0 done (ran, or skipped or refused for a stated reason), 1 a playbook run failed, 2 bad
input (one line on stderr; nothing run or recorded), 3 the circuit breaker is open (page a human,
then `qt-remediate breaker reset`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path

from . import audit, paths, status
from .alertmanager import MAX_BODY, PayloadError, parse_body
from .engine import Engine, ReportError, read_report, redacted_url
from .policy import HOST_NAME, HUMAN_ONLY, OVERRIDE_VAR, PolicyError, extravar_problem, load
from .state import StateError, StateStore

EXIT_FAILED, EXIT_USAGE, EXIT_BREAKER = 1, 2, 3
TOKEN_ENV, HMAC_ENV = "QT_REMEDIATE_TOKEN", "QT_REMEDIATE_HMAC_SECRET"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser():
    common = Parser(add_help=False)
    common.add_argument("--policy", type=Path, help="policy YAML (default: $QT_REMEDIATE_POLICY, else "
                        "config/remediation_policy.yml if present, else remediation/policy.example.yml)")
    common.add_argument("--reports-dir", type=Path, help="audit.jsonl, remediation/state.json and "
                        "remediation/runs/ live here (default: $QT_REPORTS_DIR, else <repo>/reports)")
    runs = Parser(add_help=False)
    runs.add_argument("-i", "--inventory", type=Path, help="inventory (default: the policy's)")
    runs.add_argument("--check", action="store_true", help="dry run: every playbook in check mode")
    runs.add_argument("--vault-password-file", type=Path,
                      help="passed to ansible-playbook as a path (the password itself never is)")
    runs.add_argument("--json", action="store_true", help="print the decisions as JSON")

    top = Parser(prog="qt-remediate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common, runs], help="run a playbook, or the mitigation for a diagnosis",
                       description="CI entry point. Either the policy decides from a diagnosis report "
                       "(--verdict-from-diagnosis), or PLAYBOOK (a file in playbooks/) runs as asked; both "
                       "under the per-host lock, audited. Emergency stop and rollbacks run only this way, "
                       "with their confirm variable (-e confirm=ABORT ...).")
    p.add_argument("playbook", nargs="?", help="playbook name, e.g. mitigate_restart_executor.yml")
    p.add_argument("--verdict-from-diagnosis", action="store_true",
                   help="read the verdict from the diagnosis report and let the policy pick the mitigation")
    p.add_argument("--report", type=Path, help="diagnosis report (default reports/<host>/diagnosis-latest.json)")
    p.add_argument("--limit", metavar="HOST", help="inventory host (default: the policy's default_host)")
    p.add_argument("-e", "--extra-var", action="append", default=[], metavar="KEY=VALUE",
                   help="extra variable for PLAYBOOK (no secrets: runner stores them in plain text)")
    p.add_argument("--override-emergency-stop", action="store_true",
                   help="PLAYBOOK only: run it although an emergency stop is in force (passes "
                   f"{OVERRIDE_VAR}=true; the audit records the override and your user name). Never automatic: "
                   "serve, alert, replay and EDA have no such option")

    p = sub.add_parser("serve", parents=[common], help="HTTP endpoint for Alertmanager webhooks",
                       description=f"POST Alertmanager (version 4) payloads to /alert with 'Authorization: "
                       f"Bearer <token>' (token from --token-file, mode 0600, or ${TOKEN_ENV}) or an "
                       f"X-Qt-Signature-256: sha256=<hex HMAC of the body> header (secret from "
                       f"--hmac-secret-file or ${HMAC_ENV}). Answers 202 with the decisions; runs happen "
                       "one at a time in the background. GET /healthz for liveness, GET /metrics for "
                       "Prometheus (no credentials: counts and states, no secrets).")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9095, help="port (default 9095; 0 = any free port)")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token (must be mode 0600)")
    p.add_argument("--hmac-secret-file", type=Path, help="file holding the HMAC secret (must be mode 0600)")
    p.add_argument("--check", action="store_true", help="dry run: every playbook in check mode")
    p.add_argument("--quiet", action="store_true", help="do not log each request")

    p = sub.add_parser("alert", parents=[common, runs], help="decide and act on one Alertmanager payload",
                       description="The same decision path as serve, for one payload, synchronously "
                       "(used by the EDA rulebook: qt-remediate alert --payload - < payload.json).")
    p.add_argument("--payload", required=True, help="payload file, or - for stdin")
    p.add_argument("--trigger", default="alert", type=_trigger,
                   help="who handed the alert over, for the audit log (default alert; the rulebook says eda)")

    p = sub.add_parser("replay", parents=[common, runs], help="replay a stored payload in check mode",
                       description="Feed a stored Alertmanager payload through the whole decision path with "
                       "every playbook in check mode, against a throwaway copy of the state: lock, dedupe "
                       "and breaker state are not changed. Audit lines are marked replay and check_mode.")
    p.add_argument("payload", help="the stored payload (JSON file)")

    p = sub.add_parser("status", parents=[common], help="recent runs and decisions, breaker, running hosts")
    p.add_argument("--limit", type=int, default=20, help="how many decisions (default 20)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")

    p = sub.add_parser("breaker", parents=[common], help="show or reset the circuit breaker")
    p.add_argument("action", choices=["status", "reset"])

    p = sub.add_parser("policy", parents=[common], help="validate the policy file and print it resolved")
    p.add_argument("action", choices=["check"])
    return top


# -- helpers -------------------------------------------------------------------------------------------
def _trigger(value):
    if not re.match(r"^[a-z0-9_-]{1,20}$", value):
        raise argparse.ArgumentTypeError("lower-case letters, digits, - and _ only")
    return value


def _policy(args, need_inventory=True):
    path = args.policy or paths.default_policy_file()
    policy = load(path)
    if not need_inventory:
        return policy
    if getattr(args, "inventory", None):
        policy = dataclasses.replace(policy, inventory=args.inventory.resolve())
    if getattr(args, "vault_password_file", None):
        policy = dataclasses.replace(policy, vault_password_file=args.vault_password_file.resolve())
    if not policy.inventory.is_file():
        raise UsageError(f"inventory {policy.inventory} does not exist")
    if policy.vault_password_file and not policy.vault_password_file.is_file():
        raise UsageError(f"vault password file {policy.vault_password_file} does not exist")
    return policy


def _engine(args, trigger, **kwargs):
    reports = paths.reports_dir(args.reports_dir)
    return Engine(_policy(args), reports, trigger=trigger, check=getattr(args, "check", False), **kwargs)


def _finish(engine):
    """One-shot commands: a breaker notification started in the background may finish first."""
    engine.wait_notifications(engine.policy.notify_timeout_s + 1)


def _read_payload(source):
    if source == "-":
        body = sys.stdin.buffer.read(MAX_BODY + 1)
    else:
        try:
            with open(source, "rb") as handle:
                body = handle.read(MAX_BODY + 1)
        except OSError as err:
            raise UsageError(f"cannot read the payload {source}: {err.strerror}") from None
    return parse_body(body)


def read_secret(file, env_name, what):
    """A secret from a 0600 file or the environment; the variable is removed so no child inherits it."""
    from_env = os.environ.pop(env_name, None)
    if file:
        try:
            mode = file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UsageError(f"{file} is readable by group or others: chmod 600 {file}")
            value = file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise UsageError(f"cannot read the {what} file {file}: {err.strerror}") from None
    else:
        value = (from_env or "").strip()
    if value and len(value) < 16:
        raise UsageError(f"the {what} is too short (16 characters at least)")
    return value or None


def _print(decisions, as_json):
    if as_json:
        print(json.dumps([d.as_dict() for d in decisions], indent=1))
        return
    for d in decisions:
        what = d.alert or d.playbook or "-"
        line = f"{d.result:<12} {d.host or '-'} {what}"
        if d.verdict:
            line += f" verdict={d.verdict}"
        if d.playbook and d.alert:
            line += f" playbook={d.playbook}"
        line += f" - {d.reason}"
        if d.run_id:
            line += f" (run {d.run_id}{', rc ' + str(d.rc) if d.rc is not None else ''})"
        print(line)
        if d.evidence:
            print(f"{'':<12} evidence: {d.evidence}")
        if d.artifacts:
            print(f"{'':<12} artifacts: {d.artifacts}")


def _exit_code(decisions):
    results = {d.result for d in decisions}
    if "breaker_open" in results:
        return EXIT_BREAKER
    return EXIT_FAILED if "failed" in results else 0


def _host(name, policy):
    host = name or policy.default_host
    if not HOST_NAME.match(host):
        raise UsageError(f"--limit must name one inventory host, got {host!r}")
    return host


# -- commands ------------------------------------------------------------------------------------------
def cmd_run(args):
    if bool(args.playbook) == bool(args.verdict_from_diagnosis):
        raise UsageError("give either PLAYBOOK or --verdict-from-diagnosis")
    if args.verdict_from_diagnosis:
        if args.extra_var:
            raise UsageError("-e is for PLAYBOOK; with --verdict-from-diagnosis the policy sets the variables")
        if args.override_emergency_stop:
            raise UsageError("--override-emergency-stop is for PLAYBOOK only: the policy never overrides a stop")
        engine = _engine(args, "ci")
        host = _host(args.limit, engine.policy)
        path = args.report or engine.reports / host / "diagnosis-latest.json"
        report = read_report(path)
        if args.limit and report.get("host") not in (None, host):
            raise UsageError(f"the report is for host {report.get('host')!r}, not {host!r}")
        decisions = [engine.from_report(report, host, source=f"report {path}")]
    else:
        engine = _engine(args, "manual")
        playbook = _resolve_playbook(args.playbook, engine.policy)
        screen = engine.screen(fresh=True)
        extravars = {}
        for item in args.extra_var:
            key, sep, value = item.partition("=")
            problem = "expected KEY=VALUE" if not sep else extravar_problem(key, value)
            if not problem and key == OVERRIDE_VAR:
                problem = "use --override-emergency-stop (it is audited with your name)"
            if not problem and screen.hit(value):  # never echo the value
                problem = ("the value is a known secret (runner stores extravars in plain text); "
                           "credentials travel only by vault")
            if problem:
                raise UsageError(f"-e {key if sep else screen.text(item)}: {problem}")
            extravars[key] = value
        decisions = [engine.run_explicit(playbook, _host(args.limit, engine.policy), extravars,
                                         override=args.override_emergency_stop)]
    _print(decisions, args.json)
    _finish(engine)
    return _exit_code(decisions)


def _resolve_playbook(name, policy):
    base = Path(name).name
    candidates = [policy.playbook_dir / base]
    if base == policy.diagnose_playbook.name:
        candidates.insert(0, policy.diagnose_playbook)
    for path in candidates:
        if path.is_file():
            return path
    known = sorted(p.name for p in policy.playbook_dir.glob("*.yml"))
    raise UsageError(f"unknown playbook {name!r} (in {policy.playbook_dir}: {', '.join(known)})")


def cmd_alert(args):
    alerts = _read_payload(args.payload)
    engine = _engine(args, args.trigger)
    decisions = engine.handle(alerts)
    _print(decisions, args.json)
    _finish(engine)
    return _exit_code(decisions)


def cmd_replay(args):
    if not args.check:
        raise UsageError("replay runs only in check mode: add --check")
    alerts = _read_payload(args.payload)
    reports = paths.reports_dir(args.reports_dir)
    with tempfile.TemporaryDirectory(prefix="qt-replay-") as scratch:
        store = StateStore(reports / "remediation").throwaway_copy(scratch)
        engine = Engine(_policy(args), reports, store=store, replay=True, trigger="replay")
        decisions = engine.handle(alerts)
    _print(decisions, args.json)
    return EXIT_FAILED if any(d.result == "failed" for d in decisions) else 0


def cmd_serve(args):
    from .server import Service, make_server

    token = read_secret(args.token_file, TOKEN_ENV, "token")
    secret = read_secret(args.hmac_secret_file, HMAC_ENV, "HMAC secret")
    if not token and not secret:
        raise UsageError(f"serve needs a token (--token-file or ${TOKEN_ENV}) or an HMAC secret")
    engine = _engine(args, "webhook", secret_values=(token, secret))
    for d in engine.recover():  # runs a killed predecessor left in flight: audited, the next copy is acted on
        print(f"qt-remediate: {d.reason} ({d.alert} on {d.host}); audited", file=sys.stderr, flush=True)
    service = Service(engine, token=token, hmac_secret=secret)
    try:
        httpd = make_server(service, args.bind, args.port, quiet=args.quiet)
    except OSError as err:
        raise UsageError(f"cannot listen on {args.bind}:{args.port}: {err.strerror}") from None
    service.start()
    # shutdown() waits for serve_forever, so it must be called from another thread than this one
    stop = lambda *_: threading.Thread(target=httpd.shutdown, daemon=True).start()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = httpd.server_address[:2]
    mode = " (dry run: check mode)" if engine.check else ""
    print(f"qt-remediate: listening on http://{host}:{port}/alert{mode} (metrics: /metrics); "
          f"policy {engine.policy.source}", file=sys.stderr, flush=True)
    httpd.serve_forever()
    httpd.server_close()
    print("qt-remediate: stopping; finishing the run in progress", file=sys.stderr, flush=True)
    service.stop(timeout=engine.policy.run_timeout_s + 30)
    return 0


def cmd_status(args):
    reports = paths.reports_dir(args.reports_dir)
    state = StateStore(reports / "remediation").peek()
    records = audit.read_decisions(reports / "audit.jsonl", args.limit)
    if args.json:
        print(json.dumps({"breaker": state["breaker"], "mitigations": state["mitigations"],
                          "running": state["running"], "inflight": state["inflight"],
                          "last_run": state["last_run"], "decisions": records}, indent=1))
    else:
        print("\n".join(status.render(state, records, reports / "audit.jsonl")))
    return 0


def cmd_breaker(args):
    reports = paths.reports_dir(args.reports_dir)
    if args.action == "status":
        print(status.breaker_line(StateStore(reports / "remediation").peek()))
        return 0
    engine = Engine(_policy(args, need_inventory=False), reports, trigger="manual")
    was = engine.reset_breaker()
    print(f"breaker reset (was {'open' if was.get('open') else 'closed'}); audited in {engine.audit_log}")
    return 0


def cmd_policy(args):
    policy = load(args.policy or paths.default_policy_file())
    print(f"{policy.source}: valid")
    print(f"  dry_run={policy.dry_run} inventory={policy.inventory} alerts={', '.join(policy.alerts)}")
    print(f"  dedupe {policy.dedupe_window_s / 60:g} min; breaker {policy.breaker_max} mitigations in "
          f"{policy.breaker_window_s / 60:g} min; notify "
          f"{redacted_url(policy.notify_url) if policy.notify_url else 'nobody (breaker.notify_url not set)'}")
    per_alert = "".join(f", {a} {s / 60:g} min" for a, s in policy.max_report_age_by_alert.items())
    print(f"  diagnoses older than {policy.max_report_age_s / 60:g} min{per_alert} are not acted on")
    print(f"  never automatic: {', '.join(sorted(HUMAN_ONLY))} (refused; a human decides)")
    for verdict, m in policy.mitigations.items():
        flag = "" if m.enabled else " (disabled)"
        extra = " ".join(f"-e {k}={v}" for k, v in m.extravars.items())
        print(f"  {verdict} -> {m.playbook} {extra}{flag}".rstrip())
    return 0


COMMANDS = {"run": cmd_run, "alert": cmd_alert, "replay": cmd_replay, "serve": cmd_serve, "status": cmd_status,
            "breaker": cmd_breaker, "policy": cmd_policy}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, PolicyError, PayloadError, ReportError, StateError) as err:
        print(f"qt-remediate {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # e.g. the audit log or reports dir is not writable
        print(f"qt-remediate {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
