#!/usr/bin/env bash
# End-to-end check with the example scheduler running as real pods on the
# one-node cluster of hack/node.sh (control plane, kubelet, containerd, runc on
# this machine; no container engine, no image registry):
#
#   1. builds the scheduler's image (hack/image.sh) and imports it into the node;
#   2. applies deploy/ through hack/node/overlay/: the Deployment's three pods reach
#      Running, and the Leases name pods as holders (POD_NAME, Downward API);
#   3. deletes the leader's pod: another pod holds the leader Lease within
#      TTL + GRACE_SECS, and the replacement pod joins (logs its role);
#   4. `kubectl rollout restart`: the rollout completes, every old pod logged
#      "shutting down" for SIGTERM and exited 0;
#   5. from every pod's log (followed from start to end), per schedule entry:
#      no instant fired twice, no gap longer than the entry's interval plus
#      the failover bound (TTL + TTL/3 + 2 s + GRACE_SECS);
#   6. shows `kubectl get leases`.
#
# It starts a node and a control plane of its own (state in a temp dir) and
# stops them again, whatever happens; with NODE_DIR (and CONTROL_PLANE_DIR)
# naming a node that is up, it uses that one, leaves it running and deletes
# only the celers-beat namespace it applied. Every wait is bounded.
#
# Needs what hack/node.sh needs (root, Debian's containerd and runc, cgroup
# v1), Rust, Go and jq.
#
# With CLUSTER_KUBECONFIG, it runs the same checks (2. to 6.) against that
# cluster instead (hack/kind-e2e.sh's kind cluster, the scheduler's image
# already on its nodes): deploy/ applied unchanged, no node of its own, only
# the celers-beat namespace deleted at the end.
#
# Environment:
#   KEEP_NODE=1       leave the node, the namespace and the pods running
#   OBSERVE_SECS      how long the schedulers run before the leader is deleted (default 20)
#   GRACE_SECS        allowance on top of the TTL for a new leader (default 5)
#   NODE_DIR, CONTROL_PLANE_DIR   a running node to use (see hack/node.sh)
#   IMAGE_ARCHIVE     an image archive made by hack/image.sh to use instead of building one
#   CLUSTER_KUBECONFIG  a cluster to check (see above); KUBECTL the kubectl to use
#                     (default: the one hack/build-upstream.sh builds)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly root
cd "$root"

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

readonly namespace=celers-beat
readonly deployment=celers-beat-scheduler
readonly selector=app.kubernetes.io/name=celers-beat-scheduler
readonly observe_secs=${OBSERVE_SECS:-20}
readonly grace_secs=${GRACE_SECS:-5}
readonly keep=${KEEP_NODE:-0}
readonly leader_key=celers-beat/leader
readonly cluster_kubeconfig=${CLUSTER_KUBECONFIG:-}

for tool in jq cargo go; do
  command -v "$tool" >/dev/null || die "$tool not found (jq: apt-get install jq)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/celers-pods-e2e.XXXXXX")
logs="$work/logs"
mkdir -p "$logs"
started_node=0
applied=0
background=()
failed=0

# ---- the scheduler's log format: the one place that knows it --------------------

# events < LOG: one line per event of interest in a scheduler's log, whatever
# the log's format (JSON lines now; `message key=value ...` text lines too):
#   executed TASK RUN OWNER | role ROLE OWNER | starting OWNER
#   shutdown REASON OWNER  | released OWNER
events() {
  jq -Rr '
    def text_fields: [scan("([A-Za-z_]+)=(\"[^\"]*\"|\\S+)") | {key: .[0], value: (.[1] | ltrimstr("\"") | rtrimstr("\""))}] | from_entries;
    def text_event:
      (capture("(?<message>executed run|role changed|scheduler starting|shutting down|released locks; exiting)(?<rest>.*)") // null)
      | if . == null then null else ({message} + (.rest | text_fields)) end;
    ((fromjson? // null) | if type == "object" then . else null end) as $json
    | ($json // text_event) as $e
    | if $e == null then empty
      elif $e.message == "executed run" then "executed \($e.task) \($e.run) \($e.owner)"
      elif $e.message == "role changed" then "role \($e.role) \($e.owner)"
      elif $e.message == "scheduler starting" then "starting \($e.owner)"
      elif $e.message == "shutting down" then "shutdown \($e.reason) \($e.owner)"
      elif $e.message == "released locks; exiting" then "released \($e.owner)"
      else empty end'
}

# ---- helpers --------------------------------------------------------------------

# pod_events POD: the events of POD's log (none if its log was never followed).
pod_events() { if [ -f "$logs/$1.log" ]; then events <"$logs/$1.log"; fi; }

# kc: kubectl, each request bounded by 30 s, the whole by 90 s; kc_for SECS:
# bounded by SECS only (for commands that wait, with their own --timeout).
kc() { kc_for 90 --request-timeout 30s "$@"; }
kcn() { kc -n "$namespace" "$@"; }
kc_for() {
  local secs=$1
  shift
  timeout "$secs" "$kubectl" --kubeconfig "$kubeconfig" "$@"
}
now_ms() { date +%s%3N; }

fail() {
  printf 'FAIL: %s\n' "$*"
  failed=1
}

pods() {
  kcn get pods -l "$selector" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}'
}

running_pods() {
  kcn get pods -l "$selector" \
    -o 'jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' |
    awk 'NF == 1 {print $1}'
}

# The pod holding the leader Lease (empty if none): KubeBeat holds it as
# <pod name>_<random suffix>.
leader() {
  kcn get leases -o json |
    jq -r --arg key "$leader_key" '.items[] | select(.metadata.annotations["celers.io/lock-key"] == $key) | .spec.holderIdentity // empty | sub("_[0-9a-f]+$"; "")'
}

# wait_until SECS WHAT CMD...: poll CMD every half second.
wait_until() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "$what: not within ${secs}s"
      return 1
    fi
    sleep 0.5
  done
}

# Follows the log of every scheduler pod from its start to its end, one
# `kubectl logs -f` per pod, until killed.
follow_logs() {
  local pod
  local -A following=()
  while :; do
    for pod in $(kcn get pods -l "$selector" \
      -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.containerStatuses[0].state.running.startedAt}{.status.containerStatuses[0].state.terminated.exitCode}{"\n"}{end}' 2>/dev/null |
      awk 'NF == 2 {print $1}'); do
      [ -z "${following[$pod]:-}" ] || continue
      following[$pod]=1
      timeout 1800 "$kubectl" --kubeconfig "$kubeconfig" -n "$namespace" logs -f "$pod" \
        >"$logs/$pod.log" 2>"$logs/$pod.err" &
      echo $! >>"$work/follower-pids"
    done
    sleep 0.5
  done
}

# Records every change of the scheduler pods: name, phase, exit code and reason
# of a terminated container.
watch_pods() {
  exec timeout 1800 "$kubectl" --kubeconfig "$kubeconfig" -n "$namespace" get pods -l "$selector" --watch \
    -o 'jsonpath={.metadata.name}{" "}{.status.phase}{" "}{.status.containerStatuses[0].state.terminated.exitCode}{" "}{.status.containerStatuses[0].state.terminated.reason}{"\n"}' \
    >"$work/pod-changes" 2>"$work/pod-changes.err"
}

diagnostics() {
  say "diagnostics"
  kcn get deployment,replicaset,pods,leases -o wide || true
  kc get nodes -o wide || true
  kcn get events --sort-by=.lastTimestamp || true
  for f in "$logs"/*.err; do [ -s "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done
  for f in "$logs"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done
  [ -n "$cluster_kubeconfig" ] || hack/node.sh status || true
}

descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$child"; descendants "$child"; done
}

# kill_tree PID: PID and every process below it (PID stopped first, so it
# starts no new ones meanwhile).
kill_tree() {
  local all
  kill -STOP "$1" 2>/dev/null || return 0
  all="$1 $(descendants "$1")"
  # shellcheck disable=SC2086 # a list of PIDs
  kill $all 2>/dev/null || true
  kill -CONT "$1" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  if [ $rc -ne 0 ] || [ $failed -ne 0 ]; then [ -z "${kubectl:-}" ] || diagnostics; fi
  for pid in "${background[@]}"; do kill_tree "$pid"; done
  if [ -f "$work/follower-pids" ]; then
    while read -r pid; do kill_tree "$pid"; done <"$work/follower-pids"
  fi
  wait 2>/dev/null
  if [ "$keep" = 1 ]; then
    say "KEEP_NODE=1: leaving the node and namespace $namespace; logs in $work"
    exit $rc
  fi
  if [ $applied = 1 ]; then
    say "deleting namespace $namespace"
    kc_for 120 delete namespace "$namespace" --wait=true --timeout=90s >/dev/null || say "namespace $namespace not deleted in 90s"
  fi
  if [ $started_node = 1 ]; then
    say "stopping the node"
    timeout 300 hack/node.sh down || say "hack/node.sh down failed"
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. image and node ---------------------------------------------------------------

t0=$SECONDS
if [ -n "$cluster_kubeconfig" ]; then
  [ -f "$cluster_kubeconfig" ] || die "CLUSTER_KUBECONFIG $cluster_kubeconfig: no such file"
  kubeconfig=$cluster_kubeconfig
  kubectl=${KUBECTL:-$(hack/build-upstream.sh | tail -n 1)/kubectl}
  say "checking the cluster of $kubeconfig"
elif [ -n "${IMAGE_ARCHIVE:-}" ]; then
  archive=$IMAGE_ARCHIVE
  [ -f "$archive" ] || die "IMAGE_ARCHIVE $archive: no such file"
  say "using the image archive $archive"
else
  archive=$(hack/image.sh build | tail -n 1)
  say "image built in $((SECONDS - t0))s"
fi

t0=$SECONDS
if [ -n "$cluster_kubeconfig" ]; then
  :
elif [ -n "${NODE_DIR:-}" ] && hack/node.sh status >/dev/null 2>&1; then
  say "using the node in $NODE_DIR"
else
  export NODE_DIR="$work/node" CONTROL_PLANE_DIR="$work/control-plane"
  started_node=1
  say "starting a node of its own"
  hack/node.sh up
fi
if [ -z "$cluster_kubeconfig" ]; then
  say "node up after $((SECONDS - t0))s"
  kubeconfig=$(hack/control-plane.sh kubeconfig)
  kubectl="$(hack/control-plane.sh bin)/kubectl"
  hack/node.sh import "$archive"
fi
kc get nodes -o wide

# ---- 2. deploy ---------------------------------------------------------------------

applied=1
kc get namespace "$namespace" >/dev/null 2>&1 || kc create namespace "$namespace" >/dev/null
if [ -n "$cluster_kubeconfig" ]; then
  say "applying deploy/"
  manifests=deploy/
else
  say "applying deploy/ through hack/node/overlay/"
  manifests=hack/node/overlay/
  kcn create configmap local-apiserver --from-literal=port="$(hack/node.sh apiserver-port)" \
    --dry-run=client -o yaml | kc apply --server-side --field-manager=celers-pods-e2e -f - >/dev/null
fi
watch_pods &
background+=($!)
follow_logs &
background+=($!)
kc apply --server-side --force-conflicts --field-manager=celers-pods-e2e -k "$manifests"
kc_for 200 -n "$namespace" rollout status "deployment/$deployment" --timeout=180s
kcn get pods -l "$selector" -o wide

ttl=$(kcn get deployment "$deployment" \
  -o 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="SCHEDULER_TTL_SECS")].value}')
interval=$(kcn get deployment "$deployment" \
  -o 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="SCHEDULER_INTERVAL_SECS")].value}')
ttl=${ttl:-15} interval=${interval:-5}

three_running() { [ "$(running_pods | wc -l)" -eq 3 ]; }
wait_until 120 "three pods Running" three_running
mapfile -t first_pods < <(running_pods)
say "pods: ${first_pods[*]}"

say "letting the schedulers run for ${observe_secs}s"
sleep "$observe_secs"

# Every holder is a pod's KubeBeat (<pod>_<suffix>): the leader lock, and the
# ledger Leases naming the leader that fired each entry last.
check_holders() {
  local holders holder base pod ok known
  holders=$(kcn get leases -o 'jsonpath={range .items[*]}{.spec.holderIdentity}{"\n"}{end}' | sed '/^$/d' | sort -u)
  [ -n "$holders" ] || { fail "no Leases in $namespace"; return; }
  known=$(pods)
  ok=1
  while read -r holder; do
    [ -n "$holder" ] || continue
    base=${holder%_*}
    if ! grep -qxF -- "$base" <<<"$known"$'\n'"$(printf '%s\n' "${!seen_pods[@]}")"; then
      fail "Lease holder '$holder' is not a scheduler pod"
      ok=0
    fi
  done <<<"$holders"
  [ $ok = 0 ] || say "Lease holders are pod names: $(tr '\n' ' ' <<<"$holders")"
}
declare -A seen_pods=()
for pod in "${first_pods[@]}"; do seen_pods[$pod]=1; done
have_leader() { [ -n "$(leader)" ]; }
wait_until 30 "a holder of the leader Lease" have_leader || true
old_leader=$(leader)
[ -n "$old_leader" ] || die "no holder of the leader Lease ($leader_key)"
[ -n "${seen_pods[$old_leader]:-}" ] || fail "the leader Lease's holder '$old_leader' is not a pod"
check_holders

# ---- 3. delete the leader's pod ----------------------------------------------------------

say "deleting the leader's pod $old_leader"
t_delete=$(now_ms)
kcn delete pod "$old_leader" --wait=false
new_leader=
deadline=$(($(date +%s) + ttl + grace_secs + 30))
while [ "$(date +%s)" -lt "$deadline" ]; do
  holder=$(leader || true)
  if [ -n "$holder" ] && [ "$holder" != "$old_leader" ]; then new_leader=$holder; break; fi
  sleep 0.25
done
t_new=$(now_ms)
if [ -z "$new_leader" ]; then
  fail "no new leader within $((ttl + grace_secs + 30))s of deleting $old_leader"
else
  took_ms=$((t_new - t_delete))
  say "new leader $new_leader after $((took_ms / 1000)).$(printf '%03d' $((took_ms % 1000)))s (bound: TTL ${ttl}s + ${grace_secs}s)"
  [ "$took_ms" -le $(((ttl + grace_secs) * 1000)) ] || fail "new leader after ${took_ms} ms, more than TTL + ${grace_secs}s"
  if ! running_pods | grep -qxF -- "$new_leader"; then fail "the new leader '$new_leader' is not a running pod"; fi
fi

# The replacement: a pod not among the first three, Running, with a role in its log.
replacement() {
  local pod
  for pod in $(running_pods); do
    [ -z "${seen_pods[$pod]:-}" ] || continue
    if pod_events "$pod" | grep -q '^role '; then echo "$pod"; return 0; fi
  done
  return 1
}
if wait_until 120 "a replacement pod Running and in the election" replacement; then
  new_pod=$(replacement)
  seen_pods[$new_pod]=1
  say "replacement pod $new_pod joined as $(pod_events "$new_pod" | awk '$1 == "role" {r = $2} END {print r}')"
fi
wait_until 60 "three pods Running again" three_running || true
kcn get pods -l "$selector" -o wide

# ---- 4. rollout restart ------------------------------------------------------------------

mapfile -t old_pods < <(running_pods)
say "rollout restart (old pods: ${old_pods[*]})"
kcn rollout restart "deployment/$deployment"
kc_for 320 -n "$namespace" rollout status "deployment/$deployment" --timeout=300s
for pod in "${old_pods[@]}"; do
  kc_for 120 -n "$namespace" wait --for=delete "pod/$pod" --timeout=90s >/dev/null 2>&1 || fail "old pod $pod still there 90s after the rollout"
done
for pod in $(running_pods); do seen_pods[$pod]=1; done
sleep $((interval * 2)) # a couple more runs by the new pods

# The deleted leader's pod too: it was stopped the same way.
for pod in "$old_leader" "${old_pods[@]}"; do
  exit_code=$(awk -v p="$pod" '$1 == p && $3 != "" {c = $3} END {print c}' "$work/pod-changes")
  reason=$(awk -v p="$pod" '$1 == p && $3 != "" {r = $4} END {print r}' "$work/pod-changes")
  shutdown=$(pod_events "$pod" | awk '$1 == "shutdown" {print $2}' | tail -n 1)
  released=$(pod_events "$pod" | awk '$1 == "released" {n++} END {print n + 0}')
  if [ "$exit_code" = 0 ] && [ "$shutdown" = SIGTERM ] && [ "$released" -ge 1 ]; then
    say "old pod $pod: shut down on SIGTERM, released its locks, exited 0 ($reason)"
  else
    fail "old pod $pod: exit code '${exit_code:-?}' ($reason), shutdown reason '${shutdown:-none}', released: $released"
  fi
done

# ---- 5. every run once -----------------------------------------------------------------

say "instants fired, from the logs of ${#seen_pods[@]} pods (celers-beat-runs)"
checker="${CARGO_TARGET_DIR:-$root/target}/release/celers-beat-runs"
[ -x "$checker" ] || cargo build --release --locked -p celers-kube-lease-scheduler --bin celers-beat-runs
args=()
for f in "$logs"/*.log; do args+=("$(basename "$f" .log)=$f"); done
"$checker" --failover-bound "$((ttl + ttl / 3 + 2 + grace_secs))" --fail-on-skipped "${args[@]}" \
  || fail "an instant was fired twice or skipped beyond the bound, or none was fired"

# ---- 6. the Leases ---------------------------------------------------------------------

check_holders
say "kubectl get leases -n $namespace"
kcn get leases
kcn get leases -l celers.io/beat=celers-beat -o \
  'custom-columns=NAME:.metadata.name,ENTRY:.metadata.annotations.celers\.io/beat-entry,LAST FIRED:.metadata.annotations.celers\.io/beat-last-fired,TOKEN:.metadata.annotations.celers\.io/fencing-token,BY:.spec.holderIdentity'

[ $failed = 0 ] || die "pods-e2e failed (see FAIL lines above)"
say "OK: three scheduler pods on a real node; leader failover and a rolling restart with every instant fired once"
