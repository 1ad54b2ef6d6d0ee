#!/usr/bin/env bash
# A short demo of the embedded API server: start it, drive it with kubectl, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

cargo build --locked --release --quiet
./target/release/clusterset apiserver --listen 127.0.0.1:0 --kubeconfig "$dir/kubeconfig" &
pid=$!
# The kubeconfig appears once the server serves.
for _ in $(seq 1 100); do [ -s "$dir/kubeconfig" ] && break; sleep 0.1; done
[ -s "$dir/kubeconfig" ] || { echo "the API server did not start" >&2; exit 1; }

k() { echo "+ kubectl $*"; kubectl --kubeconfig "$dir/kubeconfig" --cache-dir "$dir/cache" "$@"; }
k version
k apply -f ../shared/fixtures/upstream-crds/
k wait --for condition=established crd/serviceexports.multicluster.x-k8s.io crd/serviceimports.multicluster.x-k8s.io
k apply -f examples/apiserver-demo.yaml
k get deployments,services,serviceexports,serviceimports
k scale deployment web --replicas=3
k get deployment web -o jsonpath='{.spec.replicas}{"\n"}'
k api-resources --api-group=multicluster.x-k8s.io
k delete -f examples/apiserver-demo.yaml
