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

kubeconfig=$(hack/control-plane.sh up | tail -n 1)
bin=$(hack/control-plane.sh bin)
etcd_port=$(awk -F= '$1 == "etcd" { print $2 }' "$CONTROL_PLANE_DIR/ports")

# Version of a package in Cargo.lock.
locked() { awk -v name="\"$1\"" '$1 == "name" && $3 == name { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock; }

"${CARGO_TARGET_DIR:-target}/release/lease-bench-scale" \
  --kubeconfig "$kubeconfig" \
  --etcd "127.0.0.1:$etcd_port" \
  --server-pid "kube-apiserver=$(hack/control-plane.sh pid kube-apiserver)" \
  --server-pid "etcd=$(hack/control-plane.sh pid etcd)" \
  --about "etcd=$("$bin/etcd" --version | awk '/etcd Version/ { print $3 }')" \
  --about "Rust=$(rustc --version)" \
  --about "Crates=celers-kube-lease $(locked celers-kube-lease), kube $(locked kube), k8s-openapi $(locked k8s-openapi) (v1_37), tokio $(locked tokio), rustls $(locked rustls)" \
  --about "Command=make bench-scale ARGS='$*'" \
  "$@"
