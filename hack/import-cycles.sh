#!/usr/bin/env bash
# Fails if the modules of a crate import each other in a circle.
#
#   hack/import-cycles.sh [DIR...]     default: src reliability/src
#
# A module of DIR is a file DIR/NAME.rs or a folder DIR/NAME/; it imports
# module M when its code (comments left out) names `crate::M`, directly or
# in a `use crate::{...}` group, or an item that the crate root (lib.rs or
# main.rs) re-exports from M (`pub use M::Item`). The modules of a folder
# module are checked the same way among themselves, with `super::` and
# `crate::FOLDER::` for `crate::`. Every edge goes to tsort, which finds a
# loop if there is one. `impl` blocks of one type split across files are
# not edges: only paths are. The root of each level (lib.rs, main.rs,
# mod.rs) declares the others and is left out.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- src reliability/src

# edges DIR PREFIX: "TO FROM" for each import of one module of DIR by
# another, where PREFIX (a Perl regex) is what a path to DIR's modules
# starts with.
edges() {
  local dir=$1 prefix=$2 root
  root=$(ls "$dir"/lib.rs "$dir"/main.rs "$dir"/mod.rs 2>/dev/null || true)
  find "$dir" -name '*.rs' | sort |
    PREFIX=$prefix DIR=$dir ROOT=$root perl -e '
      use strict;
      my ($dir, $prefix) = ($ENV{DIR}, $ENV{PREFIX});
      my %root = map { $_ => 1 } split /\s+/, $ENV{ROOT};
      my $code = sub { local $/; open my $f, "<", $_[0] or die "$_[0]: $!"; my $t = <$f>; $t =~ s{//[^\n]*}{}g; $t };
      my $is_module = sub { -f "$dir/$_[0].rs" || -d "$dir/$_[0]" };
      # Items the roots re-export, by the module they come from.
      my %from;
      for my $r (keys %root) {
        my $t = $code->($r);
        while ($t =~ /\bpub\s+use\s+(\w+)::(\{[^}]*\}|\w+)/g) {
          my ($m, $items) = ($1, $2);
          next unless $is_module->($m);
          $from{$_} = $m for $items =~ /(\w+)/g;
        }
      }
      while (my $file = <STDIN>) {
        chomp $file;
        next if $root{$file};
        (my $me = substr($file, length($dir) + 1)) =~ s{/.*}{};
        $me =~ s/\.rs$//;
        print "$me $me\n";    # every module is a node, imports or not
        my $t = $code->($file);
        while ($t =~ /\b(?:$prefix)::(\{(?:[^{}]++|(?1))*\}|\w+)/g) {
          my $path = $1;
          my @heads;
          if ($path =~ s/^\{(.*)\}$/$1/s) {
            1 while $path =~ s/\{[^{}]*\}//g;    # nested groups: their heads count
            @heads = map { /^\s*(\w+)/ ? $1 : () } split /,/, $path;
          } else {
            @heads = ($path);
          }
          for my $to (map { $from{$_} // $_ } @heads) {
            print "$to $me\n" if $to ne $me && $is_module->($to);
          }
        }
      }' | sort -u
}

# check DIR PREFIX: tsort DIR's imports, then each folder module's own.
status=0
check() {
  local dir=$1 prefix=$2 loop sub rel
  if ! loop=$(edges "$dir" "$prefix" | tsort 2>&1 >/dev/null); then
    printf 'import cycle among the modules of %s/:\n%s\n' "$dir" "$loop" >&2
    status=1
  fi
  for sub in "$dir"/*/; do
    [ -d "$sub" ] || continue
    sub=${sub%/}
    rel=${sub#*src/}
    check "$sub" "super|crate::${rel//\//::}"
  done
}

for dir in "$@"; do check "${dir%/}" crate; done
exit $status
