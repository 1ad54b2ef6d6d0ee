//! clusterset: the Kubernetes Multi-Cluster Services API, with an embedded
//! Kubernetes-compatible API server to run a whole clusterset on one machine.

pub mod api;
pub mod apiserver;
pub mod dns;
pub mod fsutil;
pub mod local;
pub mod mcs;
pub mod membership;
pub mod pki;
pub mod quantity;
pub mod roles;
pub mod runtime;
pub mod telemetry;

/// One allocator for every binary, example and test linking the library.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
