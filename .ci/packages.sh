#!/usr/bin/env bash
# CI machine setup, not a user-facing script: installs the Debian packages
# the tests use when they are missing: PostgreSQL (store tests), prometheus
# (for promtool: alert rule tests and PromQL parsing), jq and debootstrap
# (the air-gapped kind node and PostgreSQL images), Node.js (the jose
# interoperability test). Services are
# not started by the install (policy-rc.d); .ci/postgres.sh starts
# PostgreSQL itself.
set -euo pipefail
need=()
command -v pg_ctlcluster >/dev/null && [[ -n "$(ls /usr/lib/postgresql 2>/dev/null)" ]] || need+=(postgresql)
command -v promtool >/dev/null || need+=(prometheus)
command -v jq >/dev/null || need+=(jq)
# hack/kind/registry.sh waits for the local registry with curl.
command -v curl >/dev/null || need+=(curl)
# The air-gapped kind node and PostgreSQL images start from a debootstrap'd rootfs.
command -v debootstrap >/dev/null || need+=(debootstrap)
# Node.js runs npm's jose against live tokens (hack/interop/jose). Machines
# of this kind come with Node.js 20; Debian's own package is the fallback.
command -v node >/dev/null || need+=(nodejs npm)
[[ ${#need[@]} -eq 0 ]] && exit 0
echo "ci/packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1
fi
trap 'if [[ $created = 1 ]]; then rm -f "$policy"; fi' EXIT
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
