#!/usr/bin/env bash
# CI: builds both images air-gapped (hack/images.sh, AIRGAPPED=1) and runs
# each once the way Kubernetes will: read-only root filesystem, no
# capabilities, no-new-privileges, a fresh named volume at /data. Checks
#   - the in-image `/<service> healthcheck` and a host-side health check through the
#     published port both answer SERVING, and Docker's HEALTHCHECK turns healthy;
#   - the process runs as 65532:65532 on a read-only root, its SQLite
#     database lands in the volume, owned by 65532;
#   - the OCI labels are set;
#   - `docker stop` (SIGTERM) ends it with exit code 0.
# Needs a running Docker engine (.ci/docker.sh) and Go. Containers and
# volumes it creates are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "ci/images-smoke: [$((SECONDS - start))s] $*" >&2; }
die() { echo "ci/images-smoke: FAIL: $*" >&2; exit 1; }

run_id=smoke-$$
containers=()
volumes=()
tmp=$(mktemp -d)
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for c in ${containers[@]+"${containers[@]}"}; do
      echo "--- last log lines of $c:" >&2
      docker logs --tail 20 "$c" >&2 2>&1 || true
    done
  fi
  for c in ${containers[@]+"${containers[@]}"}; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  for v in ${volumes[@]+"${volumes[@]}"}; do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

step "build images (hack/images.sh, AIRGAPPED=1)"
refs=$(AIRGAPPED=1 hack/images.sh)
declare -A image port
for ref in $refs; do
  case $ref in
    */gatehouse-user:*) image[user]=$ref port[user]=50051 ;;
    */gatehouse-auth:*) image[auth]=$ref port[auth]=50052 ;;
  esac
done
[[ -n ${image[user]:-} && -n ${image[auth]:-} ]] || die "hack/images.sh did not report both images: $refs"

step "build a host-side health client (the user binary's healthcheck subcommand)"
CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o "$tmp/user" ./services/user  # same flags as hack/images.sh: cached

# HS256 secret: enough for both services to start and become SERVING.
secret=$(head -c 32 /dev/urandom | base64)
for s in user auth; do
  vol=gatehouse-$run_id-$s
  docker volume create "$vol" >/dev/null
  volumes+=("$vol")
  c=gatehouse-$run_id-$s
  step "$s: docker run ${image[$s]} (read-only root, cap-drop ALL, volume $vol at /data)"
  docker run -d --name "$c" \
    --read-only --cap-drop ALL --security-opt no-new-privileges \
    -v "$vol:/data" \
    -e JWT_SECRET="$secret" -e DRAIN_DELAY=1s -e LOG_LEVEL=info \
    -p "127.0.0.1::${port[$s]}" \
    "${image[$s]}" >/dev/null
  containers+=("$c")
done

wait_until() { # seconds description command...
  local secs=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not within ${secs}s"
    [[ "$(docker inspect -f '{{.State.Running}}' "$c")" == true ]] || die "$what: container $c exited"
    sleep 0.2
  done
}

for s in user auth; do
  c=gatehouse-$run_id-$s
  t0=$SECONDS
  wait_until 30 "$s: in-image /$s healthcheck SERVING" docker exec "$c" "/$s" healthcheck "localhost:${port[$s]}"
  step "$s: in-image /$s healthcheck: $(docker exec "$c" "/$s" healthcheck "localhost:${port[$s]}") ($((SECONDS - t0))s)"
  hostport=$(docker port "$c" "${port[$s]}/tcp" | head -n1)
  "$tmp/user" healthcheck "$hostport" >/dev/null ||
    die "$s: health check through the published port $hostport failed: $("$tmp/user" healthcheck "$hostport" 2>&1)"
  step "$s: host health check via $hostport: SERVING"

  pid=$(docker inspect -f '{{.State.Pid}}' "$c")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  gid=$(awk '/^Gid:/ {print $2}' "/proc/$pid/status")
  [[ $uid == 65532 && $gid == 65532 ]] || die "$s: process runs as $uid:$gid, want 65532:65532"
  root_opts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -n1)
  [[ $root_opts == ro* ]] || die "$s: root filesystem mounted '$root_opts', want read-only"
  caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
  [[ $caps == 0000000000000000 ]] || die "$s: effective capabilities $caps, want none"
  mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "gatehouse-$run_id-$s")
  db_owner=$(stat -c %u:%g "$mountpoint/$s.db" 2>/dev/null) || die "$s: no $s.db in the /data volume"
  [[ $db_owner == 65532:65532 ]] || die "$s: $s.db owned by $db_owner, want 65532:65532"
  step "$s: uid:gid $uid:$gid, root fs $root_opts, CapEff $caps, /data/$s.db owned by $db_owner"

  for key in title description source version revision licenses created; do
    v=$(docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$key\"}}" "${image[$s]}")
    [[ -n $v ]] || die "$s: label org.opencontainers.image.$key missing"
  done
  lic=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.licenses"}}' "${image[$s]}")
  [[ $lic == Apache-2.0 ]] || die "$s: licenses label '$lic', want the SPDX id of LICENSE, Apache-2.0"
done

for s in user auth; do
  c=gatehouse-$run_id-$s
  t0=$SECONDS
  health() { [[ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" == healthy ]]; }
  wait_until 45 "$s: Docker HEALTHCHECK healthy" health
  step "$s: Docker HEALTHCHECK: healthy (waited $((SECONDS - t0))s)"
done

for s in user auth; do
  c=gatehouse-$run_id-$s
  t0=$SECONDS
  docker stop -t 30 "$c" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  [[ $code == 0 ]] || die "$s: exit code $code after docker stop (SIGTERM), want 0"
  step "$s: docker stop (SIGTERM): exit code 0 after $((SECONDS - t0))s"
done

for s in user auth; do
  step "$(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "${image[$s]}")"
done
step "PASS"
