#!/usr/bin/env bash
# `make bench-scale`: celers-kube-lease at scale (lease-bench-scale) on a local
# control plane of its own, started here and stopped whatever the outcome.
# Builds lease-bench-scale (release mode) first, so that compiling does not
# overlap the measurement. Arguments go to lease-bench-scale, e.g.
# `bench/scale.sh --markdown BENCHMARKS.md --plot bench/scale-lifetime.svg`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# shellcheck source=hack/own-control-plane.sh
source hack/own-control-plane.sh bench-scale

echo "bench-scale: building lease-bench-scale" >&2
cargo build --release --locked -p celers-kube-lease-bench --bin lease-bench-scale

# shellcheck source=bench/lib.sh
source bench/lib.sh

"${CARGO_TARGET_DIR:-target}/release/lease-bench-scale" \
  "${server_flags[@]}" \
  --about "$etcd_about" \
  --about "$rust_about" \
  --about "$crates_about" \
  --about "Command=make bench-scale ARGS='$*'" \
  "$@"
