#!/usr/bin/env bash
# End-to-end check on a kind cluster (`make kind-e2e`): the example scheduler
# as three pods on a three-node kind cluster, with what `make pods-e2e`
# checks (hack/pods-e2e.sh: three pods, the leader's pod deleted, a rollout
# restart, every instant fired once by the same checker).
#
#   1. builds kind (hack/build-kind.sh), the node image (hack/kind-image.sh,
#      no registry pull), the scheduler's image archive (hack/image.sh, named
#      as deploy/ names it) and the checker, while the network is there;
#   2. in a network namespace of its own (`unshare --net`, loopback only, so
#      the cluster can reach nothing off this machine), with podman as kind's
#      provider: `kind create cluster --config kind-config.yaml --image <the
#      local node image>` (the users' file; --image replaces its node image);
#   3. checks that a PersistentVolumeClaim binds (kind's local-path storage)
#      and that a pod on a worker runs;
#   4. `kind load image-archive` of the scheduler's image, then
#      hack/pods-e2e.sh against the cluster (deploy/ unchanged);
#   5. deletes the cluster, whatever the outcome, and the podman network
#      "kind" if this run created it.
#
# The whole run is bounded by KIND_E2E_TIMEOUT. It refuses to start when a
# cluster of its name exists (it deletes only what it created).
#
# Needs root, cgroups as podman runs privileged containers with them, and
# Debian's podman (4.3.1: privileged containers run with
# `default_ulimits = []`, which this script sets in a containers.conf of its
# own), debootstrap, containerd, jq and util-linux's unshare; Go and Rust.
#
# Environment:
#   KIND_E2E_TIMEOUT  seconds for the whole run, builds included (default 2700)
#   CLUSTER_NAME      kind cluster name (default celers-kube-lease-e2e)
#   KEEP_CLUSTER=1    leave the cluster running (delete it with
#                     KIND_EXPERIMENTAL_PROVIDER=podman kind delete cluster --name NAME)
#   OBSERVE_SECS, GRACE_SECS   as for hack/pods-e2e.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly root
cd "$root"

LOG_PREFIX="kind-e2e: "
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

readonly cluster_name=${CLUSTER_NAME:-celers-kube-lease-e2e}
readonly timeout_secs=${KIND_E2E_TIMEOUT:-2700}
readonly keep=${KEEP_CLUSTER:-0}
# The name deploy/deployment.yaml gives the scheduler's image.
readonly scheduler_image=celers-kube-lease-scheduler:dev
export KIND_EXPERIMENTAL_PROVIDER=podman

[[ $timeout_secs =~ ^[0-9]+$ ]] || die "KIND_E2E_TIMEOUT must be a number of seconds, not '$timeout_secs'"

# ---- 2. to 4.: inside the network namespace --------------------------------------

inside() {
  local t0 helper
  ip link set lo up
  kc() { timeout 120 "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout 30s "$@"; }

  t0=$SECONDS
  say "kind create cluster --name $cluster_name --config kind-config.yaml --image $NODE_IMAGE"
  touch "$WORK/created"
  timeout 900 "$KIND" create cluster --name "$cluster_name" --config "$root/kind-config.yaml" \
    --image "$NODE_IMAGE" --kubeconfig "$KUBECONFIG_FILE" --wait 300s
  kc wait --for=condition=Ready nodes --all --timeout=100s
  say "cluster up after $((SECONDS - t0))s"
  kc get nodes -o wide

  say "storage: a PersistentVolumeClaim and a pod writing to it on a worker"
  # The helper image the provisioner runs is on every node; the pod runs
  # its shell.
  helper=$(kc -n local-path-storage get configmap local-path-config -o 'jsonpath={.data.helperPod\.yaml}' |
    awk '$1 == "image:" {print $2; exit}')
  [ -n "$helper" ] || die "no helper image in local-path-storage/local-path-config"
  kc apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: kind-e2e-storage
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: kind-e2e-storage
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: kind-e2e-storage
spec:
  restartPolicy: Never
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: node-role.kubernetes.io/control-plane
                operator: DoesNotExist
  containers:
    - name: writer
      image: $helper
      imagePullPolicy: Never
      command: [/bin/sh, -c, "echo ok >/data/ok && ls /data/ok"]
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: data
EOF
  kc -n kind-e2e-storage wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=100s
  kc -n kind-e2e-storage wait --for=jsonpath='{.status.phase}'=Succeeded pod/writer --timeout=100s
  say "PersistentVolumeClaim bound; the pod writing to it succeeded on $(kc -n kind-e2e-storage get pod writer -o 'jsonpath={.spec.nodeName}')"
  kc delete namespace kind-e2e-storage --wait=false >/dev/null

  say "kind load image-archive (the scheduler's image, $scheduler_image)"
  timeout 300 "$KIND" load image-archive "$ARCHIVE" --name "$cluster_name"

  CLUSTER_KUBECONFIG=$KUBECONFIG_FILE "$root/hack/pods-e2e.sh"
}

if [ "${1:-}" = --inside ]; then
  inside
  exit
fi

# ---- 1. builds, then the run, then the cleanup -----------------------------------

missing=()
for tool in podman debootstrap containerd ctr jq unshare ip go cargo; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} = 0 ] ||
  die "missing ${missing[*]}: apt-get install podman debootstrap containerd jq iproute2 util-linux (and Go and Rust)"
[ "$(id -u)" = 0 ] || die "needs root (podman's privileged node containers, debootstrap)"
[ -f "$root/kind-config.yaml" ] || die "kind-config.yaml not found in $root"

start=$SECONDS
# left SECS_AT_MOST: the seconds left of KIND_E2E_TIMEOUT (at least 1), at
# most SECS_AT_MOST.
left() {
  local l=$((timeout_secs - (SECONDS - start)))
  [ $l -ge 1 ] || die "KIND_E2E_TIMEOUT (${timeout_secs}s) is over"
  [ $l -le "$1" ] || l=$1
  echo "$l"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/celers-kind-e2e.XXXXXX")
export WORK
# podman 4.3.1 runs privileged containers only without default ulimits;
# CONTAINERS_CONF replaces the system's containers.conf for this run.
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf
network_existed=0
podman network exists kind && network_existed=1
# kind's podman provider mounts the host's /lib/modules into its nodes; a
# machine without kernel modules (a VM or container with a built-in kernel)
# has none, and podman refuses the mount: an empty one, removed at the end.
made_modules=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -f "$WORK/created" ]; then
    if [ "$keep" = 1 ]; then
      say "KEEP_CLUSTER=1: leaving cluster $cluster_name (kubeconfig $WORK/kubeconfig)"
      exit $rc
    fi
    say "deleting cluster $cluster_name"
    timeout 300 "$KIND" delete cluster --name "$cluster_name" || say "kind delete cluster failed"
    if [ $network_existed = 0 ] && podman network exists kind; then
      podman network rm kind >/dev/null || say "podman network rm kind failed"
    fi
  fi
  if [ $made_modules = 1 ]; then rmdir /lib/modules || say "/lib/modules not removed"; fi
  rm -rf "$WORK"
  say "$([ $rc = 0 ] && echo OK || echo FAILED) after $((SECONDS - start))s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

KIND="$(timeout "$(left 1800)" hack/build-kind.sh kind | tail -n 1)/kind"
export KIND
kind_clusters() { timeout 60 "$KIND" get clusters 2>/dev/null || true; }
if grep -qxF -- "$cluster_name" <<<"$(kind_clusters)"; then
  die "a kind cluster named $cluster_name exists already (not this run's: left alone); delete it or set CLUSTER_NAME"
fi

if [ ! -e /lib/modules ]; then
  mkdir /lib/modules
  made_modules=1
fi
NODE_IMAGE=$(timeout "$(left 3600)" hack/kind-image.sh build | tail -n 1)
ARCHIVE=$(IMAGE_NAME=$scheduler_image IMAGE_FORMAT=docker IMAGE_BUILD_TIMEOUT=$(left 3600) hack/image.sh build | tail -n 1)
timeout "$(left 3600)" cargo build --release --locked -p celers-kube-lease-scheduler --bin celers-beat-runs
KUBECTL="$(hack/build-upstream.sh | tail -n 1)/kubectl"
export NODE_IMAGE ARCHIVE KUBECTL KUBECONFIG_FILE=$WORK/kubeconfig
say "builds done after $((SECONDS - start))s"

# TERM at the deadline (the script's traps end the run), KILL a minute later.
timeout -k 60 "$(left "$timeout_secs")" unshare --net -- "$0" --inside
