# shellcheck shell=bash
# Sourced by the hack/ scripts: how they talk to the person running them.
# Set LOG_PREFIX before sourcing to prefix every line (for example
# "control-plane: "); without it, messages are headings on stdout.

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

# wait_gone PID NAME SECS: wait up to SECS seconds for PID (running NAME) to
# go away, as the caller's `is_ours PID NAME` tells.
wait_gone() {
  local pid=$1 name=$2 deadline=$((SECONDS + $3))
  while is_ours "$pid" "$name"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
