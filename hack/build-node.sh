#!/usr/bin/env bash
# Builds what hack/node.sh runs next to the local control plane, once per
# version, into the same cache as hack/build-upstream.sh (outside the work tree):
#
#   hack/build-node.sh kube    kubelet, kube-controller-manager, kube-scheduler at the
#                              k8s.io/kubernetes version pinned in
#                              hack/upstream/kubernetes/go.mod (the control plane's)
#   hack/build-node.sh cni     the CNI loopback plugin at the version pinned in
#                              hack/upstream/cni-plugins/go.mod
#   hack/build-node.sh pause   the pod sandbox ("pause") binary from hack/node/pause/
#
# Each prints the directory holding its binaries (last line). Builds run under
# `nice -n 19`; CELERS_KUBE_CACHE moves the cache as for build-upstream.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CELERS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celers-kube-lease}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# finish DIR START: move DIR.partial into place and say how long it took.
finish() {
  rm -rf "$1"
  mv "$1.partial" "$1"
  echo "built in $(($(date +%s) - $2))s into $1" >&2
  echo "$1"
}

build_kube() {
  local k8s_version minor ldflags bin start cmd src
  k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/upstream/kubernetes/go.mod")
  bin="$cache/bin/kubernetes-$k8s_version-node"
  if [ -x "$bin/kubelet" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
    echo "$bin"
    return
  fi
  rm -rf "$bin.partial"
  mkdir -p "$bin.partial/src"
  # The control plane's wrapper module, copied: the node binaries need a few
  # more indirect requirements, which `-mod=mod` adds to the copy, never to
  # the pinned go.mod that kube-apiserver and kubectl are built from.
  src="$bin.partial/src"
  cp "$here/upstream/kubernetes/go.mod" "$here/upstream/kubernetes/go.sum" "$src/"
  start=$(date +%s)
  echo "building kubelet, kube-controller-manager and kube-scheduler $k8s_version (first run only; takes a while)" >&2
  minor=${k8s_version#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for cmd in kubelet kube-controller-manager kube-scheduler; do
    (cd "$src" && nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$bin.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  rm -rf "$src"
  finish "$bin" "$start"
}

build_cni() {
  local version bin start
  version=$(awk '$1 == "require" && $2 == "github.com/containernetworking/plugins" {print $3}' "$here/upstream/cni-plugins/go.mod")
  [ -n "$version" ] || { echo "no containernetworking/plugins version in hack/upstream/cni-plugins/go.mod" >&2; exit 1; }
  bin="$cache/bin/cni-plugins-$version"
  if [ -x "$bin/loopback" ]; then echo "$bin"; return; fi
  rm -rf "$bin.partial"; mkdir -p "$bin.partial"
  start=$(date +%s)
  echo "building the CNI loopback plugin $version (first run only)" >&2
  (cd "$here/upstream/cni-plugins" && nice -n 19 go build -trimpath -ldflags '-s -w' \
    -o "$bin.partial/loopback" github.com/containernetworking/plugins/plugins/main/loopback)
  finish "$bin" "$start"
}

build_pause() {
  local hash bin start
  hash=$(cat "$here/node/pause/go.mod" "$here/node/pause/main.go" | sha256sum | cut -c1-12)
  bin="$cache/bin/pause-$hash"
  if [ -x "$bin/pause" ]; then echo "$bin"; return; fi
  rm -rf "$bin.partial"; mkdir -p "$bin.partial"
  start=$(date +%s)
  echo "building the pause binary (first run only)" >&2
  (cd "$here/node/pause" && nice -n 19 go build -trimpath -ldflags '-s -w' -o "$bin.partial/pause" .)
  finish "$bin" "$start"
}

# One build of each kind at a time (a second caller waits, then finds it built).
lock() {
  mkdir -p "$cache/bin"
  exec 9>"$cache/bin/.build-node-$1.lock"
  flock -w 7200 9 || { echo "another hack/build-node.sh $1 is still busy" >&2; exit 1; }
}

case ${1:-} in
  kube | cni | pause) lock "$1" ;;
esac
case ${1:-} in
  kube) build_kube ;;
  cni) build_cni ;;
  pause) build_pause ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
