#!/usr/bin/env bash
# Builds, from the Go module proxy alone, the static binaries an air-gapped
# kind node needs, into .cache/kind/build/<component>-<inputs hash>/:
#   k8s      kubeadm kubelet kubectl kube-apiserver kube-controller-manager
#            kube-scheduler kube-proxy  (K8S_VERSION, wrapper-module trick)
#   etcd     etcd etcdctl               (ETCD_VERSION, wrapper-module trick)
#   coredns  coredns                    (COREDNS_VERSION, plain go install)
#   pause    our own static pause: sleeps, reaps children, exits on TERM/INT
#   kind     the kind CLI               (KIND_VERSION) -> also .cache/kind/bin/kind
#   local-path  rancher's local-path-provisioner (LOCAL_PATH_VERSION), the
#            dynamic volume provisioner of kind's default StorageClass
# and the add-ons the e2e cluster runs (hack/kind/build-addon-images.sh):
#   jaeger   Jaeger all-in-one (JAEGER_VERSION, wrapper-module trick); its
#            web UI assets are not in the Go module: the query API works,
#            the UI page is a placeholder
#   prometheus-operator  operator + prometheus-config-reloader
#            (PROMETHEUS_OPERATOR_VERSION, wrapper-module trick)
#   prometheus  Prometheus (PROMETHEUS_VERSION; Go module v0.<minor>.<patch>
#            with its exclude directives), API only: no UI assets
#   kube-network-policies  sigs.k8s.io/kube-network-policies (KNP_VERSION), the
#            NetworkPolicy agent of kindnet, with hack/kind/netpol/nfqueue-compat.patch
#   registry CNCF Distribution's registry (REGISTRY_VERSION, plain go install),
#            the cluster's local registry (hack/kind/registry.sh)
#
#   hack/kind/build-binaries.sh [component...]   (default: the node's: k8s etcd
#                                                  coredns pause kind local-path)
#
# Prints "<component>=<dir>" per component on stdout; progress on stderr.
# A component whose inputs (version, build function, lib.sh's helpers) did not change is
# not rebuilt ("cached: ..."). Cold on 2 cores: k8s ~7 min, etcd + CoreDNS
# ~2-3 min, jaeger ~2 min, prometheus ~3 min, prometheus-operator ~2 min,
# registry ~3 min.
set -euo pipefail
_prog=build-binaries
source "$(dirname "$0")/lib.sh"
need go jq

mkdir -p "$CACHE/build"
exec 9>"$CACHE/build/.lock"
if ! flock -n 9; then
  step "another build-binaries.sh is running; waiting for it ($CACHE/build/.lock)"
  flock 9
fi
components=("$@")
((${#components[@]})) || components=(k8s etcd coredns pause kind local-path)

# component_dir NAME EXTRA...: cache dir keyed by the inputs of NAME: its
# build function's source and its version.
component_dir() { echo "$CACHE/build/$1-$(hash_of "$(declare -f "build_$1")" "$@")"; }

build_k8s() {
  local out=$1 src=$CACHE/src/k8s-$K8S_VERSION
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  local pkgs=()
  for p in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    pkgs+=("k8s.io/kubernetes/cmd/$p")
  done
  rm -rf "$src"
  write_wrapper_module "$src" k8s.io/kubernetes "$K8S_VERSION" "v0${K8S_VERSION#v1}" "${pkgs[@]}"
  go_build_tools "$src" "$out" "$ldflags" "${pkgs[@]}"
  # (Outputs captured first: `cmd | grep -q` fails under pipefail when grep
  # exits before cmd finishes writing.)
  local v
  v=$("$out/kubeadm" version -o short)
  [[ $v == "$K8S_VERSION" ]] || die "kubeadm reports version '$v', want $K8S_VERSION (ldflags?)"
}

build_etcd() {
  local out=$1 src=$CACHE/src/etcd-$ETCD_VERSION
  rm -rf "$src"
  write_wrapper_module "$src" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" \
    go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
  # etcdctl lives in its own module; add it at the same release.
  (cd "$src" && GOFLAGS=-mod=mod go mod edit -require "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION")
  (cd "$src" && GOFLAGS=-mod=mod GOWORK=off go mod tidy)
  # One by one: `go build -o dir/` would name both binaries "v3".
  mkdir -p "$out"
  (cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  (cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  local v
  v=$("$out/etcd" --version)
  [[ $v == *"etcd Version: ${ETCD_VERSION#v}"* ]] || die "etcd --version: $v"
}

build_coredns() {
  local out=$1
  mkdir -p "$out"
  (cd /tmp && GOBIN=$out CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION")
  local v
  v=$("$out/coredns" -version)
  [[ $v == *"CoreDNS-${COREDNS_VERSION#v}"* ]] || die "coredns -version: $v"
}

build_pause() {
  local out=$1 src=$CACHE/src/pause
  rm -rf "$src"; mkdir -p "$src" "$out"
  cat >"$src/main.go" <<'GO'
// pause is the sandbox ("infra") container of a pod: it holds the pod's
// namespaces, reaps zombies (it is PID 1 when the PID namespace is shared) and
// exits 0 on SIGINT/SIGTERM. A static stand-in for registry.k8s.io/pause.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (gatehouse, static)")
		return
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  printf 'module gatehouse.local/pause\n\ngo 1.24\n' >"$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o "$out/pause" .)
}

build_local-path() {
  local out=$1
  mkdir -p "$out"
  (cd /tmp && GOBIN=$out CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION")
  [[ -x $out/local-path-provisioner ]] || die "local-path-provisioner binary missing"
}

build_registry() {
  local out=$1
  mkdir -p "$out"
  (cd /tmp && GOBIN=$out CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
    -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
    "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION")
  local v
  v=$("$out/registry" --version)
  [[ $v == *"$REGISTRY_VERSION"* ]] || die "registry --version: $v"
}

build_kind() {
  local out=$1
  mkdir -p "$out"
  (cd /tmp && GOBIN=$out CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION")
  local v
  v=$("$out/kind" version)
  [[ $v == "kind $KIND_VERSION "* ]] || die "kind version: $v"
}

# The add-ons below pin their upstream releases; the images built from them
# are what the chart's values and hack/kind/deploy.sh reference.
build_jaeger() {
  local out=$1 src=$CACHE/src/jaeger-$JAEGER_VERSION
  rm -rf "$src"
  write_wrapper_module "$src" github.com/jaegertracing/jaeger "$JAEGER_VERSION" "$JAEGER_VERSION" \
    github.com/jaegertracing/jaeger/cmd/all-in-one
  # Jaeger's own go.mod pins sarama through a (non-local) replace; keep it.
  (cd "$src" && go mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0)
  go_build_tools "$src" "$out" "-X github.com/jaegertracing/jaeger/pkg/version.latestVersion=$JAEGER_VERSION" \
    github.com/jaegertracing/jaeger/cmd/all-in-one
  [[ -x $out/all-in-one ]] || die "jaeger all-in-one binary missing"
}

build_prometheus-operator() {
  local out=$1 v=$PROMETHEUS_OPERATOR_VERSION src=$CACHE/src/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION
  local m=github.com/prometheus-operator/prometheus-operator
  rm -rf "$src"
  write_wrapper_module "$src" "$m" "$v" "$v" "$m/cmd/operator" "$m/cmd/prometheus-config-reloader"
  go_build_tools "$src" "$out" "-X github.com/prometheus/common/version.Version=${v#v}" \
    "$m/cmd/operator" "$m/cmd/prometheus-config-reloader"
  local got
  got=$("$out/operator" --version 2>&1 || true)
  [[ $got == *"${v#v}"* ]] || die "operator --version: $got"
}

build_prometheus() {
  local out=$1 v=$PROMETHEUS_VERSION src=$CACHE/src/prometheus-$PROMETHEUS_VERSION
  # Prometheus 3.x.y is published as Go module v0.30x.y (3.7.3 -> v0.307.3).
  local major=${v#v}; major=${major%%.*}
  local rest=${v#v"$major".}
  local minor=${rest%%.*} patch=${rest#*.}
  local modver=v0.$((major * 100 + minor)).$patch
  rm -rf "$src"
  write_wrapper_module "$src" github.com/prometheus/prometheus "$modver" "$modver" \
    github.com/prometheus/prometheus/cmd/prometheus
  go_build_tools "$src" "$out" "-X github.com/prometheus/common/version.Version=${v#v} -X github.com/prometheus/common/version.Branch=HEAD" \
    github.com/prometheus/prometheus/cmd/prometheus
  local got
  got=$("$out/prometheus" --version 2>&1 | head -n1)
  [[ $got == *"version ${v#v}"* ]] || die "prometheus --version: $got"
}

# kube-network-policies hands the first packet of each new connection to a
# pod with policies to itself through an nftables "queue" rule. Kernels
# built without CONFIG_NFT_QUEUE (these VMs: no modules at all) refuse that
# rule, and the agent then enforces nothing while looking healthy. The patch
# queues through the x_tables NFQUEUE target via nft_compat instead (the
# same kernel queue, CONFIG_NETFILTER_XT_TARGET_NFQUEUE), and makes the
# agent clean up its rules on SIGTERM as on SIGINT.
build_kube-network-policies() {
  local out=$1 src=$CACHE/src/kube-network-policies-$KNP_VERSION
  rm -rf "$src"
  mkdir -p "$(dirname "$src")" "$out"
  cp -r "$(mod_dir "sigs.k8s.io/kube-network-policies@$KNP_VERSION")" "$src"
  chmod -R u+w "$src"
  (cd "$src" && git apply -p1 "$KIND_DIR/netpol/nfqueue-compat.patch") || die "applying nfqueue-compat.patch failed"
  (cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/kube-network-policies" ./cmd)
  [[ -x $out/kube-network-policies ]] || die "kube-network-policies binary missing"
}

for c in "${components[@]}"; do
  case $c in
    k8s) key=("$K8S_VERSION") ;;
    etcd) key=("$ETCD_VERSION") ;;
    coredns) key=("$COREDNS_VERSION") ;;
    pause) key=() ;;
    kind) key=("$KIND_VERSION") ;;
    local-path) key=("$LOCAL_PATH_VERSION") ;;
    jaeger) key=("$JAEGER_VERSION") ;;
    prometheus-operator) key=("$PROMETHEUS_OPERATOR_VERSION") ;;
    prometheus) key=("$PROMETHEUS_VERSION") ;;
    kube-network-policies) key=("$KNP_VERSION" "$(sha256sum <"$KIND_DIR/netpol/nfqueue-compat.patch")") ;;
    registry) key=("$REGISTRY_VERSION") ;;
    *) die "unknown component '$c' (want k8s etcd coredns pause kind local-path jaeger prometheus-operator prometheus kube-network-policies registry)" ;;
  esac
  dir=$(component_dir "$c" "${key[@]}")
  if [[ -f $dir/.done ]]; then
    step "cached: $c ${key[*]} ($dir)"
  else
    step "building $c ${key[*]} (log: $dir.log)"
    t0=$SECONDS
    rm -rf "$dir"
    run_logged "$dir.log" "building $c" "build_$c" "$dir"
    touch "$dir/.done"
    step "built $c in $((SECONDS - t0))s: $(find "$dir" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f\n' | sort | tr '\n' ' ')"
  fi
  if [[ $c == kind ]]; then mkdir -p "$BIN" && ln -sfn "$dir/kind" "$BIN/kind"; fi
  echo "$c=$dir"
done
