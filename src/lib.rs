//! es-inference-operator: Elasticsearch inference endpoints as Kubernetes resources.
//!
//! See ARCHITECTURE.md for the reconcile pipeline and which module owns which step.

pub mod catalog;
pub mod cluster;
pub mod conditions;
pub mod config;
pub mod connection;
pub mod connection_status;
pub mod context;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
pub mod es;
pub mod guard;
pub mod import;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod policy;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod secret_reads;
pub mod secrets;
pub mod server;
pub mod status;
pub mod telemetry;
