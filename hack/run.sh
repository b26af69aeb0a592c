#!/usr/bin/env bash
# Starts the User and Auth services on this machine with SQLite under .data/,
# a generated signing key and a bootstrap admin, then prints grpcurl
# commands that work against them. Ctrl-C stops both gracefully and exits 0.
# Called by `make run` after `make build`.
#
# Addresses, each service's own, on loopback by default (0.0.0.0:PORT to
# listen on every interface):
#   USER_GRPC_ADDR (127.0.0.1:50051)  USER_HTTP_ADDR (127.0.0.1:8081)
#   AUTH_GRPC_ADDR (127.0.0.1:50052)  AUTH_HTTP_ADDR (127.0.0.1:8082)
# A port already taken stops the start at once with one line naming it and
# the variable to change. DATA (.data) holds the databases, keys and logs;
# one `make run` per DATA directory: a second is refused before it touches
# anything of the first's.
#
# TLS=1 serves TLS on every port, with a throwaway development CA under
# $DATA/tls (hack/devcerts), the Auth service calling the User service with
# its client certificate, as the chart runs them; TLS_CLIENT_AUTH=require
# passes through (grpcurl then needs the printed -cert/-key). The
# development certificates name localhost, 127.0.0.1 and ::1 only: with
# TLS=1, keep the addresses on loopback (or 0.0.0.0).
set -euo pipefail
# wait -n with pids (below) is bash 5.1's.
if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  echo "make run: needs bash 5.1 or newer, this is $BASH_VERSION (macOS: brew install bash)" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
GRPCURL=${GRPCURL:-$BIN/grpcurl}
DATA=${DATA:-$PWD/.data}
USER_GRPC_ADDR=${USER_GRPC_ADDR:-127.0.0.1:50051}
USER_HTTP_ADDR=${USER_HTTP_ADDR:-127.0.0.1:8081}
AUTH_GRPC_ADDR=${AUTH_GRPC_ADDR:-127.0.0.1:50052}
AUTH_HTTP_ADDR=${AUTH_HTTP_ADDR:-127.0.0.1:8082}
# How long a service may take to answer SERVING before the start is given up.
START_TIMEOUT=${START_TIMEOUT:-30}

die() { echo "make run: $*" >&2; exit 1; }

# dial turns a listen address into one a client on this machine dials:
# "localhost" for loopback or every interface, the host otherwise.
dial() {
  local host=${1%:*} port=${1##*:}
  case $host in "" | 0.0.0.0 | "[::]" | 127.0.0.1 | "[::1]" | localhost) host=localhost ;; esac
  echo "$host:$port"
}

# in_use reports whether something already accepts connections on a
# loopback or wildcard listen address (bash's /dev/tcp: no tool needed, and
# on loopback a free port refuses at once). Other hosts are left to the
# service's own listen error: a connect there may reach a proxy, not this
# machine.
in_use() {
  local d port
  d=$(dial "$1"); port=${d##*:}
  [[ ${d%:*} == localhost ]] || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

mkdir -p "$DATA"

# One copy per DATA directory: a second would share the SQLite files and
# truncate the first one's logs. The lock is taken before anything else,
# created exclusively (noclobber), so two starts cannot both win; a lock
# whose process is gone is stale and replaced.
lock=$DATA/run.pid
owns_lock=0
take_lock() { (set -C; echo $$ >"$lock") 2>/dev/null; }
if ! take_lock; then
  other=$(cat "$lock" 2>/dev/null || true)
  if [[ $other =~ ^[0-9]+$ ]] && ps -p "$other" -o command= 2>/dev/null | grep -q 'run\.sh'; then
    die "already running (pid $other) with DATA=$DATA; its logs: $DATA/user.log, $DATA/auth.log. Stop it with Ctrl-C, or start another with DATA=<dir> and other *_ADDR ports"
  fi
  rm -f "$lock"
  take_lock || die "another make run is starting with DATA=$DATA"
fi
owns_lock=1
trap '[[ $owns_lock == 1 ]] && rm -f "$lock"' EXIT

for v in USER_GRPC_ADDR USER_HTTP_ADDR AUTH_GRPC_ADDR AUTH_HTTP_ADDR; do
  [[ ${!v} == *:[0-9]* ]] || die "$v=${!v}: want HOST:PORT"
  if in_use "${!v}"; then
    die "port ${!v##*:} is in use ($v=${!v}): stop what listens there, or set $v=127.0.0.1:<free port>"
  fi
done

go run ./hack/keygen -dir "$DATA/keys" -if-missing
if [[ ! -s "$DATA/admin-password" ]]; then
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DATA/admin-password"
  chmod 600 "$DATA/admin-password"
fi

USER_DIAL=$(dial "$USER_GRPC_ADDR") AUTH_DIAL=$(dial "$AUTH_GRPC_ADDR")
USER_HTTP_DIAL=$(dial "$USER_HTTP_ADDR") AUTH_HTTP_DIAL=$(dial "$AUTH_HTTP_ADDR")

# grpcurl's transport flags, and each service's TLS settings.
G=-plaintext
SCHEME=http
user_tls=() auth_tls=()
if [[ ${TLS:-0} == 1 ]]; then
  go run ./hack/devcerts -dir "$DATA/tls"
  tls_env() { echo "TLS_CERT_FILE=$DATA/tls/$1/tls.crt TLS_KEY_FILE=$DATA/tls/$1/tls.key TLS_CA_FILE=$DATA/tls/$1/ca.crt"; }
  read -r -a user_tls <<<"$(tls_env user)"
  read -r -a auth_tls <<<"$(tls_env auth)"
  G="-cacert $DATA/tls/ca.crt"
  if [[ ${TLS_CLIENT_AUTH:-none} == require ]]; then
    G="$G -cert $DATA/tls/client/tls.crt -key $DATA/tls/client/tls.key"
  fi
  SCHEME=https
fi
read -r -a GRPCURL_FLAGS <<<"$G"
ISSUER=$SCHEME://$AUTH_HTTP_DIAL

pids=() started=0
stop() {
  [[ ${#pids[@]} -gt 0 ]] || return 0
  if ((started)); then echo; echo "stopping (SIGTERM; the services drain for DRAIN_DELAY=$DRAIN_DELAY)..."; fi
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
cleanup() {
  stop
  [[ $owns_lock != 1 ]] || rm -f "$lock"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT
# Ctrl-Z would stop this script but not make, which waits on it: the
# terminal would hang. Ctrl-C is the way out.
trap 'echo " (Ctrl-Z does nothing here; Ctrl-C stops Gatehouse)"' TSTP

# A short drain suits a laptop; in Kubernetes the default 5s lets
# endpoints update first.
export DRAIN_DELAY=${DRAIN_DELAY:-1s}

# Each service gets its own addresses; GRPC_ADDR and friends exported in
# this shell would otherwise apply to both.
#
# set -m puts each service in a process group of its own, so Ctrl-C (which
# the terminal sends to its foreground group) reaches this script alone,
# and the services get exactly one signal from it: the SIGTERM of stop().
# Had they got the SIGINT too, that SIGTERM would be their second signal,
# which cuts the drain short.
unset_addrs=(-u GRPC_ADDR -u HTTP_ADDR -u HEALTH_ADDR -u METRICS_ADDR)
set -m
env "${unset_addrs[@]}" "${user_tls[@]}" \
GRPC_ADDR="$USER_GRPC_ADDR" HTTP_ADDR="$USER_HTTP_ADDR" \
DATABASE_URL="sqlite://$DATA/user.db" \
JWT_ISSUER="$ISSUER" \
BOOTSTRAP_ADMIN_EMAIL=admin@example.com \
BOOTSTRAP_ADMIN_PASSWORD_FILE="$DATA/admin-password" \
  "$BIN/user" >"$DATA/user.log" 2>&1 &
pids+=($!)
env "${unset_addrs[@]}" "${auth_tls[@]}" \
GRPC_ADDR="$AUTH_GRPC_ADDR" HTTP_ADDR="$AUTH_HTTP_ADDR" \
DATABASE_URL="sqlite://$DATA/auth.db" \
JWT_ISSUER="$ISSUER" \
USER_SERVICE_ADDR="$USER_DIAL" \
JWT_SIGNING_KEYS_DIR="$DATA/keys" \
  "$BIN/auth" >"$DATA/auth.log" 2>&1 &
pids+=($!)
set +m

# wait_serving NAME PREFIX ADDR LOG: polls the health service until it
# answers SERVING; a service that exits is reported with the reason its log
# gives, a listen error translated into the variable to change.
wait_serving() {
  local name=$1 prefix=$2 addr=$3 log=$4 deadline=$((SECONDS + START_TIMEOUT)) i
  while ((SECONDS < deadline)); do
    if "$GRPCURL" "${GRPCURL_FLAGS[@]}" -connect-timeout 1 -max-time 2 "$addr" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING; then
      echo "$name SERVING on $addr (log: $log)"; return 0
    fi
    for i in "${!pids[@]}"; do
      kill -0 "${pids[$i]}" 2>/dev/null && continue
      local svc=user svclog=$DATA/user.log
      ((i == 1)) && svc=auth svclog=$DATA/auth.log
      local reason
      reason=$(grep -m1 -o 'listen [A-Z_]*_ADDR [^ ]*: .*' "$svclog" || true)
      if [[ $reason =~ ^listen\ ([A-Z_]+_ADDR)\ ([^ ]+):\ .*(address already in use|permission denied|(cannot|can\'t) assign requested address) ]]; then
        local var=${svc^^}_${BASH_REMATCH[1]}
        die "$svc could not listen on ${BASH_REMATCH[2]} (${BASH_REMATCH[3]}): set $var=127.0.0.1:<free port>"
      fi
      echo "make run: the $svc service exited; last lines of $svclog:" >&2
      tail -n 20 "$svclog" >&2
      exit 1
    done
    sleep 0.2
  done
  echo "make run: $name did not answer SERVING on $addr within ${START_TIMEOUT}s; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
}
wait_serving user "$USER_GRPC_ADDR" "$USER_DIAL" "$DATA/user.log"
wait_serving auth "$AUTH_GRPC_ADDR" "$AUTH_DIAL" "$DATA/auth.log"
started=1

cat <<MSG

Gatehouse is running. Bootstrap admin: admin@example.com / $(cat "$DATA/admin-password")
Metrics: $SCHEME://$USER_HTTP_DIAL/metrics  $SCHEME://$AUTH_HTTP_DIAL/metrics
Issuer:  $ISSUER (discovery: $ISSUER/.well-known/openid-configuration)
$([[ $SCHEME == https ]] && echo "(https: curl --cacert $DATA/tls/ca.crt ...)")

Try it (grpcurl and gojq are in ./bin; \`export PATH=\$PWD/bin:\$PATH\`):
  grpcurl $G $USER_DIAL list
  grpcurl $G $USER_DIAL grpc.health.v1.Health/Check
  grpcurl $G -d '{"email":"ada@example.com","password":"correct horse battery","display_name":"Ada"}' \\
    $USER_DIAL user.v1.UserService/CreateUser
  grpcurl $G -d '{"email":"ada@example.com","password":"correct horse battery"}' \\
    $AUTH_DIAL auth.v1.AuthService/Login
  # then, with the accessToken and the user's id from above:
  grpcurl $G -H "authorization: Bearer \$TOKEN" -d '{"id":"'\$USER_ID'"}' $USER_DIAL user.v1.UserService/GetUser
Or run every step of the README walk-through at once: GRPCURL_TRANSPORT="$G" hack/walkthrough.sh $USER_DIAL $AUTH_DIAL
Verify a token as another service would: node hack/interop/jose/verify.mjs $ISSUER "\$TOKEN"
  (after npm ci --prefix hack/interop/jose), or run examples/greeter (README: "Verifying Gatehouse tokens")

Ctrl-C stops both services.
MSG

# Ctrl-C (or SIGTERM) runs the trap above: one SIGTERM to each service,
# which drain and exit 0, then exit 0. wait -n returning means a service
# ended without being asked: exit 0 (someone stopped it with SIGTERM) stops
# the other too; anything else is a crash, reported with its status.
while :; do
  set +e
  wait -n "${pids[@]}"
  rc=$?
  set -e
  # A trapped signal (Ctrl-Z's TSTP) ends the wait with 128+n while both
  # services run on: wait again.
  if ((rc > 128)) && kill -0 "${pids[@]}" 2>/dev/null; then continue; fi
  break
done
if ((rc == 0)); then
  cleanup
  echo "stopped."
  exit 0
fi
echo "make run: a service exited with status $rc; see $DATA/user.log and $DATA/auth.log" >&2
exit 1
