#!/usr/bin/env bash
# The test command: starts a local control plane of its own (etcd +
# kube-apiserver built from upstream), runs every test of the workspace
# against it, the real-cluster ones included, and stops it again, whatever
# the outcome. Arguments before `--` go to `cargo test`.
#
# Real-cluster tests are marked #[ignore] so that a plain `cargo test` says
# what to run instead of failing; here they run with --include-ignored, and
# each fails loudly if the control plane is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# shellcheck source=hack/own-control-plane.sh
source hack/own-control-plane.sh test

kubeconfig=$(hack/control-plane.sh up | tail -n 1)
export CELERS_TEST_KUBECONFIG="$kubeconfig"
echo "control plane up; running tests against it" >&2

cargo test --workspace --all-features --locked "$@" -- --include-ignored
