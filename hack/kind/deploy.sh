#!/usr/bin/env bash
# Deploys the e2e stack on the kind cluster, with the images hack/kind/load.sh
# loaded (make deploy runs make kind-load first):
#   1. namespace "monitoring": the Prometheus Operator (its CRDs, RBAC and
#      Deployment from the prometheus-operator Go module's example/ manifests)
#      and one Prometheus (hack/kind/monitoring/prometheus.yaml) that selects
#      every ServiceMonitor and PrometheusRule;
#   2. namespace $NAMESPACE (gatehouse-e2e), enforcing Pod Security "restricted":
#      the chart with hack/kind/values-e2e.yaml (Jaeger on, bundled PostgreSQL,
#      2 replicas of each service, ServiceMonitor, PrometheusRule, dashboards).
# Idempotent: server-side apply and `helm upgrade --install`.
# The chart: the work tree's, with the images hack/kind/load.sh loaded; or,
# with CHART=oci://... and CHART_VERSION (written by load.sh), a released
# chart from a registry, its images the ones it names (make release to the
# cluster's registry, then make deploy CHART=... CHART_VERSION=...).
#
#   hack/kind/deploy.sh           (make deploy)
#
# Environment: CLUSTER_NAME (gatehouse), NAMESPACE (E2E_NAMESPACE, gatehouse-e2e), RELEASE
# (gatehouse), MONITORING_NAMESPACE (monitoring), WAIT_TIMEOUT (seconds, 300),
# HELM_EXTRA_ARGS (appended to helm upgrade, e.g. "--set auth.keys.ids={k1,k2}").
# On failure: hack/kind/diagnose.sh saves pod descriptions, events, logs and
# `kind export logs` under $KIND_CACHE/logs/deploy-<timestamp>/.
set -euo pipefail
_prog=kind-deploy
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
need docker jq
NAMESPACE=${NAMESPACE:-$E2E_NAMESPACE}
RELEASE=${RELEASE:-${E2E_RELEASE:-gatehouse}}
MON_NS=${MONITORING_NAMESPACE:-monitoring}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-300}
ensure_kind
ensure_kubectl
ensure_helm
require_cluster
env_file=$CACHE/images-$CLUSTER_NAME.env
[[ -f $env_file ]] || die "$env_file missing: run make kind-load (hack/kind/load.sh) first"
# shellcheck source=/dev/null
source "$env_file"

fail() { echo "$_prog: ERROR: $*" >&2; "$KIND_DIR/diagnose.sh" deploy; exit 1; }
apply() { "$KUBECTL" apply --server-side --force-conflicts --field-manager=gatehouse-kind "$@" >/dev/null; }

# --- 1. monitoring ----------------------------------------------------------------
t0=$SECONDS
step "1/2 Prometheus Operator $PROMETHEUS_OPERATOR_VERSION and Prometheus in namespace $MON_NS"
OPERATOR_SRC=$(mod_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
restricted_namespace "$MON_NS"
apply -f "$OPERATOR_SRC/example/prometheus-operator-crd/" || fail "applying the monitoring.coreos.com CRDs failed"
# Polled, not `kubectl wait`: right after the apply a CRD has no
# status.conditions yet, and kubectl wait fails on that instead of waiting.
deadline=$((SECONDS + 60))
for crd in prometheuses servicemonitors prometheusrules; do
  until [[ $("$KUBECTL" get "crd/$crd.monitoring.coreos.com" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]]; do
    ((SECONDS < deadline)) || fail "CRD $crd.monitoring.coreos.com not Established within 60s"
    sleep 1
  done
done
# The example manifests name namespace "default" and the upstream images;
# both are rewritten here, nothing else.
manifests=$(mktemp -d)
trap 'rm -rf "$manifests"' EXIT
for f in service-account cluster-role cluster-role-binding deployment service; do
  sed -e "s|namespace: default|namespace: $MON_NS|" \
    -e "s|quay.io/prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION|$PROMETHEUS_CONFIG_RELOADER_IMAGE|" \
    -e "s|image: quay.io/prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION|image: $PROMETHEUS_OPERATOR_IMAGE|" \
    "$OPERATOR_SRC/example/rbac/prometheus-operator/prometheus-operator-$f.yaml" >"$manifests/operator-$f.yaml"
done
# shellcheck disable=SC2015 # die when either grep fails
grep -q "image: $PROMETHEUS_OPERATOR_IMAGE" "$manifests/operator-deployment.yaml" &&
  grep -q -- "--prometheus-config-reloader=$PROMETHEUS_CONFIG_RELOADER_IMAGE" "$manifests/operator-deployment.yaml" ||
  die "rewriting the operator's image references failed (did example/rbac change in $PROMETHEUS_OPERATOR_VERSION?)"
apply -n "$MON_NS" -f "$manifests/" || fail "applying the Prometheus Operator failed"
"$KUBECTL" -n "$MON_NS" rollout status deployment/prometheus-operator --timeout="${WAIT_TIMEOUT}s" >&2 ||
  fail "the Prometheus Operator did not become ready within ${WAIT_TIMEOUT}s"
# spec.image: the image hack/kind/load.sh loaded (upstream's when online).
awk -v img="$PROMETHEUS_IMAGE" -v ver="$PROMETHEUS_VERSION" '
  {print}
  /^kind: Prometheus$/ {prom=1}
  prom && /^spec:$/ {print "  image: " img; prom=0}' "$KIND_DIR/monitoring/prometheus.yaml" |
  sed "s|^  version: .*|  version: $PROMETHEUS_VERSION|" >"$manifests/prometheus.yaml"
apply -n "$MON_NS" -f "$manifests/prometheus.yaml" || fail "applying the Prometheus failed"
sts=prometheus-gatehouse-e2e
deadline=$((SECONDS + WAIT_TIMEOUT))
until "$KUBECTL" -n "$MON_NS" get statefulset "$sts" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "the operator did not create statefulset/$sts within ${WAIT_TIMEOUT}s"
  sleep 2
done
"$KUBECTL" -n "$MON_NS" rollout status "statefulset/$sts" --timeout="${WAIT_TIMEOUT}s" >&2 ||
  fail "Prometheus did not become ready within ${WAIT_TIMEOUT}s"
step "1/2 monitoring ready in $((SECONDS - t0))s"

# --- 2. Gatehouse -----------------------------------------------------------------
t0=$SECONDS
chart_args=("$REPO_ROOT/charts/gatehouse")
image_args=(--set-string "user.image.repository=${USER_IMAGE%:*}" --set-string "user.image.tag=${USER_IMAGE##*:}"
  --set-string "auth.image.repository=${AUTH_IMAGE%:*}" --set-string "auth.image.tag=${AUTH_IMAGE##*:}")
what="images ${USER_IMAGE##*/} ${AUTH_IMAGE##*/}"
if [[ -n ${CHART:-} ]]; then
  chart_args=("$CHART" --version "$CHART_VERSION")
  case $CHART in oci://localhost:* | oci://127.0.0.1:*) chart_args+=(--plain-http) ;; esac
  image_args=()
  what="$CHART:$CHART_VERSION with the images it names"
fi
step "2/2 chart into namespace $NAMESPACE (Pod Security restricted), $what"
restricted_namespace "$NAMESPACE"
log=$CACHE/logs/deploy-helm.log
mkdir -p "$(dirname "$log")"
# Signing keys are state, not configuration: after a rotation (make e2e's
# TestKeyRotation, or `helm upgrade --set auth.keys...`) the release signs
# with kids values-e2e.yaml does not name, and applying that file alone
# would drop the live keys and generate a new k1, invalidating every token
# issued. Carry the release's own auth.keys values over.
keys_values=$CACHE/deploy-$RELEASE-keys.json
keys_args=()
if "$HELM" -n "$NAMESPACE" get values "$RELEASE" -o json 2>/dev/null |
  jq -e 'select(.auth.keys != null) | {auth: {keys: .auth.keys}}' >"$keys_values"; then
  note "keeping the release's signing keys: $(jq -c .auth.keys "$keys_values")"
  keys_args=(-f "$keys_values")
fi
# shellcheck disable=SC2086 # HELM_EXTRA_ARGS is a list of words
"$HELM" upgrade --install "$RELEASE" "${chart_args[@]}" -n "$NAMESPACE" \
  -f "$KIND_DIR/values-e2e.yaml" "${keys_args[@]}" "${image_args[@]}" \
  --set-string "jaeger.image.repository=${JAEGER_IMAGE%:*}" --set-string "jaeger.image.tag=${JAEGER_IMAGE##*:}" \
  --set-string "postgresql.image.repository=${POSTGRES_IMAGE%:*}" --set-string "postgresql.image.tag=${POSTGRES_IMAGE##*:}" \
  ${HELM_EXTRA_ARGS:-} --wait --timeout "${WAIT_TIMEOUT}s" >"$log" 2>&1 ||
  fail "helm upgrade --install failed: $(tail -n 20 "$log")"
note "helm: $(sed -n 's/^STATUS: //p;s/^REVISION: /revision /p' "$log" | paste -sd' ')"
# helm --wait returns once the new pods are ready, while the replaced ones
# drain for lifecycle.drainDelaySeconds more and still answer a
# port-forward. Wait them out, so what follows meets one version.
old_pods=$("$KUBECTL" -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$RELEASE" \
  -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name}{" "}{end}')
if [[ -n $old_pods ]]; then
  note "waiting for the replaced pods to finish draining: $old_pods"
  # shellcheck disable=SC2086 # a list of pod names
  "$KUBECTL" -n "$NAMESPACE" wait --for=delete pod $old_pods --timeout="${WAIT_TIMEOUT}s" >/dev/null ||
    fail "replaced pods still running after ${WAIT_TIMEOUT}s: $old_pods"
fi
"$KUBECTL" -n "$NAMESPACE" get pods -o wide >&2
step "2/2 chart ready in $((SECONDS - t0))s"
step "deployed in $((SECONDS - _start))s; next: make e2e"
