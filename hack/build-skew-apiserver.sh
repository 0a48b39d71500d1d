#!/usr/bin/env bash
# Builds a second kube-apiserver, from the same pinned module as
# hack/build-upstream.sh, whose wall clock can be shifted at run time: Go's
# standard library is patched for this build only (`go build -overlay`), so
# that time.Now adds the offset in milliseconds found in the file named by
# $CELERS_CLOCK_OFFSET_FILE (re-read at most every 100 ms; see
# hack/ha/clock_offset.go.in). Without that variable the binary behaves as the
# stock one. Prints the directory holding the binary (named kube-apiserver).
#
# Why not libfaketime: kube-apiserver is a static Go binary (CGO_ENABLED=0)
# and Go reads the clock through the vDSO itself, so LD_PRELOAD never
# reaches it (checked: under `faketime -f +1h` its Date header was not moved).
#
# The patched time.go is generated from the installed Go's own source at
# build time; no copy of Go's source is kept in this repository. Built once
# per Kubernetes version, Go version and patch; takes about as long as the
# stock kube-apiserver (every package above "time" is recompiled).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/upstream/kubernetes/go.mod")
cache=${CELERS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celers-kube-lease}
goroot=$(go env GOROOT)
go_version=$(go env GOVERSION)
rename='s/^func Now() Time {$/func realNow() Time {/'
# What the binary depends on besides the pinned module: Go, the added file,
# the rename and the flags. (Editing this script's comments rebuilds nothing.)
build_flags="CGO_ENABLED=0 -trimpath -ldflags -s -w"
patch_id=$({ cat "$here/ha/clock_offset.go.in"; echo "$rename $build_flags $go_version"; } | sha256sum | cut -c1-12)
bin="$cache/bin/kubernetes-$k8s_version-clockskew-$patch_id"

if [ -x "$bin/kube-apiserver" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
if command -v flock >/dev/null; then
  exec 9>"$cache/.clockskew-build.lock"
  flock -w 7200 9 || { echo "another build of the clock-skew kube-apiserver is stuck" >&2; exit 1; }
  if [ -x "$bin/kube-apiserver" ]; then echo "$bin"; exit 0; fi
fi

work="$bin.partial"
rm -rf "$work"
mkdir -p "$work/overlay"
src="$goroot/src/time/time.go"
grep -q '^func Now() Time {$' "$src" || { echo "$src: no 'func Now() Time {' to patch" >&2; exit 1; }
sed "$rename" "$src" >"$work/overlay/time.go"
cp "$here/ha/clock_offset.go.in" "$work/overlay/zz_celers_clock_offset.go"
cat >"$work/overlay.json" <<EOF
{"Replace": {
  "$src": "$work/overlay/time.go",
  "$goroot/src/time/zz_celers_clock_offset.go": "$work/overlay/zz_celers_clock_offset.go"
}}
EOF

export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
echo "building the clock-skew kube-apiserver $k8s_version (first HA run only; takes a while)" >&2
# Same version stamping as hack/build-upstream.sh.
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
(cd "$here/upstream/kubernetes" &&
  nice -n 19 go build -overlay "$work/overlay.json" -trimpath -ldflags "$ldflags" \
    -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)

rm -rf "$work/overlay" "$work/overlay.json" "$bin"
mv "$work" "$bin"
echo "built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
