#!/usr/bin/env bash
# Starts the User and Auth services on this machine with SQLite under .data/,
# a generated signing key and a bootstrap admin, then prints grpcurl
# commands that work against them. Ctrl-C stops both gracefully.
# Called by `make run` after `make build`. TLS=1 serves TLS on every port
# but the plaintext ones, with a throwaway development CA under .data/tls
# (hack/devcerts), the Auth service calling the User service with its
# client certificate, as the chart runs them; TLS_CLIENT_AUTH=require
# passes through (grpcurl then needs the printed -cert/-key).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
DATA=${DATA:-$PWD/.data}
mkdir -p "$DATA"

go run ./hack/keygen -dir "$DATA/keys" -if-missing
if [[ ! -s "$DATA/admin-password" ]]; then
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DATA/admin-password"
  chmod 600 "$DATA/admin-password"
fi

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

pids=()
stop() {
  [[ ${#pids[@]} -gt 0 ]] || return 0
  echo; echo "stopping (SIGTERM; the services drain for DRAIN_DELAY=$DRAIN_DELAY)..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# A short drain suits a laptop; in Kubernetes the default 5s lets
# endpoints update first.
export DRAIN_DELAY=${DRAIN_DELAY:-1s}

env "${user_tls[@]}" \
DATABASE_URL="sqlite://$DATA/user.db" \
BOOTSTRAP_ADMIN_EMAIL=admin@example.com \
BOOTSTRAP_ADMIN_PASSWORD_FILE="$DATA/admin-password" \
  "$BIN/user" >"$DATA/user.log" 2>&1 &
pids+=($!)
env "${auth_tls[@]}" \
DATABASE_URL="sqlite://$DATA/auth.db" \
JWT_SIGNING_KEYS_DIR="$DATA/keys" \
  "$BIN/auth" >"$DATA/auth.log" 2>&1 &
pids+=($!)

wait_serving() { # name addr log
  for _ in $(seq 1 100); do
    if "$BIN/grpcurl" "${GRPCURL_FLAGS[@]}" "$2" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING; then
      echo "$1 SERVING on $2 (log: $3)"; return 0
    fi
    if ! kill -0 "${pids[@]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$1 did not become ready; last log lines:" >&2
  tail -n 20 "$3" >&2
  exit 1
}
wait_serving user localhost:50051 "$DATA/user.log"
wait_serving auth localhost:50052 "$DATA/auth.log"

cat <<MSG

Gatehouse is running. Bootstrap admin: admin@example.com / $(cat "$DATA/admin-password")
Metrics: $SCHEME://localhost:8081/metrics  $SCHEME://localhost:8082/metrics
Issuer:  $SCHEME://localhost:8082 (discovery: $SCHEME://localhost:8082/.well-known/openid-configuration)
$([[ $SCHEME == https ]] && echo "(https: curl --cacert $DATA/tls/ca.crt ...)")

Try it (grpcurl is in ./bin; \`export PATH=\$PWD/bin:\$PATH\`):
  grpcurl $G localhost:50051 list
  grpcurl $G localhost:50051 grpc.health.v1.Health/Check
  grpcurl $G -d '{"email":"ada@example.com","password":"correct horse battery","display_name":"Ada"}' \\
    localhost:50051 user.v1.UserService/CreateUser
  grpcurl $G -d '{"email":"ada@example.com","password":"correct horse battery"}' \\
    localhost:50052 auth.v1.AuthService/Login
  # then, with the accessToken and the user's id from above:
  grpcurl $G -H "authorization: Bearer \$TOKEN" -d '{"id":"'\$USER_ID'"}' localhost:50051 user.v1.UserService/GetUser
Or run every step of the README walk-through at once: GRPCURL_TRANSPORT="$G" hack/walkthrough.sh
Verify a token as another service would: node hack/interop/jose/verify.mjs $SCHEME://localhost:8082 "\$TOKEN"
  (after npm ci --prefix hack/interop/jose), or run examples/greeter (README: "Verifying Gatehouse tokens")

Ctrl-C stops both services.
MSG
wait -n "${pids[@]}"
echo "a service exited; see $DATA/*.log" >&2
exit 1
