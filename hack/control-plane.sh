#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver, no nodes) for
# the integration and fault tests. Everything listens on 127.0.0.1 only, on
# free ports chosen at start time, with TLS and RBAC on the apiserver.
#
#   hack/control-plane.sh up           start (or repair) the instance; prints the kubeconfig path last
#   hack/control-plane.sh down         stop the processes it started and remove the state dir
#   hack/control-plane.sh status       exit 0 if up and ready
#   hack/control-plane.sh kubectl ...  run kubectl against the instance
#   hack/control-plane.sh bin          print the directory holding etcd, kube-apiserver, kubectl
#   hack/control-plane.sh pid NAME     print the PID of etcd or kube-apiserver
#
# Environment:
#   CONTROL_PLANE_DIR      state dir (default ${TMPDIR:-/tmp}/celers-kube-lease-control-plane);
#                          one instance per dir, several may run at once
#   CONTROL_PLANE_TIMEOUT  seconds to wait for readiness (default 60)
#   CELERS_KUBE_CACHE      where hack/build-upstream.sh keeps its builds
#
# State dir: kubeconfig, ports, bin, etcd.pid, kube-apiserver.pid, etcd.log,
# kube-apiserver.log, etcd-data/, pki/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/celers-kube-lease-control-plane}
case $dir in /*) ;; *) dir="$PWD/$dir" ;; esac
dir=${dir%/}
ready_timeout=${CONTROL_PLANE_TIMEOUT:-60}
marker="$dir/.celers-kube-lease-control-plane"
kubeconfig="$dir/kubeconfig"
pki="$dir/pki"
names=(etcd kube-apiserver)

LOG_PREFIX="control-plane: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

# ---- binaries ---------------------------------------------------------------

bin_dir() {
  local out
  # A cold build takes a long while; a warm one answers at once.
  out=$(timeout 7200 "$here/build-upstream.sh") || die "hack/build-upstream.sh failed"
  printf '%s\n' "${out##*$'\n'}"
}

# The binaries the instance was started with (recorded by `up`), else build.
recorded_bin() {
  if [ -f "$dir/bin" ] && [ -x "$(cat "$dir/bin")/kubectl" ]; then cat "$dir/bin"; else bin_dir; fi
}

# ---- processes --------------------------------------------------------------

pid_of() { [ -f "$dir/$1.pid" ] && cat "$dir/$1.pid"; }

# True if PID is a live (not zombie) NAME process of this instance.
is_ours() {
  local pid=$1 name=$2 stat argv0 cmdline
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ] || return 1
  cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  argv0=${cmdline%%$'\n'*}
  [ "${argv0##*/}" = "$name" ] && [[ $cmdline == *"$dir/"* ]]
}

alive() { local pid; pid=$(pid_of "$1") && is_ours "$pid" "$1"; }

# Wait up to $2 seconds for PID $1 to go away.
wait_gone() {
  local pid=$1 name=$2 deadline=$((SECONDS + $3))
  while is_ours "$pid" "$name"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

stop() {
  local name=$1 pid
  pid=$(pid_of "$name") || return 0
  if is_ours "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$name" 15; then
      say "$name (pid $pid) ignored TERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" "$name" 10 || die "$name (pid $pid) would not die"
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$dir/$name.pid"
}

log_size() { if [ -f "$dir/$1.log" ]; then wc -c <"$dir/$1.log"; else echo 0; fi; }

# start NAME ARGS...: run detached in its own session, logs appended to NAME.log.
start() {
  local name=$1; shift
  printf -- '----- %s: starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$dir/$name.log"
  if command -v setsid >/dev/null; then
    setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  else
    nohup "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  fi
  echo $! >"$dir/$name.pid"
}

# True if NAME's log grew a bind failure since byte offset $2.
bind_failed() { tail -c +"$(($2 + 1))" "$dir/$1.log" 2>/dev/null | grep -q 'address already in use'; }

show_logs() {
  local name
  for name in "$@"; do
    [ -f "$dir/$name.log" ] || continue
    say "last lines of $dir/$name.log:"
    tail -n 8 "$dir/$name.log" | cut -c1-200 | sed "s/^/    /" >&2
  done
}

# ---- ports ------------------------------------------------------------------

declare -A port=()

load_ports() {
  local k v
  [ -f "$dir/ports" ] || return 1
  while IFS='=' read -r k v; do port[$k]=$v; done <"$dir/ports"
  [ -n "${port[etcd]:-}" ] && [ -n "${port[etcd-peer]:-}" ] && [ -n "${port[kube-apiserver]:-}" ]
}

save_ports() {
  printf 'etcd=%s\netcd-peer=%s\nkube-apiserver=%s\n' \
    "${port[etcd]}" "${port[etcd-peer]}" "${port[kube-apiserver]}" >"$dir/ports.tmp"
  mv "$dir/ports.tmp" "$dir/ports"
}

# Nothing accepts connections on 127.0.0.1:$1.
port_free() { ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# A free port below Linux's default ephemeral range (32768+), so outgoing
# connections never hold it, and distinct from the instance's other ports.
pick_port() {
  local p k taken
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    taken=
    for k in "${!port[@]}"; do [ "${port[$k]}" != "$p" ] || taken=1; done
    [ -z "$taken" ] && port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found on 127.0.0.1"
}

# ---- TLS --------------------------------------------------------------------

ossl() {
  local err
  err=$(timeout 60 openssl "$@" 2>&1 >/dev/null) || die "openssl $1 failed: $err"
}

# sign NAME SUBJECT EXTENSIONS: EC key + certificate signed by the CA.
sign() {
  local name=$1 subj=$2 ext=$3
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key"
  ossl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$ext" >"$pki/$name.ext"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
  [ -f "$pki/done" ] && return
  say "generating CA, serving, admin and service-account keys"
  rm -rf "$pki"; mkdir -p "$pki"
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key"
  ossl req -x509 -new -key "$pki/ca.key" -subj "/CN=celers-kube-lease-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.crt"
  sign apiserver "/CN=kube-apiserver" \
    "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
  ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  touch "$pki/done"
}

write_kubeconfig() {
  b64() { base64 <"$1" | tr -d '\n'; }
  cat >"$kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: celers-kube-lease
  cluster:
    server: https://127.0.0.1:${port[kube-apiserver]}
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: celers-kube-lease
  context:
    cluster: celers-kube-lease
    user: admin
    namespace: default
current-context: celers-kube-lease
EOF
  mv "$kubeconfig.tmp" "$kubeconfig"
}

# ---- etcd and kube-apiserver --------------------------------------------------

start_etcd() {
  local peer="http://127.0.0.1:${port[etcd-peer]}" client="http://127.0.0.1:${port[etcd]}"
  start etcd "$bin/etcd" --name default --data-dir "$dir/etcd-data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "default=$peer" --initial-cluster-state new
}

start_apiserver() {
  local issuer=https://kubernetes.default.svc
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${port[etcd]}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "${port[kube-apiserver]}" --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer "$issuer" --api-audiences "$issuer" \
    --service-cluster-ip-range 10.96.0.0/24 --endpoint-reconciler-type none
}

etcd_healthy() {
  local out
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' _ "${port[etcd]}" 2>/dev/null) || true
  [[ $out == *'"health":"true"'* ]]
}

apiserver_ready() {
  [ -f "$kubeconfig" ] &&
    timeout 10 "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout 5s get --raw /readyz >/dev/null 2>&1
}

# wait_ready NAME: 0 ready, 1 timed out, 2 process died.
wait_ready() {
  local name=$1 check=etcd_healthy deadline=$((SECONDS + ready_timeout))
  [ "$name" = etcd ] || check=apiserver_ready
  until $check; do
    alive "$name" || return 2
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
}

# fail_up NAME|all MESSAGE: give up on `up`: show the logs, stop what this
# run started, and on a fresh instance forget the ports so the next `up`
# starts clean.
fail_up() {
  local name logs=$1; shift
  say "$*"
  if [ "$logs" = all ]; then show_logs "${names[@]}"; else show_logs "$logs"; fi
  for name in "${started[@]}"; do stop "$name"; done
  [ "$fresh" = 0 ] || rm -rf "$dir/ports" "$dir/etcd-data"
  exit 1
}

# bring_up NAME: start NAME and wait for it; on a fresh instance a port that
# somebody took meanwhile is replaced by another one.
bring_up() {
  local name=$1 attempt offset rc
  started+=("$name")
  for attempt in 1 2 3 4 5; do
    offset=$(log_size "$name")
    if [ "$name" = etcd ]; then
      [ "$fresh" = 0 ] || rm -rf "$dir/etcd-data"
      say "starting etcd on 127.0.0.1:${port[etcd]}"
      start_etcd
    else
      write_kubeconfig
      say "starting kube-apiserver on https://127.0.0.1:${port[kube-apiserver]}"
      start_apiserver
    fi
    rc=0; wait_ready "$name" || rc=$?
    [ $rc -ne 0 ] || return 0
    [ $rc -eq 2 ] || fail_up "$name" "$name not ready after ${ready_timeout}s"
    if [ "$fresh" = 0 ] || ! bind_failed "$name" "$offset"; then fail_up "$name" "$name exited"; fi
    say "port taken; retrying on other ports (attempt $attempt)"
    if [ "$name" = etcd ]; then
      unset 'port[etcd]' 'port[etcd-peer]'
      port[etcd]=$(pick_port); port[etcd-peer]=$(pick_port)
    else
      unset 'port[kube-apiserver]'; port[kube-apiserver]=$(pick_port)
    fi
    save_ports
  done
  fail_up "$name" "$name: gave up after 5 attempts"
}

# ---- subcommands --------------------------------------------------------------

lock() {
  if command -v flock >/dev/null; then
    exec 9>"$dir/.lock"
    flock -w 300 9 || die "another control-plane.sh is busy with $dir"
  fi
}

fresh=0
started=()

cmd_up() {
  local start_time=$SECONDS name
  bin=$(bin_dir)
  if [ -e "$dir" ] && [ ! -e "$marker" ] && [ -n "$(ls -A "$dir")" ]; then
    die "$dir exists and is not a control-plane state dir; set CONTROL_PLANE_DIR elsewhere"
  fi
  mkdir -p "$dir"; chmod 700 "$dir"; touch "$marker"
  lock
  printf '%s\n' "$bin" >"$dir/bin"

  if ! load_ports; then
    fresh=1
    port=()
    port[etcd]=$(pick_port); port[etcd-peer]=$(pick_port); port[kube-apiserver]=$(pick_port)
    save_ports
  fi
  (umask 077; make_pki)

  for name in "${names[@]}"; do
    alive "$name" && continue
    [ "$fresh" = 1 ] || say "$name is not running; restarting it on its old port"
    bring_up "$name"
  done

  write_kubeconfig
  # Whatever was (re)started, the pair must be serving before we say so.
  wait_ready kube-apiserver || fail_up all "kube-apiserver running but not ready"
  if [ ${#started[@]} -eq 0 ]; then
    say "already up: https://127.0.0.1:${port[kube-apiserver]}"
  else
    say "ready in $((SECONDS - start_time))s: https://127.0.0.1:${port[kube-apiserver]}"
  fi
  printf '%s\n' "$kubeconfig"
}

# PIDs of this instance's NAME processes, recorded or not.
find_ours() {
  local p
  for p in /proc/[0-9]*; do
    is_ours "${p#/proc/}" "$1" && echo "${p#/proc/}"
  done
  return 0
}

cmd_down() {
  local name pid
  if [ ! -e "$dir" ]; then say "nothing to stop"; return; fi
  [ -e "$marker" ] || die "$dir is not a control-plane state dir; not touching it"
  lock
  for name in kube-apiserver etcd; do
    stop "$name"
    # Strays whose pid file was lost (e.g. an interrupted `up`).
    for pid in $(find_ours "$name"); do
      echo "$pid" >"$dir/$name.pid"
      stop "$name"
    done
  done
  rm -rf "$dir"
  say "removed $dir"
}

cmd_status() {
  local name pid ok=0
  if [ ! -e "$marker" ] || ! load_ports; then echo "down ($dir)"; return 1; fi
  for name in "${names[@]}"; do
    if alive "$name"; then
      pid=$(pid_of "$name")
      printf '%-15s pid %-8s 127.0.0.1:%s\n' "$name" "$pid" "${port[$name]}"
    else
      printf '%-15s dead\n' "$name"; ok=1
    fi
  done
  [ $ok -eq 0 ] || { echo "down (run: $0 up)"; return 1; }
  bin=$(recorded_bin)
  if apiserver_ready; then
    echo "ready; kubeconfig: $kubeconfig"
  else
    echo "not ready; kubeconfig: $kubeconfig"; return 1
  fi
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubectl)
    shift
    [ -f "$kubeconfig" ] || die "not up ($dir); run: $0 up"
    bin=$(recorded_bin)
    exec "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"
    ;;
  bin) bin_dir ;;
  pid)
    case ${2:-} in etcd | kube-apiserver) ;; *) usage ;; esac
    pid_of "$2" || die "no $2 pid recorded in $dir"
    ;;
  *) usage ;;
esac
