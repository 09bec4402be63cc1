#!/usr/bin/env bash
# Create the project virtualenv with pinned deps.
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "installing pinned requirements (first run: a few minutes)..."
"$VENV/bin/python" -m pip install -q -r requirements-dev.txt
# qt-remediate (remediation/), editable: it runs the playbooks and roles of this checkout.
"$VENV/bin/python" -m pip install -q --no-deps -e .
rm -rf qt_remediate.egg-info  # build by-product in the checkout; the install lives in the venv

# Event-Driven Ansible in its own venv (its pins clash with the main one): rulebooks/, tests/remediation.
if [ ! -x "$VENV/eda/bin/python" ]; then
  "$PYTHON" -m venv "$VENV/eda"
fi
"$VENV/eda/bin/python" -m pip install -q -r requirements-eda.txt

touch "$VENV/.installed"
