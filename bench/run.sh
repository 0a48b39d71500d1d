#!/usr/bin/env bash
# `make bench`: celers-kube-lease against client-go's LeaseLock on a local
# control plane of its own, started here and stopped whatever the outcome.
# Builds the client-go peer (into a temporary directory) and lease-bench
# (release mode) first, so that compiling does not overlap the measurement.
# Arguments go to lease-bench, e.g. `bench/run.sh --markdown BENCHMARKS.md`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# shellcheck source=hack/own-control-plane.sh
source hack/own-control-plane.sh bench

echo "bench: building the client-go peer and lease-bench" >&2
(cd bench/clientgo && CGO_ENABLED=0 go build -trimpath -o "$state/clientgo-bench" .)
cargo build --release --locked -p celers-kube-lease-bench

# shellcheck source=bench/lib.sh
source bench/lib.sh

# lease-bench passes --etcd and --server-pid on to the client-go peer, which
# it runs twice per scenario: JSON, then protobuf.
"${CARGO_TARGET_DIR:-target}/release/lease-bench" \
  "${server_flags[@]}" \
  --clientgo "$state/clientgo-bench" \
  --about "$etcd_about" \
  --about "$rust_about" \
  --about "Go=$(go version | awk '{ print $3 }')" \
  --about "$crates_about" \
  --about "client-go=$(awk '$1 == "k8s.io/client-go" { print $2 }' bench/clientgo/go.mod)" \
  --about "Command=make bench ARGS='$*'" \
  "$@"
