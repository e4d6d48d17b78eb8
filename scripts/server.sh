#!/usr/bin/env bash
# Start, on loopback, PostgreSQL + a Prefect server + an MLflow tracking server (both on PostgreSQL,
# MLflow artifacts on local disk). Idempotent: what already runs is left alone.
#
#   scripts/server.sh            start (make server)
#   scripts/server.sh stop       stop all three (make server-stop)
#   scripts/server.sh env        print the variables that point runs and workers at them
#                                (credentials included: eval "$(make server-env)")
#
# Settings (environment): GATES_SERVER_DIR (state: logs, pids, artifacts; default .servers),
# GATES_PG_PORT (55432), GATES_PREFECT_PORT (4200), GATES_MLFLOW_PORT (5000).
# Logins: at first start, random passwords for PostgreSQL, MLflow's basic-auth admin and Prefect's
# API auth string are written to $GATES_SERVER_DIR/credentials.env (mode 0600, owner only). They
# reach the servers through their environment and files, never a command line (`ps` shows none).
# PostgreSQL comes from Debian's packages (installed here when missing and we are root); as root
# it runs as the `postgres` user, with its data under /tmp/retrain-gates-pg-<port>.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${GATES_BIN:-$REPO/.venv/bin}"
DIR="$(mkdir -p "${GATES_SERVER_DIR:-$REPO/.servers}" && cd "${GATES_SERVER_DIR:-$REPO/.servers}" && pwd)"
PG_PORT="${GATES_PG_PORT:-55432}"
PREFECT_PORT="${GATES_PREFECT_PORT:-4200}"
MLFLOW_PORT="${GATES_MLFLOW_PORT:-5000}"
PGDATA="${GATES_PGDATA:-/tmp/retrain-gates-pg-$PG_PORT}"
HOST=127.0.0.1
PG_URL="$HOST:$PG_PORT"

log() { echo "[server] $*" >&2; }

CREDENTIALS="$DIR/credentials.env"
credentials() {  # generated once, readable by the owner only; sourced by every command below
  if [[ ! -s "$CREDENTIALS" ]]; then
    log "generating credentials in $CREDENTIALS (mode 0600)"
    local gen='import secrets; print(secrets.token_urlsafe(24))'
    (umask 077 && cat > "$CREDENTIALS" <<EOF
GATES_PG_PASSWORD=$("$BIN/python" -c "$gen")
GATES_ADMIN_USER=admin
GATES_MLFLOW_PASSWORD=$("$BIN/python" -c "$gen")
GATES_PREFECT_PASSWORD=$("$BIN/python" -c "$gen")
GATES_FLASK_SECRET=$("$BIN/python" -c "$gen")
EOF
    )
  fi
  chmod 600 "$CREDENTIALS"
  # shellcheck disable=SC1090
  source "$CREDENTIALS"
  PG_PASSWORD="$GATES_PG_PASSWORD"
}
credentials

pg_bin() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [[ -z "$found" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
      log "installing PostgreSQL from Debian's packages"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      found="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    else
      log "PostgreSQL is not installed: apt-get install postgresql (as root)"; exit 3
    fi
  fi
  echo "$found"
}

as_pg() {  # run a PostgreSQL tool as the cluster's owner (never as root)
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

env_vars() {
  cat <<EOF
export PREFECT_API_URL=http://$HOST:$PREFECT_PORT/api
export PREFECT_API_AUTH_STRING=$GATES_ADMIN_USER:$GATES_PREFECT_PASSWORD
export MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT
export MLFLOW_TRACKING_USERNAME=$GATES_ADMIN_USER
export MLFLOW_TRACKING_PASSWORD=$GATES_MLFLOW_PASSWORD
# in the pipeline config: mlflow.tracking_uri: http://$HOST:$MLFLOW_PORT
EOF
}

wait_http() {  # url seconds name
  local deadline=$(( $(date +%s) + $2 ))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if (( $(date +%s) > deadline )); then log "$3 did not answer $1 in $2 s; see $DIR/$3.log"; tail -20 "$DIR/$3.log" >&2 || true; exit 4; fi
    sleep 0.5
  done
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start_postgres() {
  local bin; bin="$(pg_bin)"
  if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    log "initdb $PGDATA"
    mkdir -p "$PGDATA"; chmod 700 "$PGDATA"
    local pwfile; pwfile="$(mktemp)"; chmod 600 "$pwfile"; echo "$PG_PASSWORD" > "$pwfile"
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$PGDATA" "$pwfile"
    as_pg "$bin/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-host=scram-sha-256 \
      --auth-local=trust -E UTF8 >"$DIR/initdb.log" 2>&1
    rm -f "$pwfile"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    log "PostgreSQL on $PG_URL"
    as_pg "$bin/pg_ctl" -D "$PGDATA" -w -t 60 -l "$PGDATA/server.log" start \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $PGDATA" >/dev/null
  fi
  # the password of the credentials file (a cluster from before may have another); via stdin, not argv
  printf "alter user postgres password '%s'" "$PG_PASSWORD" | as_pg "$bin/psql" -h "$PGDATA" -p "$PG_PORT" -U postgres -q -f - >/dev/null
  for db in prefect mlflow; do
    if ! as_pg "$bin/psql" -h "$PGDATA" -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      as_pg "$bin/createdb" -h "$PGDATA" -p "$PG_PORT" -U postgres "$db"
    fi
  done
  as_pg "$bin/psql" -h "$PGDATA" -p "$PG_PORT" -U postgres -d prefect -qc "create extension if not exists pg_trgm" >/dev/null
}

start_prefect() {
  running prefect && return
  log "Prefect server on http://$HOST:$PREFECT_PORT (PostgreSQL database prefect)"
  PREFECT_HOME="$DIR/prefect-home" \
  PREFECT_SERVER_DATABASE_CONNECTION_URL="postgresql+asyncpg://postgres:$PG_PASSWORD@$PG_URL/prefect" \
  PREFECT_SERVER_API_AUTH_STRING="$GATES_ADMIN_USER:$GATES_PREFECT_PASSWORD" \
  PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL="http://$HOST:$PREFECT_PORT/api" \
    setsid nohup "$BIN/prefect" server start --host "$HOST" --port "$PREFECT_PORT" \
    >"$DIR/prefect.log" 2>&1 < /dev/null &
  echo $! > "$DIR/prefect.pid"
}

start_mlflow() {
  running mlflow && return
  log "MLflow server on http://$HOST:$MLFLOW_PORT (PostgreSQL database mlflow, artifacts in $DIR/mlartifacts)"
  mkdir -p "$DIR/mlartifacts"
  (umask 077 && cat > "$DIR/mlflow-auth.ini" <<EOF
[mlflow]
default_permission = READ
database_uri = sqlite:///$DIR/mlflow-auth.db
admin_username = $GATES_ADMIN_USER
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
  )
  # basic-auth app: every request but /health needs a login; the store URI travels in the environment
  MLFLOW_AUTH_CONFIG_PATH="$DIR/mlflow-auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$GATES_MLFLOW_PASSWORD" \
  MLFLOW_FLASK_SERVER_SECRET_KEY="$GATES_FLASK_SECRET" \
  MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://postgres:$PG_PASSWORD@$PG_URL/mlflow" \
  MLFLOW_DISABLE_TELEMETRY=true setsid nohup "$BIN/mlflow" server --app-name basic-auth \
    --artifacts-destination "$DIR/mlartifacts" --serve-artifacts \
    --host "$HOST" --port "$MLFLOW_PORT" --workers 1 \
    >"$DIR/mlflow.log" 2>&1 < /dev/null &
  echo $! > "$DIR/mlflow.pid"
}

stop_all() {
  for name in prefect mlflow; do
    if running "$name"; then
      log "stopping $name"
      kill -TERM -- "-$(cat "$DIR/$name.pid")" 2>/dev/null || kill -TERM "$(cat "$DIR/$name.pid")" || true
    fi
    rm -f "$DIR/$name.pid"
  done
  if [[ -s "$PGDATA/PG_VERSION" ]]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-start}" in
  start)
    start_postgres
    start_prefect
    start_mlflow
    wait_http "http://$HOST:$PREFECT_PORT/api/health" 180 prefect
    wait_http "http://$HOST:$MLFLOW_PORT/health" 120 mlflow
    log "ready; point runs and workers at the servers with:"
    env_vars
    ;;
  stop) stop_all ;;
  env) env_vars ;;
  *) echo "usage: $0 [start|stop|env]" >&2; exit 2 ;;
esac
