#!/usr/bin/env bash
# Saves what it takes to see why something failed on the kind cluster:
# `kind export logs` (node journal, kubelet, containerd, every container's
# log), `kubectl describe pods -A`, events, the pods' recent logs in the
# Gatehouse and monitoring namespaces, and volumes. The other hack/kind
# scripts and `make e2e` call it when they fail.
#
#   hack/kind/diagnose.sh [NAME]     -> $KIND_CACHE/logs/NAME-<timestamp>/ (NAME: diagnose)
set -uo pipefail
_prog=kind-diagnose
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
ensure_kind
ensure_kubectl
dir=$CACHE/logs/${1:-diagnose}-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dir"
"$KUBECTL" get pods -A -o wide >"$dir/pods.txt" 2>&1
"$KUBECTL" describe pods -A >"$dir/describe-pods.txt" 2>&1
"$KUBECTL" get events -A --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1
"$KUBECTL" get pvc,pv -A -o wide >"$dir/volumes.txt" 2>&1
for ns in "${NAMESPACE:-$E2E_NAMESPACE}" "${MONITORING_NAMESPACE:-monitoring}" gatehouse-smoke; do
  "$KUBECTL" get namespace "$ns" >/dev/null 2>&1 || continue
  "$KUBECTL" -n "$ns" logs --all-containers --prefix --tail=300 -l app.kubernetes.io/name >"$dir/logs-$ns.txt" 2>&1
done
"$KIND" export logs "$dir/kind" --name "$CLUSTER_NAME" >"$dir/kind-export.log" 2>&1
echo "$_prog: diagnostics saved in $dir (pods.txt, describe-pods.txt, events.txt, logs-*.txt, kind/)" >&2
echo "$_prog: pods not Running/Completed:" >&2
awk 'NR == 1 || ($4 != "Running" && $4 != "Completed")' "$dir/pods.txt" | sed 's/^/  /' >&2
