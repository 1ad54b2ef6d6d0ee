# clusterset — build, test and benchmark entry points.
CARGO ?= cargo

.PHONY: build test lint fmt bench bench-deps demo crds run-apiserver deps

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

bench: bench-deps
	$(CARGO) build --locked --release
	$(CARGO) run --locked --release --example apiserver_bench
	$(CARGO) run --locked --release --example mcs_bench
	$(CARGO) run --locked --release --example dns_bench
	$(CARGO) run --locked --release --example membership_bench

# kubectl is the reference client the tests drive; fail early and clearly without it.
# dig (bind9-dnsutils) asks the DNS servers; installed from Debian when missing.
deps:
	@command -v kubectl >/dev/null || { echo "kubectl is required (tests drive the server through it)"; exit 1; }
	@command -v dig >/dev/null || $(APT_INSTALL) bind9-dnsutils

# The DNS benchmark compares with Knot DNS, both measured by dnsperf.
bench-deps:
	@command -v dnsperf >/dev/null || $(APT_INSTALL) dnsperf
	@command -v knotd >/dev/null || $(APT_INSTALL) knot

APT_INSTALL = DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq "$$@"' apt-install

run-apiserver:
	$(CARGO) run --locked --release -- apiserver --listen 127.0.0.1:6443 --kubeconfig ./kubeconfig

# The main job for now: the embedded API server, driven by kubectl.
demo: deps
	./scripts/demo.sh

# CRD YAML generated from the Rust types in src/api (a test fails when it is stale).
crds:
	$(CARGO) run --locked --quiet -- crds --out crds
