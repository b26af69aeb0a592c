#!/usr/bin/env bash
# Runs before `make e2e`: the e2e tests delete pods, scale PostgreSQL and the
# Auth service to zero and rotate keys, so they refuse any kube context but
# the kind cluster `make kind-up` creates (kind-$CLUSTER_NAME, default
# kind-gatehouse), unless E2E_CONTEXT names the context to use instead.
# With no cluster at all they say so in one line, not in thirty seconds of
# kubectl retries.
set -euo pipefail
_prog=e2e
source "$(dirname "$0")/lib.sh"
want=${E2E_CONTEXT:-kind-$CLUSTER_NAME}
kubectl=$(command -v kubectl || true)
[[ -n $kubectl ]] || die "no kubectl on PATH: run 'make kind-up deploy' (it installs one under $KIND_CACHE/bin)"
ctx=$("$kubectl" config current-context 2>/dev/null) ||
  die "no cluster (no current context in ${KUBECONFIG:-~/.kube/config}): run 'make kind-up deploy'"
[[ $ctx == "$want" ]] ||
  die "the current context is '$ctx', not '$want': the e2e deletes pods, scales PostgreSQL to zero and rotates keys there. Use the kind cluster ('make kind-up deploy'), or set E2E_CONTEXT=$ctx to run it against that context anyway"
"$kubectl" --context "$ctx" --request-timeout=5s get --raw /readyz >/dev/null 2>&1 ||
  die "context '$ctx': no cluster answers: run 'make kind-up deploy'"
