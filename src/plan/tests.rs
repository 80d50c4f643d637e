//! Table-driven tests of the decision, on real Elasticsearch GET bodies (testdata/).
use super::*;
use crate::{
    conditions::Severity,
    crd::{DeletionPolicy, InferenceEndpoint, InferenceEndpointStatus},
    model::DeploymentStats,
};
use serde_json::json;

fn spec(yaml: &str) -> InferenceEndpointSpec {
    serde_saphyr::from_str(yaml).expect("valid spec yaml")
}

const ANTHROPIC: &str = "taskType: completion\nservice: anthropic\nserviceSettings: {model_id: claude-sonnet-4-5}\n\
    secretSettings: {api_key: {secretKeyRef: {name: anthropic, key: api-key}}}\ntaskSettings: {max_tokens: 1024}\n";

fn cluster(v: Version) -> ClusterInfo {
    ClusterInfo {
        uuid: "uuid-a".into(),
        name: "c".into(),
        version: v,
    }
}

/// Every round trip in testdata/elasticsearch/round-trips.json, as (name, the spec a user
/// would write for that request, the endpoint Elasticsearch returns).
fn examples() -> Vec<(String, InferenceEndpointSpec, EndpointConfig)> {
    let data: serde_json::Value = serde_json::from_str(include_str!(
        "../../testdata/elasticsearch/round-trips.json"
    ))
    .expect("fixture json");
    let mut out = Vec::new();
    for case in data["cases"].as_array().expect("cases") {
        let file = case["name"].as_str().expect("name").to_string();
        let ep: EndpointConfig =
            serde_json::from_value(case["get_endpoint"].clone()).expect("endpoint");
        let body = &case["request_body"];
        let mut settings = body["service_settings"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut secrets = serde_json::Map::new();
        for k in crate::crd::SECRET_SETTING_KEYS {
            if settings.remove(*k).is_some() {
                secrets.insert(
                    (*k).to_string(),
                    json!({"secretKeyRef": {"name": "s", "key": k}}),
                );
            }
        }
        let chunking = body.get("chunking_settings").map(|c| {
            let mut m = serde_json::Map::new();
            for (k, v) in c.as_object().expect("object") {
                let camel = match k.as_str() {
                    "max_chunk_size" => "maxChunkSize",
                    "sentence_overlap" => "sentenceOverlap",
                    "separator_group" => "separatorGroup",
                    other => other,
                };
                m.insert(camel.to_string(), v.clone());
            }
            serde_json::Value::Object(m)
        });
        let mut spec = json!({
            "taskType": ep.task_type,
            "service": body["service"],
            "serviceSettings": settings,
            "secretSettings": secrets,
        });
        if let Some(t) = body.get("task_settings") {
            spec["taskSettings"] = t.clone();
        }
        if let Some(c) = chunking {
            spec["chunkingSettings"] = c;
        }
        let spec: InferenceEndpointSpec = serde_json::from_value(spec).expect("spec from example");
        out.push((file, spec, ep));
    }
    assert!(
        out.len() >= 8,
        "expected the round-trip fixtures, found {}",
        out.len()
    );
    out
}

fn managed(spec: &InferenceEndpointSpec, fp: Option<&str>) -> Record {
    Record {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Created),
        cluster_uuid: Some("uuid-a".into()),
        secrets_applied: fp.map(str::to_string),
        applied_config_hash: Some(config_hash(spec)),
        ..Default::default()
    }
}

fn observed(v: serde_json::Value) -> EndpointConfig {
    serde_json::from_value(v).expect("endpoint")
}

fn anthropic_ep(model: &str, max_tokens: u32) -> EndpointConfig {
    observed(json!({
        "inference_id": "x", "task_type": "completion", "service": "anthropic",
        "service_settings": {"model_id": model, "rate_limit": {"requests_per_minute": 50}},
        "task_settings": {"max_tokens": max_tokens}
    }))
}

fn run(
    spec: &InferenceEndpointSpec,
    record: &Record,
    fp: Option<&str>,
    ep: Option<&EndpointConfig>,
) -> Decision {
    decide(&Facts {
        spec,
        inference_id: "x",
        record,
        cluster: &cluster(Version::new(9, 1, 0)),
        secrets: fp,
        observed: ep,
    })
}

fn reason_of(d: &Decision) -> &str {
    match d {
        Decision::Done(o) => &o.reason,
        Decision::Act(s) => panic!("expected Done, got {s:?}"),
    }
}

#[test]
fn absent_and_unknown_marks_then_creates() {
    let s = spec(ANTHROPIC);
    assert_eq!(
        run(&s, &Record::default(), Some("f"), None),
        Decision::Act(Step::MarkCreating)
    );
    let creating = Record {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Creating),
        cluster_uuid: Some("uuid-a".into()),
        ..Default::default()
    };
    assert_eq!(
        run(&s, &creating, Some("f"), None),
        Decision::Act(Step::Create)
    );
}

#[test]
fn deleted_out_of_band_is_created_again_whatever_the_drift_policy() {
    // Under a new mark: if someone else takes the id in between, their endpoint is not claimed.
    for policy in ["Correct", "Report", "Ignore"] {
        let s = spec(&format!("{ANTHROPIC}driftPolicy: {policy}\n"));
        assert_eq!(
            run(&s, &managed(&s, Some("f")), Some("f"), None),
            Decision::Act(Step::MarkCreating)
        );
    }
}

#[test]
fn in_sync_is_done_and_ready() {
    let s = spec(ANTHROPIC);
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    let d = run(&s, &managed(&s, Some("f")), Some("f"), Some(&ep));
    assert!(
        matches!(&d, Decision::Done(o) if o.severity == Severity::Ready),
        "{d:?}"
    );
}

#[test]
fn real_get_bodies_with_server_defaults_are_in_sync() {
    // The request a user makes and the GET body ES returns for it (with rate_limit,
    // similarity, dimensions, chunking and platform model ids added) must not differ, or
    // every resync would write.
    for (file, s, ep) in examples() {
        for v in [
            Version::new(8, 17, 0),
            Version::new(9, 1, 0),
            Version::new(9, 5, 0),
        ] {
            let d = diff(&s, &ep, v);
            assert!(d.is_empty(), "{file} on {v}: perpetual diff {d:?}");
        }
        let fp = (!s.secret_settings.is_empty()).then_some("f");
        let decision = run(&s, &managed(&s, fp), fp, Some(&ep));
        assert!(
            matches!(decision, Decision::Done(ref o) if o.is_ready()),
            "{file}: {decision:?}"
        );
    }
}

#[test]
fn rotation_updates_with_secrets() {
    let s = spec(ANTHROPIC);
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    let d = run(&s, &managed(&s, Some("old")), Some("new"), Some(&ep));
    assert_eq!(
        d,
        Decision::Act(Step::Update {
            changed: vec![],
            cause: UpdateCause::SecretRotated
        })
    );
}

#[test]
fn spec_edit_of_task_settings_updates() {
    let mut s = spec(ANTHROPIC);
    let record = managed(&s, Some("f"));
    s.task_settings = Some(serde_json::from_value(json!({"max_tokens": 2048})).expect("map"));
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    match run(&s, &record, Some("f"), Some(&ep)) {
        Decision::Act(Step::Update { changed, cause }) => {
            assert_eq!(cause, UpdateCause::SpecChanged);
            assert_eq!(changed[0].field, "task_settings.max_tokens");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn model_change_requires_replacement_unless_recreate() {
    let mut s = spec(ANTHROPIC);
    let record = managed(&s, Some("f"));
    s.service_settings
        .insert("model_id".into(), json!("claude-opus-4"));
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    let d = run(&s, &record, Some("f"), Some(&ep));
    assert_eq!(reason_of(&d), reason::REQUIRES_REPLACEMENT);
    let Decision::Done(o) = &d else {
        unreachable!()
    };
    assert!(
        o.message.contains("service_settings.model_id"),
        "{}",
        o.message
    );
    s.replacement_policy = ReplacementPolicy::Recreate;
    assert_eq!(
        run(&s, &record, Some("f"), Some(&ep)),
        Decision::Act(Step::Replace {
            fields: vec!["service_settings.model_id".into()]
        })
    );
}

#[test]
fn drift_follows_policy() {
    let base = spec(ANTHROPIC);
    let drifted = anthropic_ep("claude-sonnet-4-5", 99);
    let record = managed(&base, Some("f"));
    // Correct: mutable drift is corrected through _update.
    assert!(matches!(
        run(&base, &record, Some("f"), Some(&drifted)),
        Decision::Act(Step::Update {
            cause: UpdateCause::DriftCorrected,
            ..
        })
    ));
    // Report: reported, not touched.
    let mut report = base.clone();
    report.drift_policy = DriftPolicy::Report;
    let d = run(
        &report,
        &managed(&report, Some("f")),
        Some("f"),
        Some(&drifted),
    );
    assert_eq!(reason_of(&d), reason::DRIFT_DETECTED);
    // Ignore: ready.
    let mut ignore = base.clone();
    ignore.drift_policy = DriftPolicy::Ignore;
    let d = run(
        &ignore,
        &managed(&ignore, Some("f")),
        Some("f"),
        Some(&drifted),
    );
    assert!(matches!(d, Decision::Done(ref o) if o.is_ready()));
    // Immutable drift with Correct and no Recreate: RequiresReplacement, flagged as out of band.
    let other_model = anthropic_ep("claude-haiku", 1024);
    let d = run(&base, &record, Some("f"), Some(&other_model));
    let Decision::Done(o) = d else { panic!() };
    assert_eq!(o.reason, reason::REQUIRES_REPLACEMENT);
    assert!(o.message.contains("outside Kubernetes"));
}

#[test]
fn spec_edits_apply_even_with_ignore_or_report() {
    let mut s = spec(&format!("{ANTHROPIC}driftPolicy: Ignore\n"));
    let record = managed(&s, Some("f"));
    s.task_settings = Some(serde_json::from_value(json!({"max_tokens": 5})).expect("map"));
    assert!(matches!(
        run(
            &s,
            &record,
            Some("f"),
            Some(&anthropic_ep("claude-sonnet-4-5", 1024))
        ),
        Decision::Act(Step::Update {
            cause: UpdateCause::SpecChanged,
            ..
        })
    ));
}

#[test]
fn existing_unmanaged_endpoint_is_left_alone_unless_adopt() {
    let s = spec(ANTHROPIC);
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    assert_eq!(
        reason_of(&run(&s, &Record::default(), Some("f"), Some(&ep))),
        reason::ALREADY_EXISTS
    );
    let mut adopt = s.clone();
    adopt.adopt = true;
    assert_eq!(
        run(&adopt, &Record::default(), Some("f"), Some(&ep)),
        Decision::Act(Step::Claim(Ownership::Adopted))
    );
    // After claiming, secrets are pushed once because ES's values are unknown.
    let claimed = Record {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Adopted),
        cluster_uuid: Some("uuid-a".into()),
        ..Default::default()
    };
    assert!(matches!(
        run(&adopt, &claimed, Some("f"), Some(&ep)),
        Decision::Act(Step::Update {
            cause: UpdateCause::Adopted,
            ..
        })
    ));
    // A different service is never adopted.
    let mut other = adopt.clone();
    other.service = "openai".into();
    assert_eq!(
        reason_of(&run(&other, &Record::default(), Some("f"), Some(&ep))),
        reason::ALREADY_EXISTS
    );
}

#[test]
fn a_create_that_landed_unseen_is_claimed() {
    let s = spec(ANTHROPIC);
    let creating = Record {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Creating),
        cluster_uuid: Some("uuid-a".into()),
        ..Default::default()
    };
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    assert_eq!(
        run(&s, &creating, Some("f"), Some(&ep)),
        Decision::Act(Step::Claim(Ownership::Created))
    );
}

#[test]
fn record_on_another_cluster_does_not_count() {
    let s = spec(ANTHROPIC);
    let mut r = managed(&s, Some("f"));
    r.cluster_uuid = Some("uuid-other".into());
    let ep = anthropic_ep("claude-sonnet-4-5", 1024);
    assert_eq!(
        reason_of(&run(&s, &r, Some("f"), Some(&ep))),
        reason::ALREADY_EXISTS
    );
}

#[test]
fn old_versions_are_unsupported() {
    let s = spec(ANTHROPIC);
    let d = decide(&Facts {
        spec: &s,
        inference_id: "x",
        record: &Record::default(),
        cluster: &cluster(Version::new(8, 16, 0)),
        secrets: None,
        observed: None,
    });
    assert_eq!(reason_of(&d), reason::UNSUPPORTED_VERSION);
}

#[test]
fn cleanup_rules() {
    let s = spec(ANTHROPIC);
    let r = managed(&s, Some("f"));
    assert_eq!(
        decide_cleanup(
            s.deletion_policy.unwrap_or_default(),
            s.force_delete,
            &r,
            "x",
            "uuid-a"
        ),
        Cleanup::Delete {
            force: false,
            verify_first: false
        }
    );
    let mut forced = s.clone();
    forced.force_delete = true;
    assert_eq!(
        decide_cleanup(
            forced.deletion_policy.unwrap_or_default(),
            forced.force_delete,
            &r,
            "x",
            "uuid-a"
        ),
        Cleanup::Delete {
            force: true,
            verify_first: false
        }
    );
    let mut retain = s.clone();
    retain.deletion_policy = Some(DeletionPolicy::Retain);
    assert!(matches!(
        decide_cleanup(
            retain.deletion_policy.unwrap_or_default(),
            retain.force_delete,
            &r,
            "x",
            "uuid-a"
        ),
        Cleanup::Release(_)
    ));
    assert!(matches!(
        decide_cleanup(
            s.deletion_policy.unwrap_or_default(),
            s.force_delete,
            &Record::default(),
            "x",
            "uuid-a"
        ),
        Cleanup::Release(_)
    ));
    assert!(
        matches!(decide_cleanup(s.deletion_policy.unwrap_or_default(), s.force_delete, &r, "x", "uuid-b"), Cleanup::Release(m) if m.contains("another Elasticsearch cluster"))
    );
    let creating = Record {
        ownership: Some(Ownership::Creating),
        ..r.clone()
    };
    assert_eq!(
        decide_cleanup(
            s.deletion_policy.unwrap_or_default(),
            s.force_delete,
            &creating,
            "x",
            "uuid-a"
        ),
        Cleanup::Delete {
            force: false,
            verify_first: true
        }
    );
}

fn stats(state: &str, allocs: u64, target: u64, alloc_state: &str) -> DeploymentStats {
    DeploymentStats {
        deployment_id: "x".into(),
        model_id: ".elser_model_2_linux-x86_64".into(),
        state: state.into(),
        reason: None,
        allocations: Some(allocs),
        target_allocations: Some(target),
        allocation_state: Some(alloc_state.into()),
    }
}

#[test]
fn model_deployment_readiness() {
    let fixed = spec(
        "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2, num_allocations: 2, num_threads: 1}\n",
    );
    let o = deployment_outcome(&fixed, "x", Some(&stats("starting", 0, 2, "starting")))
        .expect("not ready");
    assert_eq!(
        (o.reason.as_str(), o.severity),
        (reason::MODEL_DEPLOYING, Severity::Progressing)
    );
    assert!(o.message.contains("0/2 allocations"), "{}", o.message);
    let o = deployment_outcome(&fixed, "x", Some(&stats("started", 1, 2, "started")))
        .expect("partly allocated");
    assert_eq!(o.reason, reason::MODEL_DEPLOYING);
    assert_eq!(
        deployment_outcome(
            &fixed,
            "x",
            Some(&stats("started", 2, 2, "fully_allocated"))
        ),
        None
    );
    let mut failed = stats("failed", 0, 2, "starting");
    failed.reason = Some("not enough memory on node [ml-0].".into());
    let o = deployment_outcome(&fixed, "x", Some(&failed)).expect("failed");
    assert_eq!(
        (o.reason.as_str(), o.severity),
        (reason::MODEL_DEPLOYMENT_FAILED, Severity::Stalled)
    );
    assert!(
        o.message.contains("not enough memory on node [ml-0]:")
            || o.message.contains("not enough memory on node [ml-0]. "),
        "{}",
        o.message
    );
    let o = deployment_outcome(&fixed, "x", None).expect("missing");
    assert_eq!(o.reason, reason::MODEL_DEPLOYMENT_FAILED);
    // Adaptive allocations scale on demand (possibly to zero): started is usable.
    let adaptive = spec(
        "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2, num_threads: 1, adaptive_allocations: {enabled: true, min_number_of_allocations: 0}}\n",
    );
    assert_eq!(
        deployment_outcome(&adaptive, "x", Some(&stats("started", 0, 0, "started"))),
        None
    );
    // A shared deployment is looked up by its own id.
    let shared = spec(
        "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {deployment_id: my-dep}\n",
    );
    assert_eq!(deployment_id(&shared, "x"), "my-dep");
    assert_eq!(deployment_id(&fixed, "x"), "x");
}

fn peer(
    ns: &str,
    name: &str,
    created: i64,
    id: &str,
    reference: Option<serde_json::Value>,
    uuid: Option<&str>,
) -> InferenceEndpoint {
    let mut spec = json!({"inferenceId": id, "taskType": "completion", "service": "anthropic"});
    if let Some(r) = reference {
        spec["elasticsearchRef"] = r;
    }
    let mut ie: InferenceEndpoint = serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}"),
            "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).expect("ts").to_string()},
        "spec": spec,
    }))
    .expect("ie");
    if let Some(u) = uuid {
        ie.status = Some(InferenceEndpointStatus {
            cluster_uuid: Some(u.into()),
            ..Default::default()
        });
    }
    ie
}

#[test]
fn conflict_rule_oldest_then_name_owns() {
    let me = peer("b", "mine", 200, "id", None, None);
    // A younger resource with the same id on the same cluster does not own it.
    let younger = peer("a", "young", 300, "id", None, None);
    assert_eq!(conflict_owner(&me, "default", "u1", [&me, &younger]), None);
    // An older one does.
    let older = peer("c", "old", 100, "id", None, None);
    assert_eq!(
        conflict_owner(&me, "default", "u1", [&me, &older, &younger]),
        Some("c/old".into())
    );
    // Same creation time (one-second resolution): the UID decides, not the name.
    let tie = peer("a", "tie", 200, "id", None, None);
    assert_eq!(
        conflict_owner(&me, "default", "u1", [&tie]),
        Some("a/tie".into()),
        "uid a-tie < b-mine"
    );
    let mut later_uid = peer("a", "tie", 200, "id", None, None);
    later_uid.metadata.uid = Some("z-uid".into());
    assert_eq!(conflict_owner(&me, "default", "u1", [&later_uid]), None);
    // Another id, or another cluster, is no conflict.
    let other_id = peer("c", "old", 100, "other", None, None);
    assert_eq!(conflict_owner(&me, "default", "u1", [&other_id]), None);
    let other_cluster = peer(
        "c",
        "old",
        100,
        "id",
        Some(json!({"name": "elsewhere"})),
        Some("u2"),
    );
    assert_eq!(conflict_owner(&me, "default", "u1", [&other_cluster]), None);
    // A different reference that reached the same cluster (by its recorded uuid) conflicts.
    let same_cluster = peer(
        "c",
        "old",
        100,
        "id",
        Some(json!({"name": "alias"})),
        Some("u1"),
    );
    assert_eq!(
        conflict_owner(&me, "default", "u1", [&same_cluster]),
        Some("c/old".into())
    );
}

#[test]
fn conflict_rule_the_holder_keeps_its_endpoint() {
    // The holder was created in the same second as a newcomer whose UID sorts first: without
    // the holding rule the newcomer would own the id, the holder would report Conflict, and
    // Elasticsearch would refuse the newcomer's create: nobody would manage the endpoint.
    let mut holder = peer("b", "holder", 200, "id", None, Some("u1"));
    if let Some(s) = holder.status.as_mut() {
        s.ownership = Some(Ownership::Created);
        s.owner_uid = holder.metadata.uid.clone();
        s.inference_id = Some("id".into());
    }
    let newcomer = peer("a", "newcomer", 200, "id", None, None);
    assert_eq!(
        conflict_owner(&newcomer, "default", "u1", [&holder]),
        Some("b/holder".into())
    );
    assert_eq!(conflict_owner(&holder, "default", "u1", [&newcomer]), None);
    // Even an older newcomer does not take a held endpoint.
    let older = peer("c", "older", 100, "id", None, None);
    assert_eq!(conflict_owner(&holder, "default", "u1", [&older]), None);
    // A record copied from another object, or about another cluster, holds nothing.
    let mut copied = holder.clone();
    copied.metadata.uid = Some("someone-else".into());
    assert_eq!(
        conflict_owner(&copied, "default", "u1", [&newcomer]),
        Some("a/newcomer".into()),
        "copied record: the UID tie-break applies"
    );
    assert_eq!(
        conflict_owner(&holder, "default", "u2", [&older]),
        Some("c/older".into()),
        "held on another cluster: the age rule applies"
    );
}

fn creating() -> Record {
    Record {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Creating),
        cluster_uuid: Some("uuid-a".into()),
        create_attempts: 1,
        ..Default::default()
    }
}

#[test]
fn a_create_of_unknown_outcome_is_claimed_only_with_evidence() {
    let s = spec(ANTHROPIC);
    // Same service and task type, but another model: not what this resource sent.
    let other = anthropic_ep("claude-haiku", 1024);
    assert_eq!(
        run(&s, &creating(), Some("f"), Some(&other)),
        Decision::Act(Step::Forget)
    );
    // Other task settings: not it either.
    let other = anthropic_ep("claude-sonnet-4-5", 7);
    assert_eq!(
        run(&s, &creating(), Some("f"), Some(&other)),
        Decision::Act(Step::Forget)
    );
    // Exactly what it sends (with the defaults Elasticsearch adds): claimed.
    let same = anthropic_ep("claude-sonnet-4-5", 1024);
    assert_eq!(
        run(&s, &creating(), Some("f"), Some(&same)),
        Decision::Act(Step::Claim(Ownership::Created))
    );
    // After forgetting, the endpoint is someone else's: left alone.
    assert_eq!(
        reason_of(&run(&s, &Record::default(), Some("f"), Some(&other))),
        reason::ALREADY_EXISTS
    );
}

#[test]
fn a_record_written_for_another_uid_confers_nothing() {
    let status = InferenceEndpointStatus {
        inference_id: Some("x".into()),
        ownership: Some(Ownership::Created),
        owner_uid: Some("uid-original".into()),
        cluster_uuid: Some("uuid-a".into()),
        ..Default::default()
    };
    // A restored or copied status on another object.
    let r = Record::from_status(&status, "uid-restored");
    assert_eq!(r, Record::default());
    assert!(Record::is_foreign(&status, "uid-restored"));
    let s = spec(ANTHROPIC);
    assert_eq!(
        reason_of(&run(
            &s,
            &r,
            Some("f"),
            Some(&anthropic_ep("claude-sonnet-4-5", 1024))
        )),
        reason::ALREADY_EXISTS
    );
    assert!(matches!(
        decide_cleanup(
            s.deletion_policy.unwrap_or_default(),
            s.force_delete,
            &r,
            "x",
            "uuid-a"
        ),
        Cleanup::Release(_)
    ));
    // Its own UID, or a record from before UIDs were recorded, is ownership.
    let own = Record::from_status(&status, "uid-original");
    assert_eq!(own.ownership, Some(Ownership::Created));
    let legacy = InferenceEndpointStatus {
        owner_uid: None,
        ..status
    };
    assert_eq!(
        Record::from_status(&legacy, "anything").ownership,
        Some(Ownership::Created)
    );
}

#[test]
fn at_most_one_replacement_per_spec() {
    let mut s = spec(ANTHROPIC);
    s.replacement_policy = ReplacementPolicy::Recreate;
    let ep = anthropic_ep("claude-haiku", 1024);
    let mut r = managed(&s, Some("f"));
    assert!(matches!(
        run(&s, &r, Some("f"), Some(&ep)),
        Decision::Act(Step::Replace { .. })
    ));
    // Replaced once for this spec, and the difference survived: reported, never retried.
    r.replaced_for = Some(config_hash(&s));
    let d = run(&s, &r, Some("f"), Some(&ep));
    assert_eq!(reason_of(&d), reason::DIFFERS_AFTER_REPLACEMENT);
    let Decision::Done(o) = d else { unreachable!() };
    assert!(
        o.message.contains("service_settings.model_id"),
        "{}",
        o.message
    );
    // A new spec may be replaced again.
    s.service_settings
        .insert("model_id".into(), json!("claude-opus-4"));
    r.applied_config_hash = Some("older".into());
    assert!(matches!(
        run(&s, &r, Some("f"), Some(&ep)),
        Decision::Act(Step::Replace { .. })
    ));
}

#[test]
fn enum_settings_stored_in_another_case_are_not_a_difference() {
    let mut s = spec(
        "taskType: text_embedding\nservice: openai\nserviceSettings: {model_id: m, similarity: COSINE}\n",
    );
    s.replacement_policy = ReplacementPolicy::Recreate;
    let ep = observed(json!({
        "inference_id": "x", "task_type": "text_embedding", "service": "openai",
        "service_settings": {"model_id": "m", "similarity": "cosine", "dimensions": 1536}
    }));
    let d = run(&s, &managed(&s, None), None, Some(&ep));
    assert!(matches!(d, Decision::Done(ref o) if o.is_ready()), "{d:?}");
}

#[test]
fn steps_that_change_ownership_or_destroy_need_a_fresh_read() {
    assert!(Step::Claim(Ownership::Adopted).needs_fresh_observation());
    assert!(Step::Forget.needs_fresh_observation());
    assert!(Step::Replace { fields: vec![] }.needs_fresh_observation());
    assert!(!Step::MarkCreating.needs_fresh_observation());
    assert!(
        !Step::Update {
            changed: vec![],
            cause: UpdateCause::SecretRotated
        }
        .needs_fresh_observation()
    );
}
