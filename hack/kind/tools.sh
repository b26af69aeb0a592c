# Sourced by hack/kind/*.sh after lib.sh: locates or builds kind, kubectl, helm,
# and the checks and objects the cluster scripts share.
# shellcheck shell=bash

ensure_kind() {
  KIND=$BIN/kind
  if [[ ! -x $KIND ]] || ! "$KIND" version 2>/dev/null | grep -q "kind $KIND_VERSION "; then
    "$KIND_DIR/build-binaries.sh" kind >/dev/null || die "building kind $KIND_VERSION failed"
  fi
}

ensure_kubectl() {
  if [[ -n ${KUBECTL:-} ]]; then
    return
  elif [[ -x $BIN/kubectl ]]; then # K8S_VERSION's, from build-node-image.sh / build-binaries.sh
    KUBECTL=$BIN/kubectl
  elif command -v kubectl >/dev/null; then
    KUBECTL=$(command -v kubectl)
  else
    local dir
    dir=$("$KIND_DIR/build-binaries.sh" k8s | sed -n 's/^k8s=//p') || die "building kubectl failed"
    mkdir -p "$BIN"
    ln -sfn "$dir/kubectl" "$BIN/kubectl"
    KUBECTL=$BIN/kubectl
  fi
}

ensure_helm() {
  if [[ -n ${HELM:-} ]]; then
    return
  elif [[ -x $REPO_ROOT/bin/helm ]]; then
    HELM=$REPO_ROOT/bin/helm
  else
    step "building helm (version pinned in hack/validate/go.mod) into bin/"
    (cd "$REPO_ROOT/hack/validate" && GOBIN=$REPO_ROOT/bin go install helm.sh/helm/v3/cmd/helm) ||
      die "building helm failed"
    HELM=$REPO_ROOT/bin/helm
  fi
}

# require_cluster: the kind cluster exists and its API server answers; its
# kubeconfig is (re)written to $KUBECONFIG. After ensure_kind, ensure_kubectl.
require_cluster() {
  "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME" ||
    die "no kind cluster '$CLUSTER_NAME': run make kind-up first (AIRGAPPED=1 without a registry)"
  "$KIND" export kubeconfig --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1
  "$KUBECTL" get --raw /readyz >/dev/null || die "cluster '$CLUSTER_NAME' does not answer /readyz"
}

# restricted_namespace NS: creates or updates NS enforcing Pod Security
# "restricted" (server-side apply: idempotent).
restricted_namespace() {
  "$KUBECTL" create namespace "$1" --dry-run=client -o yaml |
    "$KUBECTL" label --local -f - -o yaml \
      pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest |
    "$KUBECTL" apply --server-side --force-conflicts --field-manager=gatehouse-kind -f - >/dev/null ||
    die "creating namespace $1 failed"
}
