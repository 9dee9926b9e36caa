#!/usr/bin/env bash
# Runs the local stack as plain background processes, without Docker:
#
#   infra/stack.sh start|stop|restart|status [postgres|redis|kafka|temporal...]
#   infra/stack.sh logs [-f] [component...]
#
# No component means all. Install first with infra/install.sh. Pid files live in
# $OMS_STATE_DIR/run, logs in $OMS_STATE_DIR/logs, data in $OMS_STATE_DIR/<component>.
# start is idempotent (a running, answering component is left alone); stop always leaves
# none of this stack's processes behind, whatever was running before.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Start order; stop runs it backwards so nothing loses a dependency while still running.
ALL_COMPONENTS=(postgres redis kafka temporal)

KAFKA_DIR="$OMS_STATE_DIR/kafka"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
TEMPORAL_DIR="$OMS_STATE_DIR/temporal"
TEMPORAL_DB="$TEMPORAL_DIR/temporal.db"
REDIS_DIR="$OMS_STATE_DIR/redis"

# ---------------------------------------------------------------------------------------------
# PostgreSQL: a private cluster, so tests never depend on (or damage) a system-wide one.

# initdb and pg_ctl refuse to run as root; as root, run them as the postgres user. From /,
# because postgres may not be allowed into the caller's working directory.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The cluster lives in $OMS_STATE_DIR/postgres when the postgres user can reach that path.
# A clone under /root (mode 700) is not reachable; rather than widening the permissions of
# someone's home directory, the data then goes to a directory in postgres's own home, keyed
# by the state dir, and $OMS_STATE_DIR/postgres is a symlink to it. Deleting $OMS_STATE_DIR
# leaves that directory behind: stack.sh prints its path when it creates it.
pg_data_dir() {
  local link="$OMS_STATE_DIR/postgres"
  if [[ ! -e $link ]]; then
    if [[ $EUID -ne 0 ]] || as_pg test -x "$OMS_STATE_DIR"; then
      mkdir -p "$link"
    else
      local key
      key="$(printf '%s' "$OMS_STATE_DIR" | sha256sum | cut -c1-12)"
      local home
      home="$(getent passwd postgres | cut -d: -f6)"
      local target="$home/oms/$key"
      mkdir -p "$target"
      ln -s "$target" "$link"
      log "postgres: $OMS_STATE_DIR is not reachable by the postgres user; cluster data in $target"
    fi
  fi
  if [[ $EUID -eq 0 ]]; then
    local real
    real="$(readlink -f "$link")"
    # Only the cluster's own directory changes owner, never a parent.
    if [[ $(stat -c %U "$real") != postgres ]]; then
      chown postgres:postgres "$real"
      chmod 700 "$real"
    fi
  fi
  readlink -f "$link"
}

postgres_pid() {
  local data="$OMS_STATE_DIR/postgres/postmaster.pid"
  [[ -r $data ]] && read_pid "$data"
  return 0
}
postgres_alive() { pid_is "$1" "$PG_BIN/postgres"; }
postgres_ports() { echo "$OMS_PG_PORT"; }
# -U/-d: without them pg_isready connects as the OS user ("root") and the server logs a
# FATAL for that role on every check. Through the socket, where postgres is let in.
postgres_ready() { "$PG_BIN/pg_isready" -q -h "$PG_SOCKET_DIR" -p "$OMS_PG_PORT" -U postgres -d postgres; }

# Who may log in, and how. The services and the worker log in as their own roles with passwords
# (SCRAM), over TCP on loopback; db/provision.ts creates those roles from the configured URLs.
# The superuser is reachable only through the Unix socket, whose mode 0700 admits the cluster's
# OS user and root alone: that is the path of the scripts and of the test suite's administrator.
PG_SOCKET_DIR=/tmp
PG_HBA='# Written by infra/stack.sh on every start: edit the script, not this file.
local   all   postgres                  trust
local   all   all                       scram-sha-256
host    all   all        127.0.0.1/32   scram-sha-256
host    all   all        ::1/128        scram-sha-256'

# Writes pg_hba.conf when it differs from PG_HBA; returns 0 when it changed. A cluster made by an
# older checkout (trust for everyone over TCP) converges here.
postgres_write_hba() {
  local data="$1"
  [[ $(as_pg cat "$data/pg_hba.conf" 2>/dev/null) == "$PG_HBA" ]] && return 1
  printf '%s\n' "$PG_HBA" | as_pg tee "$data/pg_hba.conf" >/dev/null
}

postgres_start() {
  [[ -x $PG_BIN/pg_ctl ]] || die "postgres: $PG_BIN/pg_ctl missing; run infra/install.sh postgres"
  local data log
  data="$(pg_data_dir)"
  log="$(logfile postgres)"
  if [[ ! -s $data/PG_VERSION ]]; then
    log "postgres: initdb in $data"
    # C locale: byte-order collation, the same on every machine. Authentication: see PG_HBA.
    as_pg "$PG_BIN/initdb" -D "$data" --auth-local=trust --auth-host=scram-sha-256 -U postgres -E UTF8 --locale=C >>"$log" 2>&1 ||
      die "postgres: initdb failed; see $log"
  fi
  postgres_write_hba "$data" || true
  # Settings are passed at start so a port change needs no edit of the cluster's files.
  # fsync stays on (the default): tests kill processes and expect committed rows to survive.
  # No -l: the server's output goes to this shell's redirect, so the log file may live where
  # the postgres user could not open it.
  as_pg "$PG_BIN/pg_ctl" -D "$data" -W \
    -o "-p $OMS_PG_PORT -k $PG_SOCKET_DIR -c unix_socket_permissions=0700 -c listen_addresses=127.0.0.1 -c max_connections=200" \
    start >>"$log" 2>&1 || die "postgres: pg_ctl start failed; see $log"
  wait_for postgres "$log" 60 postgres_ready
  postgres_pid >"$(pidfile postgres)"
}

# Runs on every start, also when the server was already up: a server started by an older checkout
# gets the current pg_hba.conf (a reload is enough; the socket's mode follows at its next restart).
# Roles and databases are db/provision.ts's, which `./oms up` runs next.
postgres_after_start() {
  local data
  data="$(readlink -f "$OMS_STATE_DIR/postgres")"
  if postgres_write_hba "$data"; then
    log "postgres: authentication updated (roles log in with passwords; postgres only through the socket)"
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$OMS_PG_PORT" -U postgres -d postgres -c 'SELECT pg_reload_conf()' >/dev/null ||
      die "postgres: could not reload the configuration"
  fi
}

postgres_stop() {
  local pid="$1" data
  data="$(readlink -f "$OMS_STATE_DIR/postgres")"
  # Fast mode: roll back open transactions and shut down cleanly (checkpoint), no waiting for
  # clients such as a test's leaked pool.
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" stop -m fast -w -t 30 >>"$(logfile postgres)" 2>&1 ||
    ! wait_gone "$pid" 5; then
    warn "postgres: pg_ctl stop failed; stopping pid $pid"
    stop_pid postgres "$pid" 10
  fi
}

# ---------------------------------------------------------------------------------------------
# Redis: cache only, nothing to persist.

redis_pid() { read_pid "$(pidfile redis)"; }
redis_alive() { pid_is "$1" redis-server; }
redis_ports() { echo "$OMS_REDIS_PORT"; }
redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$OMS_REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_start() {
  command -v redis-server >/dev/null || die "redis: redis-server missing; run infra/install.sh redis"
  mkdir -p "$REDIS_DIR"
  local log
  log="$(logfile redis)"
  redis-server --daemonize yes --port "$OMS_REDIS_PORT" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$REDIS_DIR" \
    --pidfile "$(pidfile redis)" --logfile "$log" ||
    die "redis: redis-server failed to start; see $log"
  wait_for redis "$log" 20 redis_ready
}

redis_stop() {
  local pid="$1"
  redis-cli -h 127.0.0.1 -p "$OMS_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  stop_pid redis "$pid" 10
}

# ---------------------------------------------------------------------------------------------
# Kafka: one KRaft node (broker + controller) on the jars from infra/kafka/pom.xml.

KAFKA_JAVA=(java -Xms256m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  "-Dlog4j.configuration=file:$REPO/infra/kafka/log4j.properties" -cp "$KAFKA_LIBS/*")

kafka_pid() { read_pid "$(pidfile kafka)"; }
# The properties path is unique to this clone's state dir.
kafka_alive() { pid_is "$1" "kafka.Kafka $KAFKA_PROPS"; }
kafka_ports() { echo "$OMS_KAFKA_PORT $OMS_KAFKA_CONTROLLER_PORT"; }

# Port open is not enough: the broker listens before it has caught up with the metadata log.
# "Kafka Server started" is logged once it serves requests. Only lines written since this
# process started count: the log keeps earlier runs, and the offset file marks where this one began.
kafka_ready() {
  local offset
  offset="$(read_pid "$OMS_RUN_DIR/kafka.log-offset")"
  # grep reads a process substitution rather than a pipe: `tail | grep -q` fails under
  # pipefail once the log is big enough for tail to get SIGPIPE.
  port_open "$OMS_KAFKA_PORT" &&
    grep -q 'Kafka Server started' <(tail -c "+$((${offset:-0} + 1))" "$(logfile kafka)")
}

kafka_start() {
  [[ -f $KAFKA_LIBS/.pom.sha256 ]] || die "kafka: jars missing in $KAFKA_LIBS; run infra/install.sh kafka"
  command -v java >/dev/null || die "kafka: java missing; run infra/install.sh kafka"
  local log data="$KAFKA_DIR/data"
  log="$(logfile kafka)"
  mkdir -p "$data"
  # Regenerated on every start, so template and port changes apply without a reset.
  sed -e "s|@BROKER_PORT@|$OMS_KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$OMS_KAFKA_CONTROLLER_PORT|g" \
    -e "s|@LOG_DIRS@|$data|g" \
    "$REPO/infra/kafka/server.properties.template" >"$KAFKA_PROPS"
  if [[ ! -f $data/meta.properties ]]; then
    # KRaft storage is formatted once with a cluster id; the id is kept beside it because
    # formatting again with another id would make the broker refuse its own data.
    if [[ ! -s $KAFKA_DIR/cluster.id ]]; then
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$log" | tail -n 1 >"$KAFKA_DIR/cluster.id"
    fi
    log "kafka: formatting storage in $data (cluster id $(<"$KAFKA_DIR/cluster.id"))"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$(<"$KAFKA_DIR/cluster.id")" \
      -c "$KAFKA_PROPS" --ignore-formatted >>"$log" 2>&1 ||
      die "kafka: storage format failed; see $log"
  fi
  touch "$log"
  stat -c %s "$log" >"$OMS_RUN_DIR/kafka.log-offset"
  spawn "$(pidfile kafka)" "$log" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_PROPS"
  WAIT_FOR_PID="$(kafka_pid)" wait_for kafka "$log" 90 kafka_ready
}

kafka_stop() {
  # SIGTERM runs the broker's controlled shutdown (flushes and closes the logs), which saves
  # a log recovery on the next start.
  stop_pid kafka "$1" 30
}

# ---------------------------------------------------------------------------------------------
# Temporal: the CLI's dev server (frontend, history, matching, worker, Web UI) on SQLite.

temporal_pid() { read_pid "$(pidfile temporal)"; }
temporal_alive() { pid_is "$1" "--db-filename $TEMPORAL_DB"; }
temporal_ports() {
  echo "$OMS_TEMPORAL_PORT $OMS_TEMPORAL_UI_PORT $OMS_TEMPORAL_HTTP_PORT $OMS_TEMPORAL_METRICS_PORT"
}
temporal_ready() {
  "$TEMPORAL_BIN" operator cluster health --address "127.0.0.1:$OMS_TEMPORAL_PORT" &&
    curl -fsS -o /dev/null "http://127.0.0.1:$OMS_TEMPORAL_UI_PORT/"
}

# Dynamic configuration of the dev server (docs/benchmarks.md, "Saga throughput"):
# - the dev server re-reads the namespace's search attributes from SQLite on every read unless told
#   not to, which costs every start and upsert a query; they are cached instead (a search attribute
#   registered on an existing database by temporal_after_start may take the cache's refresh, about a
#   minute, to be usable: only after adding one to SEARCH_ATTRIBUTES in workflows/order-contract.ts);
# - eager workflow start: a starter that shares its connection with a worker (requestEagerStart)
#   gets the new workflow's first task in the start response, without a round trip through matching.
TEMPORAL_DYNAMIC_CONFIG=(
  --dynamic-config-value system.forceSearchAttributesCacheRefreshOnRead=false
  --dynamic-config-value system.enableEagerWorkflowStart=true
)

# Name=Type of each search attribute the workflows set; their one home is workflows/order-contract.ts.
temporal_search_attributes() { (cd "$REPO" && npx --no-install tsx infra/search-attributes.ts); }

temporal_start() {
  [[ -x $TEMPORAL_BIN ]] || die "temporal: $TEMPORAL_BIN missing; run infra/install.sh temporal"
  mkdir -p "$TEMPORAL_DIR"
  local log sa args=()
  log="$(logfile temporal)"
  for sa in $(temporal_search_attributes); do args+=(--search-attribute "$sa"); done
  # Fixed HTTP and metrics ports (their defaults are random) so Prometheus can scrape and two
  # clones collide loudly instead of at random.
  # WAL + synchronous=NORMAL: a killed server loses nothing (the WAL is in the OS cache);
  # only a power cut could lose the last commits, and this is a dev server.
  spawn "$(pidfile temporal)" "$log" \
    "$TEMPORAL_BIN" server start-dev \
    --ip 127.0.0.1 --port "$OMS_TEMPORAL_PORT" --ui-port "$OMS_TEMPORAL_UI_PORT" \
    --http-port "$OMS_TEMPORAL_HTTP_PORT" --metrics-port "$OMS_TEMPORAL_METRICS_PORT" \
    --db-filename "$TEMPORAL_DB" --namespace default "${args[@]}" \
    --sqlite-pragma journal_mode=WAL --sqlite-pragma synchronous=NORMAL \
    "${TEMPORAL_DYNAMIC_CONFIG[@]}" \
    --log-level warn
  WAIT_FOR_PID="$(temporal_pid)" wait_for temporal "$log" 60 temporal_ready
}

# --search-attribute only takes effect when the namespace is created, i.e. on the first start
# with a new database file; on an existing file new ones are silently ignored (checked with
# CLI v1.5.1). So every start also registers whatever the list gained since the database was
# made. Only missing ones: creating an existing one succeeds but logs a server warning.
temporal_after_start() {
  local sa existing
  existing="$("$TEMPORAL_BIN" operator search-attribute list --address "127.0.0.1:$OMS_TEMPORAL_PORT" \
    --namespace default -o json)" || die "temporal: could not list search attributes"
  for sa in $(temporal_search_attributes); do
    [[ $existing == *"\"${sa%%=*}\":"* ]] && continue
    log "temporal: registering search attribute $sa"
    "$TEMPORAL_BIN" operator search-attribute create --address "127.0.0.1:$OMS_TEMPORAL_PORT" \
      --namespace default --name "${sa%%=*}" --type "${sa#*=}" >/dev/null ||
      die "temporal: could not register search attribute $sa"
  done
}

temporal_stop() { stop_pid temporal "$1" 20; }

# ---------------------------------------------------------------------------------------------

# The component's pid if its process is alive, else nothing.
live_pid() {
  local c="$1" pid
  pid="$("${c}_pid")"
  if [[ -n $pid ]] && "${c}_alive" "$pid"; then echo "$pid"; fi
  return 0
}

start_component() {
  local c="$1" pid port holder
  pid="$(live_pid "$c")"
  if [[ -n $pid ]]; then
    if "${c}_ready" >/dev/null 2>&1; then
      log "$c: already running (pid $pid, port $("${c}_ports" | cut -d' ' -f1))"
    else
      WAIT_FOR_PID="$pid" wait_for "$c" "$(logfile "$c")" 60 "${c}_ready"
    fi
  else
    rm -f "$(pidfile "$c")"
    for port in $("${c}_ports"); do
      if port_open "$port"; then
        holder="$(port_holder "$port")"
        die "$c: port $port is already taken by ${holder:-another process}, not by this stack" \
          "($OMS_STATE_DIR). Stop that process or choose other ports (OMS_*_PORT, see infra/lib.sh)."
      fi
    done
    log "$c: starting"
    "${c}_start"
  fi
  if declare -F "${c}_after_start" >/dev/null; then "${c}_after_start"; fi
}

stop_component() {
  local c="$1" pid port
  pid="$(live_pid "$c")"
  if [[ -z $pid ]]; then
    log "$c: not running"
  else
    log "$c: stopping (pid $pid)"
    "${c}_stop" "$pid" || true
    if pid_alive "$pid"; then
      warn "$c: pid $pid is still running"
      return 1
    fi
  fi
  rm -f "$(pidfile "$c")"
  for port in $("${c}_ports"); do
    if port_open "$port"; then
      warn "$c: port $port still answers, held by $(port_holder "$port"); that is not this stack's process"
    fi
  done
}

status_components() {
  local c pid state rc=0
  printf '%-10s %-8s %-6s %s\n' COMPONENT PID PORT STATE
  for c in "$@"; do
    pid="$(live_pid "$c")"
    if [[ -z $pid ]]; then
      state=down
      rc=1
    elif "${c}_ready" >/dev/null 2>&1; then
      state=up
    else
      state="not ready"
      rc=1
    fi
    printf '%-10s %-8s %-6s %s\n' "$c" "${pid:--}" "$("${c}_ports" | cut -d' ' -f1)" "$state"
  done
  return "$rc"
}

show_logs() {
  local follow=0 c files=()
  if [[ ${1:-} == -f ]]; then
    follow=1
    shift
  fi
  (($#)) || set -- "${ALL_COMPONENTS[@]}"
  for c in "$@"; do
    check_component "$c"
    files+=("$(logfile "$c")")
  done
  if ((follow)); then
    exec tail -n 20 -F "${files[@]}"
  fi
  for c in "${files[@]}"; do
    printf '==> %s <==\n' "$c"
    tail -n "${OMS_LOG_LINES:-50}" "$c" 2>/dev/null || echo "(no log yet)"
  done
}

check_component() {
  [[ " ${ALL_COMPONENTS[*]} " == *" $1 "* ]] || die "unknown component '$1' (expected: ${ALL_COMPONENTS[*]})"
}

# Requested components in start order, whatever order they were given in.
ordered() {
  local c want=" $* "
  for c in "${ALL_COMPONENTS[@]}"; do
    if (($# == 0)) || [[ $want == *" $c "* ]]; then echo "$c"; fi
  done
}

usage() {
  # The header comment of this file, without the shebang and the comment markers.
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  [[ $cmd == logs ]] && {
    show_logs "$@"
    return
  }
  local c i components=() reversed=()
  for c in "$@"; do check_component "$c"; done
  mapfile -t components < <(ordered "$@")
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do reversed+=("${components[i]}"); done
  mkdir -p "$OMS_RUN_DIR" "$OMS_LOG_DIR"
  local start=$SECONDS
  case "$cmd" in
    start)
      for c in "${components[@]}"; do start_component "$c"; done
      log "started ${components[*]} in $((SECONDS - start))s"
      ;;
    stop)
      # One component that will not stop must not leave the ones after it running.
      local stuck=()
      for c in "${reversed[@]}"; do stop_component "$c" || stuck+=("$c"); done
      ((${#stuck[@]} == 0)) || die "could not stop ${stuck[*]}; everything else is stopped"
      log "stopped ${reversed[*]} in $((SECONDS - start))s"
      ;;
    restart)
      for c in "${reversed[@]}"; do stop_component "$c" || die "$c: could not stop it, so it is not restarted"; done
      for c in "${components[@]}"; do start_component "$c"; done
      log "restarted ${components[*]} in $((SECONDS - start))s"
      ;;
    status) status_components "${components[@]}" ;;
    *) usage ;;
  esac
}

# The production topology swaps in its own Kafka and Temporal (three brokers, the full server).
if [[ $(oms_topology) == production ]]; then
  # shellcheck source=infra/production-stack.sh
  source "$REPO/infra/production-stack.sh"
fi

main "$@"
