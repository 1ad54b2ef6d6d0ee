//! Multi-cluster services: the pure rules (validation, merging, what an importing
//! cluster holds) and the two controllers that act on them, the hub and the agent.

pub mod agent;
pub mod conditions;
pub mod endpoints;
pub mod hub;
pub mod imports;
pub mod merge;
pub mod metrics;
pub mod validate;
pub mod vips;
