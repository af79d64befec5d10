# The two commands of the README, and the steps they share.
#   make run   — set up, build the add-header example, run the proxy on :8080
#   make test  — set up and run every test (unit and end-to-end)

TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
GUESTS := $(TARGET)/guests
PORT ?= 8080

.PHONY: run test setup examples lint bench soak bench-peers production

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

examples: setup
	CARGO_TARGET_DIR=$(GUESTS) cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

run: examples
	cargo run --release -p witm -- -p $(PORT) -s $(GUESTS)/wasm32-wasip2/release/add_header.wasm

test:
	tests/setup.sh
	cargo test --release --workspace

# The build to deploy: target/production/witm (Cargo.toml's `production`
# profile; ~12 minutes; 9 % fewer instructions per request than `make run`'s).
production:
	cargo build --profile production -p witm

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all --check --manifest-path plugins/Cargo.toml
	CARGO_TARGET_DIR=$(GUESTS) cargo clippy --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -- -D warnings

bench: setup
	cargo bench -p witm --bench throughput
	cargo bench -p witm --bench modes
	cargo bench -p witm --bench outbound
	cargo bench -p witm --bench https
	cargo bench -p witm-plugin-host --bench event
	cargo bench -p witm-tls --bench mint
	cargo bench -p witm --bench saved_flows
	cargo bench -p witm-plugin-host --bench instances
	cargo bench -p witm --bench isolation
	cargo bench -p witm --bench grpc
	cargo bench -p witm --bench attacks
	cargo bench -p witm --bench languages
	cargo bench -p witm --bench idle_connections

soak: setup
	cargo bench -p witm --bench soak

# witm beside mitmdump, hudsucker and the origin itself (bench/run.sh).
bench-peers: setup
	bench/run.sh
