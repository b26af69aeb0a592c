#!/usr/bin/env bash
# Compiles the service binaries the way every image carries them: static
# (CGO_ENABLED=0), -trimpath, without grpc-go's x/net/trace (grpcnotrace)
# and with the version stamped into buildinfo.Version. hack/images.sh (the
# air-gapped image build) and hack/release.sh (every release platform) use
# it; the Dockerfiles' build stage runs the same command.
#
#   VERSION=v1.2.3 GOOS=linux GOARCH=arm64 hack/gobuild.sh OUTDIR ./services/user ...
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: VERSION=... [GOOS=... GOARCH=...] $0 OUTDIR PKG..." >&2; exit 2; }
out=$1
shift
: "${VERSION:?VERSION must be set}"
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -tags grpcnotrace \
  -ldflags "-s -w -X github.com/gatehouse-dev/gatehouse/services/internal/platform/buildinfo.Version=$VERSION" \
  -o "$out/" "$@"
