#!/usr/bin/env bash
# The README walk-through as a script: every step is a real grpcurl call,
# and each result is checked. Usage: hack/walkthrough.sh [USER_ADDR] [AUTH_ADDR]
# (defaults: $USER_ADDR and $AUTH_ADDR, else the addresses `make run` uses).
# GRPCURL_TRANSPORT holds
# grpcurl's transport flags: -plaintext by default; for TLS, e.g.
# "-cacert .data/tls/ca.crt" (what `make run TLS=1` prints).
set -euo pipefail
USER_ADDR=${1:-${USER_ADDR:-localhost:50051}}
AUTH_ADDR=${2:-${AUTH_ADDR:-localhost:50052}}
read -r -a TRANSPORT <<<"${GRPCURL_TRANSPORT:--plaintext}"
GRPCURL=${GRPCURL:-$(dirname "$0")/../bin/grpcurl}
EMAIL=${EMAIL:-ada-$RANDOM$RANDOM@example.com}
PASSWORD='correct horse battery'
NEW_PASSWORD='correct horse battery staple'

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -n1; }
expect_fail() { # code, then the grpcurl arguments
  local code=$1; shift
  local out
  if out=$("$GRPCURL" "$@" 2>&1); then
    echo "expected $code, but the call succeeded:" >&2; echo "$out" >&2; exit 1
  fi
  grep -q "Code: $code" <<<"$out" || { echo "expected $code, got:" >&2; echo "$out" >&2; exit 1; }
  echo "refused as expected: $(grep -m1 'Code:' <<<"$out")$(sed -n 's/.*"reason": "\(.*\)".*/, reason \1/p' <<<"$out")"
  [[ -z ${REASON:-} ]] || grep -q "\"reason\": \"$REASON\"" <<<"$out" || { echo "expected reason $REASON, got:" >&2; echo "$out" >&2; exit 1; }
}

step "list services (reflection)"
"$GRPCURL" "${TRANSPORT[@]}" "$USER_ADDR" list

step "health"
"$GRPCURL" "${TRANSPORT[@]}" "$USER_ADDR" grpc.health.v1.Health/Check

step "describe a method: the contract comes with its comments and errors"
described=$("$GRPCURL" "${TRANSPORT[@]}" "$USER_ADDR" describe user.v1.UserService.GetUser)
echo "$described"
grep -q "Errors:" <<<"$described" || { echo "reflection served no comments" >&2; exit 1; }

step "create a user"
created=$("$GRPCURL" "${TRANSPORT[@]}" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"display_name\":\"Ada\"}" \
  "$USER_ADDR" user.v1.UserService/CreateUser)
echo "$created"
USER_ID=$(field id <<<"$created")

step "log in"
login=$("$GRPCURL" "${TRANSPORT[@]}" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login)
echo "$login" | sed 's/\("[a-zA-Z]*Token": "[^"]\{12\}\)[^"]*"/\1…"/'
TOKEN=$(field accessToken <<<"$login")
REFRESH=$(field refreshToken <<<"$login")

step "get the user with the access token"
"$GRPCURL" "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "without a token: refused"
REASON=TOKEN_MISSING expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "a stale token in the header: listing, health and Login never read it; GetUser says why it refuses"
STALE="authorization: Bearer not-a-token-any-more"
"$GRPCURL" "${TRANSPORT[@]}" -H "$STALE" "$USER_ADDR" list >/dev/null
"$GRPCURL" "${TRANSPORT[@]}" -H "$STALE" "$AUTH_ADDR" grpc.health.v1.Health/Check
"$GRPCURL" "${TRANSPORT[@]}" -H "$STALE" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login >/dev/null
REASON=TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -H "$STALE" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "change the display name (only the masked field is written)"
updated=$("$GRPCURL" "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" \
  -d "{\"id\":\"$USER_ID\",\"display_name\":\"Ada L.\",\"update_mask\":{\"paths\":[\"display_name\"]}}" \
  "$USER_ADDR" user.v1.UserService/UpdateUser)
echo "$updated"
[[ $(field displayName <<<"$updated") == "Ada L." ]] || { echo "display name not changed" >&2; exit 1; }
step "a stale etag: refused, nothing written"
expect_fail Aborted "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" \
  -d "{\"id\":\"$USER_ID\",\"display_name\":\"Stale\",\"etag\":\"1\",\"update_mask\":{\"paths\":[\"display_name\"]}}" \
  "$USER_ADDR" user.v1.UserService/UpdateUser
step "your own password through UpdateUser: refused (ChangePassword needs the current one)"
expect_fail PermissionDenied "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" \
  -d "{\"id\":\"$USER_ID\",\"password\":\"stolen token, new password\",\"update_mask\":{\"paths\":[\"password\"]}}" \
  "$USER_ADDR" user.v1.UserService/UpdateUser

step "refresh: the refresh token rotates"
refreshed=$("$GRPCURL" "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken)
NEW_REFRESH=$(field refreshToken <<<"$refreshed")
[[ -n $NEW_REFRESH && $NEW_REFRESH != "$REFRESH" ]] || { echo "refresh token did not rotate" >&2; exit 1; }
echo "new refresh token issued"

step "reuse of the old refresh token: refused, and the whole family is revoked"
REASON=REFRESH_TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken
REASON=REFRESH_TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$NEW_REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken

step "log out (idempotent)"
"$GRPCURL" "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$NEW_REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RevokeToken
REASON=REFRESH_TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$NEW_REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken

step "log in twice more (two sessions), then change the password with the current one"
other=$("$GRPCURL" "${TRANSPORT[@]}" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login)
OTHER_REFRESH=$(field refreshToken <<<"$other")
"$GRPCURL" "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" \
  -d "{\"id\":\"$USER_ID\",\"current_password\":\"$PASSWORD\",\"new_password\":\"$NEW_PASSWORD\"}" \
  "$USER_ADDR" user.v1.UserService/ChangePassword
step "every earlier session ended: its access token and its refresh token are refused"
REASON=SESSION_ENDED expect_fail Unauthenticated "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser
REASON=REFRESH_TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$OTHER_REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken

step "log in with the new password, then log out everywhere"
login=$("$GRPCURL" "${TRANSPORT[@]}" -d "{\"email\":\"$EMAIL\",\"password\":\"$NEW_PASSWORD\"}" "$AUTH_ADDR" auth.v1.AuthService/Login)
TOKEN=$(field accessToken <<<"$login")
REFRESH=$(field refreshToken <<<"$login")
"$GRPCURL" "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" -d "{\"user_id\":\"$USER_ID\"}" "$AUTH_ADDR" auth.v1.AuthService/RevokeAllSessions
REASON=REFRESH_TOKEN_INVALID expect_fail Unauthenticated "${TRANSPORT[@]}" -d "{\"refresh_token\":\"$REFRESH\"}" "$AUTH_ADDR" auth.v1.AuthService/RefreshToken
REASON=SESSION_ENDED expect_fail Unauthenticated "${TRANSPORT[@]}" -H "authorization: Bearer $TOKEN" -d "{\"id\":\"$USER_ID\"}" "$USER_ADDR" user.v1.UserService/GetUser

step "another service checking the token alone still accepts it until it expires"
"$GRPCURL" "${TRANSPORT[@]}" -d "{\"access_token\":\"$TOKEN\"}" "$AUTH_ADDR" auth.v1.AuthService/ValidateToken | grep -q '"subject"' ||
  { echo "ValidateToken refused a token that has not expired" >&2; exit 1; }
echo "ValidateToken: valid (signature and expiry only; the User service refuses it)"

printf '\n\033[1mwalk-through passed\033[0m\n'
