#!/usr/bin/env bash
# `make proto-check`: the contract must not break the released one (buf
# breaking against services/api/contract/released.binpb), and the
# committed generated code must be what `make proto` makes now. The fresh
# code is generated into a temporary directory and compared there: the
# work tree is never rewritten, so an uncommitted edit is neither lost nor
# mistaken for staleness of the generated files.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pinned buf and protoc plugins (make bin/buf ...), not whatever is on PATH.
export PATH=$PWD/bin:$PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd services/api && buf lint && buf breaking --against contract/released.binpb)
(cd services/api && buf generate -o "$tmp/services/api" &&
  mkdir -p "$tmp/services/api/apidesc" &&
  buf build --as-file-descriptor-set -o "$tmp/services/api/apidesc/descriptors.binpb")
(cd examples/greeter/api && buf lint && buf generate -o "$tmp/examples/greeter/api")

stale=()
while IFS= read -r f; do
  cmp -s "$tmp/$f" "$f" || stale+=("$f (differs)")
done < <(cd "$tmp" && find . -type f | sed 's|^\./||' | sort)
# Generated files in the tree that the protos no longer produce.
while IFS= read -r f; do
  [[ -e $tmp/$f ]] || stale+=("$f (no .proto makes it any more)")
done < <(git ls-files -- 'services/api/*.pb.go' 'examples/greeter/api/*.pb.go')

if ((${#stale[@]})); then
  echo "generated code is stale; run 'make proto' and commit:" >&2
  printf '  %s\n' "${stale[@]}" >&2
  exit 1
fi
echo "proto-check: contract compatible with the released one; generated code up to date ($(cd "$tmp" && find . -type f | wc -l) files)"
