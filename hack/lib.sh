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
