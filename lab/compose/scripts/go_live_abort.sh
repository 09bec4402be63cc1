#!/usr/bin/env bash
# Emergency stop for quantum_trader (lab copy of the production script).
# Sets the executor's kill switch in Redis: every new intent is then blocked
# (GATE_BLOCKED reason=KILL_SWITCH). `--release` lifts it again.
#   bash scripts/go_live_abort.sh            # asks you to type ABORT
#   bash scripts/go_live_abort.sh --yes      # no prompt (automation)
#   bash scripts/go_live_abort.sh --release  # resume trading
set -euo pipefail
cd "$(dirname "$0")/.."
KEY=quantum:control:kill_switch

case "${1:-}" in
  --release)
    docker compose exec -T redis redis-cli DEL "$KEY" >/dev/null
    echo "kill switch released: trading may resume"
    exit 0 ;;
  --yes) ;;
  "")
    read -r -p "This stops ALL trading. Type 'ABORT' to continue: " answer
    if [ "$answer" != "ABORT" ]; then
      echo "not confirmed: nothing changed" >&2
      exit 1
    fi ;;
  *) echo "usage: $0 [--yes|--release]" >&2; exit 2 ;;
esac

reason=$(printf '{"by":"%s","at":"%s","close_positions":%s}' \
  "${SUDO_USER:-${USER:-unknown}}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${CLOSE_POSITIONS:-false}")
docker compose exec -T redis redis-cli SET "$KEY" "$reason" >/dev/null
echo "ABORTED: kill switch set ($reason)"
