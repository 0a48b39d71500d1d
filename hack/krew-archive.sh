#!/usr/bin/env bash
# Packs `kubectl celers` for krew: OUT_DIR/kubectl-celers_v<VERSION>_<os>_<arch>.tar.gz
# (the binary and LICENSE) and OUT_DIR/celers.yaml, the manifest of
# kubectl-celers/krew/plugin.yaml with one platform per archive in OUT_DIR,
# each with its sha256 and its download address under the release tag.
#
#   hack/krew-archive.sh OUT_DIR                 builds the release binary as
#                                                `make plugin` does (this machine's
#                                                platform)
#   hack/krew-archive.sh OUT_DIR --binary PATH   packs PATH instead
#   KREW_OS=darwin KREW_ARCH=arm64 ...           names another platform for a
#                                                binary built for it
#
# Installing from the archive, without a download:
#   kubectl krew install --manifest=OUT_DIR/celers.yaml --archive=OUT_DIR/kubectl-celers_v..._linux_amd64.tar.gz
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
LOG_PREFIX="krew-archive: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

[ $# -ge 1 ] || die "usage: hack/krew-archive.sh OUT_DIR [--binary PATH]"
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
binary=
case ${1:-} in
  --binary) [ -n "${2:-}" ] || die "--binary needs a path"; binary=$2 ;;
  "") ;;
  *) die "unknown argument $1" ;;
esac

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/kubectl-celers/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no version in kubectl-celers/Cargo.toml"
os=${KREW_OS:-$(uname -s | tr '[:upper:]' '[:lower:]')}
case ${KREW_ARCH:-$(uname -m)} in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=${KREW_ARCH:-$(uname -m)} ;;
esac

if [ -z "$binary" ]; then
  say "building the release binary (as make plugin does)"
  (cd "$root" && cargo build --release --locked -p kubectl-celers)
  binary=${CARGO_TARGET_DIR:-$root/target}/release/kubectl-celers
fi
[ -x "$binary" ] || die "no executable at $binary"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp "$binary" "$staging/kubectl-celers"
cp "$root/LICENSE" "$staging/LICENSE"
archive="kubectl-celers_v${version}_${os}_${arch}.tar.gz"
# Reproducible: fixed order, owner and times, no gzip time stamp.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$staging" -cf - kubectl-celers LICENSE | gzip -n >"$out/$archive"
say "packed $out/$archive"

# The manifest: one platform per archive of this version in OUT_DIR.
platforms=$staging/platforms
: >"$platforms"
for file in "$out"/kubectl-celers_v"${version}"_*_*.tar.gz; do
  name=${file##*/}
  rest=${name#kubectl-celers_v"${version}"_}
  rest=${rest%.tar.gz}
  p_os=${rest%%_*} p_arch=${rest#*_}
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  cat >>"$platforms" <<YAML
  - selector:
      matchLabels:
        os: $p_os
        arch: $p_arch
    uri: https://github.com/celers-rs/celers-kube-lease/releases/download/kubectl-celers-v$version/$name
    sha256: "$sha"
    bin: kubectl-celers
    files:
    - from: kubectl-celers
      to: .
    - from: LICENSE
      to: .
YAML
done
awk -v platforms="$platforms" '
  /^#/ && !started { next }
  { started = 1 }
  /^  platforms: \[\]$/ {
    print "  platforms:"
    while ((getline line < platforms) > 0) print line
    next
  }
  { print }
' "$root/kubectl-celers/krew/plugin.yaml" | sed "s/@VERSION@/$version/g" >"$out/celers.yaml"
say "wrote $out/celers.yaml"
