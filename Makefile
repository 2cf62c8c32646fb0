# edge-cache: the two commands README promises, and the steps behind them.
#   make up    build and run origin (:8080) + edge (:3000); Ctrl-C stops both
#   make test  build the component once and run every test

.PHONY: wasm build up test lint fmt

wasm:
	scripts/build-wasm

build: wasm
	cargo build --release -p edge-host -p origin

up: build
	scripts/up

test: wasm
	cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
