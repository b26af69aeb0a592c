#!/usr/bin/env bash
# Verifies a release from the registry alone, as a user's cluster and
# security review would (make release-verify):
#   - cosign verify, with the release's public key, of each service's index
#     and of every platform image in it, and of the chart;
#   - cosign verify-attestation of each image's SPDX SBOM, then
#     `hack/release verify`: the index holds exactly PLATFORMS, each image a
#     static binary of its architecture carrying VERSION, one shared runtime
#     config, and an SBOM listing every Go module the binary was built from;
#   - the chart: appVersion VERSION, and what it renders with its defaults
#     pulls <REGISTRY>/gatehouse-{user,auth}:VERSION;
#   - a key that did not sign is refused (the check can fail).
#
#   make release-verify VERSION=v0.2.0 REGISTRY=... COSIGN_PUB=dist/v0.2.0/cosign.pub
#
# Environment: VERSION, REGISTRY, COSIGN_PUB (required); PLATFORMS
# (linux/amd64,linux/arm64); PLAIN_HTTP (as hack/release.sh).
set -euo pipefail
_prog=release-verify
: "${VERSION:?VERSION is required}"
: "${REGISTRY:?REGISTRY is required}"
: "${COSIGN_PUB:?COSIGN_PUB (the release public key) is required}"
source "$(dirname "$0")/release-lib.sh"
[[ -s $COSIGN_PUB ]] || die "COSIGN_PUB=$COSIGN_PUB is missing or empty"
chart_version=${VERSION#v}
need_tools cosign helm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Keyed signatures without a transparency log: nothing here reaches Rekor.
cosign_verify() { "$BIN/cosign" verify --key "$1" --insecure-ignore-tlog=true "${cosign_http[@]}" "$2" 2>/dev/null; }
digest_of() { "$BIN/cosign" triangulate --type digest "${cosign_http[@]}" "$1" 2>/dev/null || true; }

# A key that signed nothing: verification must fail with it.
(cd "$work" && COSIGN_PASSWORD='' "$BIN/cosign" generate-key-pair --output-key-prefix stranger >/dev/null 2>&1) ||
  die "cosign generate-key-pair failed"

for svc in user auth; do
  ref=$REGISTRY/gatehouse-$svc:$VERSION
  cosign_verify "$COSIGN_PUB" "$ref" >/dev/null || die "cosign verify $ref: no valid signature by $COSIGN_PUB"
  step "$ref: index signature verified"
  # Refused for the right reason: no signature matches, not an unreachable registry.
  if stranger=$("$BIN/cosign" verify --key "$work/stranger.pub" --insecure-ignore-tlog=true "${cosign_http[@]}" "$ref" 2>&1); then
    die "cosign verify $ref passed with a key that never signed it"
  fi
  grep -q 'no matching signatures' <<<"$stranger" || die "cosign verify with a foreign key failed for another reason: $stranger"
  # The structure first: one line per platform image, "REPO@DIGEST OS/ARCH[/VARIANT]: ...".
  lines=$("$BIN/release-tool" verify -ref "$ref" -version "$VERSION" -service "$svc" -platforms "$PLATFORMS") ||
    die "$ref: the images are not what a release promises (above)"
  sboms=$work/sbom-$svc
  mkdir -p "$sboms"
  while read -r img plat _; do
    plat=${plat%:}
    os=${plat%%/*} arch=${plat#*/}
    arch=${arch%%/*}
    cosign_verify "$COSIGN_PUB" "$img" >/dev/null || die "cosign verify $img ($plat): no valid signature"
    att=$("$BIN/cosign" verify-attestation --key "$COSIGN_PUB" --insecure-ignore-tlog=true "${cosign_http[@]}" \
      --type spdxjson "$img" 2>/dev/null | head -n1) || true
    [[ -n $att ]] || die "cosign verify-attestation --type spdxjson $img ($plat): no valid SBOM attestation"
    subject=$(jq -r '.payload | @base64d | fromjson | .subject[0].digest.sha256' <<<"$att")
    [[ sha256:$subject == "${img#*@}" ]] || die "$img: the SBOM attestation is about sha256:$subject"
    jq '.payload | @base64d | fromjson | .predicate' <<<"$att" >"$sboms/$svc-$os-$arch.spdx.json"
  done <<<"$lines"
  # Then the SBOMs, each against the binary it describes.
  "$BIN/release-tool" verify -ref "$ref" -version "$VERSION" -service "$svc" -platforms "$PLATFORMS" -sbom-dir "$sboms" |
    sed 's/^/release-verify:   /' >&2 || die "$ref: an SBOM does not match its image (above)"
  step "$svc: $(wc -l <<<"$lines") platform images signed, each with a signed SBOM that lists every module of its binary"
done

# --- the chart ----------------------------------------------------------------------
chart=oci://$REGISTRY/charts/gatehouse
"$BIN/helm" pull "$chart" --version "$chart_version" "${helm_http[@]}" -d "$work" >/dev/null 2>&1 ||
  die "helm pull $chart --version $chart_version failed"
chart_digest=$(digest_of "$REGISTRY/charts/gatehouse:$chart_version")
[[ $chart_digest == *@sha256:* ]] || die "no digest for $REGISTRY/charts/gatehouse:$chart_version"
cosign_verify "$COSIGN_PUB" "$chart_digest" >/dev/null || die "cosign verify $chart_digest: the chart is not signed by $COSIGN_PUB"
app=$("$BIN/helm" show chart "$work/gatehouse-$chart_version.tgz" | sed -n 's/^appVersion: //p' | tr -d '"')
[[ $app == "$VERSION" ]] || die "the chart's appVersion is '$app', want $VERSION"
rendered=$("$BIN/helm" template gatehouse "$work/gatehouse-$chart_version.tgz" 2>&1) ||
  die "helm template of the pulled chart failed: $rendered"
# Every image the defaults pull, whatever its form: the release's two and nothing else.
images=$(sed -n 's/^ *-\{0,1\} *image: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' <<<"$rendered" | sort -u)
want=$(printf '%s\n' "$REGISTRY/gatehouse-auth:$VERSION" "$REGISTRY/gatehouse-user:$VERSION")
[[ $images == "$want" ]] || die "the chart's defaults pull
$images
want
$want"
step "chart $chart:$chart_version signed; appVersion $app; its defaults pull $(paste -sd' ' <<<"$images")"
step "release $VERSION verified"
