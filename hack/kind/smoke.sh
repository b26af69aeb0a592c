#!/usr/bin/env bash
# Smoke test of the kind cluster with OUR images: builds the service images
# (hack/images.sh), loads them into the cluster (`kind load image-archive`),
# installs the chart with its defaults (SQLite) into a namespace enforcing Pod
# Security "restricted", waits for the rollout, runs `helm test`, checks
# grpc.health.v1.Health/Check through `kubectl port-forward`, and runs
# hack/walkthrough.sh against the port-forwards (over TLS, the chart's default).
#
#   hack/kind/up.sh && hack/kind/smoke.sh          (AIRGAPPED=1 for both: no registry)
#
# Environment: CLUSTER_NAME (gatehouse), NAMESPACE (gatehouse-smoke), RELEASE
# (gatehouse), AIRGAPPED (passed to hack/images.sh), KEEP=1 leaves the release
# installed (default: uninstalled and the namespace deleted on success).
# On failure: hack/kind/diagnose.sh saves pod descriptions, events, logs and
# `kind export logs` under $KIND_CACHE/logs/smoke-<timestamp>/.
set -euo pipefail
_prog=kind-smoke
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
need docker jq
NAMESPACE=${NAMESPACE:-gatehouse-smoke}
RELEASE=${RELEASE:-gatehouse}
GRPCURL=${GRPCURL:-$REPO_ROOT/bin/grpcurl}
[[ -x $GRPCURL ]] || die "$GRPCURL missing (make tools builds it)"
ensure_kind
ensure_kubectl
ensure_helm
require_cluster

pf_pids=()
cleanup() { for p in "${pf_pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "$_prog: ERROR: $*" >&2; "$KIND_DIR/diagnose.sh" smoke; exit 1; }
phase() { step "$1: done in $((SECONDS - $2))s"; }

# --- 1. images --------------------------------------------------------------------
t0=$SECONDS
step "1/6 building the service images (hack/images.sh${AIRGAPPED:+, AIRGAPPED=$AIRGAPPED})"
mapfile -t refs < <(cd "$REPO_ROOT" && hack/images.sh) || die "hack/images.sh failed"
((${#refs[@]} == 2)) || die "hack/images.sh printed ${#refs[@]} image references, want 2: ${refs[*]}"
tag=${refs[0]##*:}
for r in "${refs[@]}"; do [[ ${r##*:} == "$tag" ]] || die "images have different tags: ${refs[*]}"; done
phase "1/6 images ${refs[*]}" "$t0"

# --- 2. load ----------------------------------------------------------------------
# `kind load image-archive`, not `kind load docker-image`: the latter breaks
# under Docker's containerd image store (kind#3795).
t0=$SECONDS
archive=$CACHE/smoke-images.tar
docker save -o "$archive" "${refs[@]}" || die "docker save failed"
"$KIND" load image-archive --name "$CLUSTER_NAME" "$archive" >&2 || die "kind load image-archive failed"
rm -f "$archive"
phase "2/6 loaded into the node" "$t0"

# --- 3. install -------------------------------------------------------------------
t0=$SECONDS
restricted_namespace "$NAMESPACE"
mkdir -p "$CACHE/logs"
"$HELM" upgrade --install "$RELEASE" "$REPO_ROOT/charts/gatehouse" -n "$NAMESPACE" \
  --set-string image.tag="$tag" >"$CACHE/logs/smoke-helm-install.log" 2>&1 ||
  fail "helm upgrade --install failed: $(cat "$CACHE/logs/smoke-helm-install.log")"
note "helm upgrade --install $RELEASE (image.tag=$tag): $(sed -n 's/^STATUS: //p;s/^REVISION: /revision /p' "$CACHE/logs/smoke-helm-install.log" | paste -sd' ')"
fullname=$RELEASE-gatehouse
[[ $RELEASE == gatehouse* ]] && fullname=$RELEASE
"$KUBECTL" -n "$NAMESPACE" rollout status "deployment/$fullname-user" "deployment/$fullname-auth" --timeout=300s >&2 ||
  fail "rollout of $fullname-user / $fullname-auth did not finish within 300s"
phase "3/6 chart installed and rolled out (namespace $NAMESPACE, restricted)" "$t0"

# --- 4. helm test -----------------------------------------------------------------
t0=$SECONDS
# No --logs: the chart deletes a succeeded test pod, and helm then fails to fetch its logs.
"$HELM" test "$RELEASE" -n "$NAMESPACE" --timeout 120s >"$CACHE/logs/smoke-helm-test.log" 2>&1 ||
  fail "helm test failed: $(cat "$CACHE/logs/smoke-helm-test.log")"
note "$(grep -E 'TEST SUITE|Phase' "$CACHE/logs/smoke-helm-test.log" | tr -s ' ' | paste -sd' ')"
phase "4/6 helm test" "$t0"

# --- 5. port-forward + health -----------------------------------------------------
t0=$SECONDS
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
forward() { # SERVICE PORT: sets FORWARDED_PORT to the local port
  local local_port log
  local_port=$(free_port)
  log=$CACHE/logs/port-forward-$1.log
  mkdir -p "$CACHE/logs"
  "$KUBECTL" -n "$NAMESPACE" port-forward "svc/$1" "$local_port:$2" >"$log" 2>&1 &
  pf_pids+=($!)
  for _ in $(seq 1 50); do
    if grep -q '^Forwarding from' "$log"; then FORWARDED_PORT=$local_port; return; fi
    kill -0 "${pf_pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  fail "kubectl port-forward svc/$1 did not start: $(cat "$log")"
}
forward "$fullname-user" 50051; user_port=$FORWARDED_PORT
forward "$fullname-auth" 50052; auth_port=$FORWARDED_PORT
# TLS is on by default: trust the release's CA (the certificates name
# localhost, so the port-forwarded addresses verify); plaintext otherwise.
transport=-plaintext
ca=$("$KUBECTL" -n "$NAMESPACE" get secret "$fullname-user-tls" --ignore-not-found -o 'jsonpath={.data.ca\.crt}')
if [[ -n $ca ]]; then
  base64 -d <<<"$ca" >"$CACHE/smoke-ca.crt"
  transport="-cacert $CACHE/smoke-ca.crt"
fi
read -r -a transport_flags <<<"$transport"
for pair in "user:$user_port" "auth:$auth_port"; do
  out=$("$GRPCURL" "${transport_flags[@]}" "localhost:${pair#*:}" grpc.health.v1.Health/Check 2>&1) ||
    fail "health check of the ${pair%%:*} service failed: $out"
  grep -q '"status": "SERVING"' <<<"$out" || fail "${pair%%:*} service is not SERVING: $out"
  note "${pair%%:*} (localhost:${pair#*:}): $(tr -d '\n ' <<<"$out")"
done
phase "5/6 port-forward + grpc.health.v1.Health/Check SERVING on both" "$t0"

# --- 6. walk-through --------------------------------------------------------------
t0=$SECONDS
GRPCURL=$GRPCURL GRPCURL_TRANSPORT=$transport "$REPO_ROOT/hack/walkthrough.sh" "localhost:$user_port" "localhost:$auth_port" >&2 ||
  fail "hack/walkthrough.sh failed"
phase "6/6 hack/walkthrough.sh through the port-forwards" "$t0"

if [[ ${KEEP:-0} != 1 ]]; then
  "$HELM" uninstall "$RELEASE" -n "$NAMESPACE" >&2 || true
  "$KUBECTL" delete namespace "$NAMESPACE" --wait=false >&2 || true
fi
step "smoke test passed in $((SECONDS - _start))s"
