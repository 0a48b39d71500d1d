#!/usr/bin/env bash
# End-to-end demo on a local kind cluster: three replicas of the example beat
# scheduler share Lease-backed locks, and every scheduled run of every task is
# executed by exactly one of them.
#
# Needs Docker (a running daemon), kind, kubectl and cargo. Use the kind release that
# built the node image pinned in kind-config.yaml (see the comment there).
#
#   hack/kind-e2e.sh                  # create, deploy, observe, delete
#   KEEP_CLUSTER=1 hack/kind-e2e.sh   # keep the cluster afterwards
#
# Environment:
#   KEEP_CLUSTER=1      do not delete the cluster at the end
#   CLUSTER_NAME        kind cluster name (default celers-kube-lease-e2e)
#   OBSERVE_SECS        how long to let the schedulers run (default 30)
#   BUILD_TIMEOUT_SECS  bound for `docker build` (default 1800)
#
# Every wait is bounded; on failure the script prints the state of the
# Deployment and its Pods before deleting the cluster.
set -euo pipefail

readonly cluster_name=${CLUSTER_NAME:-celers-kube-lease-e2e}
readonly keep_cluster=${KEEP_CLUSTER:-0}
readonly observe_secs=${OBSERVE_SECS:-30}
readonly build_timeout_secs=${BUILD_TIMEOUT_SECS:-1800}
readonly image=celers-kube-lease-scheduler:dev
readonly namespace=celers-beat
readonly deployment=celers-beat-scheduler
readonly selector=app.kubernetes.io/name=celers-beat-scheduler
readonly context="kind-${cluster_name}"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly root
cd "$root"

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

# bounded SECS CMD...: run CMD, killing it after SECS seconds where coreutils
# `timeout` exists (kind and kubectl calls below carry their own bounds too).
bounded() {
  local secs=$1
  shift
  if command -v timeout >/dev/null 2>&1; then
    timeout --foreground "$secs" "$@"
  else
    "$@"
  fi
}

# kubectl against the e2e cluster only, never the current context.
kc() { kubectl --context "$context" "$@"; }

# ---- prerequisites ------------------------------------------------------------
missing=()
for tool in docker kind kubectl cargo; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  die "missing: ${missing[*]}. This script needs Docker (with a running daemon), kind, kubectl and cargo on PATH."
fi
if ! bounded 30 docker info >/dev/null 2>&1; then
  die "cannot reach the Docker daemon: is it running, and may this user use it?"
fi
[[ -f "$root/kind-config.yaml" ]] || die "kind-config.yaml not found in $root"
[[ "$observe_secs" =~ ^[0-9]+$ ]] || die "OBSERVE_SECS must be a number of seconds"

# ---- cleanup --------------------------------------------------------------------
diagnostics() {
  say "diagnostics"
  kc -n "$namespace" get deployment,replicaset,pods,leases -o wide --request-timeout=20s || true
  kc -n "$namespace" describe deployment "$deployment" --request-timeout=20s || true
  kc -n "$namespace" get events --sort-by=.lastTimestamp --request-timeout=20s || true
  kc -n "$namespace" logs -l "$selector" --all-containers --prefix --tail=50 \
    --max-log-requests=10 --request-timeout=20s || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)) && [[ "${cluster_started:-0}" == 1 ]]; then
    diagnostics
  fi
  if [[ "${cluster_started:-0}" == 1 ]]; then
    if [[ "$keep_cluster" == 1 ]]; then
      say "KEEP_CLUSTER=1: keeping cluster '$cluster_name' (kubectl context $context)."
      say "delete it with: kind delete cluster --name $cluster_name"
    else
      say "deleting cluster '$cluster_name'"
      bounded 300 kind delete cluster --name "$cluster_name" || true
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- cluster --------------------------------------------------------------------
cluster_started=1
reused=0
existing_clusters=$(bounded 60 kind get clusters 2>/dev/null || true)
if grep -qx -- "$cluster_name" <<<"$existing_clusters"; then
  say "reusing existing kind cluster '$cluster_name'"
  reused=1
else
  say "creating kind cluster '$cluster_name' (1 control plane, 2 workers)"
  # --wait bounds the wait for the control plane; the outer bound also covers
  # pulling the node image.
  bounded 900 kind create cluster --name "$cluster_name" \
    --config "$root/kind-config.yaml" --wait 180s
fi
kc wait --for=condition=Ready nodes --all --timeout=180s

# ---- image ----------------------------------------------------------------------
say "building $image"
bounded "$build_timeout_secs" docker build -t "$image" "$root"

say "loading $image into the cluster nodes"
bounded 300 kind load docker-image "$image" --name "$cluster_name"

# ---- deploy ---------------------------------------------------------------------
say "applying deploy/ (server-side)"
kc apply --server-side --field-manager=celers-kube-lease-e2e -k "$root/deploy/" \
  --request-timeout=60s
if ((reused)); then
  # Same image tag as before: restart so the Pods run the image just loaded.
  kc -n "$namespace" rollout restart "deployment/$deployment" --request-timeout=30s
fi
kc -n "$namespace" rollout status "deployment/$deployment" --timeout=180s

kc -n "$namespace" get pods -l "$selector" -o wide --request-timeout=30s

say "letting the schedulers run for ${observe_secs}s"
sleep "$observe_secs"

# ---- results --------------------------------------------------------------------
say "leases (locks) in namespace $namespace"
kc -n "$namespace" get leases -L celers.io/lock-owner --request-timeout=30s
echo
kc -n "$namespace" get leases --request-timeout=30s -o \
  'custom-columns=NAME:.metadata.name,KEY:.metadata.annotations.celers\.io/lock-key,HOLDER:.spec.holderIdentity,RENEWED:.spec.renewTime,TTL:.spec.leaseDurationSeconds'

say "executed runs, by pod (celers-beat-runs, from the pods' JSON logs)"
pods=$(kc -n "$namespace" get pods -l "$selector" --request-timeout=30s \
  -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
[[ -n "$pods" ]] || die "no scheduler pods found"

logs_dir=$(mktemp -d)
logs=()
while IFS= read -r pod; do
  [[ -n "$pod" ]] || continue
  kc -n "$namespace" logs "$pod" --request-timeout=30s >"$logs_dir/$pod.log" || true
  logs+=("$pod=$logs_dir/$pod.log")
done <<<"$pods"

# The Deployment's schedule (the scheduler's defaults where it sets none).
setting() {
  local value
  value=$(kc -n "$namespace" get deployment "$deployment" --request-timeout=30s \
    -o "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"$1\")].value}")
  printf '%s' "${value:-$2}"
}
cargo build --release --locked -p celers-kube-lease-scheduler --bin celers-beat-runs
"$root/target/release/celers-beat-runs" \
  --tasks "$(setting SCHEDULER_TASKS 3)" --interval "$(setting SCHEDULER_INTERVAL_SECS 5)" "${logs[@]}" \
  || die "a run was executed more than once, or none was executed (logs in $logs_dir)"
rm -rf -- "$logs_dir"
say "OK: every run executed exactly once across the replicas"
