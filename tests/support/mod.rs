#![allow(dead_code)]
pub mod contracts;
pub mod es_contracts;
pub mod es_proxy;
pub mod es_standin;
pub mod fake_kube;
pub mod harness;
pub mod mock_provider;
pub mod runner;
