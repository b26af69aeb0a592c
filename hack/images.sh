#!/usr/bin/env bash
# Builds the service images (Dockerfile.user, Dockerfile.auth) into the local
# Docker engine; never pushes, needs no registry when air-gapped.
#
#   hack/images.sh [user|auth ...]          (default: both)
#
# Two ways to build, same result (static binaries on scratch, uid 65532):
#   - builder image (default): compiles inside GO_IMAGE (default
#     golang:1.26-bookworm, pulled if missing), context = repository root;
#   - air-gapped (AIRGAPPED=1): compiles with the local Go into .cache/images,
#     `docker import`s the root filesystem (binaries, CA bundle, passwd/group,
#     /data owned by 65532) and builds the Dockerfile's `prebuilt` target.
#     Nothing is pulled. Chosen automatically, with a note, when AIRGAPPED is
#     unset and GO_IMAGE is neither local nor pullable.
#
# Environment:
#   IMAGE_TAG     tag (default: VERSION)
#   VERSION       version stamped into the binaries and labels
#                 (default: git describe --tags --always --dirty, else "dev")
#   IMAGE_REPO    repository prefix (default ghcr.io/gatehouse-dev)
#   AIRGAPPED     1 = local Go, 0 = GO_IMAGE, unset = GO_IMAGE if available
#   GO_IMAGE      builder image for AIRGAPPED=0
#   MAX_IMAGE_MB  size limit per image, default 25 (MB = 10^6 bytes)
#   SIZE_CHECK    uncompressed (default: `docker images` SIZE, what a node
#                 stores) or compressed (gzip'd layers, what a registry stores)
#   CA_BUNDLE     air-gapped: PEM bundle for /etc/ssl/certs (default: Debian's
#                 Mozilla set, without this machine's local CAs)
#   VERBOSE=1     stream `docker build` output (otherwise in .cache/images/*.log)
#
# Prints the built image references on stdout, one per line; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "images: [$((SECONDS - start))s] $*" >&2; }
die() { echo "images: ERROR: $*" >&2; exit 1; }

services=("$@")
((${#services[@]})) || services=(user auth)
for s in "${services[@]}"; do
  [[ $s == user || $s == auth ]] || die "unknown service '$s' (want user and/or auth)"
done

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE_TAG=${IMAGE_TAG:-$VERSION}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/gatehouse-dev}
GO_IMAGE=${GO_IMAGE:-golang:1.26-bookworm}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-25}
SIZE_CHECK=${SIZE_CHECK:-uncompressed}
[[ $SIZE_CHECK == compressed || $SIZE_CHECK == uncompressed ]] ||
  die "SIZE_CHECK must be 'compressed' or 'uncompressed', not '$SIZE_CHECK'"
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
# Fixed file times in the air-gapped layer: same commit, same layer digest.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
CACHE=.cache/images

command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: $(docker info 2>&1 | tail -n1)"
mkdir -p "$CACHE"

# --- which path ---------------------------------------------------------------
if [[ -z ${AIRGAPPED:-} ]]; then
  if docker image inspect "$GO_IMAGE" >/dev/null 2>&1; then
    AIRGAPPED=0
  else
    step "pulling $GO_IMAGE"
    if pull_err=$(docker pull -q "$GO_IMAGE" 2>&1 >/dev/null); then
      AIRGAPPED=0
    elif command -v go >/dev/null; then
      step "cannot pull $GO_IMAGE: ${pull_err##*$'\n'}"
      step "falling back to the air-gapped build with the local Go ($(go env GOVERSION)); AIRGAPPED=1 skips the pull, AIRGAPPED=0 insists on $GO_IMAGE"
      AIRGAPPED=1
    else
      die "cannot pull $GO_IMAGE (${pull_err##*$'\n'}) and no local Go for AIRGAPPED=1"
    fi
  fi
fi
[[ $AIRGAPPED == 0 || $AIRGAPPED == 1 ]] || die "AIRGAPPED must be 0 or 1, not '$AIRGAPPED'"

build() { # service log docker-build-args...
  local svc=$1 log=$2
  shift 2
  # --force-rm: the classic builder otherwise keeps the container of a failed RUN.
  if [[ ${VERBOSE:-0} == 1 ]]; then
    docker build --force-rm "$@" 2>&1 | tee "$log" >&2 || return 1
  elif ! docker build --force-rm "$@" >"$log" 2>&1; then
    echo "images: docker build of $svc failed; last lines of $log:" >&2
    grep -vE '^ ---> |^Removing intermediate container|Running in ' "$log" | tail -n 25 >&2
    return 1
  fi
}
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# Rebuilding a tag leaves the previous image dangling (the created label alone
# changes it); remove it unless a container still uses it.
drop_superseded() { # ref old-id
  local new
  new=$(image_id "$1")
  if [[ -n $2 && $2 != "$new" ]]; then docker image rm "$2" >/dev/null 2>&1 || true; fi
}
common_args=(--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED")

# --- air-gapped: local Go, docker import, --target prebuilt --------------------
if [[ $AIRGAPPED == 1 ]]; then
  command -v go >/dev/null || die "AIRGAPPED=1 needs Go on PATH"
  # GNU tar sets owners, times and order in the layer (macOS: brew install gnu-tar).
  TAR=${TAR:-tar}
  "$TAR" --version 2>/dev/null | grep -q 'GNU tar' || TAR=gtar
  "$TAR" --version 2>/dev/null | grep -q 'GNU tar' || die "AIRGAPPED=1 needs GNU tar (tar or gtar on PATH, or TAR=...)"
  step "air-gapped build: nothing is pulled; version $VERSION, tag $IMAGE_TAG"
  goarch=$(docker version --format '{{.Server.Arch}}')
  stage=$PWD/$CACHE/staging
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/common/etc/ssl/certs" "$stage/common/data" "$stage/context"
  pkgs=()
  for s in "${services[@]}"; do pkgs+=("./services/$s"); done
  step "go build (linux/$goarch) ${pkgs[*]}"
  VERSION=$VERSION GOOS=linux GOARCH=$goarch hack/gobuild.sh "$stage/bin" "${pkgs[@]}"

  # The same files the Dockerfile's build stage writes. CA bundle: Debian's
  # Mozilla set as enabled in /etc/ca-certificates.conf (what the golang image
  # ships), not this host's /etc/ssl/certs bundle, which may also hold
  # machine-local CAs (a corporate or egress-proxy CA) that must not ship
  # silently. CA_BUNDLE=FILE overrides, e.g. to add a corporate CA on purpose.
  ca_out=$stage/common/etc/ssl/certs/ca-certificates.crt
  if [[ -n ${CA_BUNDLE:-} ]]; then
    [[ -s $CA_BUNDLE ]] || die "CA_BUNDLE=$CA_BUNDLE is missing or empty"
    cp "$CA_BUNDLE" "$ca_out"
    step "CA bundle: $CA_BUNDLE"
  elif [[ -f /etc/ca-certificates.conf && -d /usr/share/ca-certificates/mozilla ]]; then
    grep '^mozilla/' /etc/ca-certificates.conf | while read -r f; do
      cat "/usr/share/ca-certificates/$f"
    done >"$ca_out"
    step "CA bundle: Debian's Mozilla set ($(grep -c 'BEGIN CERTIFICATE' "$ca_out") certificates)"
  elif [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$ca_out"
    step "CA bundle: /etc/ssl/certs/ca-certificates.crt (no Debian CA layout; includes any local CAs)"
  else
    die "no CA bundle found (Debian: apt-get install ca-certificates; or set CA_BUNDLE=FILE)"
  fi
  [[ -s $ca_out ]] || die "CA bundle came out empty"
  printf 'root:x:0:0:root:/root:/sbin/nologin\ngatehouse:x:65532:65532:gatehouse:/data:/sbin/nologin\n' \
    >"$stage/common/etc/passwd"
  printf 'root:x:0:\ngatehouse:x:65532:\n' >"$stage/common/etc/group"
  chmod 0644 "$stage/common/etc/passwd" "$stage/common/etc/group" "$ca_out"
  chmod 0755 "$stage/common/etc" "$stage/common/etc/ssl" "$stage/common/etc/ssl/certs"
  chmod 0750 "$stage/common/data"
  chmod 0755 "$stage/bin/"*

  for s in "${services[@]}"; do
    ref=$IMAGE_REPO/gatehouse-$s:$IMAGE_TAG
    rootfs_image=gatehouse.local/rootfs-$s:$IMAGE_TAG
    tarball=$stage/rootfs-$s.tar
    tar_opts=(--sort=name --mtime="@$SOURCE_DATE_EPOCH" --numeric-owner --format=gnu)
    # Everything root-owned and read-only for uid 65532, except /data.
    "$TAR" "${tar_opts[@]}" --owner=0 --group=0 -cf "$tarball" \
      -C "$stage/common" etc -C "$stage/bin" "$s"
    "$TAR" "${tar_opts[@]}" --owner=65532 --group=65532 -rf "$tarball" -C "$stage/common" data
    old_id=$(image_id "$ref")
    step "$s: docker import root filesystem as $rootfs_image"
    docker import "$tarball" "$rootfs_image" >/dev/null
    step "$s: docker build --target prebuilt -> $ref"
    build "$s" "$CACHE/build-$s.log" -f "Dockerfile.$s" --target prebuilt \
      --build-arg "ROOTFS=$rootfs_image" "${common_args[@]}" -t "$ref" "$stage/context" ||
      { docker image rm "$rootfs_image" >/dev/null 2>&1 || true; die "building $ref failed"; }
    docker image rm "$rootfs_image" >/dev/null
    drop_superseded "$ref" "$old_id"
  done

# --- default: compile in GO_IMAGE ----------------------------------------------
else
  step "building in $GO_IMAGE; version $VERSION, tag $IMAGE_TAG"
  goproxy_args=()
  [[ -n ${GOPROXY:-} ]] && goproxy_args=(--build-arg "GOPROXY=$GOPROXY")
  for s in "${services[@]}"; do
    ref=$IMAGE_REPO/gatehouse-$s:$IMAGE_TAG
    old_id=$(image_id "$ref")
    step "$s: docker build --target image -> $ref"
    build "$s" "$CACHE/build-$s.log" -f "Dockerfile.$s" --target image \
      --build-arg "GO_IMAGE=$GO_IMAGE" ${goproxy_args[@]+"${goproxy_args[@]}"} "${common_args[@]}" -t "$ref" . ||
      die "building $ref failed (no registry? AIRGAPPED=1 builds with the local Go and pulls nothing)"
    drop_superseded "$ref" "$old_id"
  done
fi

# --- sizes ----------------------------------------------------------------------
limit=$((MAX_IMAGE_MB * 1000000))
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
too_big=()
for s in "${services[@]}"; do
  ref=$IMAGE_REPO/gatehouse-$s:$IMAGE_TAG
  raw=$(docker image inspect --format '{{.Size}}' "$ref")
  gz=$(docker save "$ref" | gzip -c | wc -c)
  if [[ $SIZE_CHECK == compressed ]]; then checked=$gz; else checked=$raw; fi
  verdict=ok
  if ((checked > limit)); then verdict="TOO BIG"; too_big+=("$ref"); fi
  step "size $ref: $(mb "$raw") uncompressed, $(mb "$gz") compressed; limit $MAX_IMAGE_MB MB $SIZE_CHECK: $verdict"
  echo "$ref"
done
((${#too_big[@]} == 0)) || die "over the ${MAX_IMAGE_MB} MB ($SIZE_CHECK) limit: ${too_big[*]}"
step "done"
