#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the postgres tests and for CI.
#
#   scripts/postgres.sh start DIR [PORT]   start (or reuse) a cluster in DIR; print its URL
#   scripts/postgres.sh stop DIR           stop it and delete DIR
#   scripts/postgres.sh bindir             print the PostgreSQL bin folder, or fail
#
# For example:
#   export LEPTON_TEST_POSTGRES_URL=$(scripts/postgres.sh start /tmp/lepton-pg 54329)
#   .venv/bin/pytest -m postgres
#   scripts/postgres.sh stop /tmp/lepton-pg
#
# The cluster listens on 127.0.0.1 only, trusts every loopback connection (no password) and
# does not fsync: it is for tests, never for data. Run as root, the server runs as the
# `postgres` user because initdb refuses root. Only stdout carries the URL; progress and errors
# go to stderr.
set -euo pipefail

readonly MARKER=.lepton-postgres  # stop deletes only folders that start made
readonly DATABASE=lepton_test
readonly PORTS_TO_TRY=20  # when PORT is taken (say, by a cluster a killed run left), try the next

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

bindir() {
  local initdb
  if initdb=$(command -v initdb 2>/dev/null); then
    # Resolved: a link on PATH (/usr/local/bin/initdb) may point into a folder with psql.
    dirname "$(readlink -f "$initdb")"
    return
  fi
  # Debian keeps the server binaries off PATH, one folder per major version: take the newest.
  initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  [[ -x $initdb ]] || return 1
  dirname "$initdb"
}

# Run a server command as the owner of the cluster: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ $EUID -ne 0 ]]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u postgres -- "$@"
  else
    su -s /bin/sh -c "$(printf '%q ' "$@")" postgres
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
  as_owner "$BIN/pg_ctl" status -D "$DIR/data" >/dev/null 2>&1
}

start() {
  local port=${1:-54329} tries=0
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  if [[ -e $DIR && ! -e $DIR/$MARKER ]] && [[ -n $(ls -A "$DIR") ]]; then
    die "$DIR is not empty and was not made by this script; pass a new or empty folder"
  fi
  mkdir -p "$DIR"
  touch "$DIR/$MARKER"
  if [[ $EUID -eq 0 ]]; then
    getent passwd postgres >/dev/null || die "no 'postgres' user to run the server as root; install the postgresql package"
    chown -R postgres: "$DIR"
  fi
  chmod 700 "$DIR"

  if [[ -f $DIR/port ]] && running; then
    port=$(<"$DIR/port")
    say "reusing the cluster already running in $DIR on port $port"
  else
    if [[ ! -f $DIR/data/PG_VERSION ]]; then
      rm -rf "$DIR/data"
      say "initdb $DIR/data"
      as_owner "$BIN/initdb" --pgdata="$DIR/data" --username=postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$DIR/initdb.log" 2>&1 ||
        { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    fi
    # fsync and full_page_writes off: a crash loses a throwaway cluster, and tests run faster.
    local options="-c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off"
    options+=" -c full_page_writes=off -c max_connections=200"
    # 54329 lies in Linux's ephemeral range (32768-60999): a client socket, even one in
    # TIME_WAIT, can hold a port nothing listens on, so a failed bind moves on like a taken port.
    until [[ $tries -ge $PORTS_TO_TRY ]]; do
      if port_in_use "$port"; then
        say "port $port is taken, trying $((port + 1))"
      else
        say "starting on 127.0.0.1:$port (log: $DIR/postgres.log)"
        rm -f "$DIR/postgres.log"  # so the check below reads this attempt's log only
        if as_owner "$BIN/pg_ctl" start --pgdata="$DIR/data" --wait --timeout=60 \
          --log="$DIR/postgres.log" --options="$options -p $port" >/dev/null 2>&1; then
          break
        fi
        if ! grep -q "could not create any TCP/IP sockets" "$DIR/postgres.log"; then
          tail -n 30 "$DIR/postgres.log" >&2 || true
          die "the server did not start; its log is above"
        fi
        say "port $port could not be bound, trying $((port + 1))"
      fi
      port=$((port + 1)) tries=$((tries + 1))
    done
    [[ $tries -lt $PORTS_TO_TRY ]] || die "no free port in $((port - tries))..$((port - 1)); pass another PORT"
    echo "$port" >"$DIR/port"
  fi

  local exists
  exists=$("$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XtAq \
    -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")
  if [[ $exists != 1 ]]; then
    "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DATABASE"
  fi
  echo "postgresql://postgres@127.0.0.1:$port/$DATABASE"
}

stop() {
  [[ -e $DIR ]] || return 0
  [[ -e $DIR/$MARKER ]] || die "$DIR was not made by this script; not touching it"
  if [[ -f $DIR/data/postmaster.pid ]]; then
    say "stopping the cluster in $DIR"
    as_owner "$BIN/pg_ctl" stop --pgdata="$DIR/data" --mode=fast --wait --timeout=60 >/dev/null ||
      as_owner "$BIN/pg_ctl" stop --pgdata="$DIR/data" --mode=immediate --wait >/dev/null ||
      say "could not stop the server of $DIR/data"
  fi
  rm -rf "$DIR"
}

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

command=${1:-}
case $command in
  start | stop)
    [[ $# -ge 2 && -n $2 ]] || usage
    DIR=$(realpath -m "$2")
    [[ $DIR != / ]] || die "DIR must not be /"
    [[ $DIR != *[[:space:]]* ]] || die "DIR must not contain spaces, got '$DIR'"
    BIN=$(bindir) || die "PostgreSQL is not installed (no initdb); on Debian: apt-get install postgresql"
    "$command" "${@:3}"
    ;;
  bindir) bindir || die "PostgreSQL is not installed (no initdb)" ;;
  *) usage ;;
esac
