# The commands people use. `make test` and `make demo` need only Rust and Go.
.PHONY: test demo lint fmt up down status bench reliability reliability-long

## Run every test, the real-cluster ones included, on a local control plane
## that this command starts and stops.
test:
	hack/test.sh

## Three scheduler replicas for ~30 s, one killed half-way, then a summary.
demo:
	hack/demo.sh

## Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

fmt:
	cargo fmt --all

## The local control plane for poking around with kubectl.
up:
	hack/control-plane.sh up
down:
	hack/control-plane.sh down
status:
	hack/control-plane.sh status
