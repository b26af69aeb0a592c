# Sourced by the hack/kind/*.sh scripts: versions, cache layout, logging,
# content-addressed caching and the wrapper-module Go builds.
# hack/kind/README.md ("Why the air-gapped path is built this way") says why.
# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts

# --- pinned versions -----------------------------------------------------------
KIND_VERSION=${KIND_VERSION:-v0.31.0}
K8S_VERSION=${K8S_VERSION:-v1.34.4}     # 1.35+ kubelets refuse cgroup v1 (these VMs are hybrid)
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}    # kubeadm 1.34 lists registry.k8s.io/etcd:3.6.5-0
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.1}
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-v0.0.30} # kind's default StorageClass provisioner
PAUSE_TAG=${PAUSE_TAG:-3.10.1}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}  # kind v0.31's base; trixie's systemd refuses cgroup v1
DEBIAN_MIRROR=${DEBIAN_MIRROR:-}        # empty: the mirror of this machine's apt sources
CLUSTER_NAME=${CLUSTER_NAME:-gatehouse}
# The e2e's own namespace: not `gatehouse`, where the chart README installs, so
# `make e2e` never disrupts a release someone made by hand.
E2E_NAMESPACE=${E2E_NAMESPACE:-gatehouse-e2e}
# Add-ons of the e2e cluster (hack/kind/deploy.sh); air-gapped, built from source.
JAEGER_VERSION=${JAEGER_VERSION:-v1.62.0}           # = the chart's jaeger.image.tag
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v3.7.3}    # Go module github.com/prometheus/prometheus v0.307.3
# NetworkPolicy enforcement (the node's CNI, static ptp, enforces none): kindnet's policy agent.
KNP_VERSION=${KNP_VERSION:-v0.8.0}
# The cluster's local registry (hack/kind/registry.sh): CNCF Distribution, as
# kind's "local registry" guide runs it, reached from the host at
# localhost:$KIND_REGISTRY_PORT and from the node through containerd's mirror
# configuration (the same name inside and out).
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}
KIND_REGISTRY_NAME=${KIND_REGISTRY_NAME:-$CLUSTER_NAME-registry}
KIND_REGISTRY_PORT=${KIND_REGISTRY_PORT:-5001}
# Online default node image: a stock kind image of the same minor. Not verified
# here (these machines reach no registry); pin a digest from kind v0.31.0's
# release notes once one is checked.
ONLINE_NODE_IMAGE=${ONLINE_NODE_IMAGE:-kindest/node:v1.34.3}

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KIND_DIR/../.." && pwd)
CACHE=${KIND_CACHE:-$REPO_ROOT/.cache/kind}
BIN=$CACHE/bin
export KUBECONFIG=${KUBECONFIG:-$CACHE/kubeconfig}

_start=$SECONDS
_prog=${_prog:-kind}
step() { echo "$_prog: [$((SECONDS - _start))s] $*" >&2; }
die() { echo "$_prog: ERROR: $*" >&2; exit 1; }
note() { echo "$_prog:   $*" >&2; }

# timed NAME CMD...: runs CMD, prints "NAME: Ns".
timed() {
  local name=$1 t0=$SECONDS; shift
  "$@" || return
  step "$name: done in $((SECONDS - t0))s"
}

# dbuild ARGS...: `docker build -q ARGS` with the classic builder (a FROM of a
# local image or scratch never pulls), its deprecation notice dropped; prints
# the build's output only when it fails.
dbuild() {
  local err
  err=$(DOCKER_BUILDKIT=0 docker build -q "$@" 2>&1 >/dev/null) && return 0
  printf '%s\n' "$err" | grep -v -e DEPRECATED -e 'BuildKit is currently disabled' -e 'environment-variable' >&2
  return 1
}

# debian_mirror: DEBIAN_MIRROR, else the mirror of this machine's apt
# sources, else deb.debian.org.
debian_mirror() {
  local m=$DEBIAN_MIRROR
  [[ -n $m ]] || m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $m ]] || m=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# debian_rootfs DIR PACKAGE...: a Debian DEBIAN_SUITE minbase root filesystem
# in DIR (debootstrap from DEBIAN_MIRROR) with PACKAGEs installed without
# recommends, daemons never started (policy-rc.d), apt lists and logs dropped.
# Runs debian_rootfs_pre DIR, when defined, between debootstrap and apt-get.
debian_rootfs() {
  local root=$1 mirror; shift
  mirror=$(debian_mirror)
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$mirror"
  cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror $DEBIAN_SUITE main
deb $mirror $DEBIAN_SUITE-updates main
deb ${mirror%/debian}/debian-security $DEBIAN_SUITE-security main
SRC
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  if declare -F debian_rootfs_pre >/dev/null; then debian_rootfs_pre "$root"; fi
  mount -t proc proc "$root/proc"
  trap 'umount "$root/proc" 2>/dev/null || true' RETURN
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d" "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  : >"$root/etc/resolv.conf"
}

# docker_import DIR IMAGE CHANGE...: DIR as a one-layer image, with
# Dockerfile CHANGEs (`docker import --change`; STOPSIGNAL is refused there,
# so it goes through a two-line build).
docker_import() {
  local root=$1 image=$2 stopsig=""; shift 2
  local changes=() c
  for c in "$@"; do
    if [[ $c == "STOPSIGNAL "* ]]; then stopsig=$c; else changes+=(--change "$c"); fi
  done
  tar -C "$root" --numeric-owner --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -cf - . |
    docker import "${changes[@]}" - "$image.import" >/dev/null || die "docker import of $image failed"
  printf 'FROM %s\n%s\n' "$image.import" "$stopsig" | dbuild -t "$image" - || die "docker build of $image failed"
  docker rmi "$image.import" >/dev/null
}

# binary_image REF BINARY[:PATH] [FROM [LINE...]]: an image FROM scratch (or
# FROM) holding BINARY at PATH (default /usr/local/bin/<name>) as its
# ENTRYPOINT, plus Dockerfile LINEs (USER, LABEL, ...). /usr/local/bin is on
# PATH: kubeadm's static pods name their command ("command: [kube-apiserver,
# ...]"); PATH is for programs whose upstream images put them elsewhere and
# whose users name that path (the operator runs /bin/prometheus-config-reloader).
binary_image() {
  local ref=$1 bin=${2%%:*} dest=${2#*:} from=${3:-scratch} name ctx; shift 2; shift $(($# > 0 ? 1 : 0))
  name=$(basename "$bin")
  [[ $dest != "$bin" ]] || dest=/usr/local/bin/$name
  ctx=$(mktemp -d)
  cp "$bin" "$ctx/"
  {
    echo "FROM $from"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    echo "COPY $name $dest"
    echo "ENTRYPOINT [\"$dest\"]"
    printf '%s\n' "$@"
  } >"$ctx/Dockerfile"
  dbuild -t "$ref" "$ctx" || { rm -rf "$ctx"; die "docker build $ref failed"; }
  rm -rf "$ctx"
}

need() { for c in "$@"; do command -v "$c" >/dev/null || die "'$c' not found on PATH"; done; }
need_docker() { docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: $(docker info 2>&1 | tail -n1)"; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root ($1)"; }

# hash_of STRING...: short sha256 of its arguments and of the build helpers
# below. Callers pass every input: versions and the source of the function
# that builds the artifact (`declare -f build_x`), so editing one step of a
# script rebuilds that step only.
hash_of() {
  { printf '%s\n' "$@"; declare -f write_wrapper_module go_build_tools; } | sha256sum | cut -c1-12
}

# run_logged LOG WHAT CMD...: runs CMD (a function is fine) with its output
# in LOG; on failure prints the log's tail and exits ("WHAT failed").
# Call it as a plain statement, never in `if`, `||` or `&&`: there bash
# ignores `set -e` inside functions and subshells, and a failing step would
# go on silently.
run_logged() {
  local log=$1 what=$2 rc; shift 2
  mkdir -p "$(dirname "$log")"
  set +e
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  set -e
  if ((rc != 0)); then
    echo "$_prog: ERROR: $what failed (exit $rc); last lines of $log:" >&2
    tail -n 30 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
}

# mod_file MODULE@VERSION: path of the module's go.mod in the module cache.
mod_file() {
  local j
  j=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$1") || die "go mod download $1 failed: $j"
  jq -r '.GoMod' <<<"$j"
}
mod_dir() {
  local j
  j=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$1") || die "go mod download $1 failed: $j"
  jq -r '.Dir' <<<"$j"
}

# write_wrapper_module DIR MODULE VERSION LOCAL_VERSION TOOL_PKG...
# `go install MODULE@VERSION` is refused when MODULE's go.mod replaces modules
# with local directories (k8s.io/kubernetes' staging repos, etcd's sibling
# modules). This writes a module that requires MODULE and replaces each such
# module with its published LOCAL_VERSION, generated from MODULE's own go.mod;
# its `exclude` directives are copied too. TOOL_PKGs become `tool` directives.
write_wrapper_module() {
  local dir=$1 mod=$2 ver=$3 local_ver=$4; shift 4
  local gomod
  gomod=$(mod_file "$mod@$ver")
  mkdir -p "$dir"
  {
    echo "// Generated by hack/kind/lib.sh from $mod@$ver's go.mod. Do not edit."
    echo "module gatehouse.local/kind-build/$(basename "$dir")"
    echo
    echo "go $(awk '$1 == "go" {print $2; exit}' "$gomod")"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require $mod $ver"
    echo
    for p in "$@"; do echo "tool $p"; done
    echo
    # Both `replace X => ./dir` lines and the same inside `replace ( ... )` blocks.
    awk -v lv="$local_ver" '
      /^replace \(/ {blk=1; next}
      blk && /^\)/ {blk=0; next}
      { line=$0; sub(/^replace[ \t]+/, "", line) }
      (blk || $1 == "replace") && line ~ /=>[ \t]*\.\.?\// && line !~ /FORBIDDEN/ {
        split(line, f, /[ \t]+=>/); m=f[1]; gsub(/[ \t]/, "", m)
        print "replace " m " => " m " " lv
      }' "$gomod"
    awk '/^exclude \(/ {blk=1; print; next} blk {print; if ($0 ~ /^\)/) blk=0; next} /^exclude / {print}' "$gomod"
  } >"$dir/go.mod"
}

# go_build_tools DIR OUTDIR LDFLAGS PKG...: resolves DIR's module graph and
# builds static PKGs into OUTDIR.
go_build_tools() {
  local dir=$1 out=$2 ldflags=$3; shift 3
  mkdir -p "$out"
  (cd "$dir" && GOFLAGS=-mod=mod GOWORK=off go mod tidy) || return
  (cd "$dir" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out/" "$@")
}
