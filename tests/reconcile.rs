//! The real reconciler against a stateful Kubernetes API fake and the Elasticsearch stand-in
//! (both follow their real contracts; see tests/support). Each test drives `reconcile` as the
//! controller would and asserts on what reached Elasticsearch and Kubernetes.

mod support;

use std::time::Duration;

use es_inference_operator::error::Error;
use serde_json::{Value, json};
use support::{
    es_standin::{Fault, StandinConfig},
    harness::{Harness, NS, capture_logs, wait_for},
};

const KEY: &str = "sk-ant-api03-FIRST-SECRET-VALUE";
const ROTATED: &str = "sk-ant-api03-ROTATED-SECRET-VALUE";

fn anthropic() -> Value {
    json!({
        "inferenceId": "claude-completion",
        "taskType": "completion",
        "service": "anthropic",
        "serviceSettings": {"model_id": "claude-sonnet-4-5"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}},
        "taskSettings": {"max_tokens": 1024}
    })
}

async fn created(h: &Harness) {
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("reconciles");
    assert_eq!(h.ready("claude").0, "True", "{:?}", h.ready("claude"));
}

#[tokio::test]
async fn create_makes_the_endpoint_and_reports_ready() {
    let h = Harness::new().await;
    created(&h).await;
    let stored = h.es.endpoint("claude-completion").expect("endpoint in ES");
    assert_eq!(stored["service"], "anthropic");
    assert_eq!(stored["service_settings"]["model_id"], "claude-sonnet-4-5");
    assert_eq!(
        h.es.endpoint_secrets("claude-completion").expect("secrets")["api_key"],
        KEY
    );
    let obj = h.get("claude").expect("object");
    let st = obj.status.expect("status");
    assert_eq!(st.inference_id.as_deref(), Some("claude-completion"));
    assert_eq!(
        st.cluster_uuid.as_deref(),
        Some(StandinConfig::default().cluster_uuid.as_str())
    );
    assert_eq!(st.elasticsearch_version.as_deref(), Some("9.1.0"));
    assert_eq!(st.observed_generation, obj.metadata.generation);
    assert!(st.secret_versions.is_some() && st.applied_config_hash.is_some());
    assert!(
        obj.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"es-inference.dev/cleanup".to_string())
    );
    assert!(
        h.event_reasons().contains(&"Created".to_string()),
        "{:?}",
        h.event_reasons()
    );
    // Exactly one create; 9.1 accepts the timeout parameter.
    let puts: Vec<_> =
        h.es.requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect();
    assert_eq!(puts.len(), 1, "{:?}", h.es_writes());
    assert!(
        puts[0]
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("timeout=")
    );
}

#[tokio::test]
async fn resync_with_nothing_changed_writes_nothing_and_shares_one_list() {
    let h = Harness::new().await;
    created(&h).await;
    h.endpoint(
        "second",
        json!({
            "taskType": "text_embedding", "service": "openai",
            "serviceSettings": {"model_id": "text-embedding-3-small", "dimensions": 128},
            "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}}
        }),
    );
    h.settle("second").await.expect("second reconciles");
    assert_eq!(h.ready("second").0, "True");
    h.ctx.clusters.invalidate_all().await;
    h.es.clear_requests();
    h.kube.clear_requests();
    for _ in 0..3 {
        h.reconcile("claude").await.expect("resync");
        h.reconcile("second").await.expect("resync");
    }
    assert_eq!(
        h.es.write_count(),
        0,
        "ES writes on resync: {:?}",
        h.es_writes()
    );
    assert_eq!(
        h.kube.write_count(),
        0,
        "Kubernetes writes on resync:\n{}",
        h.kubernetes_writes_text()
    );
    let reads: Vec<_> = h.es.requests().into_iter().map(|r| r.path).collect();
    let lists = reads
        .iter()
        .filter(|p| p.as_str() == "/_inference/_all")
        .count();
    let gets = reads
        .iter()
        .filter(|p| p.starts_with("/_inference/") && p.as_str() != "/_inference/_all")
        .count();
    assert_eq!(
        (lists, gets),
        (1, 0),
        "one shared list, no per-endpoint GET: {reads:?}"
    );
}

#[tokio::test]
async fn secret_rotation_reaches_elasticsearch_through_update() {
    let h = Harness::new().await;
    created(&h).await;
    let before = h
        .get("claude")
        .and_then(|o| o.status)
        .and_then(|s| s.secret_versions);
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.es.clear_requests();
    h.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        vec!["PUT /_inference/completion/claude-completion/_update"]
    );
    assert_eq!(
        h.es.endpoint_secrets("claude-completion").expect("secrets")["api_key"],
        ROTATED
    );
    let after = h
        .get("claude")
        .and_then(|o| o.status)
        .and_then(|s| s.secret_versions);
    assert_ne!(before, after);
    assert!(h.event_reasons().contains(&"SecretRotated".to_string()));
    assert!(
        h.metrics
            .render()
            .contains("es_inference_operator_secret_rotations_total 1")
    );
}

#[tokio::test]
async fn spec_edit_of_task_settings_goes_through_update() {
    let h = Harness::new().await;
    created(&h).await;
    h.edit("claude", |s| s["taskSettings"]["max_tokens"] = json!(2048));
    h.es.clear_requests();
    h.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        vec!["PUT /_inference/completion/claude-completion/_update"]
    );
    assert_eq!(
        h.es.endpoint("claude-completion").expect("ep")["task_settings"]["max_tokens"],
        2048
    );
    let (ready, reason, _) = h.ready("claude");
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "InSync"));
    // The update carried the secret, as versions before 9.4 require.
    let update =
        h.es.requests()
            .into_iter()
            .find(|r| r.path.ends_with("/_update"))
            .expect("update");
    assert_eq!(
        update.body.expect("body")["service_settings"]["api_key"],
        KEY
    );
}

#[tokio::test]
async fn model_change_requires_replacement_then_recreate_replaces() {
    let h = Harness::new().await;
    created(&h).await;
    h.edit("claude", |s| {
        s["serviceSettings"]["model_id"] = json!("claude-opus-4-1")
    });
    h.es.clear_requests();
    h.settle("claude").await.expect("reconciles");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "RequiresReplacement")
    );
    assert!(message.contains("service_settings.model_id"), "{message}");
    assert_eq!(h.es.write_count(), 0, "never applied silently");
    h.edit("claude", |s| s["replacementPolicy"] = json!("Recreate"));
    h.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        vec![
            "DELETE /_inference/completion/claude-completion",
            "PUT /_inference/completion/claude-completion"
        ]
    );
    assert_eq!(
        h.es.endpoint("claude-completion").expect("ep")["service_settings"]["model_id"],
        "claude-opus-4-1"
    );
    assert_eq!(h.ready("claude").1, "InSync");
}

#[tokio::test]
async fn recreate_respects_references() {
    let h = Harness::new().await;
    created(&h).await;
    h.es.add_pipeline_reference("claude-completion", "summaries");
    h.edit("claude", |s| {
        s["serviceSettings"]["model_id"] = json!("claude-opus-4-1");
        s["replacementPolicy"] = json!("Recreate");
    });
    h.settle("claude").await.expect("reconciles");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ReplacementBlocked")
    );
    assert!(message.contains("summaries"), "{message}");
    assert!(h.es.endpoint("claude-completion").is_some(), "still there");
}

#[tokio::test]
async fn drift_is_corrected_reported_or_ignored_per_policy() {
    for (policy, expect_write, expect_reason) in [
        ("Correct", true, "InSync"),
        ("Report", false, "DriftDetected"),
        ("Ignore", false, "InSync"),
    ] {
        let h = Harness::new().await;
        h.secret("anthropic", &[("api-key", KEY)]);
        let mut spec = anthropic();
        spec["driftPolicy"] = json!(policy);
        h.endpoint("claude", spec);
        h.settle("claude").await.expect("reconciles");
        h.es.modify_endpoint("claude-completion", |ep| {
            ep["task_settings"]["max_tokens"] = json!(7)
        });
        h.ctx.clusters.invalidate_all().await;
        h.es.clear_requests();
        h.settle("claude").await.expect("reconciles");
        assert_eq!(
            h.es.write_count() > 0,
            expect_write,
            "{policy}: {:?}",
            h.es_writes()
        );
        assert_eq!(h.ready("claude").1, expect_reason, "{policy}");
        let max_tokens =
            h.es.endpoint("claude-completion").expect("ep")["task_settings"]["max_tokens"].clone();
        assert_eq!(
            max_tokens,
            if expect_write { json!(1024) } else { json!(7) },
            "{policy}"
        );
    }
}

#[tokio::test]
async fn endpoint_deleted_out_of_band_is_created_again() {
    let h = Harness::new().await;
    created(&h).await;
    assert!(h.es.remove_endpoint("claude-completion"));
    h.ctx.clusters.invalidate_all().await;
    h.settle("claude").await.expect("reconciles");
    assert!(h.es.endpoint("claude-completion").is_some());
    assert_eq!(h.ready("claude").1, "InSync");
    assert!(
        h.event_reasons().contains(&"Recreated".to_string()),
        "{:?}",
        h.event_reasons()
    );
}

#[tokio::test]
async fn existing_endpoint_is_untouched_unless_adopted() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.es.insert_endpoint(json!({
        "inference_id": "claude-completion", "task_type": "completion", "service": "anthropic",
        "service_settings": {"model_id": "claude-sonnet-4-5", "api_key": "someone-elses-key"},
        "task_settings": {"max_tokens": 1024}
    }));
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("reconciles");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "AlreadyExists")
    );
    assert!(message.contains("adopt"), "{message}");
    assert_eq!(h.es.write_count(), 0);
    assert_eq!(
        h.es.endpoint_secrets("claude-completion").expect("s")["api_key"],
        "someone-elses-key"
    );
    // Deleting it now must not touch the endpoint it never owned.
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    h.settle("claude").await.expect("released");
    assert!(h.get("claude").is_none(), "finalizer released");
    assert!(h.es.endpoint("claude-completion").is_some(), "not deleted");

    h.endpoint("claude", {
        let mut s = anthropic();
        s["adopt"] = json!(true);
        s
    });
    h.settle("claude").await.expect("reconciles");
    assert_eq!(h.ready("claude").1, "InSync");
    assert_eq!(
        h.es.endpoint_secrets("claude-completion").expect("s")["api_key"],
        KEY,
        "secret pushed on adoption"
    );
    assert!(h.event_reasons().contains(&"Adopted".to_string()));
    assert_eq!(h.ownership("claude").as_deref(), Some("Adopted"));
}

#[tokio::test]
async fn delete_removes_the_endpoint_and_the_finalizer() {
    let h = Harness::new().await;
    created(&h).await;
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    h.es.clear_requests();
    h.settle("claude").await.expect("cleanup");
    assert_eq!(
        h.es_writes(),
        vec!["DELETE /_inference/completion/claude-completion"]
    );
    assert!(h.es.endpoint("claude-completion").is_none());
    assert!(h.get("claude").is_none(), "finalizer removed");
    assert!(h.event_reasons().contains(&"Deleted".to_string()));
}

#[tokio::test]
async fn referenced_delete_is_blocked_until_forced() {
    let h = Harness::new().await;
    created(&h).await;
    h.es.add_pipeline_reference("claude-completion", "summarize");
    h.es.add_index_reference("claude-completion", "docs");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    let err = h.reconcile("claude").await.expect_err("blocked");
    assert!(matches!(err, Error::DeletionBlocked(_)), "{err}");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "DeletionBlocked")
    );
    assert!(
        message.contains("summarize") && message.contains("docs"),
        "{message}"
    );
    assert!(h.get("claude").is_some(), "finalizer kept");
    assert!(h.es.endpoint("claude-completion").is_some());
    // Retried with backoff, not in a hot loop.
    let first = h.error_policy("claude", &err);
    let second = h.error_policy("claude", &err);
    assert!(first != kube::runtime::controller::Action::await_change() && second != first);

    h.edit("claude", |s| s["forceDelete"] = json!(true));
    h.es.clear_requests();
    h.settle("claude").await.expect("forced");
    let delete =
        h.es.requests()
            .into_iter()
            .find(|r| r.method == "DELETE")
            .expect("delete");
    assert_eq!(delete.query.as_deref(), Some("force=true"));
    assert!(h.es.endpoint("claude-completion").is_none());
    assert!(h.get("claude").is_none());
}

#[tokio::test]
async fn retain_releases_without_calling_elasticsearch() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", {
        let mut s = anthropic();
        s["deletionPolicy"] = json!("Retain");
        s
    });
    h.settle("claude").await.expect("reconciles");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    h.es.clear_requests();
    h.settle("claude").await.expect("released");
    assert!(h.get("claude").is_none());
    assert!(h.es.endpoint("claude-completion").is_some());
    assert!(
        h.es.requests().is_empty(),
        "no Elasticsearch call: {:?}",
        h.es.requests().len()
    );
}

#[tokio::test]
async fn missing_secret_is_reported_then_picked_up() {
    let h = Harness::new().await;
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("reconciles");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(message.contains("\"anthropic\""), "{message}");
    assert_eq!(h.es.write_count(), 0);
    let obj = h.get("claude").expect("obj");
    let stalled = obj
        .status
        .as_ref()
        .and_then(|s| s.condition("Stalled"))
        .expect("Stalled");
    assert_eq!(stalled.status, "True");
    // Deletion does not wait for the Secret.
    h.secret("anthropic", &[("other", "x")]);
    h.settle("claude").await.expect("reconciles");
    assert!(h.ready("claude").2.contains("has no key \"api-key\""));
    h.secret("anthropic", &[("api-key", KEY)]);
    h.settle("claude").await.expect("reconciles");
    assert_eq!(h.ready("claude").1, "InSync");
}

#[tokio::test]
async fn cleanup_never_waits_on_a_missing_secret() {
    let h = Harness::new().await;
    created(&h).await;
    h.kube.remove("v1", "Secret", NS, "anthropic");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    h.settle("claude").await.expect("cleanup");
    assert!(h.get("claude").is_none());
    assert!(h.es.endpoint("claude-completion").is_none());
}

#[tokio::test]
async fn transient_errors_back_off_and_recover() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    h.es.inject(Fault::Status(503), 100);
    let err = h.reconcile("claude").await.expect_err("transient");
    let (ready, reason, _) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ElasticsearchUnavailable")
    );
    let reconciling = h
        .get("claude")
        .and_then(|o| o.status)
        .and_then(|s| s.condition("Reconciling").cloned());
    assert_eq!(reconciling.map(|c| c.status), Some("True".into()));
    // Exponential from half a second, capped at a minute, jittered: each delay within
    // [base*2^n/2, base*2^n]. Five failures in a row wait at most 15.5 s together.
    let delays: Vec<Duration> = (0..10)
        .map(|_| parse_requeue(&format!("{:?}", h.error_policy("claude", &err))))
        .collect();
    assert!(delays[..5].iter().sum::<Duration>() <= Duration::from_millis(15_500));
    for (n, d) in delays.iter().enumerate() {
        let full = Duration::from_millis(500)
            .saturating_mul(1 << n)
            .min(Duration::from_secs(60));
        assert!(
            *d >= full / 2 && *d <= full,
            "attempt {n}: {d:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
    // A second identical failure writes no new status.
    h.kube.clear_requests();
    h.reconcile("claude").await.expect_err("still down");
    assert_eq!(
        h.kube.writes_excluding_events(),
        0,
        "{}",
        h.kubernetes_writes_text()
    );
    // Recovery.
    h.es.inject(Fault::Status(503), 0);
    h.settle("claude").await.expect("recovers");
    assert_eq!(h.ready("claude").1, "InSync");
}

/// `Action`'s Debug is the only public view of its delay.
fn parse_requeue(debug: &str) -> Duration {
    let start = debug.find("requeue_after: Some(").expect("requeue") + "requeue_after: Some(".len();
    let rest = &debug[start..];
    let end = rest.find(')').expect("end");
    parse_debug_duration(&rest[..end]).expect("duration")
}

fn parse_debug_duration(s: &str) -> Result<Duration, String> {
    // Debug of Duration: "12.5s", "750ms", "3.2µs"
    let (num, unit) = s.split_at(
        s.find(|c: char| c.is_alphabetic() || c == 'µ')
            .ok_or("no unit")?,
    );
    let v: f64 = num.parse().map_err(|e| format!("{e}"))?;
    Ok(match unit {
        "s" => Duration::from_secs_f64(v),
        "ms" => Duration::from_secs_f64(v / 1e3),
        "µs" => Duration::from_secs_f64(v / 1e6),
        "ns" => Duration::from_secs_f64(v / 1e9),
        other => return Err(format!("unit {other}")),
    })
}

#[tokio::test]
async fn rate_limited_requests_honour_retry_after() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    h.es.inject(
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        1,
    );
    let err = h.reconcile("claude").await.expect_err("429");
    let d = parse_requeue(&format!("{:?}", h.error_policy("claude", &err)));
    assert!(
        d >= Duration::from_secs(7),
        "Retry-After is honoured: {d:?}"
    );
    // A Retry-After of two minutes is capped at the longest backoff (one minute).
    h.es.inject(
        Fault::TooManyRequests {
            retry_after_secs: 120,
        },
        1,
    );
    let err = h.reconcile("claude").await.expect_err("429");
    let d = parse_requeue(&format!("{:?}", h.error_policy("claude", &err)));
    assert_eq!(d, Duration::from_secs(60), "Retry-After is capped");
}

#[tokio::test]
async fn permanent_errors_do_not_loop() {
    let h = Harness::new().await;
    h.es.set_provider_rejects(KEY);
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    let r = h.settle("claude").await;
    assert!(
        r.is_ok(),
        "permanent errors are not retried by backoff: {r:?}"
    );
    let (ready, reason, message) = h.ready("claude");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Rejected"));
    assert!(
        message.contains("Could not complete inference endpoint creation"),
        "{message}"
    );
    assert!(!message.contains(KEY));
    let puts = |h: &Harness| h.es.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts(&h), 1);
    // More reconciles (e.g. triggered by our own status write) do not pay for the same failure.
    for _ in 0..3 {
        h.reconcile("claude").await.expect("quiet");
    }
    assert_eq!(
        puts(&h),
        1,
        "no retry of a permanent failure with the same inputs"
    );
    // A new key is tried at once.
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.settle("claude").await.expect("reconciles");
    assert_eq!(puts(&h), 2);
    assert_eq!(h.ready("claude").1, "InSync");
}

#[tokio::test]
async fn a_create_that_timed_out_but_landed_is_not_sent_twice() {
    let settings = Harness::settings();
    let cfg = StandinConfig {
        version: "9.0.3".into(),
        ..StandinConfig::default()
    };
    let h = Harness::with(cfg, settings, Duration::from_millis(300)).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    // The PUT is slow: the client gives up while Elasticsearch goes on and stores the endpoint.
    h.es.inject_on("PUT", Fault::Latency(Duration::from_millis(900)), 1);
    let r = h.reconcile("claude").await;
    assert!(r.is_err(), "timeout is transient: {r:?}");
    assert_eq!(h.ownership("claude").as_deref(), Some("Creating"));
    wait_for("the slow create to land", Duration::from_secs(10), || {
        h.es.endpoint("claude-completion").is_some()
    })
    .await;
    // The timeout counted against the connection: passes fail fast until its window ends.
    h.settle_within("claude", Duration::from_secs(20)).await;
    assert_eq!(h.ready("claude").1, "InSync");
    let creates =
        h.es.requests()
            .iter()
            .filter(|r| r.method == "PUT" && !r.path.ends_with("_update"))
            .count();
    assert_eq!(
        creates,
        1,
        "never PUT again after a create that may have landed: {:?}",
        h.es_writes()
    );
    assert_eq!(h.ownership("claude").as_deref(), Some("Created"));
    // 9.0 does not accept timeout on create.
    assert!(
        h.es.requests()
            .iter()
            .all(|r| !r.query.as_deref().unwrap_or_default().contains("timeout"))
    );
}

#[tokio::test]
async fn unsupported_versions_are_reported() {
    let cfg = StandinConfig {
        version: "8.15.2".into(),
        ..StandinConfig::default()
    };
    let h = Harness::with(cfg, Harness::settings(), Duration::from_secs(5)).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("reconciles");
    let (ready, reason, message) = h.ready("claude");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "UnsupportedVersion")
    );
    assert!(message.contains("8.17"), "{message}");
    assert_eq!(h.es.write_count(), 0);
}

#[tokio::test]
async fn operator_credentials_are_checked() {
    let cfg = StandinConfig {
        api_key: Some("operator-key".into()),
        ..StandinConfig::default()
    };
    let h = Harness::with(cfg, Harness::settings(), Duration::from_secs(5)).await;
    created(&h).await;
    assert!(
        h.es.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("ApiKey operator-key"))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn secret_values_never_leak_into_logs_status_events_or_errors() {
    let (_guard, logs) = capture_logs();
    let h = Harness::new().await;
    created(&h).await;
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.settle("claude").await.expect("rotation");
    // An Elasticsearch error that echoes the settings it was given (CONTRACT §4) must be scrubbed.
    h.edit(
        "claude",
        |s| {
            s["secretSettings"]["organization_key"] =
                json!({"secretKeyRef": {"name": "anthropic", "key": "api-key"}})
        },
    );
    h.es.set_echo_unknown_settings(true);
    h.ctx.clusters.invalidate_all().await;
    h.es.remove_endpoint("claude-completion");
    let r = h.settle("claude").await;
    let err_text = format!("{r:?}");
    let (_, reason, message) = h.ready("claude");
    assert_eq!(reason, "Rejected");
    // The stand-in echoed the value (as Elasticsearch does), so the scrubbing was exercised.
    assert!(message.contains("organization_key=<redacted>"), "{message}");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    let _ = h.settle("claude").await;
    let logs = logs.text();
    assert!(
        logs.len() > 1000,
        "logs were captured ({} bytes)",
        logs.len()
    );
    let k8s = h.kubernetes_writes_text();
    let metrics = h.metrics.render();
    for secret in [KEY, ROTATED] {
        assert!(!logs.contains(secret), "secret in logs");
        assert!(
            !k8s.contains(secret),
            "secret in a Kubernetes write (status or event)"
        );
        assert!(!err_text.contains(secret), "secret in an error");
        assert!(!metrics.contains(secret));
    }
}

/// (api group, resource[/subresource], verb) of a request to the Kubernetes API.
fn rbac_of(method: &str, path: &str, query: Option<&str>) -> (String, String, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => (String::new(), rest),
        ["apis", g, _v, rest @ ..] => (g.to_string(), rest),
        _ => panic!("unexpected path {path}"),
    };
    let rest = match rest {
        // A namespace itself: /api/v1/namespaces/<name>.
        ["namespaces", _name] => rest,
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [r] => (r.to_string(), false),
        [r, _name] => (r.to_string(), true),
        [r, _name, sub] => (format!("{r}/{sub}"), true),
        _ => panic!("unexpected path {path}"),
    };
    let watch = query.unwrap_or_default().contains("watch=true");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => panic!("unexpected method {method}"),
    };
    (group, resource, verb.to_string())
}

#[tokio::test]
async fn every_kubernetes_request_is_covered_by_the_declared_rbac() {
    use es_inference_operator::rbac::allows;
    let h = Harness::new().await;
    // A lifecycle that touches every code path that talks to Kubernetes.
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("secret missing");
    created(&h).await;
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.settle("claude").await.expect("rotation");
    h.es.add_pipeline_reference("claude-completion", "p");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    let _ = h.reconcile("claude").await;
    h.es.clear_references("claude-completion");
    h.settle("claude").await.expect("deleted");
    let requests = h.kube.requests();
    assert!(requests.len() > 8, "{}", requests.len());
    let mut seen = std::collections::BTreeSet::new();
    for r in requests {
        let (group, resource, verb) = rbac_of(&r.method, &r.path, r.query.as_deref());
        assert!(
            allows(&group, &resource, &verb),
            "not in rbac::RULES: {verb} {group}/{resource} ({} {})",
            r.method,
            r.path
        );
        seen.insert(format!("{verb} {group}/{resource}"));
    }
    // The paths exercised here; list/watch come from the Controller and are checked in e2e.
    for want in [
        "get /secrets",
        "patch es-inference.dev/inferenceendpoints",
        "patch es-inference.dev/inferenceendpoints/status",
        "create events.k8s.io/events",
    ] {
        assert!(seen.contains(want), "{want} not exercised: {seen:?}");
    }
}

fn elser() -> Value {
    json!({
        "inferenceId": "my-elser",
        "taskType": "sparse_embedding",
        "service": "elasticsearch",
        "serviceSettings": {"model_id": ".elser_model_2", "num_threads": 1, "num_allocations": 2}
    })
}

fn model_status(h: &Harness, name: &str) -> es_inference_operator::crd::ModelDeploymentStatus {
    h.get(name)
        .and_then(|o| o.status)
        .and_then(|s| s.model_deployment)
        .expect("modelDeployment status")
}

#[tokio::test]
async fn model_endpoints_are_ready_only_when_the_deployment_is() {
    let h = Harness::new().await;
    h.es.set_model_deployment(3, false);
    h.endpoint("elser", elser());
    h.settle("elser").await.expect("reconciles");
    let (ready, reason, message) = h.ready("elser");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ModelDeploying")
    );
    assert!(message.contains("0/2 allocations"), "{message}");
    let m = model_status(&h, "elser");
    assert_eq!(
        (m.state.as_str(), m.allocations, m.target_allocations),
        ("starting", Some(0), Some(2))
    );
    assert!(m.model_id.ends_with("_linux-x86_64"));
    let reconciling = h
        .get("elser")
        .and_then(|o| o.status)
        .and_then(|s| s.condition("Reconciling").cloned());
    assert_eq!(reconciling.map(|c| c.status), Some("True".into()));
    // Polled with backoff, not as an error: each look waits longer (settle looked twice: 5 s,
    // 10 s; this is the third).
    let delay = parse_requeue(&format!("{:?}", h.reconcile("elser").await.expect("poll")));
    assert_eq!(delay, Duration::from_secs(20));
    assert_eq!(h.ready("elser").1, "ModelDeploying");
    h.reconcile("elser").await.expect("poll");
    assert_eq!(h.ready("elser").1, "InSync");
    let m = model_status(&h, "elser");
    assert_eq!(
        (
            m.state.as_str(),
            m.allocations,
            m.allocation_state.as_deref()
        ),
        ("started", Some(2), Some("fully_allocated"))
    );
    // Created once; once ready, a resync no longer asks for stats.
    assert_eq!(
        h.es_writes(),
        vec!["PUT /_inference/sparse_embedding/my-elser"]
    );
    h.ctx.clusters.invalidate_all().await;
    h.es.clear_requests();
    h.kube.clear_requests();
    h.reconcile("elser").await.expect("resync");
    assert!(
        h.es.requests().iter().all(|r| !r.path.starts_with("/_ml/")),
        "stopped polling once ready"
    );
    assert_eq!(h.kube.write_count(), 0);
}

#[tokio::test]
async fn a_create_that_times_out_while_the_model_starts_is_followed_not_repeated() {
    let h = Harness::new().await;
    h.es.set_model_deployment(1, true);
    h.endpoint("elser", elser());
    h.settle("elser").await.expect("reconciles");
    // Built-in models get a generous create timeout by default.
    let put =
        h.es.requests()
            .into_iter()
            .find(|r| r.method == "PUT")
            .expect("put");
    assert_eq!(put.query.as_deref(), Some("timeout=300s"));
    for _ in 0..3 {
        if h.ready("elser").1 == "InSync" {
            break;
        }
        h.reconcile("elser").await.expect("poll");
    }
    assert_eq!(h.ready("elser").1, "InSync");
    let creates = h.es.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(creates, 1, "never PUT again: {:?}", h.es_writes());
    assert_eq!(h.ownership("elser").as_deref(), Some("Created"));
}

#[tokio::test]
async fn a_failed_deployment_is_reported_and_delete_still_works() {
    let h = Harness::new().await;
    h.es.set_model_deployment(5, false);
    h.endpoint("elser", elser());
    h.settle("elser").await.expect("reconciles");
    h.es.fail_model_deployment(
        "my-elser",
        "Could not start deployment because no ML nodes with sufficient capacity were found",
    );
    h.reconcile("elser").await.expect("reconciles");
    let (ready, reason, message) = h.ready("elser");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ModelDeploymentFailed")
    );
    assert!(message.contains("sufficient capacity"), "{message}");
    assert_eq!(model_status(&h, "elser").state, "failed");
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "elser",
    );
    h.settle("elser").await.expect("cleanup");
    assert!(h.get("elser").is_none());
    assert!(
        h.es.endpoint("my-elser").is_none(),
        "still managed, so deleted"
    );
    assert_eq!(
        h.es.deployment_state("my-elser"),
        None,
        "delete stopped the deployment"
    );
}

#[tokio::test]
async fn create_timeout_comes_from_the_spec() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", {
        let mut s = anthropic();
        s["createTimeout"] = json!("10m");
        s
    });
    h.settle("claude").await.expect("reconciles");
    let put =
        h.es.requests()
            .into_iter()
            .find(|r| r.method == "PUT")
            .expect("put");
    assert_eq!(put.query.as_deref(), Some("timeout=600s"));
}

#[tokio::test]
async fn num_allocations_changes_go_through_update() {
    let h = Harness::new().await;
    h.endpoint("elser", elser());
    h.settle("elser").await.expect("reconciles");
    assert_eq!(h.ready("elser").1, "InSync");
    h.edit("elser", |s| {
        s["serviceSettings"]["num_allocations"] = json!(4)
    });
    h.es.clear_requests();
    h.settle("elser").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        vec!["PUT /_inference/sparse_embedding/my-elser/_update"]
    );
    let update =
        h.es.requests()
            .into_iter()
            .find(|r| r.path.ends_with("_update"))
            .expect("update");
    assert_eq!(
        update.body.expect("body")["service_settings"],
        json!({"num_allocations": 4})
    );
    assert_eq!(h.ready("elser").1, "InSync");
    assert_eq!(model_status(&h, "elser").target_allocations, Some(4));
}

#[tokio::test]
async fn a_pass_on_a_cache_that_still_shows_the_creating_mark_writes_nothing_to_elasticsearch() {
    // The status write before a create triggers another pass, which can run on a cache that has
    // not seen the final status yet (measured: 152 extra _update calls for 200 creates before
    // the fix). That pass must recognise its own create and send nothing.
    let h = Harness::new().await;
    created(&h).await;
    let mut stale = h.raw("claude");
    stale["status"]["ownership"] = json!("Creating");
    stale["status"]
        .as_object_mut()
        .expect("status")
        .remove("appliedConfigHash");
    h.kube.insert(stale);
    h.es.clear_requests();
    h.reconcile("claude").await.expect("reconciles");
    assert_eq!(h.es.write_count(), 0, "{:?}", h.es_writes());
    assert_eq!(h.ready("claude").1, "InSync");
    assert_eq!(h.ownership("claude").as_deref(), Some("Created"));
}

#[tokio::test]
async fn status_holds_nothing_derived_from_a_secret_value() {
    let h = Harness::new().await;
    created(&h).await;
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.settle("claude").await.expect("rotation");
    let status = h.raw("claude")["status"].clone();
    let text = status.to_string();
    // Not the values, and not the fingerprint 0.1 wrote (an HMAC keyed by the public UID, which
    // anyone could compute for a guessed key).
    let uid = h.raw("claude")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    for value in [KEY, ROTATED] {
        assert!(!text.contains(value));
        let mut v = es_inference_operator::desired::SecretValues::default();
        v.values.insert("api_key".into(), value.to_string().into());
        let guess = es_inference_operator::secrets::legacy_fingerprint(&uid, &v).expect("fp");
        assert!(
            !text.contains(&guess),
            "a guessable fingerprint in status: {text}"
        );
    }
    assert!(status["secretFingerprint"].is_null());
    let versions = status["secretVersions"].as_str().expect("secretVersions");
    assert!(versions.starts_with("anthropic@"), "{versions}");
}

#[tokio::test]
async fn a_status_from_0_1_migrates_without_sending_the_secrets_again() {
    let h = Harness::new().await;
    created(&h).await;
    // Rewrite status the way 0.1 left it: the UID-keyed fingerprint, no secretVersions.
    let mut obj = h.raw("claude");
    let uid = obj["metadata"]["uid"].as_str().expect("uid").to_string();
    let mut v = es_inference_operator::desired::SecretValues::default();
    v.values.insert("api_key".into(), KEY.to_string().into());
    let legacy = es_inference_operator::secrets::legacy_fingerprint(&uid, &v).expect("fp");
    let status = obj["status"].as_object_mut().expect("status");
    status.remove("secretVersions");
    status.remove("ownerUID");
    status.insert("secretFingerprint".into(), json!(legacy));
    h.kube.insert(obj);
    // A restarted operator (no memory).
    let restarted = Harness::on(h.es.clone(), Harness::settings(), Default::default());
    restarted.kube.insert(h.raw("claude"));
    restarted.secret("anthropic", &[("api-key", KEY)]);
    h.es.clear_requests();
    restarted.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        Vec::<String>::new(),
        "no mass _update on upgrade"
    );
    let status = restarted.raw("claude")["status"].clone();
    assert!(status["secretFingerprint"].is_null(), "{status}");
    assert!(status["secretVersions"].is_string(), "{status}");
    assert!(status["ownerUID"].is_string(), "{status}");
    // A Secret rewritten with the same value moves its version, not its value: nothing sent.
    let before = restarted.raw("claude")["status"]["secretVersions"].clone();
    restarted.secret("anthropic", &[("api-key", KEY)]);
    restarted.settle("claude").await.expect("reconciles");
    assert_ne!(restarted.raw("claude")["status"]["secretVersions"], before);
    assert_eq!(h.es_writes(), Vec::<String>::new());
    // A real rotation is sent.
    restarted.secret("anthropic", &[("api-key", ROTATED)]);
    restarted.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es_writes(),
        vec!["PUT /_inference/completion/claude-completion/_update"]
    );
}

#[tokio::test]
async fn a_pass_on_a_cache_that_lags_behind_a_finished_delete_sends_nothing() {
    let h = Harness::new().await;
    created(&h).await;
    h.kube.mark_deleting(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "claude",
    );
    // What a lagging cache still shows after the cleanup: deleting, finalizer in place.
    let lagging = h.watched("claude");
    h.settle("claude").await.expect("deleted");
    assert!(h.get("claude").is_none());
    assert!(h.es.endpoint("claude-completion").is_none());
    h.es.clear_requests();
    let writes = h.kube.write_count();
    es_inference_operator::reconcile::reconcile(std::sync::Arc::new(lagging), h.ctx.clone())
        .await
        .expect("nothing to do");
    assert!(
        h.es.requests().is_empty(),
        "a second DELETE: {:?}",
        h.es.requests()
    );
    assert_eq!(h.kube.write_count(), writes, "nothing written either");
}

#[tokio::test]
async fn each_event_is_created_once_and_none_is_kept_to_be_patched() {
    // kube's Recorder keeps every Event six minutes to patch repeats into a series: tens of MiB
    // at 10,000 endpoints. The operator publishes on transitions only and keeps nothing.
    let h = Harness::new().await;
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("es-inference.dev/v1alpha1".into()),
        kind: Some("InferenceEndpoint".into()),
        namespace: Some(NS.into()),
        name: Some("claude".into()),
        ..Default::default()
    };
    for _ in 0..2 {
        es_inference_operator::status::publish(
            &h.ctx,
            &reference,
            vec![es_inference_operator::status::Note::warning(
                "Same",
                "Reconcile",
                "the same note",
            )],
        )
        .await;
    }
    assert!(h.kube.requests_matching("PATCH", "events").is_empty());
    assert_eq!(h.kube.events().len(), 2, "{:?}", h.kube.events());
}

#[tokio::test]
async fn of_two_records_claiming_one_endpoint_the_one_the_conflict_rule_passes_over_deletes_nothing()
 {
    // A retried create that found its twin's identical endpoint claims it too: two records,
    // one endpoint. The conflict rule picks the holder created first; deleting the other must
    // leave the endpoint to it.
    let h = Harness::new().await;
    created(&h).await;
    h.endpoint("twin", anthropic());
    let mut twin = h.raw("twin");
    let mut status = h.raw("claude")["status"].clone();
    status["ownerUID"] = twin["metadata"]["uid"].clone();
    twin["status"] = status;
    // Created after the owner (creation times order the holders).
    twin["metadata"]["creationTimestamp"] = json!("2099-01-01T00:00:00Z");
    twin["metadata"]["finalizers"] = h.raw("claude")["metadata"]["finalizers"].clone();
    h.kube.insert(twin);
    h.sync_peers();
    h.kube
        .mark_deleting("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, "twin");
    h.es.clear_requests();
    h.settle("twin").await.expect("released");
    assert!(!h.exists("twin"), "the finalizer was removed");
    assert!(
        h.es.requests().iter().all(|r| r.method != "DELETE"),
        "{:?}",
        h.es.requests()
    );
    assert!(h.es.endpoint("claude-completion").is_some());
    assert!(
        h.event_reasons().iter().any(|r| r == "Released"),
        "{:?}",
        h.event_reasons()
    );
}

fn openai(task: &str) -> Value {
    json!({
        "taskType": task,
        "service": "openai",
        "serviceSettings": {"model_id": "gpt-4o"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
    })
}

/// A request the connected cluster cannot accept is never sent (no mark, no PUT), the resource
/// waits without looping, and an upgrade of the cluster is what makes it go.
#[tokio::test]
async fn requests_the_cluster_cannot_accept_are_not_sent_until_it_is_upgraded() {
    let h = Harness::with(
        StandinConfig::for_version("8.17.0"),
        Harness::settings(),
        Duration::from_secs(5),
    )
    .await;
    h.secret("openai", &[("api-key", KEY)]);
    h.endpoint("chat", openai("chat_completion"));
    h.settle("chat").await.expect("reconciles");
    let (ready, reason, message) = h.ready("chat");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "UnsupportedByCluster")
    );
    assert!(
        message.contains("task type chat_completion needs Elasticsearch 8.18.0"),
        "{message}"
    );
    assert!(message.contains("nothing was sent"), "{message}");
    assert_eq!(h.es.write_count(), 0, "{:?}", h.es_writes());
    assert_eq!(
        h.ownership("chat"),
        None,
        "no Creating mark for a create never sent"
    );
    assert!(
        h.event_reasons()
            .contains(&"UnsupportedByCluster".to_string())
    );
    // Nothing moves: another pass and a resync write nothing and trigger nothing.
    h.kube.clear_requests();
    h.reconcile("chat").await.expect("again");
    assert_eq!(h.kube.write_count(), 0, "{}", h.kubernetes_writes_text());
    assert_eq!(
        es_inference_operator::controller::resync_once(&h.ctx).await,
        0
    );
    assert_eq!(h.es.write_count(), 0);
    // The cluster is upgraded: the resync notices and the endpoint is created.
    h.es.set_version("8.18.1");
    assert_eq!(
        es_inference_operator::controller::resync_once(&h.ctx).await,
        1
    );
    h.settle("chat")
        .await
        .expect("reconciles after the upgrade");
    assert_eq!(h.ready("chat").0, "True", "{:?}", h.ready("chat"));
    assert_eq!(h.es_writes().len(), 1, "{:?}", h.es_writes());
    // Settled: the next resync triggers nothing; another upgrade triggers one quiet pass, once.
    assert_eq!(
        es_inference_operator::controller::resync_once(&h.ctx).await,
        0
    );
    h.es.set_version("8.19.0");
    assert_eq!(
        es_inference_operator::controller::resync_once(&h.ctx).await,
        1
    );
    h.kube.clear_requests();
    h.settle("chat").await.expect("quiet pass");
    // One status write: status reports the version the endpoint lives on.
    assert_eq!(h.kube.write_count(), 1, "{}", h.kubernetes_writes_text());
    assert!(
        h.kubernetes_writes_text()
            .contains("\"elasticsearchVersion\":\"8.19.0\"")
    );
    assert_eq!(h.es_writes().len(), 1, "{:?}", h.es_writes());
    assert_eq!(
        es_inference_operator::controller::resync_once(&h.ctx).await,
        0,
        "an upgrade is one pass, not one per resync"
    );
}

/// Per-service secret rules are checked before anything is read or sent.
#[tokio::test]
async fn secret_settings_the_service_cannot_take_are_refused_before_sending() {
    let h = Harness::new().await;
    h.secret("aws", &[("id", "AKIA-EXAMPLE")]);
    h.endpoint(
        "bedrock",
        json!({
            "taskType": "text_embedding", "service": "amazonbedrock",
            "serviceSettings": {"region": "us-east-1", "model": "amazon.titan-embed-text-v2:0", "provider": "amazontitan"},
            "secretSettings": {"access_key": {"secretKeyRef": {"name": "aws", "key": "id"}}}
        }),
    );
    h.settle("bedrock").await.expect("reconciles");
    let (ready, reason, message) = h.ready("bedrock");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("secretSettings.secret_key is missing"),
        "{message}"
    );
    assert!(!message.contains("AKIA-EXAMPLE"));
    assert_eq!(h.es.write_count(), 0);
}

/// Unknown is not wrong: a service the table does not know is sent as written, with a Warning
/// Event once and a note in the condition.
#[tokio::test]
async fn an_unknown_service_is_sent_with_a_warning() {
    let h = Harness::new().await;
    h.secret("openai", &[("api-key", KEY)]);
    let mut spec = openai("rerank");
    spec["service"] = json!("mixedbread");
    h.endpoint("new", spec);
    let _ = h.settle("new").await;
    let creates: Vec<_> =
        h.es.requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path == "/_inference/rerank/new")
            .collect();
    assert_eq!(creates.len(), 1, "sent as written: {:?}", h.es_writes());
    let (_, _, message) = h.ready("new");
    assert!(
        message.contains("Note: service \"mixedbread\" is not in this operator's table"),
        "{message}"
    );
    let warnings = |h: &Harness| {
        h.event_reasons()
            .iter()
            .filter(|r| r.as_str() == "UnknownToOperator")
            .count()
    };
    assert_eq!(warnings(&h), 1);
    let before = h.ready("new");
    h.kube.clear_requests();
    let _ = h.reconcile("new").await;
    assert_eq!(warnings(&h), 1, "the warning is raised once");
    assert_eq!(h.ready("new"), before, "the note is not appended twice");
    assert_eq!(h.kube.write_count(), 0, "{}", h.kubernetes_writes_text());
}

/// Headers from Secrets reach the request on create and again on rotation, and nowhere else.
#[tokio::test(flavor = "current_thread")]
async fn headers_from_secrets_are_sent_on_create_and_on_rotation() {
    let (_guard, logs) = capture_logs();
    const TOKEN: &str = "org-token-FIRST-VALUE";
    const NEW_TOKEN: &str = "org-token-ROTATED-VALUE";
    let h = Harness::new().await;
    h.secret("openai", &[("api-key", KEY), ("org-token", TOKEN)]);
    let mut spec = openai("completion");
    spec["secretSettings"]["task_settings.headers.X-Org-Token"] =
        json!({"secretKeyRef": {"name": "openai", "key": "org-token"}});
    spec["taskSettings"] = json!({"user": "search", "headers": {"X-Request-Source": "operator"}});
    h.endpoint("gpt", spec);
    h.settle("gpt").await.expect("reconciles");
    assert_eq!(h.ready("gpt").0, "True", "{:?}", h.ready("gpt"));
    let body = |method: &str, suffix: &str| {
        h.es.requests()
            .into_iter()
            .rfind(|r| r.method == method && r.path.ends_with(suffix))
            .and_then(|r| r.body)
            .expect("request")
    };
    let create = body("PUT", "/_inference/completion/gpt");
    assert_eq!(create["task_settings"]["headers"]["X-Org-Token"], TOKEN);
    assert_eq!(
        create["task_settings"]["headers"]["X-Request-Source"],
        "operator"
    );
    assert_eq!(create["task_settings"]["user"], "search");
    h.secret("openai", &[("api-key", KEY), ("org-token", NEW_TOKEN)]);
    h.settle("gpt").await.expect("rotation");
    let update = body("PUT", "/_update");
    assert_eq!(update["task_settings"]["headers"]["X-Org-Token"], NEW_TOKEN);
    assert_eq!(
        update["task_settings"]["headers"]["X-Request-Source"],
        "operator"
    );
    assert_eq!(update["service_settings"]["api_key"], KEY);
    assert_eq!(h.ready("gpt").0, "True");
    let everything = format!(
        "{}\n{}\n{:?}",
        logs.text(),
        h.kubernetes_writes_text(),
        h.kube.events()
    );
    for v in [TOKEN, NEW_TOKEN, KEY] {
        assert!(!everything.contains(v), "a header secret leaked");
    }
}

/// The operator's table of Elasticsearch services knows every service the stand-in simulates
/// (a service added to one and not the other fails here).
#[test]
fn the_table_knows_every_service_of_the_stand_in() {
    for name in support::es_standin::service_names() {
        assert!(
            es_inference_operator::catalog::service(name).is_some(),
            "{name} is missing from src/catalog/table.rs"
        );
    }
}

/// The custom service's headers from Secrets are `${…}` placeholders filled from
/// `secret_parameters`: Elasticsearch keeps the value with its secrets, and rotation replaces it.
#[tokio::test]
async fn custom_service_headers_from_secrets_are_secret_parameters() {
    const TOKEN: &str = "custom-header-FIRST";
    const NEW_TOKEN: &str = "custom-header-ROTATED";
    let h = Harness::new().await;
    h.secret("custom", &[("token", TOKEN)]);
    h.endpoint(
        "custom",
        json!({
            "taskType": "rerank", "service": "custom",
            "serviceSettings": {"url": "https://rerank.example.com/v1",
                "headers": {"Content-Type": "application/json"},
                "request": {"content": "{\"query\": \"${query}\", \"documents\": ${input}}"},
                "response": {"json_parser": {"reranked_index": "$.results[*].index", "relevance_score": "$.results[*].score"}}},
            "secretSettings": {"headers.Authorization": {"secretKeyRef": {"name": "custom", "key": "token"}}}
        }),
    );
    h.settle("custom").await.expect("reconciles");
    assert_eq!(h.ready("custom").0, "True", "{:?}", h.ready("custom"));
    let stored = h.es.endpoint("custom").expect("stored");
    let text = stored.to_string();
    assert!(
        !text.contains(TOKEN),
        "the stored configuration has no value: {text}"
    );
    assert_eq!(
        stored["service_settings"]["headers"]["Authorization"],
        "${es_inference_header_Authorization}"
    );
    assert_eq!(
        h.es.endpoint_secrets("custom").expect("secrets")["secret_parameters"]["es_inference_header_Authorization"],
        TOKEN
    );
    h.secret("custom", &[("token", NEW_TOKEN)]);
    h.settle("custom").await.expect("rotation");
    assert_eq!(
        h.es.endpoint_secrets("custom").expect("secrets")["secret_parameters"]["es_inference_header_Authorization"],
        NEW_TOKEN
    );
    assert_eq!(h.ready("custom").0, "True");
}

/// A pass whose recorded Secret versions are the ones the Secret watch shows reads no Secret; a
/// rotation of a Secret shared by several endpoints reads it once.
#[tokio::test]
async fn secrets_are_read_only_to_be_sent_and_once_per_version() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.watch_secrets();
    let names = ["a", "b", "c"];
    for n in names {
        let mut spec = anthropic();
        spec["inferenceId"] = json!(format!("claude-{n}"));
        h.endpoint(n, spec);
    }
    for n in names {
        h.settle(n).await.expect("creates");
        assert_eq!(h.ready(n).0, "True", "{:?}", h.ready(n));
    }
    assert_eq!(
        h.secret_reads(),
        1,
        "three creates share one read of the Secret"
    );
    // Restart and idle: the versions come from the watch, no value is needed.
    h.ctx.secret_reads.forget_values();
    h.ctx.clusters.invalidate_all().await;
    h.kube.clear_requests();
    for n in names {
        h.reconcile(n).await.expect("idle");
    }
    assert_eq!(h.secret_reads(), 0, "no Secret read on an idle pass");
    assert_eq!(h.kube.write_count(), 0, "{}", h.kubernetes_writes_text());
    // Rotation: the watch shows the new version, every endpoint sends it, one read in all.
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.sync_secrets();
    for n in names {
        h.settle(n).await.expect("rotation");
        assert_eq!(h.ready(n).0, "True");
    }
    assert_eq!(h.secret_reads(), 1, "one read per Secret version");
    for n in names {
        assert_eq!(
            h.es.endpoint_secrets(&format!("claude-{n}"))
                .expect("secrets")["api_key"],
            ROTATED
        );
    }
    // A Secret that disappears: the watch cannot vouch for it, the pass reads and reports.
    h.kube.remove("v1", "Secret", NS, "anthropic");
    h.sync_secrets();
    h.settle("a").await.expect("reconciles");
    assert_eq!(h.ready("a").1, "SecretNotFound");
}

#[tokio::test]
async fn a_status_write_that_keeps_failing_raises_no_repeated_warnings() {
    // Events are raised after the status that records them: while the write fails, a pass
    // raises nothing, so the backoff's retries cannot repeat a Warning.
    let h = Harness::new().await;
    h.endpoint("claude", anthropic());
    for _ in 0..3 {
        h.kube.fail_next("PATCH", "/status", 500);
        assert!(
            h.reconcile("claude").await.is_err(),
            "the status write failed"
        );
    }
    assert_eq!(h.kube.pending_faults(), 0);
    assert!(
        !h.event_reasons().contains(&"SecretNotFound".to_string()),
        "{:?}",
        h.event_reasons()
    );
    h.settle("claude").await.expect("reconciles");
    h.settle("claude").await.expect("reconciles");
    let warned = h
        .event_reasons()
        .iter()
        .filter(|r| *r == "SecretNotFound")
        .count();
    assert_eq!(warned, 1, "{:?}", h.event_reasons());
}

/// An endpoint waiting for its Secret, with the watch having shown someone else's version of it
/// while a write of the operator's is in flight: its uid, and a receiver of the operator's own
/// requests for a pass. Adding the Secret makes the next pass write status.
async fn held_during_a_write(
    h: &Harness,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<
        kube::runtime::reflector::ObjectRef<es_inference_operator::guard::Watched>,
    >,
) {
    h.endpoint("claude", anthropic());
    h.settle("claude").await.expect("reconciles");
    let uid = h
        .get("claude")
        .and_then(|o| o.metadata.uid)
        .expect("the object has a uid");
    let rx = h.ctx.triggers.subscribe(None);
    h.secret("anthropic", &[("api-key", KEY)]);
    h.ctx.memory.writing(&uid);
    assert!(
        h.ctx.memory.is_own_write(Some(&uid), Some("someone-else")),
        "held while the write is in flight"
    );
    (uid, rx)
}

#[tokio::test]
async fn a_change_the_watch_shows_while_a_status_write_is_in_flight_gets_its_pass() {
    // Held, then judged by the write's answer: not the operator's, so the object is triggered.
    let h = Harness::new().await;
    let (_, mut rx) = held_during_a_write(&h).await;
    h.settle("claude").await.expect("reconciles");
    let triggered = rx.try_recv().expect("the held change is triggered");
    assert_eq!(triggered.name, "claude");
    assert!(rx.try_recv().is_err(), "once");
}

#[tokio::test]
async fn a_status_write_that_fails_lets_go_of_what_it_held() {
    let h = Harness::new().await;
    let (uid, mut rx) = held_during_a_write(&h).await;
    h.kube.fail_next("PATCH", "/status", 500);
    assert!(
        h.reconcile("claude").await.is_err(),
        "the status write failed"
    );
    let triggered = rx.try_recv().expect("what was held is triggered");
    assert_eq!(triggered.name, "claude");
    // Nothing is left in flight: the next event of someone else is a trigger at once.
    assert!(!h.ctx.memory.is_own_write(Some(&uid), Some("later")));
}
