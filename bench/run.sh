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

kubeconfig=$(hack/control-plane.sh up | tail -n 1)
bin=$(hack/control-plane.sh bin)
etcd_port=$(awk -F= '$1 == "etcd" { print $2 }' "$CONTROL_PLANE_DIR/ports")

# Version of a package in Cargo.lock.
locked() { awk -v name="\"$1\"" '$1 == "name" && $3 == name { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock; }

# lease-bench passes --etcd and --server-pid on to the client-go peer, which
# it runs twice per scenario: JSON, then protobuf.
"${CARGO_TARGET_DIR:-target}/release/lease-bench" \
  --kubeconfig "$kubeconfig" \
  --clientgo "$state/clientgo-bench" \
  --etcd "127.0.0.1:$etcd_port" \
  --server-pid "kube-apiserver=$(hack/control-plane.sh pid kube-apiserver)" \
  --server-pid "etcd=$(hack/control-plane.sh pid etcd)" \
  --about "etcd=$("$bin/etcd" --version | awk '/etcd Version/ { print $3 }')" \
  --about "Rust=$(rustc --version)" \
  --about "Go=$(go version | awk '{ print $3 }')" \
  --about "Crates=celers-kube-lease $(locked celers-kube-lease), kube $(locked kube), k8s-openapi $(locked k8s-openapi) (v1_37), tokio $(locked tokio), rustls $(locked rustls)" \
  --about "client-go=$(awk '$1 == "k8s.io/client-go" { print $2 }' bench/clientgo/go.mod)" \
  --about "Command=make bench ARGS='$*'" \
  "$@"
