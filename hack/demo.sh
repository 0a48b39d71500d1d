#!/usr/bin/env bash
# `make demo`: three replicas of the example scheduler (a stock celers-beat
# BeatScheduler with interval and crontab entries, driven by KubeBeat) on the
# local control plane. Half-way through, the leader is SIGKILLed; at the end
# the others get SIGTERM. Then a summary: per entry the instants fired, fired
# twice (must be 0) and skipped beyond the failover bound (must be 0), how
# long failover took, and the Leases as `kubectl get leases` shows them.
#
# Needs only Rust and Go: hack/control-plane.sh builds etcd, kube-apiserver and
# kubectl from source the first time. A control plane that is already up (in
# CONTROL_PLANE_DIR, default the one of `make up`) is used and left running;
# one this script starts is stopped at the end.
#
# Environment:
#   DEMO_SECS      how long the replicas run (default 30)
#   DEMO_INTERVAL  task i runs every (i + 1) x this many seconds (default 1)
#   DEMO_TTL       TTL of the leader lock, seconds (default 6)
#   DEMO_TASKS     number of interval tasks (default 3); a crontab entry
#                  `cron` fires every minute besides
#
# Exit status: non-zero if an instant was fired twice or skipped beyond the
# failover bound, the standby did not take over, or a replica did not exit
# cleanly on SIGTERM.
set -euo pipefail

readonly secs=${DEMO_SECS:-30}
readonly interval=${DEMO_INTERVAL:-1}
readonly ttl=${DEMO_TTL:-6}
readonly tasks=${DEMO_TASKS:-3}
readonly replicas=(replica-a replica-b replica-c)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly root
cd "$root"

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
for value in "$secs" "$interval" "$ttl" "$tasks"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "DEMO_SECS, DEMO_INTERVAL, DEMO_TTL and DEMO_TASKS must be positive integers"
done
((ttl >= 2)) || die "DEMO_TTL must be at least 2"
((secs >= 4 * ttl)) || die "DEMO_SECS must be at least 4 x DEMO_TTL, to leave time for the failover"

# Microseconds since the epoch.
now_us() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME//[.,]/}"; else echo "$(($(date +%s%N) / 1000))"; fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/celers-kube-lease-demo.XXXXXX")
readonly work
started_control_plane=0
declare -A pid=()

cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  for name in "${!pid[@]}"; do
    kill -TERM "${pid[$name]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if ((started_control_plane)); then
    say "stopping the control plane this demo started"
    hack/control-plane.sh down 2>&1 | sed 's/^/    /' || true
  fi
  if ((rc == 0)); then
    rm -rf "$work"
  else
    printf '\nthe replicas'\'' logs are in %s\n' "$work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kubectl() { hack/control-plane.sh kubectl "$@"; }

# ---- control plane and binary ---------------------------------------------------
if hack/control-plane.sh status >/dev/null 2>&1; then
  say "using the control plane that is already up"
  kubeconfig=$(hack/control-plane.sh up 2>/dev/null | tail -n 1)
else
  say "starting a local control plane (etcd + kube-apiserver; the first time builds them from source)"
  started_control_plane=1
  kubeconfig=$(hack/control-plane.sh up | tail -n 1)
fi

say "building the scheduler (cargo build -p celers-kube-lease-scheduler)"
cargo build -p celers-kube-lease-scheduler
bin="${CARGO_TARGET_DIR:-$root/target}/debug/celers-kube-lease-scheduler"
check_runs="${CARGO_TARGET_DIR:-$root/target}/debug/celers-beat-runs"
[[ -x $bin && -x $check_runs ]] || die "$bin or $check_runs was not built"

namespace="celers-demo-$(date +%s)"
kubectl create namespace "$namespace" >/dev/null

# ---- replicas -------------------------------------------------------------------
# json_field NAME LINE: the value of "NAME" in a JSON log line (strings and
# numbers; enough for the scheduler's flat lines).
json_field() {
  local rest=${2#*\""$1"\":}
  [[ $rest != "$2" ]] || return 1
  rest=${rest#\"}
  printf '%s' "${rest%%[\",\}]*}"
}

# narrate NAME: copies a replica's JSON log lines to $work/NAME.log and
# tells the interesting ones.
narrate() {
  local name=$1 line elapsed message
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$work/$name.log"
    elapsed=$((($(now_us) - t0) / 100000))
    elapsed=$(printf '%3d.%ds' $((elapsed / 10)) $((elapsed % 10)))
    message=$(json_field message "$line") || message=$line
    case $message in
      "role changed") printf '  %s  %-9s  is the %s\n' "$elapsed" "$name" "$(json_field role "$line")" ;;
      "executed run")
        printf '  %s  %-9s  fired %s at %s (token %s)\n' "$elapsed" "$name" \
          "$(json_field task "$line")" "$(date -u -d "@$(json_field run "$line")" +%T)" \
          "$(json_field token "$line")" ;;
      "released locks"*) printf '  %s  %-9s  released its locks and exited\n' "$elapsed" "$name" ;;
      *)
        case $(json_field level "$line") in
          WARN | ERROR) printf '  %s  %-9s  %s\n' "$elapsed" "$name" "$message" ;;
        esac ;;
    esac
  done
  touch "$work/$name.done"
}

say "running ${replicas[*]} for ${secs}s (namespace $namespace, ${tasks} tasks every ${interval}s, $((2 * interval))s, ..., a crontab entry every minute, leader TTL ${ttl}s)"
t0=$(now_us)
for name in "${replicas[@]}"; do
  POD_NAME=$name POD_NAMESPACE=$namespace KUBECONFIG=$kubeconfig RUST_LOG=info LOG_FORMAT=json METRICS_PORT=0 \
    "$bin" --interval-secs "$interval" --ttl-secs "$ttl" --tasks "$tasks" --crontab "* * * * *" \
    > >(narrate "$name") 2>&1 &
  pid[$name]=$!
done

# Sleep until $1 seconds after the start.
sleep_until() {
  local left=$(($1 * 1000000 - ($(now_us) - t0)))
  ((left <= 0)) || sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
}

# ---- kill the leader half-way ---------------------------------------------------
sleep_until $((secs / 2))
# The holder is <pod name>_<random suffix>.
leader=$(kubectl -n "$namespace" get leases -o \
  'jsonpath={range .items[*]}{.metadata.annotations.celers\.io/lock-key}{" "}{.spec.holderIdentity}{"\n"}{end}' |
  awk '$1 == "celers-beat/leader" { sub(/_[0-9a-f]+$/, "", $2); print $2 }')
[[ -n $leader && -n ${pid[$leader]:-} ]] || die "no replica holds the leader Lease (holder: '${leader}')"
printf '\n  --- the leader Lease names %s: SIGKILL it (no chance to release anything) ---\n\n' "$leader"
killed_at=$(now_us)
# (stderr off: bash would report the killed job)
{ kill -KILL "${pid[$leader]}"; wait "${pid[$leader]}"; } 2>/dev/null || true
unset 'pid[$leader]'

# ---- stop the others ------------------------------------------------------------
sleep_until "$secs"
printf '\n  --- SIGTERM the others ---\n\n'
declare -A status=([$leader]="SIGKILLed")
for name in "${!pid[@]}"; do kill -TERM "${pid[$name]}"; done
for name in "${!pid[@]}"; do
  for _ in $(seq 1 150); do kill -0 "${pid[$name]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${pid[$name]}" 2>/dev/null; then
    status[$name]="still running 15s after SIGTERM"
    kill -KILL "${pid[$name]}"
  fi
  rc=0; { wait "${pid[$name]}"; } 2>/dev/null || rc=$?
  [[ -n ${status[$name]:-} ]] || status[$name]="exit $rc"
  unset 'pid[$name]'
done
for name in "${replicas[@]}"; do
  for _ in $(seq 1 50); do [[ -e $work/$name.done ]] && break; sleep 0.1; done
done

# ---- summary --------------------------------------------------------------------
say "summary (celers-beat-runs, from the replicas' JSON logs)"
logs=()
for name in "${replicas[@]}"; do logs+=("$name=$work/$name.log"); touch "$work/$name.log"; done
runs_ok=1
# A gap may include a failover: the TTL, a third of it (the standbys' retry
# period) and 2 s for the clock's uncertainty and the tick.
"$check_runs" --failover-bound "$((ttl + ttl / 3 + 2))" --fail-on-skipped \
  --failover-after "$((killed_at / 1000))" --dead "$leader" "${logs[@]}" || runs_ok=0
echo
printf '  %-10s  %s\n' REPLICA "HOW IT ENDED"
for name in "${replicas[@]}"; do
  printf '  %-10s  %s\n' "$name" "${status[$name]}"
done

# show_tail TITLE CMD...: a kubectl listing, header and its last rows.
show_tail() {
  local title=$1 out rows
  shift
  out=$("$@")
  rows=$(($(printf '%s\n' "$out" | wc -l) - 1))
  say "$title ($((rows < 8 ? rows : 8)) newest of $rows Leases)"
  printf '%s\n' "$out" | head -n 1
  printf '%s\n' "$out" | tail -n +2 | tail -n 8
}
show_tail "kubectl -n $namespace get leases -l celers.io/beat=celers-beat" \
  kubectl -n "$namespace" get leases -l celers.io/beat=celers-beat
show_tail "the same Leases: entry, last instant fired, the leader's fencing token" \
  kubectl -n "$namespace" get leases -l celers.io/beat=celers-beat -o \
  'custom-columns=NAME:.metadata.name,ENTRY:.metadata.annotations.celers\.io/beat-entry,LAST FIRED:.metadata.annotations.celers\.io/beat-last-fired,TOKEN:.metadata.annotations.celers\.io/fencing-token,BY:.spec.holderIdentity'
echo
echo "  One replica leads (a guard on the Lease celers-beat/leader, with a fencing"
echo "  token). The ledger Leases above record per entry the last instant fired;"
echo "  the leader fires an instant only by moving that record forward (a"
echo "  conditional write), and a new leader continues from it: no instant twice."
if ((!started_control_plane)); then
  echo "  The control plane stays up; the Leases are in namespace $namespace."
fi

failed=()
((runs_ok)) || failed+=("celers-beat-runs found an instant fired twice or skipped, none fired, or no failover")
for name in "${replicas[@]}"; do
  [[ $name == "$leader" || ${status[$name]} == "exit 0" ]] || failed+=("$name: ${status[$name]}")
done
if ((${#failed[@]} > 0)); then
  printf '\nFAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nOK: every instant fired once; a standby took over after the SIGKILL.\n'
