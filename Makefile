# clusterset — build, test and benchmark entry points.
CARGO ?= cargo

.PHONY: build test lint fmt bench demo crds run-apiserver deps

build:
	$(CARGO) build --locked --release

# Everything the tests need on a fresh machine, then every test.
test: deps
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) build --locked --release
	$(CARGO) run --locked --release --example apiserver_bench
	$(CARGO) run --locked --release --example mcs_bench

# kubectl is the reference client the tests drive; fail early and clearly without it.
deps:
	@command -v kubectl >/dev/null || { echo "kubectl is required (tests drive the server through it)"; exit 1; }

run-apiserver:
	$(CARGO) run --locked --release -- apiserver --listen 127.0.0.1:6443 --kubeconfig ./kubeconfig

# The main job for now: the embedded API server, driven by kubectl.
demo: deps
	./scripts/demo.sh

# CRD YAML generated from the Rust types in src/api (a test fails when it is stale).
crds:
	$(CARGO) run --locked --quiet -- crds --out crds
