//! End-to-end: the real `es-inference-operator run` binary against a real Kubernetes API server
//! (and a real Elasticsearch, or the repository's stand-in on 127.0.0.1). Configured only by
//! environment variables (see README, "End-to-end tests"); prints SKIPPED without them.
//! Waits on conditions with deadlines; never sleeps.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod controls;
mod faults;
mod pod;
mod scenarios;

use faults::*;
use scenarios::*;

use support::runner::{AsyncTest, run};

fn main() {
    let tests: [(&str, AsyncTest); 20] = [
        ("controls_against_a_real_api_server", || {
            Box::pin(controls::controls_against_a_real_api_server())
        }),
        ("pod_from_the_chart_on_a_real_node", || {
            Box::pin(pod::pod_from_the_chart_on_a_real_node())
        }),
        (
            "outage_with_pending_changes_against_a_real_api_server",
            || Box::pin(outage_with_pending_changes_against_a_real_api_server()),
        ),
        ("five_503s_against_a_real_api_server", || {
            Box::pin(five_503s_against_a_real_api_server())
        }),
        (
            "refused_create_then_foreign_endpoint_against_a_real_api_server",
            || Box::pin(refused_create_then_foreign_endpoint_against_a_real_api_server()),
        ),
        ("copied_status_against_a_real_api_server", || {
            Box::pin(copied_status_against_a_real_api_server())
        }),
        (
            "undecodable_object_across_a_restart_against_a_real_api_server",
            || Box::pin(undecodable_object_across_a_restart_against_a_real_api_server()),
        ),
        ("recreate_without_loops_against_a_real_api_server", || {
            Box::pin(recreate_without_loops_against_a_real_api_server())
        }),
        ("unrecovered_cluster_against_a_real_api_server", || {
            Box::pin(unrecovered_cluster_against_a_real_api_server())
        }),
        ("lost_answer_and_sigkill_against_a_real_api_server", || {
            Box::pin(lost_answer_and_sigkill_against_a_real_api_server())
        }),
        (
            "lease_loss_while_api_server_unreachable_against_a_real_api_server",
            || Box::pin(lease_loss_while_api_server_unreachable_against_a_real_api_server()),
        ),
        ("conflict_takeover_against_a_real_api_server", || {
            Box::pin(conflict_takeover_against_a_real_api_server())
        }),
        ("connection_against_a_real_api_server", || {
            Box::pin(connection_against_a_real_api_server())
        }),
        ("model_endpoint_against_a_real_api_server", || {
            Box::pin(model_endpoint_against_a_real_api_server())
        }),
        ("least_privilege_identity_against_a_real_api_server", || {
            Box::pin(least_privilege_identity_against_a_real_api_server())
        }),
        ("leader_election_against_a_real_api_server", || {
            Box::pin(leader_election_against_a_real_api_server())
        }),
        ("crd_rules_on_a_real_api_server", || {
            Box::pin(crd_rules_on_a_real_api_server())
        }),
        ("lifecycle_against_a_real_api_server", || {
            Box::pin(lifecycle_against_a_real_api_server())
        }),
        ("unsupported_by_cluster_against_a_real_api_server", || {
            Box::pin(unsupported_by_cluster_against_a_real_api_server())
        }),
        ("contracts_on_a_real_api_server", || {
            Box::pin(contracts_on_a_real_api_server())
        }),
    ];
    run(&tests);
}
