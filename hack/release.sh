#!/usr/bin/env bash
# Cuts a release and pushes it to a registry (make release):
#   1. checks: VERSION is vMAJOR.MINOR.PATCH[-PRERELEASE], the work tree is
#      clean, CHANGELOG.md has a "## [MAJOR.MINOR.PATCH]" section (a
#      prerelease may use "## [Unreleased]"), the tag is not taken;
#   2. images: the Dockerfile's image for this machine (hack/images.sh), then
#      the services cross-compiled for every PLATFORMS entry; `hack/release
#      images` pushes one image per platform and one OCI index per service
#      (<REGISTRY>/gatehouse-user:<VERSION>, .../gatehouse-auth:<VERSION>);
#   3. an SPDX SBOM of every platform's image (syft, from the registry);
#   4. signatures (cosign, with COSIGN_KEY): each index and its images, and
#      each image's SBOM as a signed attestation (predicate type spdxjson);
#   5. the chart, with appVersion = VERSION and image.registry = REGISTRY,
#      packaged and pushed as an OCI artifact to oci://<REGISTRY>/charts
#      (chart version = VERSION without the v), and signed;
#   6. the annotated git tag VERSION, its message the CHANGELOG section.
# Everything it made is under DIST (SBOMs, chart package, cosign.pub,
# release.json, SHA256SUMS). hack/release-verify.sh checks a release from
# the registry alone.
#
#   make release VERSION=v0.2.0 REGISTRY=ghcr.io/gatehouse-dev COSIGN_KEY=cosign.key
#
# Environment:
#   VERSION      required: vMAJOR.MINOR.PATCH[-PRERELEASE]
#   REGISTRY     required: REGISTRY[/PATH] to push to; credentials are
#                Docker's (~/.docker/config.json), as for docker push
#   COSIGN_KEY   required: cosign private key (file, or a KMS URI cosign
#                takes); COSIGN_PASSWORD its password. `cosign
#                generate-key-pair` makes one (make bin/cosign builds cosign)
#   PLATFORMS    default linux/amd64,linux/arm64
#   DIST         default dist/<VERSION>
#   AIRGAPPED    passed to hack/images.sh (1: compile with the local Go)
#   ALLOW_DIRTY  1: release from a work tree with changes (a trial run):
#                no git tag is made, since no commit holds what was built
#   GIT_TAG      0: do not make the git tag (CI's throwaway prereleases)
#   PLAIN_HTTP   1: the registry speaks plain HTTP (default: 1 for
#                localhost and 127.0.0.1, as Docker assumes)
set -euo pipefail
_prog=release
: "${VERSION:?VERSION=vX.Y.Z is required}"
: "${REGISTRY:?REGISTRY=host[:port][/path] is required}"
: "${COSIGN_KEY:?COSIGN_KEY is required (cosign generate-key-pair makes one)}"
source "$(dirname "$0")/release-lib.sh"
DIST=${DIST:-dist/$VERSION}
export PATH=$BIN:$PATH

semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
[[ $VERSION =~ $semver ]] || die "VERSION=$VERSION is not vMAJOR.MINOR.PATCH[-PRERELEASE] (semver with a v)"
chart_version=${VERSION#v}
release_line=${chart_version%%-*}
prerelease=0
[[ $chart_version == *-* ]] && prerelease=1

# --- 1. checks ----------------------------------------------------------------------
dirty=$(git status --porcelain)
if [[ -n $dirty ]]; then
  [[ ${ALLOW_DIRTY:-0} == 1 ]] || die "the work tree has changes; commit them (a release is a commit), or ALLOW_DIRTY=1 for a trial without a tag:
$dirty"
  step "ALLOW_DIRTY=1: releasing uncommitted changes, no git tag"
  GIT_TAG=0
fi
GIT_TAG=${GIT_TAG:-1}
# The CHANGELOG section: "## [X.Y.Z]" (Keep a Changelog), for a
# prerelease of X.Y.Z that one if written, else "## [Unreleased]".
changelog_section() { awk -v h="$1" 'index($0, "## [" h "]") == 1 {on=1; next} on && /^## \[/ {exit} on' CHANGELOG.md; }
notes=$(changelog_section "$release_line")
if [[ -z ${notes//[[:space:]]/} ]] && ((prerelease)); then notes=$(changelog_section Unreleased); fi
[[ -n ${notes//[[:space:]]/} ]] || die "CHANGELOG.md has no \"## [$release_line]\" section$( ((prerelease)) && echo ' (nor "## [Unreleased]")') with entries: write what this release changes first"
head=$(git rev-parse HEAD)
if ((GIT_TAG)) && tagged=$(git rev-parse -q --verify "refs/tags/$VERSION^{commit}"); then
  [[ $tagged == "$head" ]] || die "tag $VERSION exists and names $tagged, not HEAD ($head)"
fi
need_tools cosign syft helm
step "releasing $VERSION from $(git rev-parse --short HEAD) to $REGISTRY (platforms $PLATFORMS; plain HTTP: $PLAIN_HTTP)"
rm -rf "$DIST"
mkdir -p "$DIST/bin" "$DIST/sbom"

# --- 2. images ----------------------------------------------------------------------
# The Dockerfile's image for this machine, labelled with VERSION and the
# commit's time (the same commit gives the same labels), saved for
# hack/release to re-target to each platform.
CREATED=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
# Its output to a file, so its exit status counts (a size over the limit
# fails after both references are printed).
VERSION=$VERSION IMAGE_TAG=$VERSION IMAGE_REPO=gatehouse.local/release CREATED=$CREATED hack/images.sh >"$DIST/images.txt" ||
  die "hack/images.sh failed"
mapfile -t built <"$DIST/images.txt"
rm -f "$DIST/images.txt"
((${#built[@]} == 2)) || die "hack/images.sh printed ${#built[@]} references, want 2: ${built[*]}"
IFS=, read -ra platforms <<<"$PLATFORMS"
for p in "${platforms[@]}"; do
  os=${p%%/*} arch=${p#*/}
  arch=${arch%%/*}
  step "go build $os/$arch"
  VERSION=$VERSION GOOS=$os GOARCH=$arch hack/gobuild.sh "$DIST/bin/${os}_$arch" ./services/user ./services/auth
done
for svc in user auth; do
  docker save -o "$DIST/base-$svc.tar" "gatehouse.local/release/gatehouse-$svc:$VERSION"
  args=()
  for p in "${platforms[@]}"; do
    os=${p%%/*} arch=${p#*/}
    args+=(-binary "$p=$DIST/bin/${os}_${arch%%/*}/$svc")
  done
  "$BIN/release-tool" images -registry "$REGISTRY" -version "$VERSION" -service "$svc" \
    -base "$DIST/base-$svc.tar" -out "$DIST/$svc.json" "${args[@]}" >/dev/null ||
    die "pushing the $svc images failed"
  rm -f "$DIST/base-$svc.tar"
  docker image rm "gatehouse.local/release/gatehouse-$svc:$VERSION" >/dev/null
done

# --- 3 + 4. SBOMs and signatures --------------------------------------------------------
# quiet CMD...: runs CMD, its output shown only when it fails.
quiet() {
  local out
  out=$("$@" 2>&1) && return 0
  printf '%s\n' "$out" | tail -n 20 >&2
  return 1
}
cosign_sign() { quiet "$BIN/cosign" sign --yes --key "$COSIGN_KEY" --tlog-upload=false "${cosign_http[@]}" "$@"; }
for svc in user auth; do
  repo=$(jq -er .repository "$DIST/$svc.json") && index=$(jq -er .index "$DIST/$svc.json") &&
    jq -r '.platforms | to_entries[] | [.key, .value] | @tsv' "$DIST/$svc.json" >"$DIST/$svc.platforms" ||
    die "$DIST/$svc.json does not say what was pushed"
  [[ $(wc -l <"$DIST/$svc.platforms") -eq ${#platforms[@]} ]] ||
    die "$DIST/$svc.json lists $(wc -l <"$DIST/$svc.platforms") platforms, want ${#platforms[@]}"
  while IFS=$'\t' read -r p digest; do
    os=${p%%/*} arch=${p#*/}
    sbom=$DIST/sbom/$svc-$os-${arch%%/*}.spdx.json
    step "$svc $p: SBOM (syft) and its signed attestation"
    env "${syft_env[@]}" "$BIN/syft" scan -q "registry:$repo@$digest" --platform "$p" -o "spdx-json=$sbom" ||
      die "syft failed on $repo@$digest"
    quiet "$BIN/cosign" attest --yes --key "$COSIGN_KEY" --tlog-upload=false "${cosign_http[@]}" \
      --type spdxjson --predicate "$sbom" "$repo@$digest" || die "cosign attest $repo@$digest failed"
  done <"$DIST/$svc.platforms"
  rm -f "$DIST/$svc.platforms"
  step "$svc: signing the index and its images"
  cosign_sign --recursive "$repo@$index" || die "cosign sign $repo@$index failed"
done

# --- 5. chart -----------------------------------------------------------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r charts/gatehouse "$stage/gatehouse"
# image.registry is the first "registry:" under the top-level "image:".
awk -v r="$REGISTRY" '
  /^image:/ {img=1}
  img && /^  registry: / && !done {print "  registry: \"" r "\""; done=1; next}
  /^[a-z]/ && !/^image:/ {img=0}
  {print}' charts/gatehouse/values.yaml >"$stage/gatehouse/values.yaml"
grep -qxF "  registry: \"$REGISTRY\"" "$stage/gatehouse/values.yaml" || die "setting image.registry in the chart's values failed"
"$BIN/helm" package "$stage/gatehouse" --version "$chart_version" --app-version "$VERSION" -d "$DIST" >/dev/null ||
  die "helm package failed"
chart_tgz=$DIST/gatehouse-$chart_version.tgz
push_out=$("$BIN/helm" push "$chart_tgz" "oci://$REGISTRY/charts" "${helm_http[@]}" 2>&1) || die "helm push failed: $push_out"
chart_digest=$(sed -n 's/^Digest: //p' <<<"$push_out")
[[ $chart_digest == sha256:* ]] || die "helm push printed no digest: $push_out"
step "chart oci://$REGISTRY/charts/gatehouse:$chart_version ($chart_digest)"
cosign_sign "$REGISTRY/charts/gatehouse@$chart_digest" || die "cosign sign of the chart failed"

# --- 6. record and tag ----------------------------------------------------------------
"$BIN/cosign" public-key --key "$COSIGN_KEY" >"$DIST/cosign.pub" || die "cosign public-key failed"
jq -n --arg v "$VERSION" --arg r "$REGISTRY" --arg c "$(git rev-parse HEAD)" \
  --arg chart "oci://$REGISTRY/charts/gatehouse" --arg cv "$chart_version" --arg cd "$chart_digest" \
  --slurpfile u "$DIST/user.json" --slurpfile a "$DIST/auth.json" \
  '{version: $v, registry: $r, commit: $c, chart: {ref: $chart, version: $cv, digest: $cd}, images: [$u[0], $a[0]]}' \
  >"$DIST/release.json"
(cd "$DIST" && find . -type f ! -name SHA256SUMS ! -path './bin/*' -printf '%P\n' | sort | xargs sha256sum >SHA256SUMS)
rm -rf "$DIST/bin"
if ((GIT_TAG)); then
  if git rev-parse -q --verify "refs/tags/$VERSION" >/dev/null; then
    step "tag $VERSION already names HEAD"
  else
    git tag -a "$VERSION" -m "Gatehouse $VERSION" -m "$notes"
    step "tagged $VERSION (push it: git push origin $VERSION)"
  fi
fi
for svc in user auth; do echo "$(jq -r '.repository + ":" + .tag + "@" + .index' "$DIST/$svc.json")"; done
echo "oci://$REGISTRY/charts/gatehouse:$chart_version@$chart_digest"
step "done: $DIST (verify: make release-verify VERSION=$VERSION REGISTRY=$REGISTRY COSIGN_PUB=$DIST/cosign.pub)"
