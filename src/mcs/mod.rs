//! Multi-cluster services: the hub's decisions and, later, the controllers that act
//! on them. Domain logic here has no kube dependency.

pub mod agent;
pub mod merge;
pub mod validate;
