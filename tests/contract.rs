//! The Kubernetes fake keeps the contracts of the API server (`tests/support/contracts.rs`); the
//! e2e suite runs the same assertions against a real one (`contracts_on_a_real_api_server`).

mod support;

use support::{contracts::contracts, fake_kube::FakeKube};

#[tokio::test]
async fn the_fake_keeps_the_contracts() {
    let kube = FakeKube::new();
    contracts(kube.client(), "contract").await;
}
