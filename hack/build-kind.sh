#!/usr/bin/env bash
# Builds what `make kind-image` and `make kind-e2e` need from Go modules, once
# per version, into the same cache as hack/build-upstream.sh (outside the work
# tree). Each prints the directory holding its binaries (last line):
#
#   hack/build-kind.sh kind      kind, at the version pinned in hack/kind/kind/go.mod
#   hack/build-kind.sh node      what the kind node image carries besides the
#                                kubelet and the control plane's binaries: kubeadm and
#                                kube-proxy (k8s.io/kubernetes as in hack/upstream/kubernetes),
#                                crictl, the CNI plugins (cni/), etcd and CoreDNS at the
#                                versions kubeadm expects, and hack/kind/kindnetd
#   hack/build-kind.sh storage   local-path-provisioner, kind's default storage
#
# The wrapper modules in hack/kind/*/ pin every version (go.mod, go.sum).
# Builds run under `nice -n 19`; CELERS_KUBE_CACHE moves the cache as for
# build-upstream.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CELERS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celers-kube-lease}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

command -v go >/dev/null || { echo "go not found: hack/build-kind.sh builds from Go modules" >&2; exit 1; }

# finish DIR START: move DIR.partial into place and say how long it took.
finish() {
  rm -rf "$1"
  mv "$1.partial" "$1"
  echo "built in $(($(date +%s) - $2))s into $1" >&2
  echo "$1"
}

# required MODULE DIR: the version of MODULE that hack/kind/DIR/go.mod requires.
required() {
  local v
  v=$(awk -v m="$1" '($1 == "require" && $2 == m) {print $3} ($1 == m) {print $2}' "$here/kind/$2/go.mod" | head -n 1)
  [ -n "$v" ] || { echo "no $1 version in hack/kind/$2/go.mod" >&2; exit 1; }
  echo "$v"
}

# gobuild DIR OUT PKG [LDFLAGS]: go build PKG in a copy of the wrapper module
# hack/kind/DIR (so -mod=mod never edits the pinned go.mod and go.sum).
gobuild() {
  local src
  src=$(mktemp -d)
  cp -r "$here/kind/$1/." "$src/"
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w ${4:-}" -o "$2" "$3") || { rm -rf "$src"; return 1; }
  rm -rf "$src"
}

# Kubernetes' version variables for -ldflags (kubeadm checks its own version).
k8s_ldflags() {
  local minor=${1#v1.} pkg out=
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out="$out -X $pkg.gitVersion=$1 -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$out"
}

build_kind() {
  local version bin start
  version=$(required sigs.k8s.io/kind kind)
  bin="$cache/bin/kind-$version"
  if [ -x "$bin/kind" ]; then echo "$bin"; return; fi
  rm -rf "$bin.partial"; mkdir -p "$bin.partial"
  start=$(date +%s)
  echo "building kind $version (first run only)" >&2
  gobuild kind "$bin.partial/kind" sigs.k8s.io/kind
  finish "$bin" "$start"
}

build_storage() {
  local version bin start
  version=$(required github.com/rancher/local-path-provisioner local-path-provisioner)
  bin="$cache/bin/local-path-provisioner-$version"
  if [ -x "$bin/local-path-provisioner" ]; then echo "$bin"; return; fi
  rm -rf "$bin.partial"; mkdir -p "$bin.partial"
  start=$(date +%s)
  echo "building local-path-provisioner $version (first run only)" >&2
  gobuild local-path-provisioner "$bin.partial/local-path-provisioner" github.com/rancher/local-path-provisioner
  finish "$bin" "$start"
}

build_node() {
  local k8s_version key bin start src p
  k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/upstream/kubernetes/go.mod")
  # Keyed by every input: the Kubernetes wrapper module and hack/kind's
  # wrapper modules and sources (not kind's and the provisioner's own).
  key=$(cd "$here" && cat upstream/kubernetes/go.mod upstream/kubernetes/go.sum \
    kind/crictl/go.* kind/cni/go.* kind/etcd/* kind/coredns/* kind/kindnetd/* | sha256sum | cut -c1-12)
  bin="$cache/bin/kind-node-$k8s_version-$key"
  if [ -x "$bin/kubeadm" ] && [ -x "$bin/kube-proxy" ] && [ -x "$bin/crictl" ] && [ -x "$bin/etcd" ] &&
    [ -x "$bin/coredns" ] && [ -x "$bin/kindnetd" ] && [ -x "$bin/cni/ptp" ]; then
    echo "$bin"
    return
  fi
  rm -rf "$bin.partial"
  mkdir -p "$bin.partial/cni"
  start=$(date +%s)
  echo "building kubeadm and kube-proxy $k8s_version, crictl, CNI plugins, etcd, CoreDNS, kindnetd (first run only; takes a while)" >&2
  # As hack/build-node.sh builds the kubelet: in a copy of the control
  # plane's wrapper module.
  src=$(mktemp -d)
  cp "$here/upstream/kubernetes/go.mod" "$here/upstream/kubernetes/go.sum" "$src/"
  for p in kubeadm kube-proxy; do
    (cd "$src" && nice -n 19 go build -trimpath -ldflags "-s -w $(k8s_ldflags "$k8s_version")" \
      -o "$bin.partial/$p" "k8s.io/kubernetes/cmd/$p") || { rm -rf "$src"; exit 1; }
  done
  rm -rf "$src"
  gobuild crictl "$bin.partial/crictl" sigs.k8s.io/cri-tools/cmd/crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$(required sigs.k8s.io/cri-tools crictl)"
  for p in ipam/host-local main/loopback main/ptp meta/portmap; do
    gobuild cni "$bin.partial/cni/${p#*/}" "github.com/containernetworking/plugins/plugins/$p"
  done
  gobuild etcd "$bin.partial/etcd" .
  gobuild coredns "$bin.partial/coredns" .
  gobuild kindnetd "$bin.partial/kindnetd" .
  finish "$bin" "$start"
}

# One build of each kind at a time (a second caller waits, then finds it built).
lock() {
  mkdir -p "$cache/bin"
  exec 9>"$cache/bin/.build-kind-$1.lock"
  flock -w 7200 9 || { echo "another hack/build-kind.sh $1 is still busy" >&2; exit 1; }
}

case ${1:-} in
  kind | node | storage) lock "$1" ;;
esac
case ${1:-} in
  kind) build_kind ;;
  node) build_node ;;
  storage) build_storage ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
