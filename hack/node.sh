#!/usr/bin/env bash
# A one-node cluster on this machine, without a container-engine download:
# kube-controller-manager, kube-scheduler, containerd (the distribution's,
# with its runc) and a kubelet next to the local control plane of
# hack/control-plane.sh, so that pods run as real containers.
#
#   hack/node.sh up              start the control plane if it is down, then the node; prints the kubeconfig path last
#   hack/node.sh down            stop exactly what `up` started (pods' containers included) and remove the state dir
#   hack/node.sh status          exit 0 if every node process is up and the Node is Ready
#   hack/node.sh kubectl ...     kubectl against the control plane
#   hack/node.sh ctr ...         containerd's ctr against the node's containerd (namespace k8s.io)
#   hack/node.sh import ARCHIVE  import an OCI image archive into the node's containerd
#   hack/node.sh apiserver-port  the API server's port on 127.0.0.1
#
# Needs root, cgroup v1 hierarchies (cpu, cpuacct, cpuset, memory, pids; the
# kubelet runs with failCgroupV1: false and the cgroupfs driver), Debian's
# `containerd` and `runc` packages, Go and openssl. The kubelet, kube-controller-manager
# and kube-scheduler are built from the control plane's pinned k8s.io/kubernetes
# module by hack/build-node.sh (minutes, once; cached afterwards), as are the
# CNI loopback plugin and the pod sandbox ("pause") binary. Nothing is pulled
# from an image registry: the pause image is made here and imported, and
# images of pods must be imported too (`import`; see hack/image.sh) and used
# with imagePullPolicy: Never.
#
# Networking: the node's CNI network is loopback-only (the loopback plugin
# from containernetworking/plugins), so containerd reports its network ready
# and the Node becomes Ready, but only pods with hostNetwork: true get a
# usable network; the API server listens on 127.0.0.1 only anyway. Such pods
# reach it when their container sets KUBERNETES_SERVICE_HOST=127.0.0.1 and
# KUBERNETES_SERVICE_PORT to its port (`hack/node.sh apiserver-port`; see
# hack/node/overlay/). Everything listens
# on 127.0.0.1: the kubelet (its Node's Hostname address is the machine's host
# name, which must resolve to 127.0.0.1 for `kubectl logs` to reach it),
# kube-controller-manager and kube-scheduler, on free ports chosen at `up`.
#
# Environment:
#   NODE_DIR            state dir (default ${TMPDIR:-/tmp}/celers-kube-lease-node)
#   NODE_NAME           the Node's name (default: the host name)
#   NODE_TIMEOUT        seconds to wait for each part to be ready (default 120)
#   CONTROL_PLANE_DIR   as for hack/control-plane.sh (its state dir)
#   CELERS_KUBE_CACHE   where the builds are kept
#
# State dir: ports, NAME.pid and NAME.log (containerd, kubelet,
# kube-controller-manager, kube-scheduler), pki/ (client certificates signed
# by the control plane's CA), kubeconfig-NAME, containerd/ (its config, root,
# state and socket), kubelet/ (root dir, config), cni/, pod-logs/, images/.
# The pods' cgroups live under /<cgroup-root> in every cgroup hierarchy, named
# after the state dir, and are removed by `down`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${NODE_DIR:-${TMPDIR:-/tmp}/celers-kube-lease-node}
case $dir in /*) ;; *) dir="$PWD/$dir" ;; esac
dir=${dir%/}
cp_dir=${CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/celers-kube-lease-control-plane}
case $cp_dir in /*) ;; *) cp_dir="$PWD/$cp_dir" ;; esac
export CONTROL_PLANE_DIR=${cp_dir%/}
timeout_secs=${NODE_TIMEOUT:-120}
node_name=${NODE_NAME:-$(hostname)}
marker="$dir/.celers-kube-lease-node"
pki="$dir/pki"
sock="$dir/containerd/containerd.sock"
names=(containerd kubelet kube-controller-manager kube-scheduler)
# One cgroup root per state dir, so two nodes on one machine never share one.
cgroup_root="celers-kube-lease-node-$(printf '%s' "$dir" | sha256sum | cut -c1-8)"

LOG_PREFIX="node: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
# shellcheck source=hack/node/oci.sh
source "$here/node/oci.sh"

cplane() { "$here/control-plane.sh" "$@"; }
kc() { timeout 60 "$kubectl" --kubeconfig "$cp_kubeconfig" --request-timeout 20s "$@"; }

# ---- processes (see hack/lib.sh) ------------------------------------------------

show_log() {
  [ -f "$dir/$1.log" ] || return 0
  say "last lines of $dir/$1.log:"
  tail -n 15 "$dir/$1.log" | cut -c1-300 | sed 's/^/    /' >&2
}

# wait_for NAME WHAT CMD...: until CMD succeeds, NAME's process dies, or the timeout.
wait_for() {
  local name=$1 what=$2 deadline=$((SECONDS + timeout_secs))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then show_log "$name"; die "$name exited before $what"; fi
    if [ $SECONDS -ge $deadline ]; then show_log "$name"; die "$name: no $what after ${timeout_secs}s"; fi
    sleep 0.5
  done
}

# ---- ports ------------------------------------------------------------------

declare -A port=()
port_keys() { printf '%s\n' kubelet kubelet-healthz kube-controller-manager kube-scheduler; }

# ---- certificates and kubeconfigs -------------------------------------------------

# client NAME SUBJECT: a client certificate from the control plane's CA, and a kubeconfig.
client() {
  local name=$1 subj=$2
  if [ ! -f "$pki/$name.crt" ]; then
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key"
    ossl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$pki/$name.ext"
    ossl x509 -req -in "$pki/$name.csr" -CA "$cp_dir/pki/ca.crt" -CAkey "$cp_dir/pki/ca.key" \
      -CAcreateserial -CAserial "$pki/ca.srl" -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
    rm -f "$pki/$name.csr" "$pki/$name.ext"
  fi
  b64() { base64 <"$1" | tr -d '\n'; }
  cat >"$dir/kubeconfig-$name.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(b64 "$cp_dir/pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(b64 "$pki/$name.crt")
    client-key-data: $(b64 "$pki/$name.key")
contexts:
- name: local
  context: {cluster: local, user: $name}
current-context: local
EOF
  mv "$dir/kubeconfig-$name.tmp" "$dir/kubeconfig-$name"
}

# ---- cgroups ------------------------------------------------------------------

# The cgroup v1 hierarchies (and the hybrid unified one) the kubelet and runc use.
hierarchies() {
  local h
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    [ -f "$h/cgroup.procs" ] && echo "$h"
  done
}

make_cgroups() {
  local h
  for h in $(hierarchies); do
    mkdir -p "$h/$cgroup_root"
    if [ -f "$h/cpuset.cpus" ]; then
      [ -n "$(cat "$h/$cgroup_root/cpuset.cpus")" ] || cat "$h/cpuset.cpus" >"$h/$cgroup_root/cpuset.cpus"
      [ -n "$(cat "$h/$cgroup_root/cpuset.mems")" ] || cat "$h/cpuset.mems" >"$h/$cgroup_root/cpuset.mems"
    fi
  done
}

# Kill whatever still runs in the node's cgroups (containers whose shim is
# gone), then remove them, deepest first.
remove_cgroups() {
  local h
  for h in $(hierarchies); do
    [ -d "$h/$cgroup_root" ] || continue
    find "$h/$cgroup_root" -name cgroup.procs -exec cat {} + 2>/dev/null |
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for h in $(hierarchies); do
    [ -d "$h/$cgroup_root" ] || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      find "$h/$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$h/$cgroup_root" ] || break
      sleep 0.5
    done
    [ ! -d "$h/$cgroup_root" ] || say "could not remove cgroup $h/$cgroup_root"
  done
}

# ---- containerd -----------------------------------------------------------------

write_containerd_config() {
  mkdir -p "$dir/containerd" "$dir/cni/net.d"
  cat >"$dir/cni/net.d/10-loopback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "celers-loopback", "plugins": [{"type": "loopback"}]}
EOF
  cat >"$dir/containerd/config.toml" <<EOF
# Written by hack/node.sh; containerd of the local node only.
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  stream_server_address = "127.0.0.1"
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj (runc fails to start a sandbox at -998). Containers get
  # at least containerd's own value instead.
  restrict_oom_score_adj = true
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$runc"
        Root = "$dir/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
}

ctr_() { timeout 60 ctr --address "$sock" --namespace k8s.io "$@"; }

import_archive() {
  ctr_ images import --no-unpack=false "$1" >/dev/null || die "ctr images import $1 failed"
}

# The pause image: the static pause binary, as the only file of the image.
make_pause_image() {
  local rootfs="$dir/images/pause/rootfs"
  rm -rf "$dir/images/pause"; mkdir -p "$rootfs"
  install -m 0755 "$pause_bin/pause" "$rootfs/pause"
  oci_archive "$pause_image" "$rootfs" "$dir/images/pause.tar" '["/pause"]' "65535:65535"
  import_archive "$dir/images/pause.tar"
  say "imported $pause_image"
}

# Stop every container of the node (TERM, then KILL after 10 s) and delete them.
remove_containers() {
  local ids id deadline
  [ -S "$sock" ] && alive containerd || return 0
  ids=$(ctr_ tasks list -q 2>/dev/null) || ids=
  if [ -n "$ids" ]; then
    say "stopping $(wc -w <<<"$ids") container(s)"
    for id in $ids; do ctr_ tasks kill --signal SIGTERM "$id" >/dev/null 2>&1 || true; done
    deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ] && ctr_ tasks list 2>/dev/null | grep -q RUNNING; do sleep 0.5; done
    for id in $ids; do ctr_ tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true; done
    for id in $ids; do ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true; done
  fi
  for id in $(ctr_ containers list -q 2>/dev/null || true); do
    ctr_ containers delete "$id" >/dev/null 2>&1 || true
  done
}

# The kubelet links every container's log into /var/log/containers (a fixed
# path); remove this node's links, and the directory if `up` made it.
remove_log_links() {
  [ -d /var/log/containers ] || return 0
  find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  if [ -f "$dir/made-var-log-containers" ]; then rmdir /var/log/containers 2>/dev/null || true; fi
}

unmount_all() {
  local m
  # Deepest first; mountinfo escapes spaces as \040, which our paths never contain.
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
    done
}

# ---- the control plane's components and the kubelet -----------------------------------

start_controller_manager() {
  start kube-controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig-kube-controller-manager" \
    --authentication-kubeconfig "$dir/kubeconfig-kube-controller-manager" \
    --authorization-kubeconfig "$dir/kubeconfig-kube-controller-manager" \
    --bind-address 127.0.0.1 --secure-port "${port[kube-controller-manager]}" --cert-dir "$dir/kube-controller-manager-certs" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$cp_dir/pki/sa.key" --root-ca-file "$cp_dir/pki/ca.crt" \
    --client-ca-file "$cp_dir/pki/ca.crt"
}

start_scheduler() {
  start kube-scheduler "$kube_bin/kube-scheduler" \
    --kubeconfig "$dir/kubeconfig-kube-scheduler" \
    --authentication-kubeconfig "$dir/kubeconfig-kube-scheduler" \
    --authorization-kubeconfig "$dir/kubeconfig-kube-scheduler" \
    --bind-address 127.0.0.1 --secure-port "${port[kube-scheduler]}" --cert-dir "$dir/kube-scheduler-certs" \
    --client-ca-file "$cp_dir/pki/ca.crt" \
    --leader-elect=false
}

write_kubelet_config() {
  mkdir -p "$dir/kubelet" "$dir/pod-logs"
  cat >"$dir/kubelet/config.yaml" <<EOF
# Written by hack/node.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ${port[kubelet]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${port[kubelet-healthz]}
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
# This machine mounts cgroup v1 hierarchies; the kubelet refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /$cgroup_root
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/kubelet/volume-plugins
failSwapOn: false
# Only the API server (over loopback) talks to the kubelet. control-plane.sh
# gives the API server no kubelet client certificate, so it comes anonymous.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: $cp_dir/pki/ca.crt
authorization:
  mode: AlwaysAllow
# Nothing to evict for on a shared development machine; leave the disk alone.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
serializeImagePulls: false
EOF
}

start_kubelet() {
  start kubelet "$kube_bin/kubelet" --config "$dir/kubelet/config.yaml" \
    --kubeconfig "$dir/kubeconfig-kubelet" --root-dir "$dir/kubelet/root" \
    --cert-dir "$dir/kubelet/pki" --hostname-override "$node_name"
}

healthz() { curl -ksSf --max-time 3 "https://127.0.0.1:$1/healthz"; }
kubelet_healthz() { curl -sSf --max-time 3 "http://127.0.0.1:${port[kubelet-healthz]}/healthz"; }
node_ready() {
  [ "$(kc get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# ---- subcommands --------------------------------------------------------------------

need() { command -v "$1" >/dev/null || die "$1 not found ($2)"; }

load_env() {
  kubectl="$(cplane bin)/kubectl"
  cp_kubeconfig="$cp_dir/kubeconfig"
}

up_failed() {
  local rc=$?
  [ $rc = 0 ] || say "up failed; \`hack/node.sh down\` stops what it started"
}

cmd_up() {
  local start_time=$SECONDS h name f
  [ "$(id -u)" = 0 ] || die "needs root (the kubelet and containerd do)"
  need containerd "Debian: apt-get install containerd"
  need ctr "Debian: apt-get install containerd"
  need containerd-shim-runc-v2 "Debian: apt-get install containerd"
  runc=$(command -v runc) || die "runc not found (Debian: apt-get install runc)"
  need curl "Debian: apt-get install curl"
  for h in cpu cpuacct cpuset memory pids; do
    [ -f "/sys/fs/cgroup/$h/cgroup.procs" ] || die "no cgroup v1 hierarchy for $h at /sys/fs/cgroup/$h"
  done
  if [ -e "$dir" ] && [ ! -e "$marker" ] && [ -n "$(ls -A "$dir")" ]; then
    die "$dir exists and is not a node state dir; set NODE_DIR elsewhere"
  fi
  mkdir -p "$dir"; chmod 700 "$dir"; touch "$marker"
  lock

  trap up_failed EXIT
  # The control plane: (re)started here only if it is down; `down` stops it then.
  if ! cplane status >/dev/null 2>&1; then touch "$dir/started-control-plane"; fi
  cp_kubeconfig=$(cplane up | tail -n 1)
  [ -f "$cp_kubeconfig" ] || die "hack/control-plane.sh up printed no kubeconfig"
  kubectl="$(cplane bin)/kubectl"
  apiserver_url=$(cplane url)
  for f in ca.crt ca.key sa.key; do
    [ -f "$cp_dir/pki/$f" ] || die "no $f in $cp_dir/pki"
  done

  kube_bin=$(timeout 7200 "$here/build-node.sh" kube | tail -n 1) || die "hack/build-node.sh kube failed"
  cni_bin=$(timeout 1800 "$here/build-node.sh" cni | tail -n 1) || die "hack/build-node.sh cni failed"
  pause_bin=$(timeout 1800 "$here/build-node.sh" pause | tail -n 1) || die "hack/build-node.sh pause failed"
  pause_image="localhost/celers-kube-lease/pause:${pause_bin##*/pause-}"

  case $(getent hosts "$node_name" | awk '{print $1; exit}') in
    127.*) ;;
    *) say "warning: $node_name does not resolve to 127.x; the API server will not reach the kubelet (kubectl logs)" ;;
  esac
  if ! load_ports; then
    port=()
    for name in $(port_keys); do port[$name]=$(pick_port); done
    save_ports
  fi
  (umask 077; mkdir -p "$pki"
    client kube-controller-manager "/CN=system:kube-controller-manager"
    client kube-scheduler "/CN=system:kube-scheduler"
    client kubelet "/O=system:nodes/CN=system:node:$node_name")

  # The API server runs RBAC only (no Node authorizer): bind the kubelet's
  # user to the role the Node authorizer would stand for.
  kc apply --server-side --field-manager celers-kube-lease-node -f - >/dev/null <<EOF || die "could not create the node's RBAC binding"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: celers-kube-lease-node:$node_name
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:node:$node_name"}
EOF

  make_cgroups
  if ! alive containerd; then
    # The shims' sockets go to /run/containerd/s whatever the config says.
    [ -d /run/containerd ] || [ -f "$dir/made-run-containerd" ] || touch "$dir/made-run-containerd"
    write_containerd_config
    say "starting containerd ($(containerd --version | awk '{print $3}'))"
    start containerd containerd --config "$dir/containerd/config.toml" --log-level warn
    wait_for containerd "socket" ctr_ version
    make_pause_image
  fi
  if ! alive kube-controller-manager; then
    say "starting kube-controller-manager on 127.0.0.1:${port[kube-controller-manager]}"
    start_controller_manager
  fi
  if ! alive kube-scheduler; then
    say "starting kube-scheduler on 127.0.0.1:${port[kube-scheduler]}"
    start_scheduler
  fi
  if ! alive kubelet; then
    [ -d /var/log/containers ] || [ -f "$dir/made-var-log-containers" ] || touch "$dir/made-var-log-containers"
    write_kubelet_config
    say "starting kubelet on 127.0.0.1:${port[kubelet]} (Node $node_name)"
    start_kubelet
  fi
  wait_for kube-controller-manager "healthz" healthz "${port[kube-controller-manager]}"
  wait_for kube-scheduler "healthz" healthz "${port[kube-scheduler]}"
  wait_for kubelet "healthz" kubelet_healthz
  wait_for kubelet "Ready Node $node_name" node_ready
  say "ready in $((SECONDS - start_time))s: Node $node_name"
  printf '%s\n' "$cp_kubeconfig"
}

cmd_down() {
  local name
  if [ ! -e "$dir" ]; then say "nothing to stop"; return; fi
  [ -e "$marker" ] || die "$dir is not a node state dir; not touching it"
  lock
  load_ports || true
  for name in kube-scheduler kube-controller-manager kubelet; do
    stop "$name"
    stop_strays "$name"
  done
  remove_containers
  stop containerd
  stop_strays containerd
  # Shims of this node's containerd outlive it; they carry its socket path.
  stop_strays containerd-shim-runc-v2
  unmount_all
  remove_cgroups
  remove_log_links
  if [ -f "$dir/made-run-containerd" ]; then
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  fi
  if [ -f "$cp_kubeconfig" ] && cplane status >/dev/null 2>&1; then
    kc delete node "$node_name" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kc delete clusterrolebinding "celers-kube-lease-node:$node_name" --ignore-not-found >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/started-control-plane" ]; then cplane down; fi
  # Mounts may reappear while processes die; one more pass before removing.
  unmount_all
  rm -rf "$dir"
  say "removed $dir"
}

cmd_status() {
  local name ok=0
  if [ ! -e "$marker" ]; then echo "down ($dir)"; return 1; fi
  for name in "${names[@]}"; do
    if alive "$name"; then printf '%-24s pid %s\n' "$name" "$(pid_of "$name")"
    else printf '%-24s dead\n' "$name"; ok=1
    fi
  done
  if [ $ok = 0 ] && node_ready; then echo "Node $node_name Ready"; else echo "not ready"; return 1; fi
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

case ${1:-} in
  up) cmd_up ;;
  down) load_env; cmd_down ;;
  status) load_env; cmd_status ;;
  kubectl) shift; load_env; exec "$kubectl" --kubeconfig "$cp_kubeconfig" "$@" ;;
  ctr) shift; exec ctr --address "$sock" --namespace k8s.io "$@" ;;
  import) [ -f "${2:-}" ] || usage; alive containerd || die "the node is not up"; import_archive "$2" ;;
  apiserver-port) url=$(cplane url); echo "${url##*:}" ;;
  *) usage ;;
esac
