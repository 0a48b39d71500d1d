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
