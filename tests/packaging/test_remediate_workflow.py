""".github/workflows/remediate.yml: actionlint (with shellcheck on every `run:`), plus the
rules that make it safe to hand to an on-call engineer, which no generic linter knows:
manual only, dry run by default, one run at a time, secrets only into 0600 files, reports
uploaded even on failure, and only commands and playbooks that exist."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "remediate.yml"
BIN = Path(sys.executable).parent
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def load(text):
    doc = yaml.safe_load(text)
    # YAML 1.1: the key `on` is the boolean true.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(doc):
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def problems(text):
    """Our rules; returns what is wrong, empty when all is well."""
    doc, found = load(text), []
    if set(doc["on"]) != {"workflow_dispatch"}:
        found.append(f"triggers {sorted(doc['on'])}: a remediation must only start by hand")
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    dry = inputs.get("dry_run", {})
    if dry.get("type") != "boolean" or dry.get("default") is not True:
        found.append("dry_run must be a boolean input defaulting to true")
    if not inputs.get("host", {}).get("required"):
        found.append("host must be a required input")
    for option in inputs["action"]["options"]:
        if option != "verdict-from-diagnosis" and not (ROOT / "playbooks" / option).is_file():
            found.append(f"action {option}: no such playbook in playbooks/")
    conc = doc.get("concurrency") or {}
    if not conc.get("group") or "${{" in str(conc["group"]) or conc.get("cancel-in-progress") is not False:
        found.append("concurrency: one fixed group, cancel-in-progress false")
    if doc.get("permissions") != {"contents": "read"}:
        found.append(f"permissions {doc.get('permissions')}: contents: read only")
    secret_vars = set()
    for step in steps(doc):
        name = step.get("name", "?")
        if ("uses" in step) == ("run" in step):
            found.append(f"step {name}: needs exactly one of uses/run")
        for expr in EXPR.findall(step.get("run", "")):
            found.append(f"step {name}: expression ${{{{{expr.strip()}}}}} inside run: (pass it through env:)")
        for var, value in (step.get("env") or {}).items():
            if "secrets" in str(value):
                secret_vars.add(var)
    for step in steps(doc):
        for line in step.get("run", "").splitlines():
            for var in secret_vars:
                if re.search(rf"\${{?{var}\b", line) and not re.search(r">\s*\"\$", line) \
                        and not re.match(rf"\s*if \[ -[zn] \"\${var}\" \]", line):
                    found.append(f"step {step.get('name')}: ${var} used other than written to a file: {line.strip()}")
    runs = "\n".join(step.get("run", "") for step in steps(doc))
    if secret_vars and ("umask 077" not in runs or "chmod 0600" not in runs):
        found.append("secret files must be created under umask 077 and chmod 0600")
    if "RUNNER_TEMP" not in runs:
        found.append("secret files belong outside the workspace ($RUNNER_TEMP), never near reports/")
    if "qt-remediate run --verdict-from-diagnosis" not in runs:
        found.append("no `qt-remediate run --verdict-from-diagnosis`")
    if not re.search(r'if \[ "\$QT_DRY_RUN" = true \]; then\s+args\+=\(--check\)', runs):
        found.append("--check is not tied to dry_run")
    uploads = [s for s in steps(doc) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    if not uploads or uploads[0].get("if") != "always()" or uploads[0]["with"]["path"].rstrip("/") != "reports":
        found.append("reports/ must be uploaded with if: always()")
    return found


def test_actionlint_with_shellcheck_passes():
    actionlint, shellcheck = BIN / "actionlint", BIN / "shellcheck"
    if not (actionlint.exists() and shellcheck.exists()):
        pytest.fail("actionlint/shellcheck missing from the venv: make venv (requirements-dev.txt pins them)")
    res = subprocess.run([str(actionlint), f"-shellcheck={shellcheck}", "-no-color", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_catches_a_broken_step(tmp_path):
    """actionlint and shellcheck really run (a clean pass above proves something)."""
    broken = WORKFLOW.read_text().replace('rm -rf "$QT_SECRETS_DIR" "$HOME/.ssh/id_qt"', "rm -rf $QT_SECRETS_DIR")
    (tmp_path / "remediate.yml").write_text(broken)
    res = subprocess.run([str(BIN / "actionlint"), f"-shellcheck={BIN / 'shellcheck'}", "-no-color",
                          str(tmp_path / "remediate.yml")], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1 and "SC2086" in res.stdout


def test_workflow_follows_our_rules():
    assert problems(WORKFLOW.read_text()) == []


@pytest.mark.parametrize("old,new,expected", [
    ("        default: true\n\npermissions", "        default: false\n\npermissions", "dry_run"),
    ("  workflow_dispatch:\n", "  push:\n  workflow_dispatch:\n", "only start by hand"),
    ("cancel-in-progress: false", "cancel-in-progress: true", "concurrency"),
    ('printf \'%s\' "$VAULT_PASSWORD" > "$QT_SECRETS_DIR/vault-pass"',
     'echo "vault password: $VAULT_PASSWORD"', "$VAULT_PASSWORD used other than written to a file"),
    ('qt-remediate run diagnose.yml "${args[@]}"', 'qt-remediate run diagnose.yml --limit "${{ inputs.host }}"',
     "inside run:"),
    ("          - rollback_paper.yml\n", "          - rollback_paper.yml\n          - rollback_moon.yml\n",
     "rollback_moon.yml: no such playbook"),
    ("            args+=(--check)", "            args+=(--diff)", "--check is not tied to dry_run"),
    ("      - name: Upload the reports\n        if: always()\n", "      - name: Upload the reports\n",
     "reports/ must be uploaded"),
])
def test_our_rules_catch_each_mistake(old, new, expected):
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, old
    assert any(expected in p for p in problems(text.replace(old, new, 1)))


def test_the_commands_it_runs_exist():
    """The qt-remediate command lines of the workflow parse with qt-remediate's own parser."""
    cli = pytest.importorskip("remediation.cli")
    parser = cli.build_parser()
    files = ["-i", "inv.yml", "--vault-password-file", "vault-pass", "--limit", "trader-1"]
    for argv in (["run", "diagnose.yml", *files],
                 ["run", "--verdict-from-diagnosis", *files, "--check"],
                 ["run", "emergency_stop.yml", *files, "-e", "confirm=ABORT"],
                 ["status", "--limit", "10"]):
        parser.parse_args(argv)  # exits 2 on an unknown option
