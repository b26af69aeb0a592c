#!/usr/bin/env bash
# The kind cluster's local registry, wired the way kind's "local registry"
# guide does it (https://kind.sigs.k8s.io/docs/user/local-registry/):
#   1. a registry container, $KIND_REGISTRY_NAME (gatehouse-registry): CNCF
#      Distribution (REGISTRY_VERSION) built from the Go module proxy into a
#      FROM scratch image (hack/kind/registry/config.yml), published on the
#      host's loopback at localhost:$KIND_REGISTRY_PORT (5001) and attached
#      to the "kind" Docker network;
#   2. on every node, containerd's hosts.toml for localhost:$KIND_REGISTRY_PORT
#      pointing at http://$KIND_REGISTRY_NAME:5000 (up.sh sets containerd's
#      config_path), so an image named localhost:5001/... pulls the same bytes
#      on the host and in the cluster;
#   3. the ConfigMap kube-public/local-registry-hosting (KEP-1755), which
#      tools read to find the registry.
# Idempotent; hack/kind/up.sh runs it after creating the cluster, and
# hack/kind/down.sh removes the container (and what was pushed to it).
#
#   hack/kind/registry.sh
#
# Environment: CLUSTER_NAME, KIND_REGISTRY_NAME, KIND_REGISTRY_PORT,
# REGISTRY_IMAGE (an image to run instead of building one, e.g. registry:2
# online).
set -euo pipefail
_prog=kind-registry
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
need docker curl
need_docker
ensure_kind
ensure_kubectl

# --- 1. the registry container --------------------------------------------------------
build_registry_image() {
  local ctx
  ctx=$(mktemp -d)
  cp "$dir/registry" "$KIND_DIR/registry/config.yml" "$ctx/"
  mkdir "$ctx/data"
  # Non-root; the volume is created from the image's own /var/lib/registry,
  # so it starts owned by 65532.
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY registry /bin/registry
COPY config.yml /etc/distribution/config.yml
COPY --chown=65532:65532 data /var/lib/registry
USER 65532:65532
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/bin/registry", "serve", "/etc/distribution/config.yml"]
DOCKERFILE
  dbuild -t "$image" "$ctx" || { rm -rf "$ctx"; die "docker build $image failed"; }
  rm -rf "$ctx"
}
image=${REGISTRY_IMAGE:-}
if [[ -z $image ]]; then
  dir=$("$KIND_DIR/build-binaries.sh" registry | sed -n 's/^registry=//p') || die "building the registry failed"
  image=gatehouse.local/registry:$(hash_of "$REGISTRY_VERSION" "$(sha256sum <"$dir/registry")" "$(cat "$KIND_DIR/registry/config.yml")" "$(declare -f build_registry_image)")
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  [[ -z ${REGISTRY_IMAGE:-} ]] || die "REGISTRY_IMAGE=$image is not in the Docker engine (docker pull it first)"
  build_registry_image
fi

running=$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$KIND_REGISTRY_NAME" 2>/dev/null || true)
if [[ $running != "true $image" ]]; then
  if [[ -n $running ]]; then
    step "replacing container $KIND_REGISTRY_NAME ($running)"
    docker rm -f -v "$KIND_REGISTRY_NAME" >/dev/null
  fi
  step "starting $KIND_REGISTRY_NAME ($image) on 127.0.0.1:$KIND_REGISTRY_PORT"
  err=$(docker run -d --restart=always --name "$KIND_REGISTRY_NAME" \
    -p "127.0.0.1:$KIND_REGISTRY_PORT:5000" "$image" 2>&1 >/dev/null) ||
    die "starting the registry failed: $err
  (port $KIND_REGISTRY_PORT taken? KIND_REGISTRY_PORT=... moves it)"
fi
if [[ $(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$KIND_REGISTRY_NAME") == null ]]; then
  docker network connect kind "$KIND_REGISTRY_NAME" || die "connecting $KIND_REGISTRY_NAME to the kind network failed"
fi
deadline=$((SECONDS + 30))
until curl -fsS -o /dev/null "http://127.0.0.1:$KIND_REGISTRY_PORT/v2/" 2>/dev/null; do
  ((SECONDS < deadline)) || die "the registry does not answer on 127.0.0.1:$KIND_REGISTRY_PORT/v2/: $(docker logs --tail 5 "$KIND_REGISTRY_NAME" 2>&1)"
  sleep 0.5
done

# --- 2. the nodes' containerd -----------------------------------------------------------
for node in $("$KIND" get nodes --name "$CLUSTER_NAME"); do
  d=/etc/containerd/certs.d/localhost:$KIND_REGISTRY_PORT
  printf '[host."http://%s:5000"]\n  capabilities = ["pull", "resolve"]\n' "$KIND_REGISTRY_NAME" |
    docker exec -i "$node" sh -c "mkdir -p '$d' && cat >'$d/hosts.toml'" ||
    die "writing $d/hosts.toml on $node failed"
  docker exec "$node" grep -q 'config_path = "/etc/containerd/certs.d"' /etc/containerd/config.toml ||
    die "$node's containerd has no config_path: recreate the cluster with hack/kind/up.sh"
done

# --- 3. discovery -----------------------------------------------------------------------
"$KUBECTL" apply --server-side --force-conflicts --field-manager=gatehouse-kind -f - >/dev/null <<YAML || die "applying kube-public/local-registry-hosting failed"
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:$KIND_REGISTRY_PORT"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML
step "registry localhost:$KIND_REGISTRY_PORT ready ($KIND_REGISTRY_NAME, $image): push there, pods pull the same name"
