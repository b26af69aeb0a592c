#!/usr/bin/env bash
# CI machine setup, not a user-facing script: makes a Docker Engine usable on
# the CI machines (Debian 12, root, no container registry). Idempotent:
#   1. installs Debian's docker.io (20.10) and jq with apt if dockerd is missing;
#   2. installs an OCI runtime wrapper that drops CAP_SYS_RESOURCE and makes it
#      dockerd's default runtime: these VMs' capability bounding set lacks
#      CAP_SYS_RESOURCE, so runc refuses `docker run --privileged` ("unable to
#      apply caps: operation not permitted") without it;
#   3. starts dockerd in the background (log: $DOCKERD_LOG) unless it runs;
#   4. proves `docker run`, `docker run --privileged` and `docker exec
#      --privileged` work with a tiny local FROM-scratch probe image (no image
#      can be pulled here).
# Why: hack/kind/README.md, "Docker on a VM without CAP_SYS_RESOURCE".
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "ci/docker: [$((SECONDS - start))s] $*" >&2; }
die() { echo "ci/docker: ERROR: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (installs packages, writes /etc/docker, starts dockerd)"

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WRAPPER=/usr/local/sbin/runc-drop-sys-resource
RUNTIME_NAME=runc-drop-sys-resource
DAEMON_JSON=/etc/docker/daemon.json
PROBE_IMAGE=gatehouse-ci/probe:1

# --- 1. packages --------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
  step "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # No recommends: the engine needs none of them here (no AppArmor on these VMs).
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ -x /usr/sbin/runc ]] || die "/usr/sbin/runc missing (Debian's runc package)"
step "dockerd $(dockerd --version | sed 's/^Docker version //'), runc $(/usr/sbin/runc --version | head -n1 | awk '{print $3}')"

# --- 2. runtime wrapper -------------------------------------------------------
wrapper_body=$(cat <<'SH'
#!/bin/sh
# Written by .ci/docker.sh. OCI runtime wrapper registered as dockerd's default
# runtime: removes CAP_SYS_RESOURCE from every capability list of the bundle's
# config.json (create/run --bundle DIR) and of the process JSON (exec --process
# FILE), then execs /usr/sbin/runc with the same arguments. Needed where the
# host's capability bounding set lacks CAP_SYS_RESOURCE: runc refuses to grant
# a capability it does not have, so `docker run --privileged` fails otherwise.
set -eu
strip() { # FILE JQ-PATH
  [ -f "$1" ] || return 0
  tmp="$1.drop-sys-resource.$$"
  jq "if $2 then $2 |= with_entries(.value |= (if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end)) else . end" \
    "$1" >"$tmp" || { rm -f "$tmp"; echo "runc-drop-sys-resource: cannot rewrite $1" >&2; exit 1; }
  mv -f "$tmp" "$1"
}
prev=
for arg in "$@"; do
  case "$prev" in
    --bundle|-b) strip "$arg/config.json" .process.capabilities ;;
    --process|-p) strip "$arg" .capabilities ;;
  esac
  case "$arg" in
    --bundle=*) strip "${arg#--bundle=}/config.json" .process.capabilities ;;
    --process=*) strip "${arg#--process=}" .capabilities ;;
  esac
  prev=$arg
done
exec /usr/sbin/runc "$@"
SH
)
if [[ ! -x $WRAPPER ]] || [[ "$(cat "$WRAPPER")" != "$wrapper_body" ]]; then
  step "writing runtime wrapper $WRAPPER"
  mkdir -p "$(dirname "$WRAPPER")"
  printf '%s\n' "$wrapper_body" >"$WRAPPER.tmp"
  chmod 0755 "$WRAPPER.tmp"
  mv -f "$WRAPPER.tmp" "$WRAPPER"
fi

mkdir -p "$(dirname "$DAEMON_JSON")"
[[ -s $DAEMON_JSON ]] || echo '{}' >"$DAEMON_JSON"
want=$(jq --arg name "$RUNTIME_NAME" --arg path "$WRAPPER" \
  '.runtimes[$name] = {path: $path} | ."default-runtime" = $name' "$DAEMON_JSON") ||
  die "$DAEMON_JSON is not valid JSON"
daemon_json_changed=0
if [[ "$(jq -S . "$DAEMON_JSON")" != "$(jq -S . <<<"$want")" ]]; then
  step "registering $RUNTIME_NAME as default runtime in $DAEMON_JSON"
  printf '%s\n' "$want" >"$DAEMON_JSON.tmp"
  mv -f "$DAEMON_JSON.tmp" "$DAEMON_JSON"
  daemon_json_changed=1
fi

# --- 3. dockerd ---------------------------------------------------------------
# The docker CLI first on PATH may be newer than the engine (this image family
# ships a docker 28 client in /usr/local/bin; Debian's engine speaks API 1.41).
# The client negotiates the API version down, so it works as long as
# DOCKER_API_VERSION is not forced higher; we check that below.
daemon_ready() { docker info >/dev/null 2>&1; }
dockerd_pid() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
if pid=$(dockerd_pid); then
  if ((daemon_json_changed)); then
    step "dockerd running (pid $pid): reloading its configuration (SIGHUP)"
    kill -HUP "$pid"
    sleep 1
  else
    step "dockerd already running (pid $pid)"
  fi
else
  step "starting dockerd in the background (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid: dockerd must outlive this script and CI's process group.
  setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi
deadline=$((SECONDS + ${DOCKERD_TIMEOUT:-60}))
until daemon_ready; do
  if ((SECONDS >= deadline)); then
    echo "ci/docker: ERROR: dockerd did not answer 'docker info' within ${DOCKERD_TIMEOUT:-60}s; last lines of $DOCKERD_LOG:" >&2
    tail -n 40 "$DOCKERD_LOG" >&2 || true
    echo "ci/docker: 'docker info' says:" >&2
    docker info 2>&1 | tail -n 5 >&2 || true
    exit 1
  fi
  sleep 0.5
done
runtime=$(docker info --format '{{.DefaultRuntime}}')
[[ $runtime == "$RUNTIME_NAME" ]] ||
  die "dockerd's default runtime is '$runtime', want '$RUNTIME_NAME' (is $DAEMON_JSON overridden by dockerd flags?)"
step "engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), client $(command -v docker) $(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})' 2>/dev/null), default runtime $runtime"

# --- 4. prove it --------------------------------------------------------------
# No image can be pulled, so the probe is a static Go program in a FROM
# scratch image: it prints its uid and capability sets, and with "sleep"
# waits for SIGTERM (so `docker exec` can be tried).
if ! docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1; then
  step "building $PROBE_IMAGE (static Go probe, FROM scratch)"
  command -v go >/dev/null || die "go is needed to build the probe image"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/probe.go" <<'GO'
// probe prints its uid and capability sets; "probe sleep" then waits for SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	var out []string
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "Uid:" || f[0] == "CapEff:" || f[0] == "CapBnd:") {
			out = append(out, strings.TrimSuffix(f[0], ":")+"="+f[1])
		}
	}
	fmt.Println(strings.Join(out, " "))
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	}
}
GO
  (cd "$tmp" && CGO_ENABLED=0 GOFLAGS='' go build -trimpath -ldflags '-s -w' -o probe probe.go)
  printf 'FROM scratch\nCOPY probe /probe\nENTRYPOINT ["/probe"]\n' >"$tmp/Dockerfile"
  docker build -q -t "$PROBE_IMAGE" "$tmp" >/dev/null 2>"$tmp/build.log" || { cat "$tmp/build.log" >&2; die "building $PROBE_IMAGE failed"; }
fi

step "checking docker run"
out=$(docker run --rm "$PROBE_IMAGE") || die "plain 'docker run' failed"
step "  $out"
step "checking docker run --privileged"
out=$(docker run --rm --privileged "$PROBE_IMAGE" 2>&1) ||
  die "'docker run --privileged' failed: $out"
step "  $out"
step "checking docker exec --privileged"
name=ci-docker-probe-$$
docker run -d --rm --privileged --name "$name" "$PROBE_IMAGE" sleep >/dev/null ||
  die "'docker run -d --privileged' failed"
out=$(docker exec --privileged "$name" /probe 2>&1) || {
  docker rm -f "$name" >/dev/null 2>&1 || true
  die "'docker exec --privileged' failed: $out"
}
step "  $out"
docker stop -t 5 "$name" >/dev/null
step "Docker ready"
