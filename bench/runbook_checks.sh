#!/usr/bin/env bash
# The runbook's own CHECKS section as a script: the baseline diagnose.yml is compared with.
# (Endpoints are the lab's: the simulator instead of fapi.binance.com.)
CORR_ID=${1:-none}
docker ps | grep quantum_auto_executor
docker logs quantum_auto_executor --tail 100 2>&1 | grep ORDER_
docker logs quantum_auto_executor --tail 200 2>&1 | grep GATE_BLOCKED
docker exec quantum_auto_executor curl -s "http://binance-sim:8081/fapi/v1/time"
docker exec quantum_auto_executor env | grep BINANCE_USE_TESTNET
docker exec quantum_redis redis-cli PING
docker exec quantum_redis redis-cli XLEN quantum:stream:intent
docker exec quantum_redis redis-cli XLEN quantum:stream:execution
docker logs quantum_auto_executor 2>&1 | grep "$CORR_ID"
docker logs quantum_ai_engine 2>&1 | grep "$CORR_ID"
exit 0
