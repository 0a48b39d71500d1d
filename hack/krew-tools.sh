#!/usr/bin/env bash
# Builds krew and its manifest validator (validate-krew-manifest) from their
# Go module at a pinned version, once, into the cache, and prints the
# directory holding both. Needs Go and the Go module proxy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
LOG_PREFIX="krew-tools: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

version=v0.4.3
bin=${CELERS_KUBE_CACHE:-$HOME/.cache/celers-kube-lease}/bin/krew-$version
if [ ! -x "$bin/krew" ] || [ ! -x "$bin/validate-krew-manifest" ]; then
  command -v go >/dev/null || die "Go is needed to build krew $version"
  say "building krew and validate-krew-manifest $version"
  mkdir -p "$bin"
  GOBIN=$bin go install "sigs.k8s.io/krew/cmd/krew@$version" \
    "sigs.k8s.io/krew/cmd/validate-krew-manifest@$version"
fi
echo "$bin"
