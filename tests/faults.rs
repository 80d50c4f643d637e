//! The safety invariants, each proven against the fault it guards against: outages, bursts of
//! 5xx, lost answers, endpoints the operator did not create, restored status, undecodable
//! objects, settings Elasticsearch stores in another form, an unrecovered cluster, a deposed
//! leader, and memory that must be returned. Each test fails without the rule it names.

mod support;

use std::{sync::Arc, time::Duration};

use es_inference_operator::{cluster::ClusterSettings, error::Error, lease::Fence};
use serde_json::{Value, json};
use support::{
    es_standin::{EsStandin, Fault, Obj, StandinConfig},
    harness::{Harness, NS, wait_for},
};

const KEY: &str = "sk-ant-api03-FAULTS-SECRET-VALUE";
const OTHER_KEY: &str = "sk-ant-api03-SOMEONE-ELSES-KEY";

fn anthropic(id: &str) -> Value {
    json!({
        "inferenceId": id,
        "taskType": "completion",
        "service": "anthropic",
        "serviceSettings": {"model_id": "claude-sonnet-4-5"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}},
        "taskSettings": {"max_tokens": 1024}
    })
}

/// A foreign endpoint with the same id, created outside Kubernetes.
fn foreign(id: &str, model: &str) -> Value {
    json!({
        "inference_id": id, "task_type": "completion", "service": "anthropic",
        "service_settings": {"model_id": model, "api_key": OTHER_KEY},
        "task_settings": {"max_tokens": 1024}
    })
}

fn creates(h: &Harness, id: &str) -> usize {
    h.es.requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&format!("/{id}")))
        .count()
}

fn delete(h: &Harness, name: &str) {
    h.kube
        .mark_deleting("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, name);
}

async fn settled(h: &Harness, name: &str) {
    h.settle_within(name, Duration::from_secs(20)).await;
}

// ----- connection outages -----

#[tokio::test]
async fn a_fast_failure_on_a_down_connection_never_extends_its_window() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("a", anthropic("a"));
    h.es.set_unreachable(true);
    let err = h.reconcile("a").await.expect_err("down");
    let Error::ConnectionDown { until, .. } = err else {
        panic!("{err:?}");
    };
    let probes = h.es.requests().len();
    // Resync triggers, retries and new objects arrive more often than the window: they fail fast,
    // send nothing, and leave the window where it is.
    for i in 0..20 {
        h.endpoint(&format!("new-{i}"), anthropic(&format!("new-{i}")));
        match h.reconcile(&format!("new-{i}")).await {
            Err(Error::ConnectionDown { until: u, .. }) => assert_eq!(u, until),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        h.es.requests().len(),
        probes,
        "no request inside the window"
    );
    let (_, reason, _) = h.ready("new-3");
    assert_eq!(reason, "ConnectionFailed");
    // The window ends: the next pass probes, and once the cluster is back everything lands.
    h.es.set_unreachable(false);
    wait_for("the window to end", Duration::from_secs(15), || {
        std::time::Instant::now() >= until
    })
    .await;
    settled(&h, "new-7").await;
    assert_eq!(h.ready("new-7").1, "InSync");
}

#[tokio::test]
async fn pending_creates_edits_and_deletes_land_after_an_outage() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    for i in 0..6 {
        h.endpoint(&format!("e{i}"), anthropic(&format!("e{i}")));
        h.settle(&format!("e{i}")).await.expect("created");
    }
    h.es.clear_requests();
    h.es.set_unreachable(true);
    let outage = std::time::Instant::now();
    // During the outage: two edits, one delete, two creates.
    for name in ["e0", "e1"] {
        h.edit(name, |s| s["taskSettings"]["max_tokens"] = json!(42));
    }
    delete(&h, "e2");
    h.endpoint("n0", anthropic("n0"));
    h.endpoint("n1", anthropic("n1"));
    for name in ["e0", "e1", "e2", "n0", "n1"] {
        assert!(h.reconcile(name).await.is_err(), "{name} fails while down");
    }
    h.es.set_unreachable(false);
    let back = std::time::Instant::now();
    for name in ["e0", "e1", "e2", "n0", "n1"] {
        settled(&h, name).await;
    }
    let recovery = back.elapsed();
    assert!(
        recovery < Duration::from_secs(20),
        "everything landed {recovery:?} after the cluster came back (outage {:?})",
        back - outage
    );
    for name in ["e0", "e1"] {
        assert_eq!(h.ready(name).1, "InSync");
        let ep = h.es.endpoint(name).expect("endpoint");
        assert_eq!(ep["task_settings"]["max_tokens"], 42, "{name}: edit landed");
    }
    assert!(h.get("e2").is_none(), "finalizer released");
    assert!(
        h.es.endpoint("e2").is_none(),
        "delete landed, nothing orphaned"
    );
    for name in ["n0", "n1"] {
        assert_eq!(h.ready(name).1, "InSync");
        assert_eq!(creates(&h, name), 1, "{name}: one create, no duplicate");
    }
}

#[tokio::test]
async fn five_503s_in_a_row_recover_within_thirty_seconds() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("claude"));
    h.es.inject_on("PUT", Fault::Status(503), 5);
    let mut waited = Duration::ZERO;
    let mut failures = 0;
    loop {
        match h.reconcile("claude").await {
            Ok(_) if h.ready("claude").1 == "InSync" => break,
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let action = format!("{:?}", h.error_policy("claude", &e));
                waited += requeue_of(&action);
            }
        }
        assert!(failures <= 5, "more failures than injected");
    }
    assert_eq!(failures, 5);
    assert!(
        waited <= Duration::from_secs(30),
        "five transient failures cost {waited:?} of backoff"
    );
    assert_eq!(creates(&h, "claude"), 6, "five refused, the sixth landed");
}

fn requeue_of(debug: &str) -> Duration {
    let start = debug.find("requeue_after: Some(").expect("requeue") + 20;
    let text = &debug[start..];
    let text = &text[..text.find(')').expect("end")];
    let (num, unit) = text.split_at(
        text.find(|c: char| c.is_alphabetic() || c == 'µ')
            .expect("unit"),
    );
    let v: f64 = num.parse().expect("number");
    match unit {
        "s" => Duration::from_secs_f64(v),
        "ms" => Duration::from_secs_f64(v / 1e3),
        "µs" => Duration::from_secs_f64(v / 1e6),
        _ => Duration::from_secs_f64(v / 1e9),
    }
}

// ----- ownership -----

#[tokio::test]
async fn a_refused_create_never_claims_a_foreign_endpoint_created_later() {
    let h = Harness::new().await;
    h.es.set_provider_rejects(KEY);
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("shared-id"));
    h.settle("claude").await.expect("reconciles");
    assert_eq!(h.ready("claude").1, "Rejected");
    assert_eq!(
        h.ownership("claude"),
        None,
        "a definitive refusal clears the mark"
    );
    // Someone else creates the same id, with exactly the same configuration.
    h.es.insert_endpoint(foreign("shared-id", "claude-sonnet-4-5"));
    h.secret("anthropic", &[("api-key", "sk-ant-api03-A-NEW-KEY")]);
    h.es.clear_requests();
    h.settle("claude").await.expect("reconciles");
    assert_eq!(h.ready("claude").1, "AlreadyExists");
    // At most a create that Elasticsearch refuses (the shared list was older than theirs); no
    // update, no delete: their endpoint and key are untouched.
    assert!(
        h.es_writes()
            .iter()
            .all(|w| w == "PUT /_inference/completion/shared-id"),
        "{:?}",
        h.es_writes()
    );
    assert_eq!(
        h.es.endpoint("shared-id").expect("theirs")["service"],
        "anthropic"
    );
    assert_eq!(
        h.es.endpoint_secrets("shared-id").expect("theirs")["api_key"],
        OTHER_KEY
    );
    delete(&h, "claude");
    h.settle("claude").await.expect("released");
    assert!(h.get("claude").is_none());
    assert!(
        h.es.endpoint("shared-id").is_some(),
        "not deleted with the resource"
    );
}

#[tokio::test]
async fn two_operators_on_one_cluster_never_both_own_an_endpoint() {
    let a = Harness::new().await;
    let b = Harness::on(
        a.es.clone(),
        Harness::settings(),
        ClusterSettings::default(),
    );
    for h in [&a, &b] {
        h.secret("anthropic", &[("api-key", KEY)]);
        h.endpoint("claude", anthropic("shared-id"));
    }
    // B's shared snapshot is taken before A creates: B believes the id is free.
    let target = b.ctx.clusters.default_target().expect("default");
    let cluster = b.ctx.clusters.get(&target).expect("cluster");
    cluster
        .snapshot(Duration::from_secs(600))
        .await
        .expect("list");
    a.settle("claude").await.expect("A creates");
    assert_eq!(a.ownership("claude").as_deref(), Some("Created"));
    b.settle("claude").await.expect("B reconciles");
    // B's create was refused as already existing on its first attempt: someone else's.
    assert_eq!(b.ready("claude").1, "AlreadyExists");
    assert_eq!(b.ownership("claude"), None);
    assert_eq!(
        creates(&a, "shared-id"),
        2,
        "A's create, and B's refused one"
    );
    assert!(
        !a.es_writes().iter().any(|w| w.ends_with("_update")),
        "B pushed nothing over A's endpoint"
    );
    delete(&b, "claude");
    b.settle("claude").await.expect("B releases");
    assert!(
        a.es.endpoint("shared-id").is_some(),
        "B's delete does not delete A's endpoint"
    );
}

#[tokio::test]
async fn a_status_restored_onto_another_object_confers_nothing() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("original", anthropic("restored-id"));
    h.settle("original").await.expect("created");
    let status = h.raw("original")["status"].clone();
    assert!(status["ownerUID"].is_string());
    // A backup restored as a new object (a new UID), status and all (Velero restores status).
    h.kube.insert(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": "restored", "namespace": NS},
        "spec": anthropic("restored-id"),
        "status": status,
    }));
    // The original is gone from Kubernetes without cleanup (e.g. the namespace was lost).
    h.kube.remove(
        "es-inference.dev/v1alpha1",
        "InferenceEndpoint",
        NS,
        "original",
    );
    h.es.clear_requests();
    h.settle("restored").await.expect("reconciles");
    assert_eq!(h.ready("restored").1, "AlreadyExists");
    assert_eq!(h.es_writes(), Vec::<String>::new());
    delete(&h, "restored");
    h.settle("restored").await.expect("released");
    assert!(
        h.es.endpoint("restored-id").is_some(),
        "not deleted on a copied record"
    );
    // With adopt, the restored object takes the endpoint over explicitly.
}

#[tokio::test]
async fn a_lost_create_answer_is_claimed_once_also_after_a_restart() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("lost"));
    h.es.inject_on("PUT", Fault::LoseAnswer, 1);
    assert!(
        h.reconcile("claude").await.is_err(),
        "the answer never came"
    );
    assert!(
        h.es.endpoint("lost").is_some(),
        "but Elasticsearch stored it"
    );
    assert_eq!(h.ownership("claude").as_deref(), Some("Creating"));
    // An operator restart: same Kubernetes and Elasticsearch, no memory.
    let restarted = Harness::on(
        h.es.clone(),
        Harness::settings(),
        ClusterSettings::default(),
    );
    restarted.kube.insert(h.raw("claude"));
    restarted.kube.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "anthropic", "namespace": NS},
        "data": {"api-key": base64(KEY)},
    }));
    settled(&restarted, "claude").await;
    assert_eq!(restarted.ready("claude").1, "InSync");
    assert_eq!(restarted.ownership("claude").as_deref(), Some("Created"));
    assert_eq!(creates(&h, "lost"), 1, "claimed, never sent twice");
    delete(&restarted, "claude");
    restarted.settle("claude").await.expect("deleted");
    assert!(h.es.endpoint("lost").is_none(), "and deletable");
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ----- isolation -----

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for i in 0..depth {
        v = json!({ format!("k{i}"): v });
    }
    v
}

#[tokio::test]
async fn an_object_too_deep_to_decode_is_reported_and_the_others_go_on() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("deep", anthropic("deep-id"));
    h.endpoint("fine", anthropic("fine-id"));
    h.settle("deep").await.expect("created");
    // An edit the API server accepts but no serde decoder can read (140 levels).
    h.edit("deep", |s| s["serviceSettings"]["extra"] = nested(140));
    h.es.clear_requests();
    h.settle("deep").await.expect("reported, not an error");
    h.settle("fine").await.expect("reconciles");
    let status = &h.raw("deep")["status"];
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(ready["reason"], "InvalidObject");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("recursion limit"),
        "{ready}"
    );
    assert_eq!(
        status["ownership"], "Created",
        "what it owns is still recorded"
    );
    assert_eq!(h.ready("fine").1, "InSync");
    assert!(
        h.es_writes().iter().all(|w| !w.contains("deep-id")),
        "nothing sent for it: {:?}",
        h.es_writes()
    );
    // Deleting it still deletes its endpoint (read from the fields cleanup needs).
    delete(&h, "deep");
    h.settle("deep").await.expect("released");
    assert!(!h.exists("deep"), "finalizer released");
    assert!(h.es.endpoint("deep-id").is_none(), "its endpoint deleted");
    assert!(h.es.endpoint("fine-id").is_some());
}

#[tokio::test]
async fn settings_nested_past_the_bound_or_shadowed_by_a_secret_are_refused_before_sending() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    let mut deep = anthropic("deep-id");
    deep["serviceSettings"]["extra"] = nested(12);
    h.endpoint("deep", deep);
    h.settle("deep").await.expect("reconciles");
    let (_, reason, message) = h.ready("deep");
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("nests"), "{message}");
    let mut shadow = anthropic("shadow-id");
    shadow["serviceSettings"]["url"] = json!("https://proxy.example");
    shadow["secretSettings"]["url"] =
        json!({"secretKeyRef": {"name": "anthropic", "key": "api-key"}});
    h.endpoint("shadow", shadow);
    h.settle("shadow").await.expect("reconciles");
    let (_, reason, message) = h.ready("shadow");
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("secretSettings.url"), "{message}");
    assert_eq!(h.es.write_count(), 0);
}

// ----- no loops -----

#[tokio::test]
async fn recreate_with_a_setting_stored_in_another_case_does_not_loop() {
    let h = Harness::new().await;
    h.secret("openai", &[("api-key", KEY)]);
    h.endpoint(
        "emb",
        json!({
            "taskType": "text_embedding", "service": "openai", "replacementPolicy": "Recreate",
            "serviceSettings": {"model_id": "text-embedding-3-small", "similarity": "COSINE"},
            "secretSettings": {"api_key": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
        }),
    );
    h.settle("emb").await.expect("created");
    assert_eq!(
        h.es.endpoint("emb").expect("ep")["service_settings"]["similarity"],
        "cosine"
    );
    for _ in 0..5 {
        h.ctx.clusters.invalidate_all().await;
        h.reconcile("emb").await.expect("resync");
    }
    assert_eq!(h.ready("emb").1, "InSync");
    assert_eq!(creates(&h, "emb"), 1, "no replacement: {:?}", h.es_writes());
}

fn resolve_model_alias(cfg: &mut Obj) {
    if let Some(Value::Object(ss)) = cfg.get_mut("service_settings") {
        ss.insert("model_id".into(), json!("claude-sonnet-4-5-20250929"));
    }
}

#[tokio::test]
async fn a_difference_that_survives_a_replacement_is_reported_not_retried() {
    let h = Harness::new().await;
    h.es.set_store_hook(resolve_model_alias);
    h.secret("anthropic", &[("api-key", KEY)]);
    let mut spec = anthropic("alias");
    spec["replacementPolicy"] = json!("Recreate");
    h.endpoint("claude", spec);
    for _ in 0..6 {
        let _ = h.reconcile("claude").await;
    }
    let (_, reason, message) = h.ready("claude");
    assert_eq!(reason, "DiffersAfterReplacement");
    assert!(message.contains("service_settings.model_id"), "{message}");
    assert_eq!(
        creates(&h, "alias"),
        2,
        "one create and one replacement: {:?}",
        h.es_writes()
    );
    // An operator restart does not reset the count (it is in status).
    let restarted = Harness::on(
        h.es.clone(),
        Harness::settings(),
        ClusterSettings::default(),
    );
    restarted.kube.insert(h.raw("claude"));
    restarted.kube.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "anthropic", "namespace": NS},
        "data": {"api-key": base64(KEY)},
    }));
    for _ in 0..3 {
        let _ = restarted.reconcile("claude").await;
    }
    assert_eq!(creates(&h, "alias"), 2);
}

// ----- identity -----

#[tokio::test]
async fn an_unrecovered_cluster_is_no_new_cluster_and_no_release() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("na-id"));
    h.settle("claude").await.expect("created");
    h.ctx.clusters.invalidate_all().await;
    h.es.set_cluster_uuid(Some("_na_"));
    h.es.clear_requests();
    h.edit("claude", |s| s["taskSettings"]["max_tokens"] = json!(7));
    assert!(h.reconcile("claude").await.is_err(), "transient");
    delete(&h, "claude");
    let _ = h.reconcile("claude").await;
    assert!(
        h.get("claude").is_some(),
        "the finalizer waits for a real identity"
    );
    assert!(!h.event_reasons().contains(&"ClusterChanged".to_string()));
    assert_eq!(h.es.write_count(), 0);
    h.es.set_cluster_uuid(None);
    settled_delete(&h, "claude").await;
    assert!(
        h.es.endpoint("na-id").is_none(),
        "deleted once the cluster has its identity"
    );
}

async fn settled_delete(h: &Harness, name: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.get(name).is_some() {
        let _ = h.reconcile(name).await;
        assert!(tokio::time::Instant::now() < end, "{name} not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- leadership -----

#[tokio::test]
async fn a_closed_fence_stops_every_write() {
    let es = Arc::new(EsStandin::start(StandinConfig::default()).await);
    let h = Harness::on_with_fence(
        es,
        Harness::settings(),
        ClusterSettings::default(),
        Fence::closed(),
    );
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("fenced"));
    let r = h.reconcile("claude").await;
    assert!(matches!(r, Err(Error::NotLeader)), "{r:?}");
    assert_eq!(h.es.write_count(), 0);
    assert_eq!(h.kube.write_count(), 0, "{}", h.kubernetes_writes_text());
}

// ----- bounds -----

#[tokio::test]
async fn memory_is_returned_when_objects_go() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    for i in 0..20 {
        h.endpoint(&format!("m{i}"), anthropic(&format!("m{i}")));
        h.settle(&format!("m{i}")).await.expect("created");
    }
    assert_eq!(h.ctx.memory.remembered(), 20);
    assert!(h.metrics.render().contains(r#"name="m7""#));
    for i in 0..20 {
        delete(&h, &format!("m{i}"));
        h.settle(&format!("m{i}")).await.expect("deleted");
    }
    assert_eq!(h.ctx.memory.remembered(), 0, "per-object memory forgotten");
    assert!(
        !h.metrics.render().contains(r#"name="m7""#),
        "per-object series removed"
    );
    // Clusters nobody uses any more are dropped.
    assert_eq!(h.ctx.clusters.evict_idle(Duration::ZERO).len(), 1);
    assert!(h.ctx.clusters.all().is_empty());
}

#[tokio::test]
async fn a_response_larger_than_the_limit_is_refused_not_buffered() {
    let es = Arc::new(EsStandin::start(StandinConfig::default()).await);
    for i in 0..40 {
        es.insert_endpoint(foreign(&format!("big-{i}"), "claude-sonnet-4-5"));
    }
    let h = Harness::on(
        es,
        Harness::settings(),
        ClusterSettings {
            max_response_bytes: 4096,
            ..ClusterSettings::default()
        },
    );
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", anthropic("small"));
    let err = h.reconcile("claude").await.expect_err("too large");
    assert!(
        err.to_string()
            .contains("--elasticsearch-max-response-bytes"),
        "{err}"
    );
}
