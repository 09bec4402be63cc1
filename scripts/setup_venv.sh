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

touch "$VENV/.installed"
