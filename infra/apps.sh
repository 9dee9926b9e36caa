#!/usr/bin/env bash
# Runs the OMS processes themselves (the three services and the worker) in the background:
#
#   infra/apps.sh start|stop|restart|status [order-service|product-service|payment-service|worker...]
#
# The same pid/log conventions as infra/stack.sh. start is idempotent: a running, answering
# process is left alone. Services migrate their own database before they open their port.
# Unless AUTH_JWKS_URL or AUTH_JWT_PUBLIC_KEY_FILE names a real identity provider's keys, the
# services trust the development key pair in $OMS_STATE_DIR/auth/ (made here once; `./oms token`
# signs with it).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_APPS=(product-service payment-service order-service worker)

# On the local stack every caller of the services is this machine: the order service's price
# lookups, ./oms bench, the demo scripts. The per-address rate limit leaves loopback alone here;
# a deployment lists its own services' addresses instead (docs/security-abuse.md).
export RATE_LIMIT_EXEMPT_ADDRESSES="${RATE_LIMIT_EXEMPT_ADDRESSES-127.0.0.1,::1}"

entry_point() {
  case "$1" in
    order-service) echo services/order/main.ts ;;
    product-service) echo services/product/main.ts ;;
    payment-service) echo services/payment/main.ts ;;
    worker) echo workers/main.ts ;;
    *) die "unknown app '$1' (expected: ${ALL_APPS[*]})" ;;
  esac
}

app_port() {
  case "$1" in
    order-service) echo "${ORDER_SERVICE_PORT:-8084}" ;;
    product-service) echo "${PRODUCT_SERVICE_PORT:-8083}" ;;
    payment-service) echo "${PAYMENT_SERVICE_PORT:-8085}" ;;
    worker) echo "${WORKER_METRICS_PORT:-9464}" ;;
  esac
}

# A service is ready when it answers its liveness route; the worker when its metrics endpoint
# (opened by the Temporal runtime) answers and it has logged that it polls its task queue.
app_ready() {
  local app="$1" port
  port="$(app_port "$app")"
  if [[ $app == worker ]]; then
    port_open "$port" && grep -q 'worker started' "$(logfile worker)"
  else
    curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null
  fi
}

# How an app is run; infra/production-apps.sh gives each instance its own ports.
app_command() { echo "node --import tsx $(entry_point "$1")"; }
# The apps a name stands for: itself here; in the production topology "worker" means both workers.
expand_apps() { if (($#)); then printf '%s\n' "$@"; fi; }

# Points the services at the development public key, creating the key pair the first time.
use_dev_auth_keys() {
  [[ -n ${AUTH_JWKS_URL:-} || -n ${AUTH_JWT_PUBLIC_KEY_FILE:-} ]] && return 0
  AUTH_JWT_PUBLIC_KEY_FILE="$(cd "$REPO" && OMS_STATE_DIR="$OMS_STATE_DIR" node --import tsx infra/auth-cli.ts keys)" ||
    die "could not create the development key pair in $OMS_STATE_DIR/auth"
  export AUTH_JWT_PUBLIC_KEY_FILE
}

# An app's process is told from a stranger by its entry point in its command line.
start_app() {
  local command
  read -r -a command <<<"$(app_command "$1")"
  # Readiness is polled and a process that dies fails at once, so the bound only matters for one
  # that starts but is starved: the worker builds its workflow bundle and, on a fresh Kafka, waits
  # for the group coordinator; with other builds on two cores that took over 90 s.
  start_process "$1" "$(entry_point "$1")" "$(app_port "$1")" 240 app_ready "${command[@]}"
}

stop_app() { stop_process "$1" "$(entry_point "$1")"; }

status_apps() {
  local app pid state failed=0
  printf '%-16s %-8s %-6s %s\n' APP PID PORT STATE
  for app in "$@"; do
    pid="$(process_pid "$app" "$(entry_point "$app")")"
    if [[ -n $pid ]] && app_ready "$app"; then state=up; else state=down; failed=1; fi
    printf '%-16s %-8s %-6s %s\n' "$app" "${pid:--}" "$(app_port "$app")" "$state"
  done
  return "$failed"
}

# The production topology runs two of everything behind a balancer.
if [[ $(oms_topology) == production ]]; then
  # shellcheck source=infra/production-apps.sh
  source "$REPO/infra/production-apps.sh"
fi

main() {
  local command="${1:-}"
  shift || true
  local apps
  mapfile -t apps < <(expand_apps "$@")
  ((${#apps[@]} > 0)) || apps=("${ALL_APPS[@]}")
  local app
  for app in "${apps[@]}"; do entry_point "$app" >/dev/null; done
  case "$command" in
    start)
      use_dev_auth_keys
      for app in "${apps[@]}"; do start_app "$app"; done
      ;;
    stop)
      # One app that will not stop must not leave the others running.
      local stuck=()
      for ((i = ${#apps[@]} - 1; i >= 0; i--)); do stop_app "${apps[i]}" || stuck+=("${apps[i]}"); done
      ((${#stuck[@]} == 0)) || die "could not stop ${stuck[*]}; the other apps are stopped"
      ;;
    restart)
      use_dev_auth_keys
      for ((i = ${#apps[@]} - 1; i >= 0; i--)); do stop_app "${apps[i]}" || die "${apps[i]}: could not stop it, so it is not restarted"; done
      for app in "${apps[@]}"; do start_app "$app"; done
      ;;
    status) status_apps "${apps[@]}" ;;
    *) die "usage: infra/apps.sh start|stop|restart|status [${ALL_APPS[*]}]" ;;
  esac
}

main "$@"
