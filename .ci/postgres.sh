#!/usr/bin/env bash
# CI machine setup, not a user-facing script: installs Debian's PostgreSQL
# if missing, starts the cluster and creates a role that may create the
# throwaway databases the store tests use. Prints the URL for
# GATEHOUSE_TEST_POSTGRES_URL on stdout; progress goes to stderr.
set -euo pipefail
log() { echo "ci/postgres: $*" >&2; }
if ! command -v pg_ctlcluster >/dev/null || [[ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]]; then
  log "installing postgresql from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
read -r ver cluster _ < <(pg_lsclusters -h | head -n1)
if [[ -z "${ver:-}" ]]; then
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  cluster=main
  log "creating cluster $ver/$cluster"
  pg_createcluster "$ver" "$cluster" >&2
fi
# The socket directory must be the postgres user's: a machine where an older
# add-on image build chowned it (see build-addon-images.sh) could not start.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
if ! pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  log "starting cluster $ver/$cluster"
  pg_ctlcluster "$ver" "$cluster" start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $3}')
for _ in $(seq 1 50); do
  su postgres -c "psql -p $port -Atqc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -q" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse') THEN
    CREATE ROLE gatehouse LOGIN PASSWORD 'gatehouse' CREATEDB;
  END IF;
END $$;
SQL
log "PostgreSQL $ver ready on port $port"
echo "postgres://gatehouse:gatehouse@127.0.0.1:$port/postgres?sslmode=disable"
