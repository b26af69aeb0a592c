#!/usr/bin/env bash
# Deletes the kind cluster created by hack/kind/up.sh (CLUSTER_NAME, default
# gatehouse) and its local registry container with what was pushed to it
# (KEEP_REGISTRY=1 keeps the registry). Idempotent: no cluster, nothing to do.
set -euo pipefail
_prog=kind-down
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
ensure_kind
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  "$KIND" delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG" >&2
  step "cluster '$CLUSTER_NAME' deleted"
else
  step "no cluster '$CLUSTER_NAME': nothing to do"
fi
if [[ ${KEEP_REGISTRY:-0} != 1 ]] && docker inspect "$KIND_REGISTRY_NAME" >/dev/null 2>&1; then
  docker rm -f -v "$KIND_REGISTRY_NAME" >/dev/null
  step "registry container '$KIND_REGISTRY_NAME' removed"
fi
