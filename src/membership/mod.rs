//! Membership: how clusters join and leave the clusterset, and how the hub knows
//! they are alive (`clusters.clusterset.io`, DESIGN.md).
//!
//! - [`join`]: the commands — `clusterset token create`, `join`, `approve`, `deny`,
//!   `leave` — as functions over kube clients.
//! - [`registrar`]: the hub's answer to registration requests: admission checks,
//!   approval, the member's hub namespace, identity and ManagedCluster; and the
//!   clean-up when a ManagedCluster is deleted.
//! - [`health`]: the hub's view of each member's heartbeat: `Ready` on the
//!   ManagedCluster, and which members' endpoints are withdrawn.
//! - [`push`]: push mode: the hub runs, enrols and heart-beats for the members whose
//!   kubeconfigs it holds.
//! - [`member`]: the member side: follows the credentials Secret `join` wrote, runs
//!   the agent and the heartbeat while it exists, and removes the imports when the
//!   member leaves.

pub mod credentials;
pub mod enrol;
pub mod health;
pub mod join;
pub mod member;
pub mod metrics;
pub mod push;
pub mod registrar;

pub use credentials::Credentials;

/// Where the project's own objects live in every cluster, hub and members.
pub const SYSTEM_NAMESPACE: &str = "clusterset-system";
/// The group that bootstrap tokens from `clusterset token create` give their holder:
/// it may file registration requests and read them back, nothing else.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:clusterset";
/// The finalizer that lets the hub clean up after a ManagedCluster is deleted.
pub const FINALIZER: &str = "clusters.clusterset.io/cleanup";
/// Annotation on a member's hub namespace: whose it is.
pub const CLUSTER_ID_ANNOTATION: &str = "clusters.clusterset.io/cluster-id";
