# Shared by bench/run and bench/profile: ports, installing, building,
# starting and stopping the contestants. Sourced, not run.

ORIGIN_PORT=${BENCH_ORIGIN_PORT:-18080}
CEILING_PORT=$((ORIGIN_PORT + 1))
EDGE_PORT=$((ORIGIN_PORT + 2))
NGINX_PORT=$((ORIGIN_PORT + 3))
VARNISH_PORT=$((ORIGIN_PORT + 4))
HELLO_PORT=$((ORIGIN_PORT + 5))
EDGE_P2_PORT=$((ORIGIN_PORT + 6))
HELLO_P3_PORT=$((ORIGIN_PORT + 7))
EDGE_OBSERVED_PORT=$((ORIGIN_PORT + 8))
EDGE_OBSERVED_METRICS_PORT=$((ORIGIN_PORT + 9))
NGINX_SLICE_PORT=$((ORIGIN_PORT + 10))
EDGE_COMPONENT_PORT=$((ORIGIN_PORT + 11))
# HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on the same certificate: the default
# edge with --tls-cert, and nginx's `ssl http2` server of the same cache.
EDGE_TLS_PORT=$((ORIGIN_PORT + 12))
NGINX_TLS_PORT=$((ORIGIN_PORT + 13))
HELLO_FETCH_PORT=$((ORIGIN_PORT + 14))
PURGE_TOKEN=bench-purge-token

declare -A PORT=([origin]=$ORIGIN_PORT [ceiling]=$CEILING_PORT [edge]=$EDGE_PORT
  [nginx]=$NGINX_PORT [varnish]=$VARNISH_PORT [hello]=$HELLO_PORT [edge-p2]=$EDGE_P2_PORT
  [hello-p3]=$HELLO_P3_PORT [edge-observed]=$EDGE_OBSERVED_PORT [nginx-slice]=$NGINX_SLICE_PORT
  [edge-component]=$EDGE_COMPONENT_PORT [hello-fetch]=$HELLO_FETCH_PORT)
# The TLS port of a contestant that has one.
declare -A TLS_PORT=([edge]=$EDGE_TLS_PORT [nginx]=$NGINX_TLS_PORT)
declare -A PID=()

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian packages: nginx (proxy_cache is in every flavour; -light is the
# smallest), varnish, wrk; curl for readiness checks; h2load
# (nghttp2-client) for HTTP/2, openssl for the certificate.
install_tools() {
  local need=()
  command -v nginx >/dev/null || need+=(nginx-light)
  command -v varnishd >/dev/null || need+=(varnish)
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  command -v h2load >/dev/null || need+=(nghttp2-client)
  command -v openssl >/dev/null || need+=(openssl)
  if [[ ${1:-} == profile ]]; then
    command -v perf >/dev/null || need+=(linux-perf)
  fi
  ((${#need[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages: ${need[*]} (run as root, or apt-get install them)"
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  # Keep the packages' own services from starting (and taking ports).
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || status=$?
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  ((status == 0)) || die "apt-get install ${need[*]} failed"
}

build_all() {
  log "building release binaries and components"
  cargo build --release -q -p edge-host -p edge-bench
  scripts/build-wasm edge-cache-p3 edge-cache-p2 hello-component hello-component-p3
}

# A scratch directory on tmpfs when there is one (caches that keep bodies
# in files, nginx's, get memory speed like the in-memory stores).
make_workdir() {
  local base=/dev/shm
  [[ -d $base && -w $base ]] || base=${TMPDIR:-/tmp}
  WORK=$(mktemp -d "$base/edge-bench.XXXXXX")
}

# Stops everything started and removes the scratch directory: it is on
# tmpfs, so what it holds (nginx's caches of 1 GiB objects) is memory, and
# runs that left theirs behind had the next run's edge killed for memory.
# After a failed run the logs stay (the caches go) for a look.
finish() { # exit status
  stop_all
  [[ -n ${WORK:-} && -d $WORK ]] || return 0
  if (($1 == 0)); then
    rm -rf "$WORK"
  else
    rm -rf "$WORK/nginx-cache" "$WORK/nginx-slice-cache"
    log "the logs of this run are in $WORK"
  fi
}

# Refuses a port something already answers on: a leftover server would
# otherwise be measured in place of the one being started.
port_free() { # name port
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$2/" 2>/dev/null; then
    die "$1: something already listens on 127.0.0.1:$2 (a leftover run?)"
  fi
}

wait_ready() { # name url (https: the bench's self-signed certificate)
  local i
  for ((i = 0; i < 300; i++)); do
    if curl -fsSk -o /dev/null "$2" 2>/dev/null; then
      kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited; see $WORK/$1.log"
      return 0
    fi
    if [[ -n ${PID[$1]:-} ]] && ! kill -0 "${PID[$1]}" 2>/dev/null; then
      die "$1 exited while starting; see $WORK/$1.log"
    fi
    sleep 0.1
  done
  die "$1 not ready at $2 after 30 s; see $WORK/$1.log"
}

origin_count() { curl -fsS "http://127.0.0.1:$ORIGIN_PORT/_count"; }

start_origin() {
  port_free origin "$ORIGIN_PORT"
  target/release/bench-origin "127.0.0.1:$ORIGIN_PORT" >"$WORK/origin.log" 2>&1 &
  PID[origin]=$!
  wait_ready origin "http://127.0.0.1:$ORIGIN_PORT/_count"
}

start_ceiling() {
  port_free ceiling "$CEILING_PORT"
  target/release/ceiling "127.0.0.1:$CEILING_PORT" >"$WORK/ceiling.log" 2>&1 &
  PID[ceiling]=$!
  wait_ready ceiling "http://127.0.0.1:$CEILING_PORT/"
}

# Per-request logging off for every contestant: RUST_LOG=warn for edge-host
# (its default logs each request at info), access_log off in nginx, no
# varnishncsa.
start_hello() {
  start_hello_flavour hello bench/hello.spin.toml
}

# The trivial component's WASI 0.3 twin, served with instance reuse.
start_hello_p3() {
  start_hello_flavour hello-p3 bench/hello-p3.spin.toml
}

# The WASI 0.3 trivial component fetching every request from the origin:
# the floor under the edge's miss path (one wasi:http request out, nothing
# decided or stored).
start_hello_fetch() {
  start_hello_flavour hello-fetch bench/hello-fetch.spin.toml --variable "origin=127.0.0.1:$ORIGIN_PORT"
}

start_hello_flavour() { # name manifest [edge-host flags...]
  local name=$1 manifest=$2
  shift 2
  port_free "$name" "${PORT[$name]}"
  RUST_LOG=warn target/release/edge-host up -f "$manifest" \
    --listen "127.0.0.1:${PORT[$name]}" "$@" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  wait_ready "$name" "http://127.0.0.1:${PORT[$name]}/"
}

start_edge() { # cache-bytes [edge-host flags...]
  start_edge_flavour edge spin.toml "$@"
}

# The default edge with every request through the component (no native
# hits): what Spin users get, and what the component path costs.
start_edge_component() { # cache-bytes [edge-host flags...]
  local bytes=$1
  shift
  start_edge_flavour edge-component spin.toml "$bytes" --no-native-hits "$@"
}

# The WASI 0.2 flavour (a fresh instance per request), beside the default.
start_edge_p2() { # cache-bytes [edge-host flags...]
  start_edge_flavour edge-p2 spin-p2.toml "$@"
}

# The default edge with what an operator turns on: the metrics listener and
# a JSON access log to a file (hot 1 KiB: what they cost per hit; bench/run's
# replay step: the log it replays, to a file of its own).
start_edge_observed() { # cache-bytes [access-log-file [edge-host flags...]]
  local bytes=$1 access_log=${2:-$WORK/edge-observed-access.log}
  shift $(($# < 2 ? $# : 2))
  port_free edge-observed-metrics "$EDGE_OBSERVED_METRICS_PORT"
  start_edge_flavour edge-observed spin.toml "$bytes" \
    --metrics-listen "127.0.0.1:$EDGE_OBSERVED_METRICS_PORT" \
    --access-log "$access_log" --log-format json "$@"
}

# One self-signed ECDSA P-256 certificate for 127.0.0.1 that every TLS
# contestant serves (made once per scratch directory).
tls_certificate() {
  TLS_CERT=$WORK/tls/cert.pem TLS_KEY=$WORK/tls/key.pem
  [[ -e $TLS_CERT ]] && return 0
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null || die "openssl could not make a certificate"
}

# The default edge serving HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on
# EDGE_TLS_PORT with the bench certificate: the TLS and HTTP/2 scenarios'
# `edge`.
start_edge_tls() { # cache-bytes
  tls_certificate
  local name=edge-tls
  port_free "$name" "$EDGE_TLS_PORT"
  printf '[key_value_store.default]\ntype = "memory"\ncapacity_bytes = %d\n' "$1" >"$WORK/$name-runtime.toml"
  RUST_LOG=warn target/release/edge-host up -f spin.toml --listen "127.0.0.1:$EDGE_TLS_PORT" \
    --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" \
    --runtime-config-file "$WORK/$name-runtime.toml" \
    --variable "origin_url=http://127.0.0.1:$ORIGIN_PORT" \
    --variable "purge_token=$PURGE_TOKEN" --variable cache_rules=/rules/cache-rules.json \
    >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  wait_ready "$name" "https://127.0.0.1:$EDGE_TLS_PORT/ready?size=1"
}

# The demo shop's rules, as before the manifests defaulted to the built-in
# ones (a later --variable cache_rules=... in the flags wins).
start_edge_flavour() { # name manifest cache-bytes [edge-host flags...]
  local name=$1 manifest=$2 bytes=$3
  shift 3
  port_free "$name" "${PORT[$name]}"
  printf '[key_value_store.default]\ntype = "memory"\ncapacity_bytes = %d\n' "$bytes" >"$WORK/$name-runtime.toml"
  RUST_LOG=warn target/release/edge-host up -f "$manifest" --listen "127.0.0.1:${PORT[$name]}" \
    --runtime-config-file "$WORK/$name-runtime.toml" \
    --variable "origin_url=http://127.0.0.1:$ORIGIN_PORT" \
    --variable "purge_token=$PURGE_TOKEN" --variable cache_rules=/rules/cache-rules.json \
    "$@" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  wait_ready "$name" "http://127.0.0.1:${PORT[$name]}/ready?size=1"
}

# One nginx serves two contestants: nginx (plain proxy_cache) on
# NGINX_PORT and nginx-slice (the same with `slice 1m`, its own cache of
# the same budget) on NGINX_SLICE_PORT.
start_nginx() { # cache bytes
  port_free nginx "$NGINX_PORT"
  port_free nginx-slice "$NGINX_SLICE_PORT"
  tls_certificate
  local dir=$WORK/nginx cache=$WORK/nginx-cache slice_cache=$WORK/nginx-slice-cache
  rm -rf "$dir" "$cache" "$slice_cache"
  mkdir -p "$dir" "$cache" "$slice_cache"
  # keys_zone: metadata only (about 8,000 keys per MiB); enough for every
  # object a run can create, so the byte budget is what limits.
  sed -e "s|@DIR@|$dir|g" -e "s|@CACHE_DIR@|$cache|g" -e "s|@SLICE_CACHE_DIR@|$slice_cache|g" \
    -e "s|@KEYS_ZONE@|64m|g" -e "s|@CACHE_BYTES@|$1|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
    -e "s|@SLICE_PORT@|$NGINX_SLICE_PORT|g" -e "s|@PORT@|$NGINX_PORT|g" \
    -e "s|@TLS_PORT@|$NGINX_TLS_PORT|g" -e "s|@TLS_CERT@|$TLS_CERT|g" -e "s|@TLS_KEY@|$TLS_KEY|g" \
    bench/nginx.conf >"$dir/nginx.conf"
  # Started by root, nginx's workers would run as nobody, who cannot write
  # the private scratch directory: keep them as the user who starts it.
  local global=()
  [[ $(id -u) -ne 0 ]] || global=(-g "user root;")
  nginx -e "$dir/nginx-error.log" -p "$dir" -c "$dir/nginx.conf" "${global[@]}" >"$WORK/nginx.log" 2>&1 &
  PID[nginx]=$!
  wait_ready nginx "http://127.0.0.1:$NGINX_PORT/ready?size=1"
  wait_ready nginx "http://127.0.0.1:$NGINX_SLICE_PORT/ready?size=1"
  wait_ready nginx "https://127.0.0.1:$NGINX_TLS_PORT/ready?size=1"
}

start_varnish() { # cache bytes
  port_free varnish "$VARNISH_PORT"
  local dir=$WORK/varnish
  rm -rf "$dir"
  mkdir -p "$dir"
  sed -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" bench/varnish.vcl >"$WORK/varnish.vcl"
  # -j none: run as whoever starts it (no privilege separation to set up);
  # -F: stay in the foreground so it is stopped like the others.
  varnishd -F -j none -n "$dir" -a "127.0.0.1:$VARNISH_PORT" -f "$WORK/varnish.vcl" \
    -s "malloc,$1" >"$WORK/varnish.log" 2>&1 &
  PID[varnish]=$!
  wait_ready varnish "http://127.0.0.1:$VARNISH_PORT/ready?size=1"
}

# Builds (cargo, rustc) of other people on the machine: a measurement taken
# while one runs says nothing. A watcher notes every half second whether
# one is running; wait_quiet holds a measurement back until none is.
builds_running() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }

start_build_watch() {
  : >"$WORK/builds-seen"
  (while sleep 0.5; do
    if builds_running; then echo >>"$WORK/builds-seen"; fi
  done) &
  PID[build-watch]=$!
}

# How many times the watcher has seen a build so far.
builds_seen() { wc -l <"$WORK/builds-seen"; }

# Waits while a build runs, at most BENCH_QUIET_WAIT seconds (default 900;
# 0: never wait), then goes on either way.
wait_quiet() {
  local waited=0 limit=${BENCH_QUIET_WAIT:-900}
  while ((waited < limit)) && builds_running; do
    ((waited > 0)) || log "a build (cargo/rustc) is running: waiting for it before measuring"
    sleep 5
    waited=$((waited + 5))
  done
  ((waited == 0)) || log "waited ${waited}s for builds to end"
}

stop() { # name...
  local name
  for name in "$@"; do
    if [[ -n ${PID[$name]:-} ]]; then
      kill -TERM "${PID[$name]}" 2>/dev/null || true
      wait "${PID[$name]}" 2>/dev/null || true
      unset "PID[$name]"
    fi
  done
}

stop_all() { stop "${!PID[@]}"; }

# A second request of a fresh URL through a cache must not reach the origin;
# otherwise its configuration is wrong and its numbers would mean nothing.
check_caches() { # name...
  local name before after
  for name in "$@"; do
    before=$(origin_count)
    curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$name]}/check/$name-$$-$RANDOM?size=1024"
    curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$name]}/check/$name-$$-$RANDOM?size=1024"
    after=$(origin_count)
    [[ $((after - before)) -eq 2 ]] || die "$name: two new URLs made $((after - before)) origin requests, not 2"
    local url="http://127.0.0.1:${PORT[$name]}/check/$name-$$-repeat?size=1024"
    before=$(origin_count)
    curl -fsS -o /dev/null "$url"
    curl -fsS -o /dev/null "$url"
    after=$(origin_count)
    [[ $((after - before)) -eq 1 ]] || die "$name: a repeated URL made $((after - before)) origin requests, not 1 (not caching?)"
  done
}
