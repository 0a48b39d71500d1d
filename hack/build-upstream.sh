#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from their upstream Go modules at the
# versions pinned in hack/upstream/*/go.mod, once per version, into a cache
# outside the work tree. Prints the directory holding the binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/upstream/kubernetes/go.mod")
etcd_version=$(awk '/^require go.etcd.io\/etcd\/server\/v3 /{print $3}' "$here/upstream/etcd/go.mod")
cache=${CELERS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celers-kube-lease}
bin="$cache/bin/kubernetes-$k8s_version-etcd-$etcd_version"

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin.partial"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)

echo "building etcd $etcd_version (first run only)" >&2
(cd "$here/upstream/etcd" && go build -trimpath -ldflags '-s -w' -o "$bin.partial/etcd" .)

echo "building kube-apiserver and kubectl $k8s_version (first run only; takes a while)" >&2
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
for cmd in kube-apiserver kubectl; do
  (cd "$here/upstream/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$bin.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done

rm -rf "$bin"
mv "$bin.partial" "$bin"
echo "built in $(( $(date +%s) - start ))s into $bin ($(du -sh "$cache" | cut -f1) cache)" >&2
echo "$bin"
