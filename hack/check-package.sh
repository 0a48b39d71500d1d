#!/usr/bin/env bash
# What `cargo publish` would ship of the library, checked: the files of
# `cargo package --list -p celers-kube-lease` must all be under src/ or
# examples/, or be README.md, LICENSE, CHANGELOG.md, Cargo.toml (and the
# .orig cargo keeps), Cargo.lock or .cargo_vcs_info.json, which cargo adds;
# and README.md (compiled as doctests by src/lib.rs), LICENSE, CHANGELOG.md,
# src/lib.rs and the examples must be among them. Fails naming what is wrong.
#
#   hack/check-package.sh             the list check
#   hack/check-package.sh --publish   also `cargo publish --dry-run` (packs,
#                                     builds the packed crate on its own,
#                                     needs the crates.io index)
#   hack/check-package.sh --self-test the checker against lists that must
#                                     pass and lists that must fail
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
LOG_PREFIX="check-package: "
# shellcheck source=hack/lib.sh
source hack/lib.sh

# check_list: reads a package's file list on stdin; prints what is wrong and
# returns 1, or returns 0.
check_list() {
  local file bad=() seen=() required missing=()
  while IFS= read -r file; do
    [ -n "$file" ] || continue
    seen+=("$file")
    case $file in
      src/*|examples/*) ;;
      README.md|LICENSE|CHANGELOG.md) ;;
      Cargo.toml|Cargo.toml.orig|Cargo.lock|.cargo_vcs_info.json) ;;
      *) bad+=("$file") ;;
    esac
  done
  for required in README.md LICENSE CHANGELOG.md Cargo.toml src/lib.rs \
    examples/trait_locks.rs examples/guards_fencing.rs; do
    printf '%s\n' "${seen[@]}" | grep -qxF -- "$required" || missing+=("$required")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'would ship %d file(s) outside src/, examples/, README.md, LICENSE, CHANGELOG.md, Cargo.toml, Cargo.lock:\n' "${#bad[@]}"
    printf '  %s\n' "${bad[@]}"
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    printf 'would not ship:\n'
    printf '  %s\n' "${missing[@]}"
  fi
  [ ${#bad[@]} -eq 0 ] && [ ${#missing[@]} -eq 0 ]
}

self_test() {
  local good='.cargo_vcs_info.json
CHANGELOG.md
Cargo.lock
Cargo.toml
Cargo.toml.orig
LICENSE
README.md
examples/guards_fencing.rs
examples/trait_locks.rs
src/lib.rs
src/backend/mod.rs'
  check_list <<<"$good" >/dev/null || die "self-test: a good list was refused"
  local case
  for case in hack/build-upstream.sh hack/upstream/go.sum BENCHMARKS.md \
    bench/src/main.rs tests/backend.rs testkit/src/lib.rs Makefile; do
    if check_list <<<"$good"$'\n'"$case" >/dev/null; then
      die "self-test: a list with $case was accepted"
    fi
  done
  for case in README.md LICENSE CHANGELOG.md src/lib.rs examples/trait_locks.rs; do
    if grep -vxF -- "$case" <<<"$good" | check_list >/dev/null; then
      die "self-test: a list without $case was accepted"
    fi
  done
  say "self-test passed"
}

publish=false
case ${1:-} in
  --self-test) self_test; exit 0 ;;
  --publish) publish=true ;;
  "") ;;
  *) die "unknown argument $1 (--publish, --self-test)" ;;
esac

list=$(cargo package --list -p celers-kube-lease --allow-dirty --locked)
if ! problems=$(check_list <<<"$list"); then
  printf '%s\n' "$problems" >&2
  die "cargo package --list -p celers-kube-lease ships the wrong files (see include in Cargo.toml)"
fi
say "cargo package --list: $(wc -l <<<"$list") files, all of src/, examples/, README.md, LICENSE, CHANGELOG.md and cargo's own"

if $publish; then
  # Packs the crate and builds it alone, from the package, as crates.io
  # users will get it; uploads nothing. The library enables no k8s-openapi
  # version feature (the application picks one), so the build picks one the
  # way docs.rs and `make lint` do.
  K8S_OPENAPI_ENABLED_VERSION=${K8S_OPENAPI_ENABLED_VERSION:-1.37} \
    cargo publish --dry-run -p celers-kube-lease --allow-dirty --locked
  say "cargo publish --dry-run passed"
fi
