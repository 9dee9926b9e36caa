# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables below are used by the scripts that source this file
# Shared helpers for the infra scripts (install, stack, apps, monitoring). Source it; do not run it.
#
# Two directories, on purpose kept apart:
#   OMS_STATE_DIR  per clone, git-ignored: data dirs, logs, pid files. Deleting it resets the stack.
#   OMS_TOOLS_DIR  per user: built or downloaded tools (bin/temporal, kafka/libs). The Temporal
#                  build takes minutes and GBs of RAM, so a second clone reuses the first one's.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OMS_STATE_DIR="${OMS_STATE_DIR:-$REPO/.oms}"
OMS_TOOLS_DIR="${OMS_TOOLS_DIR:-$HOME/.cache/oms}"
OMS_RUN_DIR="$OMS_STATE_DIR/run"
OMS_LOG_DIR="$OMS_STATE_DIR/logs"

# Pinned versions; infra/kafka/pom.xml pins the Kafka jars themselves.
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
TEMPORAL_CLI_VERSION=1.5.1
TEMPORAL_BIN="$OMS_TOOLS_DIR/bin/temporal"
KAFKA_LIBS="$OMS_TOOLS_DIR/kafka/libs"

OMS_PG_PORT="${OMS_PG_PORT:-5432}"
OMS_REDIS_PORT="${OMS_REDIS_PORT:-6379}"
OMS_KAFKA_PORT="${OMS_KAFKA_PORT:-9092}"
OMS_KAFKA_CONTROLLER_PORT="${OMS_KAFKA_CONTROLLER_PORT:-9093}"
OMS_TEMPORAL_PORT="${OMS_TEMPORAL_PORT:-7233}"
OMS_TEMPORAL_UI_PORT="${OMS_TEMPORAL_UI_PORT:-8233}"
OMS_TEMPORAL_HTTP_PORT="${OMS_TEMPORAL_HTTP_PORT:-7243}"
OMS_TEMPORAL_METRICS_PORT="${OMS_TEMPORAL_METRICS_PORT:-7244}"
OMS_PROMETHEUS_PORT="${OMS_PROMETHEUS_PORT:-9090}"

# The production topology (./oms up --topology production; docs/scaling.md). The light one is the
# default; the choice is recorded in the state dir by `up` and forgotten by `down`, so stack.sh,
# apps.sh and the tests that stop and start components follow whichever is running.
OMS_TOPOLOGY_FILE="$OMS_STATE_DIR/topology"
TEMPORAL_SERVER_VERSION=1.29.1 # the server the CLI $TEMPORAL_CLI_VERSION embeds (go version -m)
TEMPORAL_UI_SERVER_VERSION=2.42.1 # likewise its Web UI
TEMPORAL_SERVER_DIR="$OMS_TOOLS_DIR/temporal-server/v$TEMPORAL_SERVER_VERSION"
# Ports beyond the light stack's, each derived from one of its ports, so that moving that one (a
# second clone on other ports) moves them along; each can also be set on its own.
OMS_KAFKA_2_PORT="${OMS_KAFKA_2_PORT:-$((OMS_KAFKA_PORT + 2))}"
OMS_KAFKA_2_CONTROLLER_PORT="${OMS_KAFKA_2_CONTROLLER_PORT:-$((OMS_KAFKA_PORT + 3))}"
OMS_KAFKA_3_PORT="${OMS_KAFKA_3_PORT:-$((OMS_KAFKA_PORT + 4))}"
OMS_KAFKA_3_CONTROLLER_PORT="${OMS_KAFKA_3_CONTROLLER_PORT:-$((OMS_KAFKA_PORT + 5))}"
OMS_TEMPORAL_HISTORY_PORT="${OMS_TEMPORAL_HISTORY_PORT:-$((OMS_TEMPORAL_PORT + 1))}"
OMS_TEMPORAL_MATCHING_PORT="${OMS_TEMPORAL_MATCHING_PORT:-$((OMS_TEMPORAL_PORT + 2))}"
OMS_TEMPORAL_WORKER_PORT="${OMS_TEMPORAL_WORKER_PORT:-$((OMS_TEMPORAL_PORT + 3))}"
# Ringpop membership: one port per Temporal service, frontend, history, matching, worker.
OMS_TEMPORAL_MEMBERSHIP_PORT="${OMS_TEMPORAL_MEMBERSHIP_PORT:-$((OMS_TEMPORAL_PORT + 4))}"
# Two instances of each service behind the balancer, which takes the service's own port.
OMS_PRODUCT_SERVICE_1_PORT="${OMS_PRODUCT_SERVICE_1_PORT:-$((${PRODUCT_SERVICE_PORT:-8083} + 10))}"
OMS_PRODUCT_SERVICE_2_PORT="${OMS_PRODUCT_SERVICE_2_PORT:-$((${PRODUCT_SERVICE_PORT:-8083} + 20))}"
OMS_ORDER_SERVICE_1_PORT="${OMS_ORDER_SERVICE_1_PORT:-$((${ORDER_SERVICE_PORT:-8084} + 10))}"
OMS_ORDER_SERVICE_2_PORT="${OMS_ORDER_SERVICE_2_PORT:-$((${ORDER_SERVICE_PORT:-8084} + 20))}"
OMS_PAYMENT_SERVICE_1_PORT="${OMS_PAYMENT_SERVICE_1_PORT:-$((${PAYMENT_SERVICE_PORT:-8085} + 10))}"
OMS_PAYMENT_SERVICE_2_PORT="${OMS_PAYMENT_SERVICE_2_PORT:-$((${PAYMENT_SERVICE_PORT:-8085} + 20))}"
# The first worker keeps WORKER_METRICS_PORT and WORKER_APP_METRICS_PORT; the second's:
OMS_WORKER_2_METRICS_PORT="${OMS_WORKER_2_METRICS_PORT:-$((${WORKER_METRICS_PORT:-9464} + 10))}"
OMS_WORKER_2_APP_METRICS_PORT="${OMS_WORKER_2_APP_METRICS_PORT:-$((${WORKER_APP_METRICS_PORT:-9465} + 10))}"

# light or production: what `./oms up` last started here.
oms_topology() {
  if [[ -s $OMS_TOPOLOGY_FILE ]]; then head -n 1 "$OMS_TOPOLOGY_FILE"; else echo light; fi
}

log() { printf '[oms] %s\n' "$*" >&2; }
warn() { printf '[oms] WARNING: %s\n' "$*" >&2; }
err() { printf '[oms] ERROR: %s\n' "$*" >&2; }
die() {
  err "$*"
  exit 1
}

# True when something accepts TCP connections on 127.0.0.1:<port>.
port_open() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Who listens on a port, for error messages ("" when ss is missing or nothing listens).
port_holder() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n '1s/.*users:((\(.*\)))/\1/p' || true
}

# Pid recorded in a pid file, or nothing.
read_pid() {
  [[ -s $1 ]] || return 0
  local pid
  pid="$(head -n 1 "$1" | tr -dc '0-9')"
  [[ -n $pid ]] && printf '%s\n' "$pid"
  return 0
}

# True when <pid> runs. A zombie does not: our servers are reparented to pid 1 once the
# script that started them exits, and a dead one stays a zombie until pid 1 reaps it, which
# here can take a moment after the port is already closed. kill -0 would still succeed on it.
pid_alive() {
  local stat
  [[ -n $1 ]] && stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # Field 3 is the state; field 2, the command name in parentheses, may contain spaces.
  stat="${stat##*) }"
  [[ ${stat%% *} != [ZX] ]]
}

# True when <pid> is alive and its command line contains <pattern>; the pattern guards against
# a stale pid file whose number the kernel has since given to an unrelated process.
pid_is() {
  local pid="$1" pattern="$2"
  pid_alive "$pid" || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# spawn <pidfile> <logfile> <command...>
# Starts a long-running process in its own session (setsid): it has no controlling terminal,
# so neither a closed terminal (SIGHUP) nor Ctrl-C in the shell that started it stops it.
# The inner bash writes its own pid and then execs the command, so the pid file holds the
# server's real pid even when setsid has to fork.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $1 belong to the inner bash.
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  die "could not start $1 (no pid file $pidfile); see $logfile"
}

# stop_pid <component> <pid> <timeout_s>: SIGTERM, wait, then SIGKILL. Returns 0 once gone.
stop_pid() {
  local component="$1" pid="$2" timeout="$3" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while pid_alive "$pid"; do
    if ((waited >= timeout * 10)); then
      warn "$component (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  ! pid_alive "$pid"
}

# wait_gone <pid> <timeout_s>: for servers stopped by their own tool (pg_ctl, redis-cli), which
# may return a moment before the process has exited.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    pid_alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# wait_for <component> <logfile> <timeout_s> <check command...>
# Polls the check once a second, printing a dot per try and the elapsed time when it passes.
# On timeout, names the component and its log and shows the log's last 20 lines, then returns 1.
# If WAIT_FOR_PID is set and that process exits first, fails at once instead of waiting out
# the timeout: a crashed server will not become ready.
wait_for() {
  local component="$1" logfile="$2" timeout="$3"
  shift 3
  local start=$SECONDS
  printf '[oms] waiting for %s ' "$component" >&2
  while :; do
    if "$@" >/dev/null 2>&1; then
      printf ' ready in %ss\n' "$((SECONDS - start))" >&2
      return 0
    fi
    if [[ -n ${WAIT_FOR_PID:-} ]] && ! pid_alive "$WAIT_FOR_PID"; then
      printf '\n' >&2
      err "$component exited during start-up (pid $WAIT_FOR_PID); last 20 lines of $logfile:"
      tail -n 20 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    if ((SECONDS - start >= timeout)); then
      printf '\n' >&2
      err "$component not ready after ${timeout}s; last 20 lines of $logfile:"
      tail -n 20 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    printf '.' >&2
    sleep 1
  done
}

# Every process the scripts run keeps its pid and its log under the state dir, by its name.
pidfile() { printf '%s/%s.pid\n' "$OMS_RUN_DIR" "$1"; }
logfile() { printf '%s/%s.log\n' "$OMS_LOG_DIR" "$1"; }

# The processes started as commands of our own, the apps (infra/apps.sh) and Prometheus
# (infra/monitoring.sh), are each known by a name (of its pid and log file), a piece of its command
# line that tells it from a stranger (<signature>), its port, and a readiness check, a function
# called with the name.

# process_pid <name> <signature>: the pid in <name>'s pid file while that process runs with
# <signature> in its command line; nothing otherwise.
process_pid() {
  local pid
  pid="$(read_pid "$(pidfile "$1")")"
  [[ -n $pid ]] && pid_is "$pid" "$2" && echo "$pid"
  return 0
}

# start_process <name> <signature> <port> <ready_bound_s> <ready_check> <command...>
# Idempotent: a running process that passes its check is left alone, and one still starting is
# waited for. A port held by anything else stops the start, naming the holder. Each start writes a
# fresh log (the previous one is kept as .1), so a check that reads the log never finds an earlier
# run's lines. BEFORE_SPAWN, if set, is run just before a new process is started (e.g. to write its
# configuration). The command runs from the repository root.
start_process() {
  local name="$1" signature="$2" port="$3" bound="$4" ready="$5"
  shift 5
  local pid log_file
  pid="$(process_pid "$name" "$signature")"
  log_file="$(logfile "$name")"
  if [[ -n $pid ]] && "$ready" "$name" >/dev/null 2>&1; then
    log "$name: already running (pid $pid, port $port)"
    return 0
  fi
  if [[ -z $pid ]] && port_open "$port"; then
    local holder
    holder="$(port_holder "$port")"
    die "$name: port $port is taken by ${holder:-another process}; stop it or choose another port (OMS_*_PORT, see infra/lib.sh)"
  fi
  mkdir -p "$OMS_RUN_DIR" "$OMS_LOG_DIR"
  if [[ -z $pid ]]; then
    if [[ -n ${BEFORE_SPAWN:-} ]]; then "$BEFORE_SPAWN"; fi
    [[ -f $log_file ]] && mv -f "$log_file" "$log_file.1"
    log "$name: starting"
    (cd "$REPO" && spawn "$(pidfile "$name")" "$log_file" "$@")
    pid="$(read_pid "$(pidfile "$name")")"
  fi
  WAIT_FOR_PID="$pid" wait_for "$name" "$log_file" "$bound" "$ready" "$name"
}

# stop_process <name> <signature>: SIGTERM, then SIGKILL after 20 s; leaves no pid file behind.
# Fails (after a warning) only if the process outlived its SIGKILL.
stop_process() {
  local name="$1" pid
  pid="$(process_pid "$name" "$2")"
  if [[ -n $pid ]]; then
    log "$name: stopping (pid $pid)"
    if ! stop_pid "$name" "$pid" 20; then
      warn "$name: pid $pid is still running"
      return 1
    fi
  fi
  rm -f "$(pidfile "$name")"
}

# What every OMS process and script needs to know of the production topology: all three brokers,
# and three copies of each OMS topic of which two must have each write. Exported so that the apps,
# the topic script and the tests started from here inherit it.
use_topology_env() {
  [[ $(oms_topology) == production ]] || return 0
  export KAFKA_BROKERS="127.0.0.1:$OMS_KAFKA_PORT,127.0.0.1:$OMS_KAFKA_2_PORT,127.0.0.1:$OMS_KAFKA_3_PORT"
  export KAFKA_TOPIC_REPLICATION_FACTOR=3 KAFKA_TOPIC_MIN_INSYNC_REPLICAS=2
}
use_topology_env
