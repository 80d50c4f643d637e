//! The controls users have over a resource, each against the real reconciler, the Kubernetes
//! fake and the Elasticsearch stand-in: pause, reconcile now, Observe, the deletion policy in
//! effect, the tenancy rules of a shared cluster, EIS model lifecycle warnings, and `import`.

mod support;

use std::time::Duration;

use clap::Parser;
use es_inference_operator::{
    config::{Cli, Command},
    crd::DeletionPolicy,
};
use serde_json::{Value, json};
use support::{
    es_standin::{EsStandin, StandinConfig},
    harness::{Harness, NS},
};

const KEY: &str = "sk-ant-api03-FIRST-SECRET-VALUE";
const ROTATED: &str = "sk-ant-api03-ROTATED-SECRET-VALUE";
const ID: &str = "claude-completion";

fn anthropic() -> Value {
    json!({
        "inferenceId": ID,
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
    assert_eq!(h.ready("claude").1, "InSync", "{:?}", h.ready("claude"));
}

/// Set (or remove, with `None`) an annotation, as `kubectl annotate` would: no new generation.
fn annotate(h: &Harness, name: &str, key: &str, value: Option<&str>) {
    let mut obj = h.raw(name);
    let annotations = obj["metadata"]
        .as_object_mut()
        .expect("metadata")
        .entry("annotations")
        .or_insert_with(|| json!({}));
    match value {
        Some(v) => annotations[key] = json!(v),
        None => {
            annotations.as_object_mut().expect("map").remove(key);
        }
    }
    h.kube.insert(obj);
}

fn delete(h: &Harness, name: &str) {
    h.kube
        .mark_deleting("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, name);
}

fn namespace(h: &Harness, labels: Value, annotations: Value) {
    h.kube.insert(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": labels, "annotations": annotations},
    }));
}

fn condition(h: &Harness, name: &str, type_: &str) -> Option<(String, String)> {
    h.get(name).and_then(|o| o.status).and_then(|s| {
        s.condition(type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    })
}

#[tokio::test]
async fn pause_holds_every_change_and_resuming_lands_them() {
    let h = Harness::new().await;
    created(&h).await;
    annotate(&h, "claude", "es-inference.dev/paused", Some("true"));
    h.settle("claude").await.expect("paused");
    assert_eq!(
        condition(&h, "claude", "Paused"),
        Some(("True".into(), "Paused".into()))
    );
    assert_eq!(h.ready("claude").0, "True", "Ready describes the endpoint");
    // While paused: the Secret rotates and the spec changes; nothing is sent.
    h.es.clear_requests();
    h.secret("anthropic", &[("api-key", ROTATED)]);
    h.edit("claude", |s| s["taskSettings"]["max_tokens"] = json!(2048));
    h.settle("claude").await.expect("still paused");
    assert!(h.es.requests().is_empty(), "{:?}", h.es.requests());
    // A delete waits too: the endpoint stays, the finalizer holds the resource.
    // (Checked on a second resource so that this one can resume.)
    h.endpoint("other", {
        let mut s = anthropic();
        s["inferenceId"] = json!("other-completion");
        s
    });
    h.settle("other").await.expect("reconciles");
    annotate(&h, "other", "es-inference.dev/paused", Some("true"));
    delete(&h, "other");
    h.settle("other").await.expect("waits");
    assert!(h.exists("other"), "the finalizer waits while paused");
    assert!(h.es.endpoint("other-completion").is_some());

    // Resumed: both pending changes land in one pass.
    annotate(&h, "claude", "es-inference.dev/paused", None);
    h.settle("claude").await.expect("resumes");
    assert_eq!(h.ready("claude").1, "InSync");
    assert_eq!(
        h.es.endpoint_secrets(ID).expect("secrets")["api_key"],
        ROTATED
    );
    assert_eq!(
        h.es.endpoint(ID).expect("ep")["task_settings"]["max_tokens"],
        2048
    );
    assert_eq!(condition(&h, "claude", "Paused"), None);
    assert!(h.event_reasons().contains(&"Resumed".to_string()));
    annotate(&h, "other", "es-inference.dev/paused", None);
    h.settle("other").await.expect("deleted");
    assert!(!h.exists("other"));
    assert!(h.es.endpoint("other-completion").is_none());
}

#[tokio::test]
async fn reconcile_now_reads_afresh_once_per_request() {
    let h = Harness::new().await;
    created(&h).await;
    // A change behind the operator's back, inside its resync interval: not seen yet.
    h.es.modify_endpoint(ID, |ep| ep["task_settings"]["max_tokens"] = json!(1));
    h.settle("claude").await.expect("quiet");
    assert_eq!(
        h.es.endpoint(ID).expect("ep")["task_settings"]["max_tokens"],
        1
    );
    // Asked to reconcile now: a fresh read, the drift corrected, the request recorded.
    annotate(
        &h,
        "claude",
        "es-inference.dev/reconcile-requested-at",
        Some("2026-11-30T10:00:00Z"),
    );
    h.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es.endpoint(ID).expect("ep")["task_settings"]["max_tokens"],
        1024
    );
    let st = h.get("claude").and_then(|o| o.status).expect("status");
    assert_eq!(
        st.last_handled_reconcile_at.as_deref(),
        Some("2026-11-30T10:00:00Z")
    );
    // The same request is handled once: later passes are quiet again.
    h.es.clear_requests();
    let writes = h.kube.writes_excluding_events();
    h.settle("claude").await.expect("quiet");
    assert!(
        h.es.requests()
            .iter()
            .all(|r| r.method != "GET" || !r.path.contains(ID)),
        "{:?}",
        h.es.requests()
    );
    assert_eq!(h.kube.writes_excluding_events(), writes);
    // Flux's annotation works the same way.
    h.es.modify_endpoint(ID, |ep| ep["task_settings"]["max_tokens"] = json!(2));
    annotate(
        &h,
        "claude",
        "reconcile.fluxcd.io/requestedAt",
        Some("flux-1"),
    );
    annotate(
        &h,
        "claude",
        "es-inference.dev/reconcile-requested-at",
        None,
    );
    h.settle("claude").await.expect("reconciles");
    assert_eq!(
        h.es.endpoint(ID).expect("ep")["task_settings"]["max_tokens"],
        1024
    );
}

fn observe_elser() -> Value {
    json!({
        "inferenceId": ".elser-2-elasticsearch",
        "taskType": "sparse_embedding",
        "service": "elasticsearch",
        "managementPolicy": "Observe",
        "serviceSettings": {"model_id": ".elser_model_2", "num_threads": 1,
            "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0,
                "max_number_of_allocations": 32}}
    })
}

#[tokio::test]
async fn observe_reports_and_never_writes_or_deletes() {
    let h = Harness::new().await;
    // Not there: reported, never created.
    h.endpoint("missing", {
        let mut s = observe_elser();
        s["inferenceId"] = json!("elser-nobody-made");
        s
    });
    h.settle("missing").await.expect("reconciles");
    let (status, reason, _) = h.ready("missing");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NotFound"));
    assert!(h.es_writes().is_empty(), "{:?}", h.es_writes());

    // Elasticsearch's preconfigured ELSER endpoint, watched.
    h.endpoint("elser", observe_elser());
    h.settle("elser").await.expect("reconciles");
    let (status, reason, _) = h.ready("elser");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Observed"));
    assert!(
        h.get("elser")
            .and_then(|o| o.status)
            .and_then(|s| s.ownership)
            .is_none()
    );

    // It changes in Elasticsearch: reported as drift, not corrected.
    h.es.modify_endpoint(".elser-2-elasticsearch", |ep| {
        ep["service_settings"]["num_threads"] = json!(4);
    });
    annotate(
        &h,
        "elser",
        "es-inference.dev/reconcile-requested-at",
        Some("2"),
    );
    h.settle("elser").await.expect("reconciles");
    let (status, reason, message) = h.ready("elser");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "DriftDetected")
    );
    assert!(message.contains("num_threads"), "{message}");
    assert!(h.es_writes().is_empty(), "{:?}", h.es_writes());

    // Observing needs no finalizer: deleting the resource is the API server's business.
    let finalizers = h
        .get("elser")
        .and_then(|o| o.metadata.finalizers)
        .unwrap_or_default();
    assert!(finalizers.is_empty(), "{finalizers:?}");

    // A managed resource switched to Observe is released on delete: the endpoint stays.
    created(&h).await;
    h.edit("claude", |s| s["managementPolicy"] = json!("Observe"));
    h.settle("claude").await.expect("observes");
    assert_eq!(h.ready("claude").1, "Observed");
    h.es.clear_requests();
    delete(&h, "claude");
    h.settle("claude").await.expect("released");
    assert!(!h.exists("claude"));
    assert!(h.es.endpoint(ID).is_some());
    assert!(h.es_writes().is_empty(), "{:?}", h.es_writes());
}

#[tokio::test]
async fn the_deletion_policy_comes_from_the_spec_then_the_namespace_then_the_operator() {
    // The operator's default is Retain.
    let mut settings = Harness::settings();
    settings.default_deletion_policy = DeletionPolicy::Retain;
    let h = Harness::with(StandinConfig::default(), settings, Duration::from_secs(5)).await;
    created(&h).await;
    let st = h.get("claude").and_then(|o| o.status).expect("status");
    assert_eq!(st.deletion_policy, Some(DeletionPolicy::Retain));
    delete(&h, "claude");
    h.settle("claude").await.expect("released");
    assert!(!h.exists("claude"));
    assert!(
        h.es.endpoint(ID).is_some(),
        "retained by the operator default"
    );

    // The namespace says Delete: it wins over the operator.
    let h = Harness::with(
        StandinConfig::default(),
        {
            let mut s = Harness::settings();
            s.default_deletion_policy = DeletionPolicy::Retain;
            s
        },
        Duration::from_secs(5),
    )
    .await;
    namespace(
        &h,
        json!({}),
        json!({"es-inference.dev/deletion-policy": "Delete"}),
    );
    created(&h).await;
    delete(&h, "claude");
    h.settle("claude").await.expect("deleted");
    assert!(h.es.endpoint(ID).is_none(), "deleted as the namespace says");

    // The spec says Retain: it wins over the namespace.
    let h = Harness::new().await;
    namespace(
        &h,
        json!({}),
        json!({"es-inference.dev/deletion-policy": "Delete"}),
    );
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("claude", {
        let mut s = anthropic();
        s["deletionPolicy"] = json!("Retain");
        s
    });
    h.settle("claude").await.expect("reconciles");
    delete(&h, "claude");
    h.settle("claude").await.expect("released");
    assert!(h.es.endpoint(ID).is_some(), "retained as the spec says");
}

#[tokio::test]
async fn a_namespace_that_cannot_be_read_never_turns_a_retain_into_a_delete() {
    let h = Harness::new().await;
    namespace(
        &h,
        json!({}),
        json!({"es-inference.dev/deletion-policy": "Retain"}),
    );
    created(&h).await;
    // The namespace is cached for 30 s; a fresh operator (restart) has to read it.
    let h2 = Harness::on(h.es.clone(), Harness::settings(), Default::default());
    h2.kube.insert(h.raw("claude"));
    h2.secret("anthropic", &[("api-key", KEY)]);
    h2.kube.insert(
        h.kube
            .get("v1", "Namespace", "", NS)
            .expect("namespace object"),
    );
    delete(&h2, "claude");
    h2.kube.fail_next("GET", "/api/v1/namespaces/search", 500);
    let err = h2
        .reconcile("claude")
        .await
        .expect_err("retried, not guessed");
    assert!(err.to_string().contains("namespace"), "{err}");
    assert!(h.es.endpoint(ID).is_some(), "not deleted on a guess");
    // The namespace answers again: its Retain is honoured.
    h2.settle("claude").await.expect("released");
    assert!(!h2.exists("claude"));
    assert!(h.es.endpoint(ID).is_some(), "retained");
}

#[tokio::test]
async fn a_shared_cluster_enforces_its_id_prefix_and_adopt_rule() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    namespace(&h, json!({"team": "search"}), json!({}));
    let shared = EsStandin::start(StandinConfig::default()).await;
    h.connection(
        "shared",
        json!({
            "url": shared.url(),
            "policy": {
                "inferenceIdPrefix": "{namespace}-",
                "adoptNamespaceSelector": {"matchLabels": {"platform": "true"}}
            }
        }),
    );
    let on_shared = |id: &str| {
        let mut s = anthropic();
        s["inferenceId"] = json!(id);
        s["elasticsearchRef"] = json!({"name": "shared"});
        s
    };
    h.endpoint("bad", on_shared("claude"));
    h.settle("bad").await.expect("reconciles");
    let (status, reason, message) = h.ready("bad");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PolicyViolation")
    );
    assert!(message.contains("\"search-\""), "{message}");
    assert!(shared.requests().is_empty(), "nothing sent");

    h.endpoint("good", on_shared("search-claude"));
    h.settle("good").await.expect("reconciles");
    assert_eq!(h.ready("good").1, "InSync");
    assert!(shared.endpoint("search-claude").is_some());

    // Adopting someone's endpoint needs a namespace the policy allows.
    shared.insert_endpoint(json!({
        "inference_id": "search-legacy", "task_type": "completion", "service": "anthropic",
        "service_settings": {"model_id": "claude-sonnet-4-5", "api_key": "their-key"},
        "task_settings": {"max_tokens": 10}
    }));
    h.endpoint("adopter", {
        let mut s = on_shared("search-legacy");
        s["adopt"] = json!(true);
        s
    });
    h.settle("adopter").await.expect("reconciles");
    let (status, reason, message) = h.ready("adopter");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PolicyViolation")
    );
    assert!(message.contains("adoptNamespaceSelector"), "{message}");
    assert_eq!(
        shared.endpoint("search-legacy").expect("ep")["task_settings"]["max_tokens"],
        10,
        "untouched"
    );
    assert!(
        shared
            .requests()
            .iter()
            .all(|r| r.method == "GET" || !r.path.contains("search-legacy")),
        "no write to it"
    );
}

#[tokio::test]
async fn a_deprecated_eis_model_is_reported() {
    let h = Harness::new().await;
    created(&h).await;
    h.es.modify_endpoint(ID, |ep| {
        ep["metadata"] =
            json!({"heuristics": {"status": "deprecated", "end_of_life_date": "2099-01-01"}});
    });
    annotate(
        &h,
        "claude",
        "es-inference.dev/reconcile-requested-at",
        Some("1"),
    );
    h.settle("claude").await.expect("reconciles");
    let st = h.get("claude").and_then(|o| o.status).expect("status");
    let lifecycle = st.model_lifecycle.clone().expect("lifecycle");
    assert_eq!(lifecycle.status.as_deref(), Some("deprecated"));
    let c = st.condition("ModelDeprecated").expect("condition");
    assert_eq!(c.status, "True");
    assert!(c.message.contains("2099-01-01"), "{}", c.message);
    assert_eq!(h.ready("claude").1, "InSync", "still served");
    assert!(h.event_reasons().contains(&"ModelDeprecated".to_string()));
}

#[tokio::test]
async fn import_then_apply_adopts_without_creating_anything() {
    let source = Harness::new().await;
    created(&source).await;
    assert!(source.es.endpoint(".elser-2-elasticsearch").is_some());
    let args = match Cli::try_parse_from([
        "es-inference-operator",
        "import",
        "--elasticsearch-url",
        &source.es.url(),
        "-n",
        NS,
    ])
    .expect("flags")
    .command
    {
        Command::Import(a) => a,
        _ => unreachable!(),
    };
    let out = es_inference_operator::import::run(&args)
        .await
        .expect("import");
    assert!(!out.contains(KEY), "no secret in the output");
    assert!(
        !out.contains(".elser-2"),
        "preconfigured endpoints are left out"
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).expect("yaml");
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert_eq!(docs.len(), 2, "{out}");

    // Another operator (a new install) applies them, the Secret stub filled in.
    let h = Harness::on(source.es.clone(), Harness::settings(), Default::default());
    for mut d in docs {
        if d["kind"] == "Secret" {
            let key = d["stringData"]
                .as_object()
                .expect("data")
                .keys()
                .next()
                .cloned();
            d["stringData"][key.expect("a key")] = json!(KEY);
            // The fake stores `data`, base64, as the API server would.
            let data: Vec<(String, String)> = d["stringData"]
                .as_object()
                .expect("data")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("str").to_string()))
                .collect();
            let name = d["metadata"]["name"].as_str().expect("name").to_string();
            let pairs: Vec<(&str, &str)> =
                data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            h.secret(&name, &pairs);
        } else {
            h.kube.insert(d);
        }
    }
    h.es.clear_requests();
    let name = es_inference_operator::import::object_name(ID);
    h.settle(&name).await.expect("reconciles");
    assert_eq!(h.ready(&name).1, "InSync", "{:?}", h.ready(&name));
    assert_eq!(h.ownership(&name).as_deref(), Some("Adopted"));
    assert!(
        h.es_writes().iter().all(
            |w| w != "PUT /_inference/completion/claude-completion" && !w.starts_with("DELETE")
        ),
        "adopted, not created: {:?}",
        h.es_writes()
    );
}

#[tokio::test]
async fn an_eis_model_past_its_end_of_life_is_reported_and_its_metadata_is_never_drift() {
    let h = Harness::new().await;
    h.es.set_eis_metadata(
        "rainbow-sprinkles",
        json!({"heuristics": {"properties": ["multilingual"], "status": "ga",
            "release_date": "2025-01-01", "end_of_life_date": "2026-01-01"},
            "display": {"name": "Rainbow Sprinkles", "model_creator": "Elastic"}}),
    );
    h.endpoint(
        "eis",
        json!({"inferenceId": "eis-chat", "taskType": "chat_completion", "service": "elastic",
            "serviceSettings": {"model_id": "rainbow-sprinkles"}}),
    );
    h.settle("eis").await.expect("reconciles");
    assert_eq!(h.ready("eis").1, "InSync");
    assert_eq!(
        condition(&h, "eis", "ModelDeprecated"),
        Some(("True".into(), "ModelEndOfLife".into()))
    );
    assert!(h.event_reasons().contains(&"ModelEndOfLife".to_string()));
    // The metadata is Elasticsearch's own: never compared, never sent back.
    h.es.clear_requests();
    annotate(
        &h,
        "eis",
        "es-inference.dev/reconcile-requested-at",
        Some("1"),
    );
    h.settle("eis").await.expect("quiet");
    assert!(h.es_writes().is_empty(), "{:?}", h.es_writes());
    assert_eq!(
        condition(&h, "eis", "ModelDeprecated"),
        Some(("True".into(), "ModelEndOfLife".into())),
        "kept by passes that read the endpoint again"
    );
}

#[tokio::test]
async fn adopting_reads_the_endpoint_itself_never_a_stale_list() {
    let h = Harness::new().await;
    created(&h).await; // the operator now holds a list of the cluster
    h.es.insert_endpoint(json!({
        "inference_id": "legacy", "task_type": "completion", "service": "anthropic",
        "service_settings": {"model_id": "claude-sonnet-4-5", "api_key": "their-key"},
        "task_settings": {"max_tokens": 1024}
    }));
    h.es.clear_requests();
    h.endpoint("legacy", {
        let mut s = anthropic();
        s["inferenceId"] = json!("legacy");
        s["adopt"] = json!(true);
        s
    });
    h.settle("legacy").await.expect("reconciles");
    assert_eq!(h.ownership("legacy").as_deref(), Some("Adopted"));
    assert!(
        !h.es_writes()
            .contains(&"PUT /_inference/completion/legacy".to_string()),
        "no create was even attempted: {:?}",
        h.es_writes()
    );
}
