# Sourced by hack/release.sh and hack/release-verify.sh after they set
# _prog and REGISTRY: logging, the registry's protocol and the tools both
# need, in one place.
# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts
cd "$(dirname "${BASH_SOURCE[0]}")/.."
_start=$SECONDS
step() { echo "$_prog: [$((SECONDS - _start))s] $*" >&2; }
die() { echo "$_prog: ERROR: $*" >&2; exit 1; }
BIN=$PWD/bin
REGISTRY=${REGISTRY%/}
PLATFORMS=${PLATFORMS:-linux/amd64,linux/arm64}

# PLAIN_HTTP: plain HTTP to the registry; by default for localhost and
# 127.0.0.1, as Docker assumes. Each tool says so its own way.
if [[ -z ${PLAIN_HTTP:-} ]]; then
  case $REGISTRY in localhost:* | localhost/* | 127.0.0.1:* | 127.0.0.1/*) PLAIN_HTTP=1 ;; *) PLAIN_HTTP=0 ;; esac
fi
helm_http=() cosign_http=() syft_env=()
if [[ $PLAIN_HTTP == 1 ]]; then
  helm_http=(--plain-http)
  cosign_http=(--allow-http-registry)
  syft_env=(SYFT_REGISTRY_INSECURE_USE_HTTP=true)
fi

# need_tools TOOL...: the pinned tools in ./bin (make bin/TOOL builds a
# missing one) and hack/release's own tool as bin/release-tool.
need_tools() {
  local t
  for t in "$@"; do
    [[ -x $BIN/$t ]] || make --no-print-directory "bin/$t" >&2 || die "building $t failed"
  done
  (cd hack/release && go build -o "$BIN/release-tool" .) || die "building hack/release failed"
}
