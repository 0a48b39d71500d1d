# shellcheck shell=bash
# Sourced by the hack/ scripts: how they talk to the person running them,
# and (for control-plane.sh and node.sh) how they start, find and stop the
# processes of a state dir. Set LOG_PREFIX before sourcing to prefix every
# line (for example "control-plane: "); without it, messages are headings
# on stdout.

say() {
  if [[ -n ${LOG_PREFIX:-} ]]; then
    printf '%s%s\n' "$LOG_PREFIX" "$*" >&2
  else
    printf '\n==> %s\n' "$*"
  fi
}

die() {
  printf '%serror: %s\n' "${LOG_PREFIX:-}" "$*" >&2
  exit 1
}

# runs_program PID PROG DIR: true if PID is a live (not zombie) process whose
# argv0 is PROG (its base name) and whose command line names DIR/ -- how the
# scripts make sure they stop exactly what they started.
runs_program() {
  local pid=$1 prog=$2 dir=$3 stat cmdline argv0
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ] || return 1
  cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  argv0=${cmdline%%$'\n'*}
  [ "${argv0##*/}" = "$prog" ] && [[ $cmdline == *"$dir/"* ]]
}

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# pick_port: a free port below Linux's default ephemeral range (32768+), so
# outgoing connections never hold it, and distinct from the values of the
# caller's associative array `port`.
# shellcheck disable=SC2154 # `port` belongs to the caller
pick_port() {
  local p k taken
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    taken=
    for k in "${!port[@]}"; do [ "${port[$k]}" != "$p" ] || taken=1; done
    [ -z "$taken" ] && port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found on 127.0.0.1"
}

# ---- processes of a state dir --------------------------------------------------
# The functions below work in the caller's state dir $dir: NAME's process
# has its pid in $dir/NAME.pid and its output in $dir/NAME.log, and names
# $dir/ on its command line, which is how a process is known to be ours.

# Seconds a process has to exit after TERM before it is killed.
STOP_GRACE=20

# prog_of NAME: the program NAME runs: NAME less an instance number
# (etcd-1 runs etcd).
prog_of() { printf '%s\n' "${1%-[0-9]}"; }

pid_of() { [ -f "$dir/$1.pid" ] && cat "$dir/$1.pid"; }

# is_ours PID NAME: PID is a live (not zombie) process of this state dir
# running NAME's program.
is_ours() { runs_program "$1" "$(prog_of "$2")" "$dir"; }

alive() { local pid; pid=$(pid_of "$1") && is_ours "$pid" "$1"; }

# find_ours NAME: PIDs of this state dir's processes running NAME's
# program, recorded or not.
find_ours() {
  local p
  for p in /proc/[0-9]*; do
    is_ours "${p#/proc/}" "$1" && echo "${p#/proc/}"
  done
  return 0
}

# wait_gone PID NAME SECS: wait up to SECS seconds for PID (running NAME) to
# go away.
wait_gone() {
  local pid=$1 name=$2 deadline=$((SECONDS + $3))
  while is_ours "$pid" "$name"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# reap PID NAME: wait for PID (sent TERM) to exit; KILL it after STOP_GRACE s.
reap() {
  local pid=$1 name=$2
  if ! wait_gone "$pid" "$name" "$STOP_GRACE"; then
    say "$name (pid $pid) ignored TERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" "$name" 10 || die "$name (pid $pid) would not die"
  fi
  say "stopped $name (pid $pid)"
}

# stop NAME...: TERM the recorded process of each NAME (if it is ours) at
# once, then reap each, and forget their pids.
stop() {
  local name pid
  local -A term=()
  for name in "$@"; do
    pid=$(pid_of "$name") || continue
    if is_ours "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      term[$name]=$pid
    fi
  done
  for name in "$@"; do
    if [ -n "${term[$name]:-}" ]; then reap "${term[$name]}" "$name"; fi
    rm -f "$dir/$name.pid"
  done
}

# stop_strays NAME: stop, one by one, this state dir's processes running
# NAME's program that no pid file records any more (an interrupted `up`, or
# children that outlive their parent).
stop_strays() {
  local pid
  for pid in $(find_ours "$1"); do
    if is_ours "$pid" "$1"; then
      kill -TERM "$pid" 2>/dev/null || true
      reap "$pid" "$1"
    fi
  done
}

# detach NAME CMD...: run CMD in a session of its own, as NAME: no stdin, its
# output appended to $dir/NAME.log, its pid in $dir/NAME.pid. (fd 9, the
# caller's lock, is not inherited.)
detach() {
  local name=$1; shift
  if command -v setsid >/dev/null; then
    setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  else
    nohup "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  fi
  echo $! >"$dir/$name.pid"
}

# start NAME CMD...: detach, after a line in NAME's log saying when.
start() {
  printf -- '----- %s: starting %s\n' "$(date -u +%FT%TZ)" "$1" >>"$dir/$1.log"
  detach "$@"
}

# lock: wait (5 minutes at most) until no other run of this script works in
# $dir, and hold that until this one exits.
lock() {
  if command -v flock >/dev/null; then
    exec 9>"$dir/.lock"
    flock -w 300 9 || die "another ${0##*/} is busy with $dir"
  fi
}

# ---- port files -------------------------------------------------------------------
# The caller's associative array `port` maps port keys to ports, and its
# function port_keys prints the keys it needs; $dir/ports keeps them.

# load_ports: read $dir/ports into `port`; false unless every key has one.
# shellcheck disable=SC2154,SC2004 # `port` is the caller's associative array
load_ports() {
  local k v
  [ -f "$dir/ports" ] || return 1
  while IFS='=' read -r k v; do port[$k]=$v; done <"$dir/ports"
  for k in $(port_keys); do [ -n "${port[$k]:-}" ] || return 1; done
}

save_ports() {
  local k
  for k in $(port_keys); do printf '%s=%s\n' "$k" "${port[$k]}"; done >"$dir/ports.tmp"
  mv "$dir/ports.tmp" "$dir/ports"
}

# ---- TLS ---------------------------------------------------------------------------

# ossl ARGS...: openssl ARGS, quiet unless it fails (then the run ends).
ossl() {
  local err
  err=$(timeout 60 openssl "$@" 2>&1 >/dev/null) || die "openssl $1 failed: $err"
}
