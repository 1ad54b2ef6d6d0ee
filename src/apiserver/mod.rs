//! The embedded, Kubernetes-compatible API server.
//!
//! Requests flow: [`http`] (decode, route) → [`resources`] (the verbs: admission,
//! validation, managed fields) → [`store`] (versions, history) → [`watch`] streams.
//! Built-in kinds and CRD-defined kinds are described once in the [`registry`].

pub mod admission;
pub mod auth;
pub mod builtin;
pub mod builtin_lists;
pub mod controllers;
pub mod crd;
pub mod discovery;
pub mod errors;
pub mod field_manager;
pub mod http;
pub mod ipalloc;
pub mod journal;
pub mod lists;
pub mod names;
pub mod objects;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod resources;
pub mod routes;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod store;
pub mod strategic_merge;
pub mod strict_json;
pub mod table;
pub mod telemetry;
pub mod typed;
pub mod watch;

pub use server::{ApiServer, Config};
pub use sim::SimConfig;
