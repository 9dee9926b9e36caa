# shellcheck shell=bash
# The production topology's infrastructure, for infra/stack.sh (which sources this file when
# `./oms up --topology production` recorded that topology; see docs/scaling.md):
#
#   postgres, redis   as in the light stack
#   kafka-1..3        three KRaft nodes (broker + controller each); `kafka` names all three
#   temporal          the Temporal server (go.temporal.io/server) on PostgreSQL, 4 history shards,
#                     configured by infra/temporal/production.yaml
#   temporal-ui       the Web UI (ui-server) against it
#
# It replaces the light stack's kafka_* and temporal_* functions; stack.sh's generic start, stop
# and status code runs them unchanged.

ALL_COMPONENTS=(postgres redis kafka-1 kafka-2 kafka-3 temporal temporal-ui)
KAFKA_NODES=(1 2 3)
# Seconds a starting node may take to serve; polled, so only a starved or stuck node waits it out.
BROKER_READY_BOUND=240

TEMPORAL_SERVER_BIN="$TEMPORAL_SERVER_DIR/temporal-server"
TEMPORAL_SQL_TOOL="$TEMPORAL_SERVER_DIR/temporal-sql-tool"
TEMPORAL_UI_BIN="$TEMPORAL_SERVER_DIR/temporal-ui-server"
# The server's own role and databases, beside the services' ones in the same cluster. A real
# deployment gives them their own cluster and a password from its secret store.
TEMPORAL_DB_ROLE=temporal
TEMPORAL_DB_PASSWORD="${TEMPORAL_DB_PASSWORD:-oms-dev-temporal}"
TEMPORAL_DATABASES=(temporal temporal_visibility)
# What `temporal operator namespace create` keeps of a closed workflow (the dev server keeps 1 day).
TEMPORAL_RETENTION=72h

# "kafka" stands for the three nodes, so `stack.sh stop kafka` and `./oms restart kafka` still work.
expand_aliases() {
  local c
  for c in "$@"; do
    if [[ $c == kafka ]]; then printf 'kafka-%s\n' "${KAFKA_NODES[@]}"; else echo "$c"; fi
  done
}
check_component() {
  [[ $1 == kafka || " ${ALL_COMPONENTS[*]} " == *" $1 "* ]] || die "unknown component '$1' (expected: kafka ${ALL_COMPONENTS[*]})"
}
ordered() {
  local c want
  want=" $(expand_aliases "$@" | tr '\n' ' ') "
  for c in "${ALL_COMPONENTS[@]}"; do
    if (($# == 0)) || [[ $want == *" $c "* ]]; then echo "$c"; fi
  done
}

# ---------------------------------------------------------------------------------------------
# Kafka: three nodes, each broker and controller, formatted with one cluster id.

broker_port() {
  case "$1" in 1) echo "$OMS_KAFKA_PORT" ;; 2) echo "$OMS_KAFKA_2_PORT" ;; 3) echo "$OMS_KAFKA_3_PORT" ;; esac
}
controller_port() {
  case "$1" in 1) echo "$OMS_KAFKA_CONTROLLER_PORT" ;; 2) echo "$OMS_KAFKA_2_CONTROLLER_PORT" ;; 3) echo "$OMS_KAFKA_3_CONTROLLER_PORT" ;; esac
}
broker_props() { printf '%s/kafka-%s/server.properties\n' "$OMS_STATE_DIR" "$1"; }

broker_pid() { read_pid "$(pidfile "kafka-$1")"; }
broker_alive() { pid_is "$2" "kafka.Kafka $(broker_props "$1")"; }
broker_ports() { echo "$(broker_port "$1") $(controller_port "$1")"; }
broker_ready() {
  local offset
  offset="$(read_pid "$OMS_RUN_DIR/kafka-$1.log-offset")"
  port_open "$(broker_port "$1")" &&
    grep -q 'Kafka Server started' <(tail -c "+$((${offset:-0} + 1))" "$(logfile "kafka-$1")")
}

live_brokers() {
  local id pid n=0
  for id in "${KAFKA_NODES[@]}"; do
    pid="$(broker_pid "$id")"
    [[ -n $pid ]] && broker_alive "$id" "$pid" && n=$((n + 1))
  done
  echo "$n"
}

broker_start() {
  local id="$1"
  [[ -f $KAFKA_LIBS/.pom.sha256 ]] || die "kafka: jars missing in $KAFKA_LIBS; run infra/install.sh kafka"
  local dir="$OMS_STATE_DIR/kafka-$id" log voters="" n
  log="$(logfile "kafka-$id")"
  mkdir -p "$dir/data"
  for n in "${KAFKA_NODES[@]}"; do voters+="${voters:+,}$n@127.0.0.1:$(controller_port "$n")"; done
  sed -e "s|@NODE_ID@|$id|g" -e "s|@QUORUM_VOTERS@|$voters|g" \
    -e "s|@BROKER_PORT@|$(broker_port "$id")|g" -e "s|@CONTROLLER_PORT@|$(controller_port "$id")|g" \
    -e "s|@LOG_DIRS@|$dir/data|g" \
    "$REPO/infra/kafka/production.properties.template" >"$(broker_props "$id")"
  if [[ ! -f $dir/data/meta.properties ]]; then
    # All three nodes share one cluster id, kept beside them: a node formatted with another
    # would be refused by the quorum.
    local cluster_id_file="$OMS_STATE_DIR/kafka-cluster.id"
    if [[ ! -s $cluster_id_file ]]; then
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$log" | tail -n 1 >"$cluster_id_file"
    fi
    log "kafka-$id: formatting storage in $dir/data (cluster id $(<"$cluster_id_file"))"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$(<"$cluster_id_file")" \
      -c "$(broker_props "$id")" --ignore-formatted >>"$log" 2>&1 || die "kafka-$id: storage format failed; see $log"
  fi
  touch "$log"
  stat -c %s "$log" >"$OMS_RUN_DIR/kafka-$id.log-offset"
  spawn "$(pidfile "kafka-$id")" "$log" "${KAFKA_JAVA[@]}" kafka.Kafka "$(broker_props "$id")"
  # A node serves only once a quorum (two of three) has elected a controller: the first node of a
  # cold start waits for its controller port alone, and broker_after_start checks them together.
  # The bounds are for a starved machine: a node killed before (no quorum for its last controlled
  # shutdown) first recovers its logs, and with other builds on two cores that took over 90 s.
  if (($(live_brokers) >= 2)); then
    WAIT_FOR_PID="$(broker_pid "$id")" wait_for "kafka-$id" "$log" "$BROKER_READY_BOUND" broker_ready "$id"
  else
    WAIT_FOR_PID="$(broker_pid "$id")" wait_for "kafka-$id controller" "$log" "$BROKER_READY_BOUND" port_open "$(controller_port "$id")"
  fi
}

# Once two nodes run, every running node must come to serve.
broker_after_start() {
  (($(live_brokers) >= 2)) || return 0
  local id pid
  for id in "${KAFKA_NODES[@]}"; do
    pid="$(broker_pid "$id")"
    [[ -n $pid ]] && broker_alive "$id" "$pid" || continue
    broker_ready "$id" || WAIT_FOR_PID="$pid" wait_for "kafka-$id" "$(logfile "kafka-$id")" "$BROKER_READY_BOUND" broker_ready "$id" || return 1
  done
}

# SIGTERM runs a controlled shutdown; the last node of a cluster has no quorum left to confirm
# it to and stops after its timeout, hence the longer wait before SIGKILL.
broker_stop() { stop_pid "kafka-$1" "$2" 60; }

for id in "${KAFKA_NODES[@]}"; do
  eval "
    kafka-${id}_pid() { broker_pid $id; }
    kafka-${id}_alive() { broker_alive $id \"\$1\"; }
    kafka-${id}_ports() { broker_ports $id; }
    kafka-${id}_ready() { broker_ready $id; }
    kafka-${id}_start() { broker_start $id; }
    kafka-${id}_after_start() { broker_after_start; }
    kafka-${id}_stop() { broker_stop $id \"\$1\"; }"
done
unset id

# ---------------------------------------------------------------------------------------------
# Temporal server on PostgreSQL.

# The light stack's registration of the search attributes, kept under a name of its own: the
# production temporal_after_start first makes the namespace, then runs it.
eval "register_search_attributes() $(declare -f temporal_after_start | tail -n +2)"

# What infra/temporal/production.yaml and ui/production.yaml read.
export_temporal_env() {
  export OMS_PG_PORT OMS_TEMPORAL_PORT OMS_TEMPORAL_HTTP_PORT OMS_TEMPORAL_METRICS_PORT OMS_TEMPORAL_UI_PORT \
    OMS_TEMPORAL_HISTORY_PORT OMS_TEMPORAL_MATCHING_PORT OMS_TEMPORAL_WORKER_PORT OMS_TEMPORAL_MEMBERSHIP_PORT \
    TEMPORAL_DB_PASSWORD
  export OMS_TEMPORAL_CONFIG_DIR="$REPO/infra/temporal"
}

pg_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$OMS_PG_PORT" -U postgres -d postgres "$@"; }

# The role and its two databases (idempotent), then the schema: set up on a new database,
# upgraded to the binary's version on an old one. The schemas come embedded in the tool.
temporal_prepare_database() {
  local log="$1" db
  pg_admin -v role="$TEMPORAL_DB_ROLE" -v password="$TEMPORAL_DB_PASSWORD" >>"$log" 2>&1 <<'SQL' || die "temporal: could not create the role $TEMPORAL_DB_ROLE; see $log"
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
SQL
  for db in "${TEMPORAL_DATABASES[@]}"; do
    pg_admin -v db="$db" -v role="$TEMPORAL_DB_ROLE" >>"$log" 2>&1 <<'SQL' || die "temporal: could not create the database $db; see $log"
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  done
  local schema tool=("$TEMPORAL_SQL_TOOL" --plugin postgres12 --endpoint 127.0.0.1 --port "$OMS_PG_PORT"
    --user "$TEMPORAL_DB_ROLE" --password "$TEMPORAL_DB_PASSWORD")
  for db in "${TEMPORAL_DATABASES[@]}"; do
    schema="postgresql/v12/${db/temporal_visibility/visibility}"
    "${tool[@]}" --database "$db" setup-schema -v 0.0 >>"$log" 2>&1 || die "temporal: setup-schema of $db failed; see $log"
    "${tool[@]}" --database "$db" update-schema --schema-name "$schema" >>"$log" 2>&1 ||
      die "temporal: update-schema of $db failed; see $log"
  done
}

temporal_pid() { read_pid "$(pidfile temporal)"; }
temporal_alive() { pid_is "$1" "$TEMPORAL_SERVER_BIN --root $REPO"; }
temporal_ports() {
  echo "$OMS_TEMPORAL_PORT $OMS_TEMPORAL_HTTP_PORT $OMS_TEMPORAL_METRICS_PORT $OMS_TEMPORAL_HISTORY_PORT" \
    "$OMS_TEMPORAL_MATCHING_PORT $OMS_TEMPORAL_WORKER_PORT"
}
temporal_ready() { "$TEMPORAL_BIN" operator cluster health --address "127.0.0.1:$OMS_TEMPORAL_PORT"; }

temporal_start() {
  [[ -x $TEMPORAL_SERVER_BIN && -x $TEMPORAL_SQL_TOOL ]] ||
    die "temporal: the server is missing in $TEMPORAL_SERVER_DIR; run infra/install.sh temporal-server"
  local log
  log="$(logfile temporal)"
  temporal_prepare_database "$log"
  export_temporal_env
  spawn "$(pidfile temporal)" "$log" "$TEMPORAL_SERVER_BIN" --root "$REPO" --config infra/temporal --env production \
    --allow-no-auth start
  WAIT_FOR_PID="$(temporal_pid)" wait_for temporal "$log" 120 temporal_ready
}

# The dev server makes its namespace itself; this one is registered here, once.
temporal_after_start() {
  local address="127.0.0.1:$OMS_TEMPORAL_PORT"
  if ! "$TEMPORAL_BIN" operator namespace describe --address "$address" --namespace default >/dev/null 2>&1; then
    log "temporal: registering namespace default (retention $TEMPORAL_RETENTION)"
    "$TEMPORAL_BIN" operator namespace create --address "$address" --namespace default --retention "$TEMPORAL_RETENTION" >/dev/null ||
      die "temporal: could not register namespace default"
    # The frontend learns of a new namespace on its next cache refresh (up to 10 s).
    wait_for "namespace default" "$(logfile temporal)" 30 \
      "$TEMPORAL_BIN" workflow list --address "$address" --namespace default --limit 1
  fi
  register_search_attributes
}

temporal_stop() { stop_pid temporal "$1" 30; }

temporal-ui_pid() { read_pid "$(pidfile temporal-ui)"; }
temporal-ui_alive() { pid_is "$1" "$TEMPORAL_UI_BIN --root $REPO"; }
temporal-ui_ports() { echo "$OMS_TEMPORAL_UI_PORT"; }
temporal-ui_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$OMS_TEMPORAL_UI_PORT/"; }
temporal-ui_start() {
  [[ -x $TEMPORAL_UI_BIN ]] || die "temporal-ui: $TEMPORAL_UI_BIN missing; run infra/install.sh temporal-server"
  export_temporal_env
  spawn "$(pidfile temporal-ui)" "$(logfile temporal-ui)" "$TEMPORAL_UI_BIN" --root "$REPO" --config infra/temporal/ui \
    --env production start
  WAIT_FOR_PID="$(temporal-ui_pid)" wait_for temporal-ui "$(logfile temporal-ui)" 60 temporal-ui_ready
}
temporal-ui_stop() { stop_pid temporal-ui "$1" 10; }
