#!/usr/bin/env bash
# Installs what the local stack needs, without Docker: infra/install.sh [postgres|redis|kafka|temporal...]
# (no argument: all four; `prometheus` only when named: ./oms up --monitoring, and promtool for
# ./oms test; `temporal-server` only when named: the production topology's Temporal server, its
# SQL schema tool and Web UI, built from source like the CLI). Idempotent: it only touches what is missing, so a second run takes seconds.
# apt packages go system-wide; Kafka jars and the Temporal CLI go to $OMS_TOOLS_DIR.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_COMPONENTS=(postgres redis kafka temporal)
TEMPORAL_MODULE=github.com/temporalio/cli/cmd/temporal
# Newest CLI tag whose go.mod has no replace directive; later tags cannot be `go install`ed.
GO_MIN_MINOR=25

apt_packages=()
need_apt() { apt_packages+=("$@"); }

# Collects missing apt packages per component, so apt-get runs at most once, and not at all
# when nothing is missing.
check_apt() {
  local component="$1"
  case "$component" in
    postgres)
      [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || need_apt "postgresql-$PG_MAJOR"
      command -v psql >/dev/null || need_apt "postgresql-client-$PG_MAJOR"
      ;;
    redis)
      command -v redis-server >/dev/null || need_apt redis-server
      command -v redis-cli >/dev/null || need_apt redis-tools
      ;;
    kafka)
      command -v java >/dev/null || need_apt openjdk-17-jre-headless
      command -v mvn >/dev/null || need_apt maven
      ;;
    temporal)
      # stack.sh checks the Web UI with curl.
      command -v curl >/dev/null || need_apt curl
      ;;
    temporal-server) ;; # Go, as for the CLI; checked by install_temporal_server
    prometheus)
      { command -v prometheus && command -v promtool; } >/dev/null || need_apt prometheus
      ;;
    *) die "unknown component '$component' (expected: ${ALL_COMPONENTS[*]} prometheus temporal-server)" ;;
  esac
}

install_apt() {
  ((${#apt_packages[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "missing packages (${apt_packages[*]}); run as root or install them"
  log "apt: installing ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # The Debian package creates and may start its own cluster on port 5432, where our private
  # cluster (stack.sh) listens. Stop it and keep it from coming back at boot.
  if [[ " ${apt_packages[*]} " == *" postgresql-$PG_MAJOR "* ]] && command -v pg_lsclusters >/dev/null; then
    if [[ $(pg_lsclusters -h 2>/dev/null) =~ (^|$'\n')$PG_MAJOR\ +main\ +[0-9]+\ +online ]]; then
      log "postgres: stopping the packaged cluster $PG_MAJOR/main (it holds port 5432)"
      pg_ctlcluster "$PG_MAJOR" main stop || true
    fi
    if [[ -f /etc/postgresql/$PG_MAJOR/main/start.conf ]]; then
      echo manual >"/etc/postgresql/$PG_MAJOR/main/start.conf"
    fi
  fi
  # Likewise the packaged redis-server service starts on port 6379 where systemd runs; ours is
  # started by stack.sh. (Without systemd, as in containers, the package starts nothing.)
  if [[ " ${apt_packages[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    log "redis: disabling the packaged redis-server service (it holds port 6379)"
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  # And the packaged prometheus service on 9090, where infra/monitoring.sh runs ours.
  if [[ " ${apt_packages[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    log "prometheus: disabling the packaged prometheus service (it holds port 9090)"
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

install_kafka() {
  local pom="$REPO/infra/kafka/pom.xml" stamp="$KAFKA_LIBS/.pom.sha256" want
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  # The stamp ties the jars to the pom: editing the pom (e.g. a version bump) re-copies them.
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "kafka: jars present ($KAFKA_LIBS)"
    return 0
  fi
  log "kafka: copying jars from Maven into $KAFKA_LIBS"
  local tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"
  # Output to a log: Debian's Maven 3.8.7 prints stray colour codes even with -q -B.
  local mvn_log="$OMS_TOOLS_DIR/kafka-install.log"
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 20 "$mvn_log" >&2
    die "kafka: mvn could not copy the jars pinned in $pom; see $mvn_log"
  fi
  echo "$want" >"$tmp/.pom.sha256"
  # Swap in whole so a concurrent stack.sh never sees half a classpath.
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars installed"
}

# A `go install`ed CLI reports "version 0.0.0-DEV" (the release ldflags are not set), so the
# module version comes from the build info that Go embeds in the binary.
temporal_is_current() {
  [[ -x $TEMPORAL_BIN ]] || return 1
  if ! command -v go >/dev/null; then
    warn "temporal: cannot check the version of $TEMPORAL_BIN without Go; using it as is"
    return 0
  fi
  # Captured first: `grep -q` in a pipe may exit before go has written everything, and the
  # resulting SIGPIPE would read as "wrong version" under pipefail.
  local info
  info="$(go version -m "$TEMPORAL_BIN" 2>/dev/null)" || return 1
  [[ $info =~ [[:space:]]mod[[:space:]]+github\.com/temporalio/cli[[:space:]]+v${TEMPORAL_CLI_VERSION//./\\.}[[:space:]] ]]
}

install_temporal() {
  if temporal_is_current; then
    log "temporal: CLI $TEMPORAL_CLI_VERSION present ($TEMPORAL_BIN)"
    return 0
  fi
  require_go temporal
  local build_log="$OMS_TOOLS_DIR/temporal-build.log"
  log "temporal: building CLI $TEMPORAL_CLI_VERSION with go install (takes minutes the first time; log $build_log)"
  if ! GOBIN="$OMS_TOOLS_DIR/bin" go install "$TEMPORAL_MODULE@v$TEMPORAL_CLI_VERSION" >"$build_log" 2>&1; then
    tail -n 20 "$build_log" >&2
    die "temporal: go install failed; see $build_log"
  fi
  temporal_is_current || die "temporal: built $TEMPORAL_BIN but it does not report version $TEMPORAL_CLI_VERSION"
  log "temporal: CLI $TEMPORAL_CLI_VERSION installed"
}

# go install needs a recent Go; named after the component that needs it.
require_go() {
  command -v go >/dev/null || die "$1: Go >= 1.$GO_MIN_MINOR is needed to build it (Debian's golang is too old)"
  local minor
  minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
  ((${minor:-0} >= GO_MIN_MINOR)) || die "$1: Go >= 1.$GO_MIN_MINOR is needed, found $(go env GOVERSION)"
}

# The production topology's Temporal: the server the CLI embeds (same go.temporal.io/server
# release), its SQL schema tool, and the Web UI server the CLI bundles. go install names the
# binaries after their package directories (server, sql, server), so each is built into its own
# directory and moved to a name that says what it is. A stamp per version makes a rerun free.
TEMPORAL_SERVER_BINARIES=(
  "temporal-server go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION server"
  "temporal-sql-tool go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION sql"
  "temporal-ui-server github.com/temporalio/ui-server/v2/cmd/server@v$TEMPORAL_UI_SERVER_VERSION server"
)

install_temporal_server() {
  local stamp="$TEMPORAL_SERVER_DIR/.installed" want="server $TEMPORAL_SERVER_VERSION ui $TEMPORAL_UI_SERVER_VERSION"
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "temporal-server: server $TEMPORAL_SERVER_VERSION, sql tool and ui-server $TEMPORAL_UI_SERVER_VERSION present ($TEMPORAL_SERVER_DIR)"
    return 0
  fi
  require_go temporal-server
  local build_log="$OMS_TOOLS_DIR/temporal-server-build.log" entry name module built tmp
  mkdir -p "$TEMPORAL_SERVER_DIR"
  : >"$build_log"
  for entry in "${TEMPORAL_SERVER_BINARIES[@]}"; do
    read -r name module built <<<"$entry"
    [[ -x $TEMPORAL_SERVER_DIR/$name ]] && continue
    log "temporal-server: building $name ($module) with go install (minutes, GBs of RAM; log $build_log)"
    tmp="$TEMPORAL_SERVER_DIR/.build-$name"
    rm -rf "$tmp"
    if ! GOBIN="$tmp" go install "$module" >>"$build_log" 2>&1; then
      tail -n 20 "$build_log" >&2
      die "temporal-server: go install $module failed; see $build_log"
    fi
    mv "$tmp/$built" "$TEMPORAL_SERVER_DIR/$name"
    rm -rf "$tmp"
  done
  echo "$want" >"$stamp"
  log "temporal-server: installed in $TEMPORAL_SERVER_DIR"
}

main() {
  local components=("$@")
  ((${#components[@]})) || components=("${ALL_COMPONENTS[@]}")
  local start=$SECONDS c

  mkdir -p "$OMS_TOOLS_DIR/bin" "$OMS_TOOLS_DIR/kafka"
  # Two clones installing at once would race on the shared tools dir.
  exec 9>"$OMS_TOOLS_DIR/install.lock"
  flock 9

  for c in "${components[@]}"; do check_apt "$c"; done
  if ((${#apt_packages[@]} == 0)); then
    log "apt: packages present for: ${components[*]}"
  fi
  install_apt

  for c in "${components[@]}"; do
    case "$c" in
      kafka) install_kafka ;;
      temporal) install_temporal ;;
      temporal-server) install_temporal_server ;;
    esac
  done
  log "install done in $((SECONDS - start))s: ${components[*]}"
}

main "$@"
