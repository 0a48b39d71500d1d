# The commands people use. `make test` and `make demo` need only Rust and Go.
.PHONY: test demo lint fmt up down status bench bench-scale reliability reliability-long reliability-ha linearizability model plugin krew-archive package-check pods-e2e node-up node-down kind-image kind-e2e

## Run every test, the real-cluster ones included, on a local control plane
## that this command starts and stops.
test:
	hack/test.sh

## Three scheduler replicas for ~30 s, one killed half-way, then a summary.
demo:
	hack/demo.sh

## Formatting, lints, import circles and the library's docs, as CI checks them.
lint:
	cargo fmt --all -- --check
	hack/check-package.sh --self-test
	hack/check-package.sh
	hack/import-cycles.sh src reliability/src model/src
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	K8S_OPENAPI_ENABLED_VERSION=1.37 RUSTDOCFLAGS="-D warnings" \
		cargo doc -p celers-kube-lease --no-deps --all-features --locked

fmt:
	cargo fmt --all

## The local control plane for poking around with kubectl.
up:
	hack/control-plane.sh up
down:
	hack/control-plane.sh down
status:
	hack/control-plane.sh status

## The lock benchmark against client-go's LeaseLock, on a local control plane
## that this command starts and stops; tables on stdout. To update
## BENCHMARKS.md too, as it was made: make bench ARGS='--iterations 1000 --markdown BENCHMARKS.md'
bench:
	bench/run.sh $(ARGS)

## The scale benchmark (about 15 minutes): 100,000 Leases for release_all,
## sweep_expired and is_locked, then a scheduler's 10 minutes with the
## background sweep on, on a local control plane it starts and stops. To
## update BENCHMARKS.md and its plot too:
## make bench-scale ARGS='--markdown BENCHMARKS.md --plot bench/scale-lifetime.svg'
bench-scale:
	bench/scale.sh $(ARGS)

## The reliability checks' short form alone (also part of `make test`; needs
## Debian's faketime package), on a local control plane it starts and stops.
reliability:
	cargo build --locked -p celers-kube-lease-scheduler
	hack/test.sh -p celers-kube-lease-reliability

## The HA long form: three etcd members, three API servers behind HAProxy,
## clock offsets, kills and quorum losses, and paused scheduler replicas.
reliability-ha:
	cargo build --locked -p celers-kube-lease-scheduler
	cargo run --locked -p celers-kube-lease-reliability -- ha --duration $(or $(DURATION),600s) $(ARGS)

## Their long form on a control plane of its own: contention with faults and
## skewed clocks for DURATION (default 600s), then the figures as a table.
reliability-long:
	cargo run --locked -p celers-kube-lease-reliability -- long --duration $(or $(DURATION),600s) $(ARGS)

## A recorded history (reliability-long or reliability-ha with
## ARGS='--history FILE') checked against the TTL lock specification:
## make linearizability HISTORY=FILE [ARGS='--strict-release']
linearizability:
	@test -n "$(HISTORY)" || { echo "usage: make linearizability HISTORY=FILE [ARGS=...]" >&2; exit 2; }
	cargo run --locked -p celers-kube-lease-reliability -- linearizability $(ARGS) $(HISTORY)

## The model checker (model/): every configuration to its bound, then every
## injected defect with its counterexample; about 5 minutes on 2 cores (see
## RELIABILITY.md, "Verification"). Its bounded form is part of `make test`.
## One configuration or defect: make model ARGS='--config drift --no-defects'
model:
	cargo run --locked -p celers-kube-lease-model -- check $(ARGS)

## The kubectl plugin: `kubectl celers …` once ~/.cargo/bin is on PATH.
plugin:
	cargo install --locked --path kubectl-celers

## The plugin packed for krew (the release binary and LICENSE) and its
## manifest celers.yaml, in OUT (default target/krew); install from it with
## kubectl krew install --manifest=OUT/celers.yaml --archive=OUT/kubectl-celers_v…tar.gz
krew-archive:
	hack/krew-archive.sh $(or $(OUT),target/krew)

## What `cargo publish` would ship of the library (only src/, examples/,
## README, LICENSE, CHANGELOG and cargo's own files), and its dry run.
package-check:
	hack/check-package.sh --self-test
	hack/check-package.sh --publish

## The example scheduler as three real pods on a one-node cluster on this
## machine (root; Debian's containerd, runc and jq; see hack/node.sh): node,
## image, failover and a rolling restart, then everything stopped again.
pods-e2e:
	hack/pods-e2e.sh

## A kind node image for Kubernetes v1.37.2, built here from Debian's packages
## and Go modules (root; Debian's podman, debootstrap, containerd, jq): no
## image is pulled. Cached; prints the image's name last.
kind-image:
	hack/kind-image.sh build

## The example scheduler as three pods on a three-node kind cluster (podman
## provider, the image of `make kind-image`, kind-config.yaml, deploy/):
## failover and a rolling restart as in pods-e2e, then the cluster deleted.
kind-e2e:
	hack/kind-e2e.sh

## That one-node cluster alone, for poking around.
node-up:
	hack/node.sh up
node-down:
	hack/node.sh down
