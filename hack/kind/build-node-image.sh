#!/usr/bin/env bash
# Builds an air-gapped kind node image without any container registry, from
# Debian's apt archive and the Go module proxy only (why each step: see
# hack/kind/README.md, "The node image"):
#
#   1. base image gatehouse.local/kind-base:<hash>: debootstrap --variant=minbase
#      + Debian's containerd/runc/CNI plugins/systemd/iptables..., kind's
#      images/base/files/ read from the Go module cache, kind's systemd
#      trimming, containerd config edits; `docker import` + STOPSIGNAL;
#   2. static binaries (hack/kind/build-binaries.sh): Kubernetes, etcd,
#      CoreDNS, our pause;
#   3. component images FROM scratch (kube-proxy FROM the base: iptables),
#      tagged exactly as `kubeadm config images list` prints;
#   4. node image: base + kubeadm/kubelet/kubectl + /kind/version + a static
#      ptp CNI conflist, kind's local-path StorageClass manifest, the component
#      images (and local-path-provisioner's) imported into containerd's
#      k8s.io namespace (containerd started in a temporary container).
#
#   hack/kind/build-node-image.sh        # prints the node image reference on stdout
#
# Everything is cached by a hash of its inputs (versions, these scripts): a
# second run is a no-op. Must run as root (debootstrap, chroot).
# Environment: K8S_VERSION, ETCD_VERSION, COREDNS_VERSION, KIND_VERSION,
# DEBIAN_SUITE, DEBIAN_MIRROR (see hack/kind/lib.sh), NODE_IMAGE_REPO.
set -euo pipefail
_prog=build-node-image
source "$(dirname "$0")/lib.sh"
need go jq docker debootstrap sha256sum
need_root "debootstrap and chroot"
need_docker
NODE_IMAGE_REPO=${NODE_IMAGE_REPO:-gatehouse.local/kind-node}
PACKAGES=(systemd containerd runc containernetworking-plugins conntrack iptables nftables
  iproute2 ethtool util-linux mount kmod libseccomp2 pigz e2fsprogs bash ca-certificates
  curl jq procps)
DEBIAN_MIRROR=$(debian_mirror)

t_all=$SECONDS
# --- 1. base image ----------------------------------------------------------------
KIND_SRC=$(mod_dir "sigs.k8s.io/kind@$KIND_VERSION")
KIND_FILES=$KIND_SRC/images/base/files
[[ -d $KIND_FILES ]] || die "$KIND_FILES missing (kind $KIND_VERSION module)"
SELF=$(cat "$0")

build_rootfs() { # DIR
  local root=$1
  debian_rootfs "$root" "${PACKAGES[@]}"

  # kind's base files, as its Dockerfile copies them.
  install -m 0755 "$KIND_FILES"/usr/local/bin/* "$root/usr/local/bin/"
  mkdir -p "$root/kind/bin" "$root/LICENSES" "$root/etc/containerd" "$root/etc/systemd/system/kubelet.service.d"
  cp -r "$KIND_FILES/kind/." "$root/kind/"
  find "$root/kind" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/kind/bin" "$root"/kind/bin/*
  install -m 0644 "$KIND_FILES"/LICENSES/* "$root/LICENSES/"
  install -m 0644 "$KIND_FILES/etc/crictl.yaml" "$root/etc/"
  install -m 0644 "$KIND_FILES"/etc/containerd/* "$root/etc/containerd/"
  install -m 0644 "$KIND_FILES"/etc/default/* "$root/etc/default/"
  install -m 0644 "$KIND_FILES"/etc/sysctl.d/* "$root/etc/sysctl.d/"
  install -m 0644 "$KIND_FILES"/etc/systemd/system/*.service "$KIND_FILES"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
  install -m 0644 "$KIND_FILES"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"

  # kind's systemd trimming.
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sfn /lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  chroot "$root" systemctl mask systemd-binfmt.service
  mkdir -p "$root/etc/kubernetes/manifests"

  # Debian's containerd, runc and CNI plugins where kind expects them.
  ln -sfn /usr/bin/containerd "$root/usr/local/bin/containerd"
  ln -sfn /usr/bin/ctr "$root/usr/local/bin/ctr"
  mkdir -p "$root/opt/cni"
  rm -rf "$root/opt/cni/bin"
  ln -sfn /usr/lib/cni "$root/opt/cni/bin"

  # containerd config: no fuse-overlayfs proxy plugin (rootless only, binary
  # absent), our pause tag, and restrict_oom_score_adj (these VMs lack
  # CAP_SYS_RESOURCE: runc refuses negative oom_score_adj).
  local cfg=$root/etc/containerd/config.toml
  awk '/^\[proxy_plugins/ {skip=1; next} /^\[/ {skip=0} !skip' "$cfg" >"$cfg.new"
  sed -i -e "s|sandbox_image = .*|sandbox_image = \"registry.k8s.io/pause:$PAUSE_TAG\"|" \
    -e 's|restrict_oom_score_adj = .*|restrict_oom_score_adj = true|' "$cfg.new"
  # shellcheck disable=SC2015 # die when either grep fails
  grep -q "pause:$PAUSE_TAG" "$cfg.new" && grep -q 'restrict_oom_score_adj = true' "$cfg.new" ||
    die "editing $cfg failed (kind $KIND_VERSION changed its format?)"
  mv "$cfg.new" "$cfg"
  rm -f "$root/etc/systemd/system/containerd-fuse-overlayfs.service"
  chroot "$root" ctr oci spec |
    jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  jq -e .hooks.createContainer "$root/etc/containerd/cri-base.json" >/dev/null || die "cri-base.json is empty"

  rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
  : >"$root/etc/machine-id"
}

base_hash=$(hash_of base "$(declare -f build_rootfs debian_rootfs)" "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "${PACKAGES[*]}" "$KIND_VERSION" "$PAUSE_TAG")
BASE_IMAGE=gatehouse.local/kind-base:$base_hash
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "1/4 cached: base image $BASE_IMAGE"
else
  step "1/4 base image $BASE_IMAGE: debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR + ${#PACKAGES[@]} packages (log: $CACHE/logs/base-$base_hash.log)"
  t0=$SECONDS
  root=$CACHE/rootfs-$base_hash
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
  run_logged "$CACHE/logs/base-$base_hash.log" "building the node root filesystem" build_rootfs "$root"
  note "rootfs $(du -sh "$root" | cut -f1), importing"
  docker_import "$root" "$BASE_IMAGE" 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3'
  rm -rf "$root"
  step "1/4 base image: $((SECONDS - t0))s"
fi

# --- 2. binaries ----------------------------------------------------------------
step "2/4 binaries (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION, pause, local-path-provisioner $LOCAL_PATH_VERSION)"
t0=$SECONDS
bins=$("$KIND_DIR/build-binaries.sh" k8s etcd coredns pause local-path) || die "building the binaries failed (see above)"
K8S_BIN=$(sed -n 's/^k8s=//p' <<<"$bins")
ETCD_BIN=$(sed -n 's/^etcd=//p' <<<"$bins")
COREDNS_BIN=$(sed -n 's/^coredns=//p' <<<"$bins")
PAUSE_BIN=$(sed -n 's/^pause=//p' <<<"$bins")
LOCAL_PATH_BIN=$(sed -n 's/^local-path=//p' <<<"$bins")
mkdir -p "$BIN" && ln -sfn "$K8S_BIN/kubectl" "$BIN/kubectl"
step "2/4 binaries: $((SECONDS - t0))s"

# --- 3. component images ----------------------------------------------------------
KUBEADM=$K8S_BIN/kubeadm
mapfile -t IMAGES < <("$KUBEADM" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
((${#IMAGES[@]} == 7)) || die "kubeadm config images list printed ${#IMAGES[@]} images, want 7: ${IMAGES[*]}"
# kind's default StorageClass: rancher's local-path-provisioner with kind's
# manifest and image names (kind's pkg/build/nodeimage/const_storage.go), so
# `kind create cluster` installs it from /kind/manifests/default-storage.yaml.
# (Without it kind falls back to the in-tree host-path provisioner, whose
# root-owned 0750 directories non-root pods cannot write.)
STORAGE_GO=$KIND_SRC/pkg/build/nodeimage/const_storage.go
LP_IMAGE=$(sed -n 's/^const storageProvisionerImage = "\(.*\)"$/\1/p' "$STORAGE_GO")
LP_HELPER_IMAGE=$(sed -n 's/^const storageHelperImage = "\(.*\)"$/\1/p' "$STORAGE_GO")
[[ -n $LP_IMAGE && -n $LP_HELPER_IMAGE ]] || die "cannot read the storage image names from $STORAGE_GO"
STORAGE_MANIFEST=$(awk -v p="$LP_IMAGE" -v h="$LP_HELPER_IMAGE" '
  /^const defaultStorageManifest = `/ {on=1; next}
  on && /^`$/ {exit}
  on {gsub(/` \+ storageProvisionerImage \+ `/, p); gsub(/` \+ storageHelperImage \+ `/, h); print}' "$STORAGE_GO")
grep -q "image: $LP_IMAGE" <<<"$STORAGE_MANIFEST" || die "cannot extract kind's storage manifest from $STORAGE_GO"
IMAGES+=("$LP_IMAGE" "$LP_HELPER_IMAGE")
comp_hash=$(hash_of components "$SELF" "$base_hash" "${IMAGES[*]}" "$K8S_BIN" "$ETCD_BIN" "$COREDNS_BIN" "$PAUSE_BIN" "$LOCAL_PATH_BIN")
COMP_TAR=$CACHE/images-$comp_hash.tar

if [[ -s $COMP_TAR ]]; then
  step "3/4 cached: component images ($COMP_TAR)"
else
  step "3/4 component images: ${IMAGES[*]}"
  t0=$SECONDS
  for ref in "${IMAGES[@]}"; do
    name=${ref##*/}; name=${name%%:*}
    case $name in
      kube-apiserver|kube-controller-manager|kube-scheduler)
        binary_image "$ref" "$K8S_BIN/$name" ;;
      kube-proxy) # needs iptables, conntrack: FROM the Debian base
        binary_image "$ref" "$K8S_BIN/kube-proxy" "$BASE_IMAGE" ;;
      etcd) binary_image "$ref" "$ETCD_BIN/etcd" ;;
      coredns) binary_image "$ref" "$COREDNS_BIN/coredns" ;;
      pause) binary_image "$ref" "$PAUSE_BIN/pause" ;;
      local-path-provisioner) binary_image "$ref" "$LOCAL_PATH_BIN/local-path-provisioner" ;;
      local-path-helper) # runs kind's setup/teardown shell scripts: sh, mkdir, rm
        printf 'FROM %s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nENTRYPOINT []\n' "$BASE_IMAGE" |
          dbuild -t "$ref" - || die "docker build $ref failed" ;;
      *) die "unexpected image $ref" ;;
    esac
    note "$ref"
  done
  docker save -o "$COMP_TAR.tmp" "${IMAGES[@]}" || die "docker save failed"
  mv "$COMP_TAR.tmp" "$COMP_TAR"
  step "3/4 component images: $((SECONDS - t0))s ($(du -h "$COMP_TAR" | cut -f1))"
fi

# --- 4. node image ------------------------------------------------------------------
node_hash=$(hash_of node "$SELF" "$comp_hash" "$K8S_VERSION")
NODE_IMAGE=$NODE_IMAGE_REPO:$K8S_VERSION-$node_hash
if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  step "4/4 cached: node image $NODE_IMAGE"
else
  step "4/4 node image $NODE_IMAGE"
  t0=$SECONDS
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$K8S_BIN/kubeadm" "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$ctx/"
  echo "$K8S_VERSION" >"$ctx/version"
  printf '%s\n' "$STORAGE_MANIFEST" >"$ctx/default-storage.yaml"
  # Static CNI (the cluster is created with disableDefaultCNI: true): one node,
  # ptp veths, host-local IPAM from kind's default pod subnet's first /24.
  cat >"$ctx/10-kind.conflist" <<'JSON'
{
  "cniVersion": "0.4.0",
  "name": "kind",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.244.0.0/24" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY kubeadm kubelet kubectl /usr/bin/
COPY version /kind/version
COPY 10-kind.conflist /etc/cni/net.d/10-kind.conflist
COPY default-storage.yaml /kind/manifests/default-storage.yaml
DOCKERFILE
  dbuild -t "$NODE_IMAGE.pre" "$ctx" || die "docker build of the node layer failed"

  # Preload: containerd inside a temporary container imports the images into
  # its k8s.io namespace; the container is then committed.
  name=gatehouse-kind-preload-$$
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --privileged --name "$name" --entrypoint sleep \
    -v "$COMP_TAR:/images.tar:ro" "$NODE_IMAGE.pre" infinity >/dev/null || die "starting the preload container failed"
  preload() {
    docker exec "$name" sh -ec '
      containerd >/var/log/preload-containerd.log 2>&1 &
      for i in $(seq 1 60); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
      ctr -n k8s.io images import --no-unpack --digests /images.tar
      ctr -n k8s.io images ls -q
      kill $!; wait $! || true
      rm -f /var/log/preload-containerd.log'
  }
  if ! out=$(preload 2>&1); then
    docker rm -f "$name" >/dev/null 2>&1 || true
    die "importing the images into the node's containerd failed: $out"
  fi
  for ref in "${IMAGES[@]}"; do
    grep -qx "$ref" <<<"$out" || { docker rm -f "$name" >/dev/null; die "$ref missing from the node's containerd after import: $out"; }
  done
  docker stop -t 1 "$name" >/dev/null
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    "$name" "$NODE_IMAGE.commit" >/dev/null || die "docker commit failed"
  docker rm -f "$name" >/dev/null
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$NODE_IMAGE.commit" | dbuild -t "$NODE_IMAGE" - ||
    die "docker build of $NODE_IMAGE failed"
  docker rmi "$NODE_IMAGE.commit" "$NODE_IMAGE.pre" >/dev/null 2>&1 || true
  step "4/4 node image: $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"
fi
# Prune what earlier inputs built: component archives (~800 MB each) and node
# images (~1.3 GB) no cluster's node container uses.
for f in "$CACHE"/images-*.tar; do
  [[ $f == "$COMP_TAR" ]] || { rm -f "$f"; note "pruned $f"; }
done
docker images --format '{{.Repository}}:{{.Tag}}' "$NODE_IMAGE_REPO" | while read -r old; do
  [[ $old == "$NODE_IMAGE" || $old == "$NODE_IMAGE_REPO:latest-built" ]] && continue
  [[ -z $(docker ps -aq --filter "ancestor=$old") ]] || continue # a cluster runs on it
  if docker rmi "$old" >/dev/null 2>&1; then note "pruned $old"; fi
done
docker tag "$NODE_IMAGE" "$NODE_IMAGE_REPO:latest-built"
echo "$NODE_IMAGE" >"$CACHE/node-image"
step "node image ready in $((SECONDS - t_all))s: $NODE_IMAGE"
echo "$NODE_IMAGE"
