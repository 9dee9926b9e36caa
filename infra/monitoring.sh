#!/usr/bin/env bash
# Runs Prometheus for the local stack (`./oms up --monitoring`), as a plain background process:
#
#   infra/monitoring.sh start|stop|status
#
# Started and stopped like the apps (start_process in infra/lib.sh): pid file in $OMS_STATE_DIR/run,
# log in $OMS_STATE_DIR/logs, data in $OMS_STATE_DIR/prometheus. start is idempotent; stop leaves
# nothing running. Install Prometheus first with infra/install.sh prometheus.
# UI: http://127.0.0.1:$OMS_PROMETHEUS_PORT (Graph, Alerts, Status > Targets).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMETHEUS_DIR="$OMS_STATE_DIR/prometheus"
PROMETHEUS_CONFIG="$PROMETHEUS_DIR/prometheus.yml"
# Told from a stranger by its configuration path, which is unique to this clone's state dir.
SIGNATURE="--config.file=$PROMETHEUS_CONFIG"

ready() { curl -fsS "http://127.0.0.1:$OMS_PROMETHEUS_PORT/-/ready" >/dev/null; }

# infra/monitoring/prometheus.yml with this stack's ports (it is written for the defaults) and
# the rule file by absolute path. Regenerated on every start, so port changes apply.
write_config() {
  mkdir -p "$PROMETHEUS_DIR/data"
  sed -e "s|127.0.0.1:8083|127.0.0.1:${PRODUCT_SERVICE_PORT:-8083}|" \
    -e "s|127.0.0.1:8084|127.0.0.1:${ORDER_SERVICE_PORT:-8084}|" \
    -e "s|127.0.0.1:8085|127.0.0.1:${PAYMENT_SERVICE_PORT:-8085}|" \
    -e "s|127.0.0.1:9464|127.0.0.1:${WORKER_METRICS_PORT:-9464}|" \
    -e "s|127.0.0.1:9465|127.0.0.1:${WORKER_APP_METRICS_PORT:-9465}|" \
    -e "s|127.0.0.1:7244|127.0.0.1:$OMS_TEMPORAL_METRICS_PORT|" \
    -e "s|^  - alerts.yml$|  - $REPO/infra/monitoring/alerts.yml|" \
    "$REPO/infra/monitoring/prometheus.yml" >"$PROMETHEUS_CONFIG"
  if command -v promtool >/dev/null; then
    promtool check config "$PROMETHEUS_CONFIG" >/dev/null || die "prometheus: $PROMETHEUS_CONFIG is not valid (promtool check config)"
  fi
}

start() {
  command -v prometheus >/dev/null || die "prometheus: not installed; run infra/install.sh prometheus (or ./oms up --monitoring)"
  BEFORE_SPAWN=write_config start_process prometheus "$SIGNATURE" "$OMS_PROMETHEUS_PORT" 60 ready prometheus \
    "$SIGNATURE" \
    "--storage.tsdb.path=$PROMETHEUS_DIR/data" \
    --storage.tsdb.retention.time=7d \
    "--web.listen-address=127.0.0.1:$OMS_PROMETHEUS_PORT"
}

# Exit 0 when it runs and answers, 1 otherwise (./oms status and ./oms verify ask this).
status() {
  local pid state=down rc=1
  pid="$(process_pid prometheus "$SIGNATURE")"
  if [[ -n $pid ]] && ready; then
    state=up
    rc=0
  fi
  printf '%-10s %-8s %-6s %s\n' prometheus "${pid:--}" "$OMS_PROMETHEUS_PORT" "$state"
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop_process prometheus "$SIGNATURE" ;;
  status) status ;;
  *) die "usage: infra/monitoring.sh start|stop|status" ;;
esac
