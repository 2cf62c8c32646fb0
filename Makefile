# edge-cache: the two commands README promises, and the steps behind them.
#   make up    build and run origin (:8080) + edge (:3000); Ctrl-C stops both
#   make test  build the component once and run every test

.PHONY: wasm build up cluster test lint fmt bench bench-quick

# Both flavours of the edge component (WASI 0.2 and 0.3), and the
# misbehaving ones (WASI 0.2 and 0.3) edge-host's limit and reuse tests run.
wasm:
	scripts/build-wasm edge-cache-p2 edge-cache-p3 misbehaving-component misbehaving-component-p3

build: wasm
	cargo build --release -p edge-host -p origin

up: build
	scripts/up

# Redis, the origin and three edge nodes sharing purges (scripts/cluster);
# Ctrl-C stops all.
cluster: build
	scripts/cluster

# The fallback tests kill and restart a real origin process: build it first.
# The integration suite runs twice: against the WASI 0.3 flavour (the
# default) and again against the WASI 0.2 one (already built, so only the
# runs repeat). The many-nodes tests start their own redis-server:
# Debian's is installed first when it is missing and this runs as root.
# The behaviour suite runs a third time with every request through the
# component (EDGE_NATIVE_HITS=off): fresh hits are edge-host's otherwise.
# The status-page test drives a headless Chromium and the metrics test
# runs promtool (Debian's chromium, prometheus): installed first when
# missing and this runs as root.
test: wasm
	@command -v redis-server >/dev/null || [ "$$(id -u)" != 0 ] || bash .ci/needs/redis.sh
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || bash .ci/needs/chromium.sh
	@command -v promtool >/dev/null || [ "$$(id -u)" != 0 ] || bash .ci/needs/promtool.sh
	cargo build -p origin --bin origin
	cargo test --workspace
	EDGE_TEST_FLAVOUR=p2 cargo test -p edge-tests
	EDGE_NATIVE_HITS=off cargo test -p edge-tests --test behaviour

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Benchmarks against nginx, Varnish and a native ceiling (BENCHMARKS.md);
# installs nginx, varnish and wrk from Debian when run as root.
bench:
	bench/run

bench-quick:
	bench/run --quick
