# shellcheck shell=bash
# The production topology's apps, for infra/apps.sh (which sources this file when that topology
# runs; see docs/scaling.md): two instances of each service, each on its own port, behind
# infra/balancer.ts on the service's usual port, and two workers. Every client (tests, the order
# service's catalogue, the workers' activities) keeps using the usual URL.
#
# "order-service" names both its instances and "worker" both workers, so `./oms restart worker`
# restarts the two.

ALL_APPS=(balancer product-service-1 product-service-2 payment-service-1 payment-service-2
  order-service-1 order-service-2 worker-1 worker-2)

expand_apps() {
  local app
  for app in "$@"; do
    case "$app" in
      product-service | payment-service | order-service | worker) printf '%s\n' "$app-1" "$app-2" ;;
      *) echo "$app" ;;
    esac
  done
}

entry_point() {
  case "$1" in
    balancer) echo infra/balancer.ts ;;
    order-service-[12]) echo services/order/main.ts ;;
    product-service-[12]) echo services/product/main.ts ;;
    payment-service-[12]) echo services/payment/main.ts ;;
    worker-[12]) echo workers/main.ts ;;
    *) die "unknown app '$1' (expected: ${ALL_APPS[*]}, or order-service, product-service, payment-service, worker for both)" ;;
  esac
}

# The variable holding an instance's port, e.g. OMS_ORDER_SERVICE_2_PORT.
instance_port() {
  local name="${1%-[12]}" n="${1##*-}"
  name="${name//-/_}"
  name="OMS_${name^^}_${n}_PORT"
  echo "${!name}"
}

app_port() {
  case "$1" in
    balancer) echo "${ORDER_SERVICE_PORT:-8084}" ;;
    worker-1) echo "${WORKER_METRICS_PORT:-9464}" ;;
    worker-2) echo "$OMS_WORKER_2_METRICS_PORT" ;;
    *) instance_port "$1" ;;
  esac
}

# Each public port and the two instance ports behind it.
balancer_routes() {
  local service public
  for service in product payment order; do
    public="${service^^}_SERVICE_PORT"
    case "$service" in product) public="${!public:-8083}" ;; order) public="${!public:-8084}" ;; payment) public="${!public:-8085}" ;; esac
    printf '%s=%s,%s ' "$public" "$(instance_port "$service-service-1")" "$(instance_port "$service-service-2")"
  done
}

app_command() {
  local app="$1" run="node --import tsx $(entry_point "$1")"
  case "$app" in
    balancer) echo "$run $(balancer_routes)" ;;
    # Requests reach the instances from the balancer, which says who asked in X-Forwarded-For.
    order-service-[12]) echo "env ORDER_SERVICE_PORT=$(app_port "$app") TRUST_PROXY=127.0.0.1 $run" ;;
    product-service-[12]) echo "env PRODUCT_SERVICE_PORT=$(app_port "$app") TRUST_PROXY=127.0.0.1 $run" ;;
    payment-service-[12]) echo "env PAYMENT_SERVICE_PORT=$(app_port "$app") TRUST_PROXY=127.0.0.1 $run" ;;
    worker-1) echo "$run" ;;
    worker-2) echo "env WORKER_METRICS_PORT=$OMS_WORKER_2_METRICS_PORT WORKER_APP_METRICS_PORT=$OMS_WORKER_2_APP_METRICS_PORT $run" ;;
  esac
}

app_ready() {
  local app="$1" route
  case "$app" in
    balancer)
      for route in $(balancer_routes); do port_open "${route%%=*}" || return 1; done
      ;;
    worker-[12]) port_open "$(app_port "$app")" && grep -q 'worker started' "$(logfile "$app")" ;;
    *) curl -fsS "http://127.0.0.1:$(app_port "$app")/health/live" >/dev/null ;;
  esac
}
