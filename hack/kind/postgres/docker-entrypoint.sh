#!/bin/bash
# Entrypoint of the air-gapped PostgreSQL image (hack/kind/build-addon-images.sh):
# Debian's postgresql package behind the documented interface of the official
# postgres image, which is what the chart's bundled PostgreSQL is written for:
#
#   POSTGRES_PASSWORD  superuser password (required, unless
#                      POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER      superuser name (default postgres)
#   POSTGRES_DB        database created for it (default: POSTGRES_USER)
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for TCP clients (scram-sha-256)
#   PGDATA             data directory (default /var/lib/postgresql/data)
#   /docker-entrypoint-initdb.d/  *.sh (run if executable, else sourced) and
#                      *.sql, in name order, once, when PGDATA is empty
#
# It runs as the container's user (the chart sets UID 999 = postgres here)
# and never switches users. Arguments: `postgres [options]` (the default),
# or any other command, which is exec'd as is.
set -Eeuo pipefail

log() { echo "docker-entrypoint: $*" >&2; }

if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi
if [[ ${1:-} != postgres ]]; then exec "$@"; fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA POSTGRES_USER POSTGRES_DB

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  if [[ -z ${POSTGRES_PASSWORD:-} && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
    log "ERROR: the database is uninitialized and POSTGRES_PASSWORD is not set"
    log "  set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)"
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  log "initializing $PGDATA (superuser $POSTGRES_USER)"
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host="$POSTGRES_HOST_AUTH_METHOD" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo
    echo "# Added by docker-entrypoint.sh: every TCP client, password-checked."
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
  # initdb's default is localhost only; clients reach us through the Service.
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  # A temporary server on the Unix socket only, for the init scripts.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start >/dev/null
  export PGHOST=/var/run/postgresql PGUSER=$POSTGRES_USER
  if [[ $POSTGRES_DB != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        log "running $f"
        if [[ -x $f ]]; then "$f"; else
          # shellcheck disable=SC1090 # the scripts are the user's
          . "$f"
        fi ;;
      *.sql)
        log "running $f"
        psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
      *) log "ignoring $f" ;;
    esac
  done
  unset PGHOST PGUSER
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "initialization complete"
fi

exec "$@"
