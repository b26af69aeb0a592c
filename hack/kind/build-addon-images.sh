#!/usr/bin/env bash
# Builds, without any container registry, the images of the add-ons the e2e
# cluster runs next to Gatehouse (hack/kind/deploy.sh), from the Go module
# proxy and Debian's apt archive only:
#
#   jaeger                      gatehouse.local/jaeger-all-in-one:<JAEGER_VERSION>
#   prometheus-operator         gatehouse.local/prometheus-operator:<PROMETHEUS_OPERATOR_VERSION>
#   prometheus-config-reloader  gatehouse.local/prometheus-config-reloader:<PROMETHEUS_OPERATOR_VERSION>
#   prometheus                  gatehouse.local/prometheus:<PROMETHEUS_VERSION>
#   postgres                    gatehouse.local/postgres:15-<DEBIAN_SUITE>
#   kube-network-policies       gatehouse.local/kube-network-policies:<KNP_VERSION>-nfqueue-compat
#
# The Go programs are the upstream releases built by hack/kind/build-binaries.sh
# (static, FROM scratch, the upstream images' users). Two differences from the
# upstream images: Jaeger's and Prometheus' web UIs are placeholders (their
# JavaScript assets are not in the Go modules; the query APIs are complete),
# and PostgreSQL is Debian's postgresql-15 behind hack/kind/postgres/docker-entrypoint.sh,
# which implements the official image's documented interface (POSTGRES_*,
# PGDATA, /docker-entrypoint-initdb.d) as the chart uses it, as UID/GID 999.
#
#   hack/kind/build-addon-images.sh      # prints "<name>=<image>" lines on stdout
#
# An image whose inputs (versions, binaries, this script) did not change is
# kept ("cached: ..."): each carries its input hash as a label. Must run as
# root (debootstrap and chroot, for PostgreSQL).
set -euo pipefail
_prog=build-addon-images
source "$(dirname "$0")/lib.sh"
need go jq docker debootstrap sha256sum
need_root "debootstrap and chroot"
need_docker
REPO=${ADDON_IMAGE_REPO:-gatehouse.local}
LABEL=dev.gatehouse.inputs

# cached REF HASH: true when REF exists and was built from inputs HASH.
cached() { [[ $(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null) == "$2" ]]; }

# --- PostgreSQL from Debian -------------------------------------------------------
PG_MAJOR=15 # bookworm's
PG_REF=$REPO/postgres:$PG_MAJOR-$DEBIAN_SUITE
# The postgres user and group get the official image's 999 before the package
# would pick a system id: the chart runs the container as UID/GID 999.
debian_rootfs_pre() {
  chroot "$1" groupadd -r -g 999 postgres
  chroot "$1" useradd -r -u 999 -g 999 -d /var/lib/postgresql -s /bin/bash postgres
}
build_postgres_rootfs() { # DIR
  local root=$1
  debian_rootfs "$root" "postgresql-$PG_MAJOR"
  # The package's default cluster: the entrypoint creates one in PGDATA.
  rm -rf "$root/var/lib/postgresql/$PG_MAJOR" "$root/etc/postgresql/$PG_MAJOR"
  install -m 0755 "$KIND_DIR/postgres/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  # Inside the chroot: the rootfs's /var/run is an absolute symlink to /run,
  # which from outside would resolve to (and chown) the host's /run/postgresql.
  chroot "$root" install -d -o 999 -g 999 -m 0700 /var/lib/postgresql/data
  chroot "$root" install -d -o 999 -g 999 -m 2775 /var/run/postgresql
  chroot "$root" install -d -m 0755 /docker-entrypoint-initdb.d
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
}
PG_CONFIG=(
  "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  'ENV PGDATA=/var/lib/postgresql/data' 'ENV LANG=C.UTF-8' 'USER 999:999' 'EXPOSE 5432'
  'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' 'CMD ["postgres"]' 'STOPSIGNAL SIGINT'
)
pg_hash=$(hash_of postgres "$(declare -f build_postgres_rootfs debian_rootfs debian_rootfs_pre docker_import)" \
  "$(cat "$KIND_DIR/postgres/docker-entrypoint.sh")" "${PG_CONFIG[*]}" "$DEBIAN_SUITE" "$(debian_mirror)" "$PG_MAJOR")
if cached "$PG_REF" "$pg_hash"; then
  step "cached: $PG_REF"
else
  t0=$SECONDS
  root=$CACHE/rootfs-postgres-$pg_hash
  step "building $PG_REF: debootstrap $DEBIAN_SUITE + postgresql-$PG_MAJOR (log: $CACHE/logs/postgres-$pg_hash.log)"
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
  run_logged "$CACHE/logs/postgres-$pg_hash.log" "building the PostgreSQL root filesystem" build_postgres_rootfs "$root"
  docker_import "$root" "$PG_REF" "${PG_CONFIG[@]}" "LABEL $LABEL=$pg_hash"
  rm -rf "$root"
  step "built $PG_REF in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$PG_REF" | awk '{printf "%.0f MB", $1/1e6}'))"
fi
echo "postgres=$PG_REF"

# --- Go programs FROM scratch ------------------------------------------------------
t0=$SECONDS
bins=$("$KIND_DIR/build-binaries.sh" jaeger prometheus-operator prometheus kube-network-policies) || die "building the add-on binaries failed (see above)"
JAEGER_BIN=$(sed -n 's/^jaeger=//p' <<<"$bins")
KNP_BIN=$(sed -n 's/^kube-network-policies=//p' <<<"$bins")
OPERATOR_BIN=$(sed -n 's/^prometheus-operator=//p' <<<"$bins")
PROMETHEUS_BIN=$(sed -n 's/^prometheus=//p' <<<"$bins")
step "binaries: $((SECONDS - t0))s"

# go_image NAME REF BINARY:PATH USER: the binary FROM scratch at PATH (where
# the upstream image has it: the operator names some of these paths) as USER.
go_image() {
  local name=$1 ref=$2 bin=$3 user=$4 hash
  hash=$(hash_of "$name" "$(declare -f binary_image dbuild)" "$(sha256sum <"${bin%%:*}")" "${bin#*:}" "$user")
  if cached "$ref" "$hash"; then
    step "cached: $ref"
  else
    binary_image "$ref" "$bin" scratch "USER $user" "LABEL $LABEL=$hash"
    step "built $ref ($(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}'))"
  fi
  echo "$name=$ref"
}
# 10001 and 65534 are the users of the upstream jaegertracing and
# prometheus-operator / prometheus images.
go_image jaeger "$REPO/jaeger-all-in-one:${JAEGER_VERSION#v}" "$JAEGER_BIN/all-in-one:/go/bin/all-in-one-linux" 10001
go_image prometheus-operator "$REPO/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION" "$OPERATOR_BIN/operator:/bin/operator" 65534
go_image prometheus-config-reloader "$REPO/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION" \
  "$OPERATOR_BIN/prometheus-config-reloader:/bin/prometheus-config-reloader" 65534
go_image prometheus "$REPO/prometheus:$PROMETHEUS_VERSION" "$PROMETHEUS_BIN/prometheus:/bin/prometheus" 65534
# Root, as upstream's: it programs the node's nftables (hostNetwork, NET_ADMIN).
go_image kube-network-policies "$REPO/kube-network-policies:$KNP_VERSION-nfqueue-compat" \
  "$KNP_BIN/kube-network-policies:/bin/netpol" 0
