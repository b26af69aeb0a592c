#!/usr/bin/env bash
# Gets every image the e2e deployment runs into the kind node:
#   - Gatehouse's two images, built by hack/images.sh, the e2e tests'
#     in-cluster load generator (hack/loadgen) and the example service
#     (examples/greeter), both FROM scratch;
#   - the add-ons: Jaeger all-in-one, Prometheus Operator + config reloader,
#     Prometheus, PostgreSQL. Online (default) the upstream images, pulled;
#     AIRGAPPED=1 built locally by hack/kind/build-addon-images.sh.
# Images the node already holds (same image ID) are not loaded again.
# Writes the references to $KIND_CACHE/images-<cluster>.env for hack/kind/deploy.sh.
# With CHART set (a released chart, oci://...), Gatehouse's images are not
# built or loaded: the chart names them and the node pulls them from the
# registry (make release to the cluster's registry at localhost:5001).
#
#   hack/kind/load.sh             (make kind-load; AIRGAPPED=1 without a registry)
#
# Environment: CLUSTER_NAME (gatehouse), AIRGAPPED, CHART and CHART_VERSION,
# and hack/images.sh's IMAGE_TAG / IMAGE_REPO / VERSION.
set -euo pipefail
_prog=kind-load
source "$(dirname "$0")/lib.sh"
source "$KIND_DIR/tools.sh"
need docker jq
AIRGAPPED=${AIRGAPPED:-0}
[[ $AIRGAPPED == 0 || $AIRGAPPED == 1 ]] || die "AIRGAPPED must be 0 or 1, not '$AIRGAPPED'"
ensure_kind
ensure_kubectl
require_cluster
NODE=$CLUSTER_NAME-control-plane

# --- 1. Gatehouse -----------------------------------------------------------------
t0=$SECONDS
CHART=${CHART:-}
user_image="" auth_image="" ours=()
if [[ -n $CHART ]]; then
  [[ $CHART == oci://* && -n ${CHART_VERSION:-} ]] || die "CHART must be oci://... and CHART_VERSION set (got CHART=$CHART CHART_VERSION=${CHART_VERSION:-})"
  step "1/3 Gatehouse images: none loaded, the node pulls what $CHART:$CHART_VERSION names"
else
  step "1/3 Gatehouse images (hack/images.sh)"
  mapfile -t ours < <(cd "$REPO_ROOT" && AIRGAPPED=$AIRGAPPED hack/images.sh) || die "hack/images.sh failed"
  ((${#ours[@]} == 2)) || die "hack/images.sh printed ${#ours[@]} image references, want 2: ${ours[*]}"
  for r in "${ours[@]}"; do
    case ${r%:*} in
      *-user) user_image=$r ;;
      *-auth) auth_image=$r ;;
      *) die "hack/images.sh printed '$r', neither a -user nor an -auth image" ;;
    esac
  done
fi
# The load generator the e2e tests run inside the cluster: our code, so
# built here in both modes (FROM scratch pulls nothing).
mkdir -p "$CACHE/loadgen"
(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/loadgen/loadgen" ./hack/loadgen) ||
  die "building hack/loadgen failed"
loadgen_hash=$(hash_of loadgen "$(sha256sum <"$CACHE/loadgen/loadgen")" "$(declare -f binary_image)")
loadgen_image=gatehouse.local/loadgen:$loadgen_hash
docker image inspect "$loadgen_image" >/dev/null 2>&1 ||
  binary_image "$loadgen_image" "$CACHE/loadgen/loadgen:/loadgen" scratch "USER 65532:65532"
ours+=("$loadgen_image")
# The example service (examples/greeter, its own module), which the e2e
# deploys as a stranger's service that trusts Gatehouse tokens.
mkdir -p "$CACHE/greeter"
(cd "$REPO_ROOT/examples/greeter" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/greeter/greeter" .) ||
  die "building examples/greeter failed"
greeter_hash=$(hash_of greeter "$(sha256sum <"$CACHE/greeter/greeter")" "$(declare -f binary_image)")
greeter_image=gatehouse.local/greeter:$greeter_hash
docker image inspect "$greeter_image" >/dev/null 2>&1 ||
  binary_image "$greeter_image" "$CACHE/greeter/greeter:/greeter" scratch "USER 65532:65532"
ours+=("$greeter_image")
step "1/3 ${ours[*]}: $((SECONDS - t0))s"

# --- 2. add-ons -------------------------------------------------------------------
t0=$SECONDS
declare -A addon
if ((AIRGAPPED)); then
  step "2/3 add-on images, built locally (hack/kind/build-addon-images.sh)"
  out=$("$KIND_DIR/build-addon-images.sh") || die "building the add-on images failed (see above)"
  while IFS='=' read -r k v; do addon[$k]=$v; done <<<"$out"
else
  addon=(
    [jaeger]=docker.io/jaegertracing/all-in-one:${JAEGER_VERSION#v}
    [prometheus-operator]=quay.io/prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION
    [prometheus-config-reloader]=quay.io/prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION
    [prometheus]=quay.io/prometheus/prometheus:$PROMETHEUS_VERSION
    [postgres]=docker.io/library/postgres:$(sed -n '/^postgresql:/,/^[a-z]/ s/^    tag: "\(.*\)"$/\1/p' "$REPO_ROOT/charts/gatehouse/values.yaml")
    [kube-network-policies]=registry.k8s.io/networking/kube-network-policies:$KNP_VERSION
  )
  step "2/3 add-on images, upstream"
  for ref in "${addon[@]}"; do
    docker image inspect "$ref" >/dev/null 2>&1 && continue
    note "pulling $ref"
    err=$(docker pull -q "$ref" 2>&1 >/dev/null) ||
      die "cannot pull $ref: ${err##*$'\n'}
  No container registry? AIRGAPPED=1 builds every image locally (Go module proxy + Debian apt)."
  done
fi
for k in jaeger prometheus-operator prometheus-config-reloader prometheus postgres kube-network-policies; do
  [[ -n ${addon[$k]:-} ]] || die "no image for add-on '$k'"
done
step "2/3 add-ons: $((SECONDS - t0))s"

env_file=$CACHE/images-$CLUSTER_NAME.env
{
  echo "# Written by hack/kind/load.sh: the images loaded into kind cluster '$CLUSTER_NAME'."
  echo "CHART=$CHART"
  echo "CHART_VERSION=${CHART_VERSION:-}"
  echo "USER_IMAGE=$user_image"
  echo "AUTH_IMAGE=$auth_image"
  echo "LOADGEN_IMAGE=$loadgen_image"
  echo "GREETER_IMAGE=$greeter_image"
  echo "JAEGER_IMAGE=${addon[jaeger]}"
  echo "PROMETHEUS_OPERATOR_IMAGE=${addon[prometheus-operator]}"
  echo "PROMETHEUS_CONFIG_RELOADER_IMAGE=${addon[prometheus-config-reloader]}"
  echo "PROMETHEUS_IMAGE=${addon[prometheus]}"
  echo "POSTGRES_IMAGE=${addon[postgres]}"
  echo "KNP_IMAGE=${addon[kube-network-policies]}"
} >"$env_file.tmp"
mv "$env_file.tmp" "$env_file"

# --- 3. load ----------------------------------------------------------------------
# What was loaded is remembered per node container, so a recreated cluster
# gets everything again. `kind load image-archive`, not `docker-image`: the
# latter breaks under Docker's containerd image store (kind#3795).
t0=$SECONDS
node_id=$(docker inspect -f '{{.Id}}' "$NODE" 2>/dev/null) || die "node container $NODE not found"
marker=$CACHE/loaded/$node_id
mkdir -p "$CACHE/loaded"
touch "$marker"
want=()
for ref in "${ours[@]}" "${addon[@]}"; do
  id=$(docker image inspect -f '{{.Id}}' "$ref") || die "image $ref missing"
  grep -qxF "$ref $id" "$marker" || want+=("$ref")
done
if ((${#want[@]} == 0)); then
  step "3/3 the node already holds all $((${#ours[@]} + ${#addon[@]})) images"
else
  step "3/3 loading ${#want[@]} image(s) into $NODE: ${want[*]}"
  archive=$CACHE/load-$CLUSTER_NAME.tar
  docker save -o "$archive" "${want[@]}" || die "docker save failed"
  "$KIND" load image-archive --name "$CLUSTER_NAME" "$archive" >&2 || die "kind load image-archive failed"
  rm -f "$archive"
  for ref in "${want[@]}"; do echo "$ref $(docker image inspect -f '{{.Id}}' "$ref")" >>"$marker"; done
  step "3/3 loaded in $((SECONDS - t0))s"
fi
step "done in $((SECONDS - _start))s; references in $env_file"
