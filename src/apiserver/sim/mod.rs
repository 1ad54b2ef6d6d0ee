//! The simulated kube-controller-manager, kube-scheduler and kubelets that make a
//! member cluster behave like a real one: Nodes that report capacity, Deployments
//! and StatefulSets whose Pods get scheduled, run, become Ready and hold IPs from the
//! pod CIDR, and EndpointSlices built the way the EndpointSlice controller builds
//! them.
//!
//! Each controller is a [`Follower`]: it keeps its own cache of the kinds it reads,
//! fed by every change in the store, and reconciles the objects those changes
//! touched, as a client-go informer and work queue would. They write only through
//! the `State` verbs, and only when what they want differs from what is stored, so
//! a settled cluster is quiet; everything they know is rebuilt from the store when
//! they start, so a restart converges to the same state.
//!
//! Fault injection for tests: annotate a Pod `clusterset.io/ready: "false"` and the
//! kubelet keeps it Running but not Ready (see [`kubelet::READY_ANNOTATION`]);
//! remove the annotation and it is Ready again. Set a Node's `Ready` condition to
//! anything but `True` through its status and the scheduler stops placing pods on
//! it (the node controller does not undo it).

mod cache;
mod client;
mod conditions;
mod deployments;
mod endpointslices;
mod hash;
mod kubelet;
mod meta;
mod nodes;
mod pods;
mod replicasets;
mod scheduler;
mod statefulsets;

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::controllers::follow;
use super::resources::State;

pub use kubelet::READY_ANNOTATION;

/// What the simulated cluster looks like.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Pod CIDRs, one per family, primary first; each node gets a slice of each.
    pub pod_cidrs: Vec<IpNet>,
    /// How many nodes register at start: `<cluster_name>-node-1` … `-node-N`.
    pub nodes: usize,
    /// Capacity of every node, as resource quantities.
    pub node_cpu: String,
    pub node_memory: String,
    pub node_pods: u32,
    /// Names the nodes; a trailing number (`member-2`) also picks the node address
    /// range, 172.18.<number>.0/24.
    pub cluster_name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            pod_cidrs: vec!["10.244.0.0/16".parse().expect("valid CIDR")],
            nodes: 3,
            node_cpu: "4".into(),
            node_memory: "16Gi".into(),
            node_pods: 110,
            cluster_name: "cluster".into(),
        }
    }
}

/// Starts every simulated controller; they stop when `stop` turns true.
pub fn spawn(
    state: Arc<State>,
    stop: watch::Receiver<bool>,
    config: SimConfig,
) -> Vec<JoinHandle<()>> {
    macro_rules! start {
        ($($controller:expr),* $(,)?) => {
            vec![$(tokio::spawn(follow(state.clone(), stop.clone(), $controller))),*]
        };
    }
    start![
        nodes::NodeController::new(config),
        scheduler::Scheduler::default(),
        kubelet::Kubelet::default(),
        deployments::DeploymentController::default(),
        replicasets::ReplicaSetController::default(),
        statefulsets::StatefulSetController::default(),
        endpointslices::EndpointSliceController::default(),
    ]
}
