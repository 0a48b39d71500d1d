#!/usr/bin/env bash
# Fails if the modules of a crate import each other in a circle.
#
#   hack/import-cycles.sh [DIR...]     default: src reliability/src
#
# A module is a file DIR/NAME.rs (or everything under DIR/NAME/); it imports
# module M when its code (comments left out) names `crate::M`, directly or in
# a `use crate::{...}` group. Every edge goes to tsort, which finds a loop if
# there is one. `impl` blocks of one type split across files are not edges:
# only paths are. lib.rs and main.rs, the crate roots, are left out.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- src reliability/src

# edges DIR: "FROM TO" for each import of one module of DIR by another.
edges() {
  local dir=$1
  find "$dir" -name '*.rs' ! -path "$dir/lib.rs" ! -path "$dir/main.rs" | sort |
    while read -r file; do
      local from=${file#"$dir"/}
      from=${from%%/*}
      from=${from%.rs}
      echo "$from $from" # every module is a node, imports or not
      perl -0777 -ne '
        s{//[^\n]*}{}g;
        while (/\bcrate::(\{(?:[^{}]++|(?1))*\}|\w+)/g) {
          my $path = $1;
          if ($path =~ s/^\{(.*)\}$/$1/s) {
            1 while $path =~ s/\{[^{}]*\}//g;  # nested groups: only their heads count
            print "$_\n" for map { /^\s*(\w+)/ ? $1 : () } split /,/, $path;
          } else {
            print "$path\n";
          }
        }' "$file" |
        while read -r to; do
          if [ "$to" != "$from" ] && { [ -f "$dir/$to.rs" ] || [ -d "$dir/$to" ]; }; then
            echo "$to $from"
          fi
        done
    done | sort -u
}

status=0
for dir in "$@"; do
  if ! order=$(edges "$dir" | tsort 2>&1 >/dev/null); then
    printf 'import cycle among the modules of %s/:\n%s\n' "$dir" "$order" >&2
    status=1
  elif [ -n "$order" ]; then
    printf '%s\n' "$order" >&2
    status=1
  fi
done
exit $status
