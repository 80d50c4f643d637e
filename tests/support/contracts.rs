//! Contracts of the Kubernetes API that the operator's tests rely on, as assertions made through
//! the kube client only: `tests/contract.rs` runs them against the fake (`fake_kube.rs`), the e2e
//! suite against a real API server (`contracts_on_a_real_api_server`), so that the fake's declared
//! simplifications stay simplifications and never differences: the status subresource,
//! `resourceVersion` conflicts and no-op writes, `generation`, server-side apply of status by one
//! manager, finalizers and `deletionTimestamp`, metadata-only lists and their versions.

use std::time::Duration;

use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

fn endpoint(name: &str) -> InferenceEndpoint {
    serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name},
        "spec": {"taskType": "completion", "service": "anthropic",
            "serviceSettings": {"model_id": "m"}, "taskSettings": {"max_tokens": 5}}
    }))
    .expect("endpoint")
}

/// Every contract, against one API server.
pub async fn contracts(client: Client, ns: &str) {
    status_subresource_ignores_spec_and_spec_writes_ignore_status(&client, ns).await;
    stale_resource_versions_conflict_and_no_op_writes_keep_theirs(&client, ns).await;
    status_apply_by_one_manager_replaces_what_it_no_longer_sends(&client, ns).await;
    finalizers_hold_a_deletion_until_removed(&client, ns).await;
    metadata_only_lists_carry_the_resource_version(&client, ns).await;
}

async fn status_subresource_ignores_spec_and_spec_writes_ignore_status(client: &Client, ns: &str) {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(&PostParams::default(), &endpoint("status"))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    // A status write that also carries a spec changes the status only.
    let patch = json!({"spec": {"taskSettings": {"max_tokens": 99}},
        "status": {"inferenceId": "from-status"}});
    let after = api
        .patch_status("status", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("status patch");
    assert_eq!(
        after.spec.task_settings.as_ref().expect("task settings")["max_tokens"],
        5,
        "the status subresource ignores spec"
    );
    assert_eq!(
        after
            .status
            .as_ref()
            .and_then(|s| s.inference_id.as_deref()),
        Some("from-status")
    );
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "status is no new generation"
    );
    // A spec write that carries a status changes the spec only, and is a new generation.
    let patch = json!({"spec": {"taskSettings": {"max_tokens": 7}},
        "status": {"inferenceId": "from-spec-write"}});
    let after = api
        .patch("status", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("spec patch");
    assert_eq!(after.spec.task_settings.expect("ts")["max_tokens"], 7);
    assert_eq!(
        after.status.and_then(|s| s.inference_id),
        Some("from-status".into()),
        "the main resource ignores status"
    );
    assert_eq!(after.metadata.generation, Some(2));
}

async fn stale_resource_versions_conflict_and_no_op_writes_keep_theirs(client: &Client, ns: &str) {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(&PostParams::default(), &endpoint("conflict"))
        .await
        .expect("create");
    let rv = created.resource_version().expect("rv");
    // A write with the current resourceVersion passes and moves it.
    let with_rv = |rv: &str, tokens: u32| json!({"metadata": {"resourceVersion": rv}, "spec": {"taskSettings": {"max_tokens": tokens}}});
    let moved = api
        .patch(
            "conflict",
            &PatchParams::default(),
            &Patch::Merge(&with_rv(&rv, 6)),
        )
        .await
        .expect("current version");
    let new_rv = moved.resource_version().expect("rv");
    assert_ne!(new_rv, rv);
    // The old one conflicts (409).
    let err = api
        .patch(
            "conflict",
            &PatchParams::default(),
            &Patch::Merge(&with_rv(&rv, 8)),
        )
        .await
        .expect_err("stale version");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
    // A write that changes nothing keeps the resourceVersion.
    let same = api
        .patch(
            "conflict",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taskSettings": {"max_tokens": 6}}})),
        )
        .await
        .expect("no-op");
    assert_eq!(
        same.resource_version(),
        Some(new_rv),
        "a no-op write is no new version"
    );
}

async fn status_apply_by_one_manager_replaces_what_it_no_longer_sends(client: &Client, ns: &str) {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &endpoint("apply"))
        .await
        .expect("create");
    let apply = |status: serde_json::Value| {
        json!({"apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "apply"}, "status": status})
    };
    let pp = PatchParams::apply("contract-operator").force();
    api.patch_status(
        "apply",
        &pp,
        &Patch::Apply(apply(json!({"inferenceId": "a", "replacedFor": "h1"}))),
    )
    .await
    .expect("first apply");
    let after = api
        .patch_status(
            "apply",
            &pp,
            &Patch::Apply(apply(json!({"inferenceId": "b"}))),
        )
        .await
        .expect("second apply");
    let status = after.status.expect("status");
    assert_eq!(status.inference_id.as_deref(), Some("b"));
    assert_eq!(
        status.replaced_for, None,
        "a field the one manager stopped sending is removed"
    );
}

async fn finalizers_hold_a_deletion_until_removed(client: &Client, ns: &str) {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let mut ie = endpoint("final");
    ie.metadata.finalizers = Some(vec!["es-inference.dev/cleanup".into()]);
    api.create(&PostParams::default(), &ie)
        .await
        .expect("create");
    api.delete("final", &DeleteParams::default())
        .await
        .expect("delete");
    let held = api.get("final").await.expect("still there");
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp set"
    );
    // Removing the finalizer lets it go.
    api.patch(
        "final",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    tokio::time::timeout(
        DEADLINE,
        await_condition(
            api.clone(),
            "final",
            conditions::is_deleted(&held.uid().expect("uid")),
        ),
    )
    .await
    .expect("gone in time")
    .expect("watch");
}

async fn metadata_only_lists_carry_the_resource_version(client: &Client, ns: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "meta"},
        "stringData": {"k": "sk-contract-VALUE"}
    }))
    .expect("secret");
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    let list = secrets
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    let item = list
        .items
        .iter()
        .find(|m| m.name_any() == "meta")
        .expect("listed");
    assert_eq!(
        item.metadata.resource_version, created.metadata.resource_version,
        "the version the Secret watch's store keeps is the Secret's"
    );
}
