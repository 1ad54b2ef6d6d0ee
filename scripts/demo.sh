#!/usr/bin/env bash
# The main job: `clusterset local up` (a hub and three member clusters on this
# machine), a short tour with kubectl, and a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
# The debug build: minutes to build where the release profile's whole-program
# optimisation takes about 20 on two cores, and it is the build `make test` makes.
bin=./target/debug/clusterset
trap '$bin local down --dir "$dir" >/dev/null 2>&1 || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT

cargo build --locked --quiet
$bin local up --dir "$dir" &
# local.json appears, atomically, once every cluster is ready.
for _ in $(seq 1 200); do [ -s "$dir/local.json" ] && break; sleep 0.05; done
[ -s "$dir/local.json" ] || { echo "the clusterset did not start" >&2; exit 1; }

k() { echo "+ kubectl $*"; kubectl --kubeconfig "$dir/kubeconfig" "$@"; }
$bin local status --dir "$dir"
k config get-contexts
for ctx in member-1 member-2 member-3; do
  k --context "$ctx" get clusterproperty cluster.clusterset.k8s.io
done
# Membership: each member joined with a bootstrap token and heart-beats to the hub.
k --context hub get clusterregistrationrequests
k --context hub wait managedclusters -A --all --for=condition=Ready --timeout=30s
k --context hub get managedclusters -A -o wide
k --context member-1 apply -f examples/web.yaml
k --context member-1 rollout status deployment/web --timeout=30s
k --context member-1 scale deployment web --replicas=3
k --context member-1 rollout status deployment/web --timeout=30s
k --context member-1 get pods -o wide
k --context member-1 get endpointslices -l kubernetes.io/service-name=web
# Multi-cluster services: export web from member-1, consume it in member-2 and member-3.
k --context member-1 apply -f examples/export-web.yaml
for ctx in member-2 member-3; do
  k --context "$ctx" wait serviceimport/web --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True --timeout=30s
done
k --context member-1 get serviceexport web -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
k --context member-1 events --for serviceexport/web
k --context member-1 explain serviceexport.status.conditions.reason
k --context member-2 get serviceimport web
k --context member-3 get endpointslices -l multicluster.kubernetes.io/service-name=web -o wide
k --context member-1 apply -f examples/headless-db.yaml
k --context member-2 wait serviceimport/db --for=jsonpath='{.spec.type}'=Headless --timeout=30s
k --context member-2 get endpointslices -l multicluster.kubernetes.io/service-name=db -o jsonpath='{range .items[*].endpoints[*]}{.hostname} {.addresses[0]}{"\n"}{end}'
# clusterset.local from member-2's DNS server (its address is in local.json).
dns=$(python3 -c 'import json,sys;print([c["dns"] for c in json.load(open(sys.argv[1]))["clusters"] if c["name"]=="member-2"][0])' "$dir/local.json")
d() { echo "+ dig $*"; dig @"${dns%:*}" -p "${dns#*:}" +noall +answer "$@"; }
d web.default.svc.clusterset.local
d _http._tcp.web.default.svc.clusterset.local SRV
d db.default.svc.clusterset.local
d db-0.member-1.db.default.svc.clusterset.local
k --context hub get exportrecords,importrecords -A
k --context member-1 delete serviceexport web
k --context member-2 wait serviceimport/web --for=delete --timeout=30s
echo "+ clusterset local member stop member-2"; $bin local member stop member-2 --dir "$dir"
$bin local status --dir "$dir"
echo "+ clusterset local member start member-2"; $bin local member start member-2 --dir "$dir"
$bin local down --dir "$dir"
