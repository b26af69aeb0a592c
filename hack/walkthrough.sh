#!/usr/bin/env bash
# The README walk-through as a script: every step is a real grpcurl call,
# and each result is checked. Usage: hack/walkthrough.sh [USER_ADDR] [AUTH_ADDR]
# (defaults: the addresses `make run` uses).
set -euo pipefail
USER_ADDR=${1:-localhost:50051}
AUTH_ADDR=${2:-localhost:50052}
GRPCURL=${GRPCURL:-$(dirname "$0")/../bin/grpcurl}
EMAIL=${EMAIL:-ada-$RANDOM$RANDOM@example.com}
PASSWORD='correct horse battery'

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -n1; }
expect_fail() { # code, then the grpcurl arguments
  local code=$1; shift
  local out
  if out=$("$GRPCURL" "$@" 2>&1); then
    echo "expected $code, but the call succeeded:" >&2; echo "$out" >&2; exit 1
  fi
  grep -q "Code: $code" <<<"$out" || { echo "expected $code, got:" >&2; echo "$out" >&2; exit 1; }
  echo "refused as expected: $(grep -m1 'Code:' <<<"$out")"
}

step "list services (reflection)"
"$GRPCURL" -plaintext "$USER_ADDR" list

step "health"
"$GRPCURL" -plaintext "$USER_ADDR" grpc.health.v1.Health/Check

step "create a user"
created=$("$GRPCURL" -plaintext -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"display_name\":\"Ada\"}" \
  "$USER_ADDR" user.v1.UserService/CreateUser)
echo "$created"
USER_ID=$(field id <<<"$created")

step "log in"
login=$("$GRPCURL" -plaintext -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login)
echo "$login" | sed 's/\("[a-zA-Z]*Token": "[^"]\{12\}\)[^"]*"/\1…"/'
TOKEN=$(field accessToken <<<"$login")
REFRESH=$(field refreshToken <<<"$login")

step "get the user with the access token"
"$GRPCURL" -plaintext -H "authorization: Bearer $TOKEN" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "without a token: refused"
expect_fail Unauthenticated -plaintext -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "refresh: the refresh token rotates"
refreshed=$("$GRPCURL" -plaintext -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken)
NEW_REFRESH=$(field refreshToken <<<"$refreshed")
[[ -n $NEW_REFRESH && $NEW_REFRESH != "$REFRESH" ]] || { echo "refresh token did not rotate" >&2; exit 1; }
echo "new refresh token issued"

step "reuse of the old refresh token: refused, and the whole family is revoked"
expect_fail Unauthenticated -plaintext -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken
expect_fail Unauthenticated -plaintext -d "{\"refresh_token\":\"$NEW_REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken

step "log in again and log out"
login=$("$GRPCURL" -plaintext -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login)
REFRESH=$(field refreshToken <<<"$login")
"$GRPCURL" -plaintext -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RevokeToken
expect_fail Unauthenticated -plaintext -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken

printf '\n\033[1mwalk-through passed\033[0m\n'
