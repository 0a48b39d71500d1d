# shellcheck shell=bash
# shellcheck disable=SC2034 # the scripts that source this use what it sets
# Sourced by bench/run.sh and bench/scale.sh, after hack/own-control-plane.sh:
# brings that control plane up and sets what both pass to their benchmark:
# server_flags (where the servers are: kubeconfig, etcd, the processes whose
# CPU time is read) and the --about values they share.

kubeconfig=$(hack/control-plane.sh up | tail -n 1)
bin=$(hack/control-plane.sh bin)
etcd_port=$(awk -F= '$1 == "etcd" { print $2 }' "$CONTROL_PLANE_DIR/ports")

# Version of a package in Cargo.lock.
locked() { awk -v name="\"$1\"" '$1 == "name" && $3 == name { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock; }

server_flags=(
  --kubeconfig "$kubeconfig"
  --etcd "127.0.0.1:$etcd_port"
  --server-pid "kube-apiserver=$(hack/control-plane.sh pid kube-apiserver)"
  --server-pid "etcd=$(hack/control-plane.sh pid etcd)"
)
etcd_about="etcd=$("$bin/etcd" --version | awk '/etcd Version/ { print $3 }')"
rust_about="Rust=$(rustc --version)"
crates_about="Crates=celers-kube-lease $(locked celers-kube-lease), kube $(locked kube), k8s-openapi $(locked k8s-openapi) (v1_37), tokio $(locked tokio), rustls $(locked rustls)"
