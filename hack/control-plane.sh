#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver, no nodes) for
# the integration and fault tests. Everything listens on 127.0.0.1 only, on
# free ports chosen at start time, with TLS and RBAC on the apiserver.
#
#   hack/control-plane.sh up             start (or repair) the instance; prints the kubeconfig path last
#   hack/control-plane.sh down           stop the processes it started and remove the state dir
#   hack/control-plane.sh status         exit 0 if every process is up and the instance is ready
#   hack/control-plane.sh kubectl ...    run kubectl against the instance (through the load balancer in HA)
#   hack/control-plane.sh bin            print the directory holding etcd, kube-apiserver, kubectl
#   hack/control-plane.sh pid NAME       print the PID of process NAME (see below)
#   hack/control-plane.sh kill NAME      SIGKILL process NAME (`start NAME` or `up` brings it back)
#   hack/control-plane.sh start NAME     restart a dead NAME on its old ports and data, wait until ready
#   hack/control-plane.sh kubeconfig [NAME]  print the admin kubeconfig's path, or one that talks to NAME only
#   hack/control-plane.sh url [NAME]     print the URL clients use, or NAME's own
#   hack/control-plane.sh skew NAME [MILLIS]  HA: set (or print) apiserver NAME's clock offset
#   hack/control-plane.sh lb-mode [tcp|http]  HA: switch (or print) the load balancer's mode
#   hack/control-plane.sh lb-stats       HA: the load balancer's per-apiserver counters
#
# Topologies (chosen by the `up` that creates an instance; later commands use
# the recorded one):
#   single  NAMEs etcd, kube-apiserver. The default.
#   ha      CONTROL_PLANE_TOPOLOGY=ha: NAMEs etcd-0..2 (a three-member etcd
#           cluster with peer and client TLS), kube-apiserver-0..N-1 (N =
#           CONTROL_PLANE_APISERVERS, default 3, each on its own port, all on
#           that etcd cluster) and haproxy (HAProxy from the distribution, in
#           front of the apiservers; the admin kubeconfig points at it).
#
# HA load balancer modes (CONTROL_PLANE_LB_MODE at `up`, default tcp; `lb-mode`
# switches by restarting HAProxy on the same port, cutting open connections):
#   tcp   round robin per TCP connection, TLS passed through: clients talk TLS
#         to the apiservers themselves, so a keep-alive client (kube-rs,
#         client-go) stays on one apiserver for as long as its connection lives.
#   http  round robin per HTTP request: HAProxy terminates TLS (certificate
#         from this instance's CA, client certificates verified against it),
#         re-encrypts to the apiservers and passes the client's identity the
#         way Kubernetes' front proxies do (X-Remote-User = certificate CN,
#         X-Remote-Group = its first O, authenticated by HAProxy's own client
#         certificate from a separate front-proxy CA; bearer tokens pass
#         unchanged). The same kubeconfig works in both modes.
#
# Clock offsets (HA): `skew kube-apiserver-1 300`, `skew kube-apiserver-2 -2000`
# shift that apiserver's wall clock by milliseconds, effective within 100 ms,
# while it runs; 0 puts it back. The offset is kept across kill/start.
# libfaketime cannot do this: kube-apiserver is a static Go binary and Go
# reads the clock through the vDSO without libc, so LD_PRELOAD never reaches
# it (tried: under `faketime -f +1h` its Date header did not move). Instead the
# HA apiservers run a second build of the same pinned kube-apiserver made by
# hack/build-skew-apiserver.sh, whose time.Now (Go's standard library, patched
# for that build only through `go build -overlay`) adds the offset read from a
# file. Everything the apiserver does with wall time then sees the skewed
# clock (Date headers, creationTimestamp, managedFields times, its own
# leases), as on a machine whose clock is off; monotonic time is not shifted.
# Rewriting the Date header in HAProxy would have moved only that header and
# only in http mode. The first HA `up` builds it (minutes; cached afterwards);
# CONTROL_PLANE_CLOCK_SKEW=0 at `up` uses the stock binary and no skew.
# Certificates are valid from the moment `up` made them: an apiserver set
# further back than that rejects them as not yet valid (as a real one would).
#
# Environment:
#   CONTROL_PLANE_DIR      state dir (default ${TMPDIR:-/tmp}/celers-kube-lease-control-plane);
#                          one instance per dir, several may run at once
#   CONTROL_PLANE_TIMEOUT  seconds to wait for readiness (default 60)
#   CONTROL_PLANE_TOPOLOGY, CONTROL_PLANE_APISERVERS, CONTROL_PLANE_LB_MODE,
#   CONTROL_PLANE_CLOCK_SKEW  see above; read by the `up` that creates an instance
#   CELERS_KUBE_CACHE      where hack/build-upstream.sh keeps its builds
#
# State dir: kubeconfig, ports, bin, NAME.pid, NAME.log, pki/; single: etcd-data/;
# HA: topology, NAME-data/ per etcd member, kubeconfig-kube-apiserver-N,
# kube-apiserver-N.clock-offset, haproxy.cfg, lb-mode, skew-bin; haproxy.log
# holds the current HAProxy run only (the one before: haproxy.log.1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/celers-kube-lease-control-plane}
case $dir in /*) ;; *) dir="$PWD/$dir" ;; esac
dir=${dir%/}
ready_timeout=${CONTROL_PLANE_TIMEOUT:-60}
marker="$dir/.celers-kube-lease-control-plane"
kubeconfig="$dir/kubeconfig"
pki="$dir/pki"

LOG_PREFIX="control-plane: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

# ---- topology -----------------------------------------------------------------

topology=single
apiserver_count=1
etcd_count=3
names=(etcd kube-apiserver)

# The topology recorded in the state dir: `ha N` in $dir/topology; a state
# dir without that file but with ports holds a single-node instance.
recorded_topology() {
  if [ -f "$dir/topology" ]; then cat "$dir/topology"
  elif [ -f "$dir/ports" ]; then echo single
  else return 1
  fi
}

set_topology() {
  local i
  topology=$1 apiserver_count=${2:-1}
  case $topology in
    single) names=(etcd kube-apiserver) ;;
    ha)
      [[ $apiserver_count =~ ^[1-9]$ ]] || die "CONTROL_PLANE_APISERVERS must be 1..9, not '$apiserver_count'"
      names=()
      for ((i = 0; i < etcd_count; i++)); do names+=("etcd-$i"); done
      for ((i = 0; i < apiserver_count; i++)); do names+=("kube-apiserver-$i"); done
      names+=(haproxy)
      ;;
    *) die "CONTROL_PLANE_TOPOLOGY must be single or ha, not '$topology'" ;;
  esac
}

# Commands other than `up` use the recorded topology, else the environment's.
load_topology() {
  local rec
  if rec=$(recorded_topology); then
    # shellcheck disable=SC2086 # "ha 3"
    set_topology $rec
  else
    set_topology "${CONTROL_PLANE_TOPOLOGY:-single}" "${CONTROL_PLANE_APISERVERS:-3}"
  fi
}

in_names() {
  local n
  for n in "${names[@]}"; do [ "$n" != "$1" ] || return 0; done
  return 1
}

names_of() {
  local n
  for n in "${names[@]}"; do [ "$(prog_of "$n")" != "$1" ] || echo "$n"; done
}

# ---- binaries ---------------------------------------------------------------

bin_dir() {
  local out
  # A cold build takes a long while; a warm one answers at once.
  out=$(timeout 7200 "$here/build-upstream.sh") || die "hack/build-upstream.sh failed"
  printf '%s\n' "${out##*$'\n'}"
}

skew_bin_dir() {
  local out
  out=$(timeout 7200 "$here/build-skew-apiserver.sh") || die "hack/build-skew-apiserver.sh failed"
  printf '%s\n' "${out##*$'\n'}"
}

# The binaries the instance was started with (recorded by `up`), else build.
recorded_bin() {
  if [ -f "$dir/bin" ] && [ -x "$(cat "$dir/bin")/kubectl" ]; then cat "$dir/bin"; else bin_dir; fi
}

# The kube-apiserver HA apiservers run: the clock-skew build if `up` recorded one.
apiserver_bin() {
  if [ -f "$dir/skew-bin" ]; then printf '%s/kube-apiserver\n' "$(cat "$dir/skew-bin")"
  else printf '%s/kube-apiserver\n' "$bin"
  fi
}

haproxy_bin() {
  local p
  for p in "$(command -v haproxy || true)" /usr/sbin/haproxy /usr/local/sbin/haproxy; do
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return; }
  done
  die "haproxy not found (Debian: apt-get install haproxy)"
}

# ---- processes --------------------------------------------------------------

log_size() { if [ -f "$dir/$1.log" ]; then wc -c <"$dir/$1.log"; else echo 0; fi; }

# True if NAME's log grew a bind failure since byte offset $2 (from its
# start if the log was replaced meanwhile).
bind_failed() {
  local from=$2
  [ "$(log_size "$1")" -ge "$from" ] || from=0
  tail -c +"$((from + 1))" "$dir/$1.log" 2>/dev/null | grep -qi 'address already in use'
}

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

# The port keys of NAME: its client port first.
ports_of() {
  case $1 in
    etcd) echo etcd etcd-peer ;;
    etcd-*) echo "$1" "$1-peer" "$1-metrics" ;;
    haproxy) echo haproxy haproxy-stats ;;
    *) echo "$1" ;;
  esac
}

port_keys() {
  local name
  for name in "${names[@]}"; do
    # shellcheck disable=SC2046 # words
    printf '%s\n' $(ports_of "$name")
  done
}

# repick NAME...: new ports for NAMEs (on a fresh instance).
repick() {
  local name k
  for name in "$@"; do
    for k in $(ports_of "$name"); do unset "port[$k]"; done
  done
  for name in "$@"; do
    for k in $(ports_of "$name"); do port[$k]=$(pick_port); done
  done
  save_ports
}

url_of() {
  case $1 in
    haproxy) echo "https://127.0.0.1:${port[haproxy]}" ;;
    etcd*) echo "$(etcd_scheme)://127.0.0.1:${port[$1]}" ;;
    *) echo "https://127.0.0.1:${port[$1]}" ;;
  esac
}

# The URL clients of the instance use.
front_name() { if [ "$topology" = ha ]; then echo haproxy; else echo kube-apiserver; fi; }

# ---- TLS --------------------------------------------------------------------

# make_ca NAME CN: self-signed EC CA.
make_ca() {
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key"
  ossl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/$1.crt"
}

# sign NAME SUBJECT EXTENSIONS [CA]: EC key + certificate signed by CA (default ca).
sign() {
  local name=$1 subj=$2 ext=$3 ca=${4:-ca}
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key"
  ossl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$ext" >"$pki/$name.ext"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

loopback_san="subjectAltName=IP:127.0.0.1,DNS:localhost"

make_pki() {
  [ -f "$pki/done" ] && return
  say "generating CA, serving, admin and service-account keys"
  rm -rf "$pki"; mkdir -p "$pki"
  make_ca ca celers-kube-lease-ca
  sign apiserver "/CN=kube-apiserver" \
    "extendedKeyUsage=serverAuth
$loopback_san"
  sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
  ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  touch "$pki/done"
}

# HA: an etcd CA (member certificates serve and authenticate peers; the
# apiservers' etcd client certificate), a front-proxy CA for HAProxy's client
# certificate in http mode, and HAProxy's serving certificate from the main CA.
make_ha_pki() {
  local i
  [ -f "$pki/done-ha" ] && return
  say "generating etcd and front-proxy CAs and certificates"
  make_ca etcd-ca celers-kube-lease-etcd-ca
  for ((i = 0; i < etcd_count; i++)); do
    sign "etcd-$i" "/CN=etcd-$i" "extendedKeyUsage=serverAuth,clientAuth
$loopback_san" etcd-ca
  done
  sign apiserver-etcd-client "/CN=kube-apiserver-etcd-client" "extendedKeyUsage=clientAuth" etcd-ca
  make_ca front-proxy-ca celers-kube-lease-front-proxy-ca
  sign front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth" front-proxy-ca
  cat "$pki/front-proxy-client.crt" "$pki/front-proxy-client.key" >"$pki/front-proxy-client.pem"
  sign haproxy "/CN=haproxy" "extendedKeyUsage=serverAuth
$loopback_san"
  cat "$pki/haproxy.crt" "$pki/haproxy.key" >"$pki/haproxy.pem"
  touch "$pki/done-ha"
}

# write_kubeconfig [FILE NAME]: admin kubeconfig for the instance's front
# (single: the apiserver, HA: the load balancer), or FILE for NAME alone.
write_kubeconfig() {
  local file=${1:-$kubeconfig} name=${2:-$(front_name)}
  b64() { base64 <"$1" | tr -d '\n'; }
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: celers-kube-lease
  cluster:
    server: $(url_of "$name")
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
  mv "$file.tmp" "$file"
}

kubeconfig_of() {
  case $1 in
    kube-apiserver-*) echo "$dir/kubeconfig-$1" ;;
    *) echo "$kubeconfig" ;;
  esac
}

# ---- etcd, kube-apiserver, haproxy ---------------------------------------------

etcd_scheme() { if [ "$topology" = ha ]; then echo https; else echo http; fi; }

etcd_data() { if [ "$topology" = ha ]; then echo "$dir/$1-data"; else echo "$dir/etcd-data"; fi; }

start_etcd() {
  local name=$1 peer client cluster=() n
  if [ "$topology" = single ]; then
    peer="http://127.0.0.1:${port[etcd-peer]}" client="http://127.0.0.1:${port[etcd]}"
    start etcd "$bin/etcd" --name default --data-dir "$dir/etcd-data" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "default=$peer" --initial-cluster-state new
    return
  fi
  for n in $(names_of etcd); do cluster+=("$n=https://127.0.0.1:${port[$n-peer]}"); done
  peer="https://127.0.0.1:${port[$name-peer]}" client="https://127.0.0.1:${port[$name]}"
  # Once the data dir exists, etcd ignores the --initial-* flags.
  start "$name" "$bin/etcd" --name "$name" --data-dir "$dir/$name-data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --listen-metrics-urls "http://127.0.0.1:${port[$name-metrics]}" \
    --initial-cluster "$(IFS=,; echo "${cluster[*]}")" --initial-cluster-state new \
    --initial-cluster-token celers-kube-lease \
    --cert-file "$pki/$name.crt" --key-file "$pki/$name.key" \
    --trusted-ca-file "$pki/etcd-ca.crt" --client-cert-auth \
    --peer-cert-file "$pki/$name.crt" --peer-key-file "$pki/$name.key" \
    --peer-trusted-ca-file "$pki/etcd-ca.crt" --peer-client-cert-auth
}

start_apiserver() {
  local name=$1 issuer=https://kubernetes.default.svc n servers=()
  local common=(
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1
    --secure-port "${port[$name]}" --cert-dir "$pki"
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key"
    --service-account-issuer "$issuer" --api-audiences "$issuer"
    --service-cluster-ip-range 10.96.0.0/24 --endpoint-reconciler-type none
  )
  if [ "$topology" = single ]; then
    start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:${port[etcd]}" "${common[@]}"
    return
  fi
  for n in $(names_of etcd); do servers+=("https://127.0.0.1:${port[$n]}"); done
  # env execs the apiserver: same PID, argv0 kube-apiserver.
  start "$name" env CELERS_CLOCK_OFFSET_FILE="$dir/$name.clock-offset" "$(apiserver_bin)" \
    --etcd-servers "$(IFS=,; echo "${servers[*]}")" \
    --etcd-cafile "$pki/etcd-ca.crt" --etcd-certfile "$pki/apiserver-etcd-client.crt" \
    --etcd-keyfile "$pki/apiserver-etcd-client.key" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    "${common[@]}"
}

lb_mode() { if [ -f "$dir/lb-mode" ]; then cat "$dir/lb-mode"; else echo tcp; fi; }

write_haproxy_cfg() {
  local mode n check
  mode=$(lb_mode)
  # Health checks: /readyz is readable by anyone, authenticated or not.
  check="check inter 1s fastinter 500ms downinter 1s fall 2 rise 2"
  {
    cat <<EOF
# Generated by hack/control-plane.sh (lb-mode $mode); rewritten on every start.
global
  nbthread 1
  maxconn 4096
  log stdout format raw local0

defaults
  log global
  timeout connect 2s
  timeout check 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  retries 2
  option redispatch

frontend stats
  bind 127.0.0.1:${port[haproxy-stats]}
  mode http
  stats enable
  stats uri /

EOF
    if [ "$mode" = tcp ]; then
      cat <<EOF
frontend kube-apiserver
  bind 127.0.0.1:${port[haproxy]}
  mode tcp
  option tcplog
  default_backend kube-apiservers

backend kube-apiservers
  mode tcp
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server $check check-ssl verify required ca-file $pki/ca.crt
EOF
    else
      cat <<EOF
frontend kube-apiserver
  bind 127.0.0.1:${port[haproxy]} ssl crt $pki/haproxy.pem ca-file $pki/ca.crt verify optional alpn h2,http/1.1
  mode http
  option httplog
  # The front-proxy identity headers come from HAProxy only.
  http-request del-header X-Remote- -m beg
  http-request set-header X-Remote-User %[ssl_c_s_dn(CN)] if { ssl_c_used } { ssl_c_verify 0 }
  http-request set-header X-Remote-Group %[ssl_c_s_dn(O)] if { ssl_c_used } { ssl_c_verify 0 } { ssl_c_s_dn(O) -m found }
  default_backend kube-apiservers

backend kube-apiservers
  mode http
  balance roundrobin
  # Checks present HAProxy's front-proxy certificate too; without a user
  # header the apiserver would refuse it (401), so they name one.
  option httpchk
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1 hdr X-Remote-User haproxy-health-check
  http-check expect status 200
  default-server $check ssl verify required ca-file $pki/ca.crt crt $pki/front-proxy-client.pem
EOF
    fi
    for n in $(names_of kube-apiserver); do
      printf '  server %s 127.0.0.1:%s\n' "$n" "${port[$n]}"
    done
  } >"$dir/haproxy.cfg.tmp"
  mv "$dir/haproxy.cfg.tmp" "$dir/haproxy.cfg"
}

start_haproxy() {
  write_haproxy_cfg
  # HAProxy makes its stdout non-blocking with F_SETFL, which drops
  # O_APPEND: it writes from offset 0. So each run gets a fresh log.
  [ ! -f "$dir/haproxy.log" ] || mv "$dir/haproxy.log" "$dir/haproxy.log.1"
  : >"$dir/haproxy.log"
  detach haproxy "$(haproxy_bin)" -f "$dir/haproxy.cfg" -db
}

# launch NAME: start NAME's process (fresh etcd members start from empty data).
launch() {
  local name=$1
  case $(prog_of "$name") in
    etcd)
      [ "$fresh" = 0 ] || rm -rf "$(etcd_data "$name")"
      say "starting $name on $(url_of "$name")"
      start_etcd "$name"
      ;;
    kube-apiserver)
      write_kubeconfig "$(kubeconfig_of "$name")" "$name"
      say "starting $name on $(url_of "$name")"
      start_apiserver "$name"
      ;;
    haproxy)
      write_kubeconfig
      say "starting haproxy ($(lb_mode) mode) on $(url_of haproxy)"
      start_haproxy
      ;;
  esac
}

# True if a plain-HTTP GET of /health on 127.0.0.1:$1 says healthy.
http_health() {
  local out
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' _ "$1" 2>/dev/null) || true
  [[ $out == *'"health":"true"'* ]]
}

# etcd_healthy NAME: single-node etcd serves plain HTTP; HA members answer
# on their plain-HTTP metrics port (as kubeadm's probes do).
etcd_healthy() {
  if [ "$topology" = ha ]; then http_health "${port[$1-metrics]}"; else http_health "${port[etcd]}"; fi
}

# apiserver_ready [NAME]: NAME (default: the instance's front) answers /readyz.
apiserver_ready() {
  local kc
  kc=$(kubeconfig_of "${1:-}")
  [ -f "$kc" ] &&
    timeout 10 "$bin/kubectl" --kubeconfig "$kc" --request-timeout 5s get --raw /readyz >/dev/null 2>&1
}

# wait_ready NAME: 0 ready, 1 timed out, 2 process died.
wait_ready() {
  local name=$1 check deadline=$((SECONDS + ready_timeout))
  case $(prog_of "$name") in
    etcd) check="etcd_healthy $name" ;;
    *) check="apiserver_ready $name" ;;
  esac
  until $check; do
    # (A moment's grace: right after start, NAME may still be exec'ing.)
    alive "$name" || { sleep 0.5; alive "$name"; } || return 2
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
  stop "${started[@]}"
  if [ "$fresh" = 1 ]; then
    rm -rf "$dir/ports"
    for name in $(names_of etcd); do rm -rf "$(etcd_data "$name")"; done
  fi
  exit 1
}

# bring_up NAME...: start NAMEs together, then wait for each; on a fresh
# instance a port that somebody took meanwhile is replaced by another one
# (for a fresh etcd cluster: all members' ports, since each knows the others').
bring_up() {
  local attempt name rc failed
  local -A offset=()
  started+=("$@")
  for attempt in 1 2 3 4 5; do
    for name in "$@"; do offset[$name]=$(log_size "$name"); launch "$name"; done
    failed=()
    for name in "$@"; do
      rc=0; wait_ready "$name" || rc=$?
      [ $rc -ne 0 ] || continue
      [ $rc -eq 2 ] || fail_up "$name" "$name not ready after ${ready_timeout}s"
      if [ "$fresh" = 0 ] || ! bind_failed "$name" "${offset[$name]}"; then fail_up "$name" "$name exited"; fi
      failed+=("$name")
    done
    [ ${#failed[@]} -gt 0 ] || return 0
    say "port taken; retrying on other ports (attempt $attempt)"
    if [ "$topology" = ha ] && [ "$(prog_of "${failed[0]}")" = etcd ]; then
      stop "$@"
      failed=("$@")
    fi
    repick "${failed[@]}"
    set -- "${failed[@]}"
  done
  fail_up "$1" "$1: gave up after 5 attempts"
}

# ---- subcommands --------------------------------------------------------------

fresh=0
started=()

cmd_up() {
  local start_time=$SECONDS name rec want group dead skew_bin
  bin=$(bin_dir)
  if [ -e "$dir" ] && [ ! -e "$marker" ] && [ -n "$(ls -A "$dir")" ]; then
    die "$dir exists and is not a control-plane state dir; set CONTROL_PLANE_DIR elsewhere"
  fi
  want="${CONTROL_PLANE_TOPOLOGY:-single}"
  [ "$want" != ha ] || want="ha ${CONTROL_PLANE_APISERVERS:-3}"
  if rec=$(recorded_topology); then
    if [ -n "${CONTROL_PLANE_TOPOLOGY:-}" ] && [ "$rec" != "$want" ]; then
      die "$dir holds a '$rec' instance, not '$want'; run down first or set CONTROL_PLANE_DIR elsewhere"
    fi
    want=$rec
  fi
  # shellcheck disable=SC2086 # "ha 3"
  set_topology $want
  if [ "$topology" = ha ]; then
    haproxy_bin >/dev/null
    case ${CONTROL_PLANE_LB_MODE:-tcp} in tcp | http) ;; *) die "CONTROL_PLANE_LB_MODE must be tcp or http" ;; esac
  fi
  # Only a new HA instance chooses (and maybe builds) its apiserver binary.
  skew_bin=
  if [ "$topology" = ha ] && [ ! -f "$dir/ports" ] && [ "${CONTROL_PLANE_CLOCK_SKEW:-1}" != 0 ]; then
    skew_bin=$(skew_bin_dir)
  fi
  mkdir -p "$dir"; chmod 700 "$dir"; touch "$marker"
  lock
  printf '%s\n' "$bin" >"$dir/bin"

  if ! load_ports; then
    fresh=1
    port=()
    for name in $(port_keys); do port[$name]=$(pick_port); done
    if [ "$topology" = ha ]; then
      echo "$want" >"$dir/topology"
      echo "${CONTROL_PLANE_LB_MODE:-tcp}" >"$dir/lb-mode"
      if [ -n "$skew_bin" ]; then echo "$skew_bin" >"$dir/skew-bin"; else rm -f "$dir/skew-bin"; fi
    fi
    save_ports
  fi
  (umask 077; make_pki; [ "$topology" = single ] || make_ha_pki)

  # Single: etcd, then kube-apiserver. HA: the dead etcd members together,
  # then the dead apiservers together, then haproxy.
  for group in etcd kube-apiserver haproxy; do
    dead=()
    for name in $(names_of "$group"); do
      alive "$name" && continue
      [ "$fresh" = 1 ] || say "$name is not running; restarting it on its old port"
      dead+=("$name")
    done
    [ ${#dead[@]} -eq 0 ] || bring_up "${dead[@]}"
  done

  write_kubeconfig
  # Whatever was (re)started, the instance must be serving before we say so.
  wait_ready "$(front_name)" || fail_up all "$(front_name) running but not ready"
  if [ ${#started[@]} -eq 0 ]; then
    say "already up: $(url_of "$(front_name)")"
  else
    say "ready in $((SECONDS - start_time))s: $(url_of "$(front_name)")"
  fi
  printf '%s\n' "$kubeconfig"
}

cmd_down() {
  local group group_names
  if [ ! -e "$dir" ]; then say "nothing to stop"; return; fi
  [ -e "$marker" ] || die "$dir is not a control-plane state dir; not touching it"
  load_topology
  lock
  for group in haproxy kube-apiserver etcd; do
    mapfile -t group_names < <(names_of "$group")
    [ ${#group_names[@]} -eq 0 ] || stop "${group_names[@]}"
    # Strays whose pid file was lost (e.g. an interrupted `up`), whatever
    # the topology.
    stop_strays "$group"
  done
  rm -rf "$dir"
  say "removed $dir"
}

cmd_status() {
  local name pid ok=0 extra
  if [ ! -e "$marker" ] || ! load_ports; then echo "down ($dir)"; return 1; fi
  bin=$(recorded_bin)
  for name in "${names[@]}"; do
    extra=
    case $name in
      haproxy) extra=" $(lb_mode) mode" ;;
      kube-apiserver-*) [ ! -f "$dir/skew-bin" ] || extra=" clock offset $(skew_of "$name") ms" ;;
    esac
    if alive "$name"; then
      pid=$(pid_of "$name")
      if [ "$topology" = ha ] && [ "$(prog_of "$name")" = kube-apiserver ]; then
        if apiserver_ready "$name"; then extra="$extra, ready"; else extra="$extra, NOT READY"; ok=1; fi
      fi
      printf '%-15s pid %-8s 127.0.0.1:%s%s\n' "$name" "$pid" "${port[$name]}" "$extra"
    else
      printf '%-15s dead\n' "$name"; ok=1
    fi
  done
  [ $ok -eq 0 ] || { echo "down or degraded (run: $0 up)"; return 1; }
  if apiserver_ready; then
    echo "ready; kubeconfig: $kubeconfig"
  else
    echo "not ready; kubeconfig: $kubeconfig"; return 1
  fi
}

need_name() {
  [ -n "${1:-}" ] || usage
  in_names "$1" || die "no process '$1' in this $topology instance (names: ${names[*]})"
}

need_up() {
  if [ ! -e "$marker" ] || ! load_ports; then die "not up ($dir); run: $0 up"; fi
}

cmd_kill() {
  local name=$1 pid
  need_up; need_name "$name"
  lock
  alive "$name" || die "$name is not running"
  pid=$(pid_of "$name")
  kill -KILL "$pid"
  wait_gone "$pid" "$name" 10 || die "$name (pid $pid) survived SIGKILL"
  say "killed $name (pid $pid)"
}

cmd_start() {
  local name=$1
  need_up; need_name "$name"
  lock
  if alive "$name"; then say "$name is already running (pid $(pid_of "$name"))"; return; fi
  bin=$(cat "$dir/bin")
  bring_up "$name"
  if [[ $name == kube-apiserver-* ]] && alive haproxy; then
    # Back in the load balancer's rotation, too.
    local deadline=$((SECONDS + ready_timeout))
    until [ "$(lb_status "$name")" = UP ]; do
      [ $SECONDS -lt $deadline ] || die "$name is ready but HAProxy does not route to it"
      sleep 0.3
    done
  fi
  say "$name is back on $(url_of "$name")"
}

skew_of() { if [ -f "$dir/$1.clock-offset" ]; then cat "$dir/$1.clock-offset"; else echo 0; fi; }

cmd_skew() {
  local name=${1:-} ms=${2:-}
  need_up
  [ "$topology" = ha ] || die "clock offsets need the HA topology (CONTROL_PLANE_TOPOLOGY=ha)"
  need_name "$name"
  [[ $name == kube-apiserver-* ]] || die "only the apiservers' clocks can be skewed, not $name's"
  [ -f "$dir/skew-bin" ] || die "this instance runs the stock kube-apiserver (CONTROL_PLANE_CLOCK_SKEW=0)"
  if [ -z "$ms" ]; then skew_of "$name"; return; fi
  [[ $ms =~ ^[+-]?[0-9]{1,12}$ ]] || die "MILLIS must be an integer number of milliseconds, not '$ms'"
  ms=${ms#+}
  printf '%s\n' "$ms" >"$dir/$name.clock-offset.tmp"
  mv "$dir/$name.clock-offset.tmp" "$dir/$name.clock-offset"
  sleep 0.2 # the apiserver re-reads it at most 100 ms later
  say "$name clock offset: $ms ms"
}

cmd_lb_mode() {
  local mode=${1:-}
  need_up
  [ "$topology" = ha ] || die "the load balancer needs the HA topology (CONTROL_PLANE_TOPOLOGY=ha)"
  if [ -z "$mode" ]; then lb_mode; return; fi
  case $mode in tcp | http) ;; *) usage ;; esac
  lock
  echo "$mode" >"$dir/lb-mode"
  bin=$(cat "$dir/bin")
  stop haproxy
  bring_up haproxy
  say "load balancer in $mode mode on $(url_of haproxy)"
}

# HAProxy's statistics (CSV) for the apiserver backend's servers.
lb_csv() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /;csv HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' _ "${port[haproxy-stats]}" 2>/dev/null |
    awk -F, '$1 == "kube-apiservers" && $2 != "BACKEND"'
}

# lb_status NAME: UP, DOWN, ... as HAProxy's health checks see apiserver NAME.
lb_status() { { lb_csv || true; } | awk -F, -v n="$1" '$2 == n { print $18 }'; }

cmd_lb_stats() {
  local out
  need_up
  [ "$topology" = ha ] || die "the load balancer needs the HA topology"
  out=$(lb_csv || true)
  [ -n "$out" ] || die "no answer from HAProxy's stats page"
  # Columns: 2 svname, 8 stot (connections; in http mode: requests), 18 status, 49 req_tot (http mode).
  printf '%s\n' "$out" | awk -F, '{
    printf "%-17s %-6s connections %-6s requests %s\n", $2, $18, $8, ($49 == "" ? "-" : $49) }'
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) load_topology; cmd_status ;;
  kubectl)
    shift
    [ -f "$kubeconfig" ] || die "not up ($dir); run: $0 up"
    bin=$(recorded_bin)
    exec "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"
    ;;
  bin) bin_dir ;;
  pid)
    load_topology
    in_names "${2:-}" || usage
    pid_of "$2" || die "no $2 pid recorded in $dir"
    ;;
  kill) load_topology; cmd_kill "${2:-}" ;;
  start) load_topology; cmd_start "${2:-}" ;;
  kubeconfig)
    load_topology; need_up
    if [ -n "${2:-}" ]; then need_name "$2"; fi
    [[ ${2:-} != etcd* && ${2:-} != haproxy ]] || die "$2 is not an apiserver"
    if [ "$topology" = single ]; then echo "$kubeconfig"; else kubeconfig_of "${2:-}"; fi
    ;;
  url)
    load_topology; need_up
    if [ -n "${2:-}" ]; then need_name "$2"; url_of "$2"; else url_of "$(front_name)"; fi
    ;;
  skew) load_topology; cmd_skew "${2:-}" "${3:-}" ;;
  lb-mode) load_topology; cmd_lb_mode "${2:-}" ;;
  lb-stats) load_topology; cmd_lb_stats ;;
  *) usage ;;
esac
