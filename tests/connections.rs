//! Per-resource clusters: ElasticsearchConnections, ECK references, the conflict rule and
//! cluster changes, against two Elasticsearch stand-ins at once (one over TLS with its own CA and
//! API-key authentication).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    es_standin::{EsStandin, Fault, StandinConfig},
    fake_kube::ResourceDef,
    harness::{Harness, NS},
};

const KEY: &str = "sk-ant-api03-CONNECTION-TESTS";
const CONN_KEY: &str = "b-operator-api-key-0001";

fn anthropic(id: &str, reference: Option<Value>) -> Value {
    let mut spec = json!({
        "inferenceId": id,
        "taskType": "completion",
        "service": "anthropic",
        "serviceSettings": {"model_id": "claude-sonnet-4-5"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}},
        "taskSettings": {"max_tokens": 1024}
    });
    if let Some(r) = reference {
        spec["elasticsearchRef"] = r;
    }
    spec
}

/// The default cluster A (plain http) and a second cluster B over TLS with its own CA that
/// requires an API key.
async fn two_clusters() -> (Harness, EsStandin, String) {
    let h = Harness::new().await;
    let b_cfg = StandinConfig {
        cluster_uuid: "uuid-of-cluster-b".into(),
        cluster_name: "cluster-b".into(),
        api_key: Some(CONN_KEY.into()),
        ..StandinConfig::default()
    };
    let (b, ca) = EsStandin::start_tls(b_cfg).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.secret("es-b", &[("api-key", CONN_KEY)]);
    h.config_map("b-ca", &[("ca.crt", &ca)]);
    (h, b, ca)
}

fn conn_b(url: &str) -> Value {
    json!({
        "url": url,
        "auth": {"apiKeySecretRef": {"name": "es-b", "key": "api-key"}},
        "tls": {"ca": {"configMapRef": {"name": "b-ca"}}}
    })
}

fn status(h: &Harness, name: &str) -> es_inference_operator::crd::InferenceEndpointStatus {
    h.get(name).and_then(|o| o.status).expect("status")
}

#[tokio::test]
async fn endpoints_land_on_the_cluster_they_name() {
    let (h, b, _) = two_clusters().await;
    h.connection("b", conn_b(&b.url()));
    h.endpoint("on-a", anthropic("shared-id", None));
    h.endpoint("on-b", anthropic("shared-id", Some(json!({"name": "b"}))));
    h.settle("on-a").await.expect("a");
    h.settle("on-b").await.expect("b");
    assert_eq!(h.ready("on-a").1, "InSync", "{:?}", h.ready("on-a"));
    assert_eq!(h.ready("on-b").1, "InSync", "{:?}", h.ready("on-b"));
    // The same id on two clusters is no conflict.
    assert!(h.es.endpoint("shared-id").is_some() && b.endpoint("shared-id").is_some());
    assert_eq!(
        status(&h, "on-a").cluster_uuid.as_deref(),
        Some(StandinConfig::default().cluster_uuid.as_str())
    );
    assert_eq!(
        status(&h, "on-b").cluster_uuid.as_deref(),
        Some("uuid-of-cluster-b")
    );
    assert_eq!(
        b.endpoint_secrets("shared-id").expect("secrets")["api_key"],
        KEY
    );
    assert!(
        b.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("ApiKey {CONN_KEY}")))
    );

    // The connection reports the cluster and its users.
    h.reconcile_connection("b").await.expect("connection check");
    let st = h.get_connection("b").status.expect("status");
    let ready = st.condition("Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Connected")
    );
    assert_eq!(st.cluster_uuid.as_deref(), Some("uuid-of-cluster-b"));
    assert_eq!(st.cluster_name.as_deref(), Some("cluster-b"));
    assert_eq!(st.version.as_deref(), Some("9.1.0"));
    assert_eq!(st.endpoints, Some(1));
    assert!(st.last_successful_check.is_some());
    // A second check within the resync interval writes nothing.
    h.kube.clear_requests();
    h.reconcile_connection("b").await.expect("connection check");
    assert_eq!(
        h.kube.writes_excluding_events(),
        0,
        "{}",
        h.kubernetes_writes_text()
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_connection_failure_with_a_hint() {
    let (h, b, _) = two_clusters().await;
    let mut spec = conn_b(&b.url());
    spec.as_object_mut().expect("obj").remove("tls");
    h.connection("b", spec);
    h.endpoint("on-b", anthropic("x", Some(json!({"name": "b"}))));
    let _ = h.settle("on-b").await;
    let (ready, reason, message) = h.ready("on-b");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ConnectionFailed")
    );
    assert!(message.contains("tls.ca"), "{message}");
    assert_eq!(b.write_count(), 0);
    let err = h.reconcile_connection("b").await.expect_err("check fails");
    assert!(
        err.to_string().contains("certificate") || err.to_string().to_lowercase().contains("tls"),
        "{err}"
    );
    let st = h.get_connection("b").status.expect("status");
    assert_eq!(
        st.condition("Ready").map(|c| c.reason.as_str()),
        Some("ConnectionFailed")
    );
}

#[tokio::test]
async fn a_wrong_key_fails_and_rotating_the_secret_reauthenticates_without_restart() {
    let (h, b, _) = two_clusters().await;
    h.secret("es-b", &[("api-key", "a-wrong-key-value")]);
    h.connection("b", conn_b(&b.url()));
    h.endpoint("on-b", anthropic("x", Some(json!({"name": "b"}))));
    let _ = h.settle("on-b").await;
    let (_, reason, message) = h.ready("on-b");
    assert_eq!(reason, "ConnectionFailed");
    assert!(message.contains("credentials"), "{message}");
    assert!(!message.contains("a-wrong-key-value"), "never the key");
    assert!(!h.kubernetes_writes_text().contains("a-wrong-key-value"));
    h.secret("es-b", &[("api-key", CONN_KEY)]);
    h.settle("on-b").await.expect("reconciles");
    assert_eq!(h.ready("on-b").1, "InSync");
    assert!(b.endpoint("x").is_some());
}

#[tokio::test]
async fn the_older_resource_owns_an_inference_id_and_the_other_reports_conflict() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("alpha", anthropic("same-id", None));
    h.endpoint("beta", anthropic("same-id", None));
    h.settle("alpha").await.expect("alpha");
    h.es.clear_requests();
    h.settle("beta").await.expect("beta");
    assert_eq!(h.ready("alpha").1, "InSync");
    let (ready, reason, message) = h.ready("beta");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Conflict"));
    assert!(message.contains(&format!("{NS}/alpha")), "{message}");
    assert_eq!(
        h.es.write_count(),
        0,
        "the other never writes: {:?}",
        h.es_writes()
    );
    // Deleting the loser leaves the owner's endpoint alone.
    h.kube
        .mark_deleting("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, "beta");
    h.settle("beta").await.expect("released");
    assert!(h.get("beta").is_none());
    assert!(h.es.endpoint("same-id").is_some());
}

#[tokio::test]
async fn cross_namespace_eck_references_are_refused_by_default() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    let eck = json!({"kind": "Elasticsearch", "name": "quickstart", "namespace": "elastic-system", "useElasticUser": true});
    h.endpoint("x", anthropic("x", Some(eck)));
    h.settle("x").await.expect("reconciles");
    let (ready, reason, message) = h.ready("x");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidReference")
    );
    assert!(
        message.contains("--allow-cross-namespace-refs"),
        "{message}"
    );
    assert_eq!(h.es.write_count(), 0);
}

#[tokio::test]
async fn eck_references_resolve_url_and_credentials_like_eck() {
    let h = Harness::new().await;
    h.kube.register(ResourceDef::custom(
        "elasticsearch.k8s.elastic.co",
        "v1",
        "Elasticsearch",
        "elasticsearches",
        true,
        true,
    ));
    h.secret("anthropic", &[("api-key", KEY)]);
    let eck = json!({"kind": "Elasticsearch", "name": "quickstart", "apiKeySecretRef": {"name": "eck-key", "key": "api-key"}});
    h.endpoint("x", anthropic("x", Some(eck)));
    // No such Elasticsearch yet.
    h.settle("x").await.expect("reconciles");
    let (_, reason, message) = h.ready("x");
    assert_eq!(reason, "InvalidReference");
    assert!(
        message.contains("quickstart") && message.contains("does not exist"),
        "{message}"
    );
    // The cluster exists (TLS disabled) but the API key Secret does not.
    h.kube.insert(json!({
        "apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
        "metadata": {"name": "quickstart", "namespace": NS},
        "spec": {"version": "9.1.0", "http": {"tls": {"selfSignedCertificate": {"disabled": true}}}}
    }));
    h.settle("x").await.expect("reconciles");
    let (_, reason, message) = h.ready("x");
    assert_eq!(reason, "InvalidReference");
    assert!(message.contains("eck-key"), "{message}");
    // With the key, the operator calls the Service ECK creates (not resolvable here).
    h.secret("eck-key", &[("api-key", "eck-api-key")]);
    let _ = h.settle("x").await;
    let (_, reason, message) = h.ready("x");
    assert_eq!(reason, "ConnectionFailed", "{message}");
    assert!(
        message.contains(&format!("quickstart-es-http.{NS}.svc:9200")),
        "{message}"
    );
    assert!(
        message.contains("http://"),
        "TLS disabled means http: {message}"
    );
}

#[tokio::test]
async fn a_changed_cluster_behind_a_connection_gets_the_endpoint_again() {
    let h = Harness::new().await;
    h.secret("anthropic", &[("api-key", KEY)]);
    let other = EsStandin::start(StandinConfig {
        cluster_uuid: "uuid-of-the-new-cluster".into(),
        ..StandinConfig::default()
    })
    .await;
    let first = EsStandin::start(StandinConfig {
        cluster_uuid: "uuid-of-the-first-cluster".into(),
        ..StandinConfig::default()
    })
    .await;
    h.connection("c", json!({"url": first.url()}));
    h.endpoint("x", anthropic("moving", Some(json!({"name": "c"}))));
    h.settle("x").await.expect("reconciles");
    assert!(first.endpoint("moving").is_some());
    // The same connection now reaches another cluster (re-created, or repointed).
    h.connection("c", json!({"url": other.url()}));
    h.settle("x").await.expect("reconciles");
    assert_eq!(h.ready("x").1, "InSync");
    assert!(
        other.endpoint("moving").is_some(),
        "created on the new cluster"
    );
    assert_eq!(
        status(&h, "x").cluster_uuid.as_deref(),
        Some("uuid-of-the-new-cluster")
    );
    assert!(
        h.event_reasons().contains(&"ClusterChanged".to_string()),
        "{:?}",
        h.event_reasons()
    );
}

#[tokio::test]
async fn insecure_skip_verify_is_refused_unless_the_operator_allows_it() {
    let (h, b, _) = two_clusters().await;
    let unverified = json!({
        "url": b.url(),
        "auth": {"apiKeySecretRef": {"name": "es-b", "key": "api-key"}},
        "tls": {"insecureSkipVerify": true}
    });
    h.connection("b", unverified.clone());
    h.endpoint("on-b", anthropic("x", Some(json!({"name": "b"}))));
    h.settle("on-b").await.expect("reconciles");
    let (status, reason, message) = h.ready("on-b");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InsecureConnection")
    );
    assert!(
        message.contains("--allow-insecure-skip-verify"),
        "{message}"
    );
    assert!(b.endpoint("x").is_none(), "nothing was sent");
    assert_eq!(
        b.requests().len(),
        0,
        "not even a request: the key never left"
    );
    h.reconcile_connection("b").await.expect("check");
    let st = h.get_connection("b").status.expect("status");
    assert_eq!(
        st.condition("Ready").expect("ready").reason,
        "InsecureConnection"
    );

    // The operator permits it: it works, with a warning condition on the connection.
    let mut settings = Harness::settings();
    settings.rules.insecure_skip_verify = true;
    let h = Harness::with(StandinConfig::default(), settings, Duration::from_secs(5)).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.secret("es-b", &[("api-key", CONN_KEY)]);
    h.connection("b", unverified);
    h.endpoint("on-b", anthropic("x", Some(json!({"name": "b"}))));
    h.settle("on-b").await.expect("reconciles");
    assert_eq!(h.ready("on-b").1, "InSync");
    h.reconcile_connection("b").await.expect("check");
    let st = h.get_connection("b").status.expect("status");
    let warning = st
        .condition("InsecureSkipVerify")
        .expect("warning condition");
    assert_eq!(warning.status, "True");
    assert!(warning.message.contains("tls.ca"));
}

#[tokio::test]
async fn plaintext_is_refused_by_default() {
    // The operator's real defaults, not the harness's (which allow the stand-in's http://).
    let h = Harness::with(
        StandinConfig::default(),
        Default::default(),
        Duration::from_secs(5),
    )
    .await;
    h.secret("anthropic", &[("api-key", KEY)]);
    let plain = EsStandin::start(StandinConfig::default()).await;
    h.connection("plain", json!({"url": plain.url()}));
    h.endpoint("p", anthropic("p", Some(json!({"name": "plain"}))));
    h.settle("p").await.expect("reconciles");
    let (status, reason, message) = h.ready("p");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InsecureConnection")
    );
    assert!(
        message.contains("--allow-plaintext-elasticsearch"),
        "{message}"
    );
    assert!(
        message.contains("security.allowPlaintextElasticsearch"),
        "{message}"
    );
    assert_eq!(plain.requests().len(), 0, "no request crossed the network");
    // Allowed: a warning condition on the connection says so.
    let mut settings = Harness::settings();
    settings.rules.plaintext = true;
    let h = Harness::with(StandinConfig::default(), settings, Duration::from_secs(5)).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.connection("plain", json!({"url": plain.url()}));
    h.endpoint("p", anthropic("p", Some(json!({"name": "plain"}))));
    h.settle("p").await.expect("reconciles");
    assert_eq!(h.ready("p").1, "InSync");
    h.reconcile_connection("plain").await.expect("check");
    let st = h.get_connection("plain").status.expect("status");
    assert_eq!(st.condition("Plaintext").expect("warning").status, "True");
}

#[tokio::test]
async fn an_unreachable_cluster_backs_off_for_every_resource_that_uses_it() {
    let h = Harness::with(
        StandinConfig::default(),
        Harness::settings(),
        Duration::from_secs(2),
    )
    .await;
    h.secret("anthropic", &[("api-key", KEY)]);
    let flaky = EsStandin::start(StandinConfig::default()).await;
    // Every request is cut off before an answer: a transport failure of the connection.
    flaky.inject(Fault::DropConnection, 1000);
    h.connection("flaky", json!({"url": flaky.url()}));
    h.endpoint("one", anthropic("one", Some(json!({"name": "flaky"}))));
    h.endpoint("two", anthropic("two", Some(json!({"name": "flaky"}))));
    h.reconcile("one").await.expect_err("unreachable");
    let after_first = flaky.requests().len();
    assert!(after_first >= 1);
    // The connection now backs off: the other resource reports the failure without calling.
    h.reconcile("two").await.expect_err("still unreachable");
    assert_eq!(
        flaky.requests().len(),
        after_first,
        "no request while the connection backs off"
    );
    for name in ["one", "two"] {
        let (_, reason, message) = h.ready(name);
        assert_eq!(reason, "ConnectionFailed", "{name}: {message}");
        assert!(message.contains("URL"), "{message}");
    }
}

#[tokio::test]
async fn the_operators_own_key_file_is_read_again_when_it_changes() {
    use es_inference_operator::{
        cluster::{ClusterPool, ClusterSettings, CredentialFile, DefaultTarget},
        connection::Target,
        es::EsAuth,
        lease::Fence,
    };
    let es = EsStandin::start(StandinConfig {
        api_key: Some("key-after-rotation".into()),
        ..StandinConfig::default()
    })
    .await;
    // The chart mounts the Secret as a file; the operator started with the old key.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api-key");
    std::fs::write(&path, "key-before-rotation\n").expect("write");
    let target = Target {
        key: "default".into(),
        url: es.url(),
        auth: EsAuth::ApiKey("key-before-rotation".to_string().into()),
        ca_pem: None,
        insecure_skip_verify: false,
        policy: None,
        home_namespace: None,
    };
    let pool = ClusterPool::new(
        Some(DefaultTarget::new(
            target,
            Some(CredentialFile::ApiKey(path.clone())),
        )),
        ClusterSettings::default(),
        Fence::open(),
        None,
    );
    let current = || {
        pool.get(&pool.default_target().expect("default"))
            .expect("client")
    };
    let err = current().identity().await.expect_err("old key refused");
    assert!(err.to_string().contains("401"), "{err}");

    // The Secret rotates (kubelet swaps the file): the next request after the file is seen
    // changed uses the new key, with no restart.
    std::fs::write(&path, "key-after-rotation\n").expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match current().identity().await {
            Ok(_) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the new key was never used: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = es.requests().pop().expect("a request");
    assert_eq!(
        last.authorization.as_deref(),
        Some("ApiKey key-after-rotation")
    );
}

/// A connection check logs in a span with the connection's namespace and name and an id of its
/// own, like InferenceEndpoint reconciles, so one check's lines can be found and told apart.
#[tokio::test]
async fn connection_checks_log_namespace_name_and_a_reconcile_id() {
    let (_guard, logs) = support::harness::capture_logs();
    let h = Harness::new().await;
    for name in ["one", "two"] {
        h.connection(name, json!({"url": h.es.url()}));
        h.reconcile_connection(name).await.expect("check");
    }
    let text = logs.text();
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let line = text
            .lines()
            .find(|l| {
                l.contains("reconcile_connection{")
                    && l.contains(&format!(" name={name} "))
                    && l.contains("Connected")
            })
            .unwrap_or_else(|| panic!("no line of {name}'s check in:\n{text}"));
        assert!(line.contains(&format!("namespace={NS} ")), "{line}");
        let id = line
            .split("reconcile_id=")
            .nth(1)
            .and_then(|rest| rest.split(['}', ' ']).next())
            .unwrap_or_else(|| panic!("no reconcile_id: {line}"));
        assert!(id.starts_with('c') && id.len() > 1, "{line}");
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1], "each check has its own id");
}

/// The default cluster's CA file (a mounted Secret or ConfigMap that cert-manager or Vault
/// rotates) is read again when its content changes: the next client trusts the new CA, with no
/// restart. A file that holds no certificate or is gone keeps the CA in use.
#[tokio::test]
async fn the_operators_ca_file_is_read_again_when_it_changes() {
    use es_inference_operator::{
        cluster::{ClusterPool, ClusterSettings, DefaultTarget},
        connection::Target,
        es::EsAuth,
        lease::Fence,
    };
    let (es, ca) = EsStandin::start_tls(StandinConfig::default()).await;
    // Another server's CA: the one before the rotation, which did not sign `es`'s certificate.
    let (_other, old_ca) = EsStandin::start_tls(StandinConfig::default()).await;
    assert_ne!(ca, old_ca);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ca.crt");
    std::fs::write(&path, &old_ca).expect("write");
    let target = Target {
        key: "default".into(),
        url: es.url(),
        auth: EsAuth::None,
        ca_pem: Some(old_ca.clone().into_bytes()),
        insecure_skip_verify: false,
        policy: None,
        home_namespace: None,
    };
    let pool = ClusterPool::new(
        Some(
            DefaultTarget::new(target, None)
                .with_ca_file(path.clone())
                .with_check_interval(Duration::ZERO),
        ),
        ClusterSettings::default(),
        Fence::open(),
        None,
    );
    let ca_in_use = || pool.default_target().expect("default").ca_pem;
    let current = || {
        pool.get(&pool.default_target().expect("default"))
            .expect("client")
    };
    let err = current()
        .identity()
        .await
        .expect_err("the old CA did not sign the certificate");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // Half a rotation: a file without a certificate. The CA in use stays.
    std::fs::write(&path, "not a certificate\n").expect("write");
    assert_eq!(ca_in_use().as_deref(), Some(old_ca.as_bytes()));

    // The rotation: the next look at the file takes the new CA, and a new client trusts it.
    std::fs::write(&path, &ca).expect("write");
    assert_eq!(ca_in_use().as_deref(), Some(ca.as_bytes()));
    current().identity().await.expect("the new CA is trusted");

    // The file gone (a volume being swapped): the CA in use stays.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(ca_in_use().as_deref(), Some(ca.as_bytes()));
    current().identity().await.expect("still trusted");
}

/// Without a look at the file (the interval not over), the CA in use is kept as it is: the file is
/// read at most once per interval, not once per request.
#[tokio::test]
async fn the_operators_ca_file_is_looked_at_once_per_interval() {
    use es_inference_operator::{
        cluster::{ClusterPool, ClusterSettings, DefaultTarget},
        connection::Target,
        es::EsAuth,
        lease::Fence,
    };
    let (_es, ca) = EsStandin::start_tls(StandinConfig::default()).await;
    let (_other, new_ca) = EsStandin::start_tls(StandinConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ca.crt");
    std::fs::write(&path, &ca).expect("write");
    let target = Target {
        key: "default".into(),
        url: "https://127.0.0.1:9".into(),
        auth: EsAuth::None,
        ca_pem: Some(ca.clone().into_bytes()),
        insecure_skip_verify: false,
        policy: None,
        home_namespace: None,
    };
    let pool = ClusterPool::new(
        Some(
            DefaultTarget::new(target, None)
                .with_ca_file(path.clone())
                .with_check_interval(Duration::from_secs(3600)),
        ),
        ClusterSettings::default(),
        Fence::open(),
        None,
    );
    std::fs::write(&path, &new_ca).expect("write");
    assert_eq!(
        pool.default_target().expect("default").ca_pem.as_deref(),
        Some(ca.as_bytes())
    );
}

#[tokio::test]
async fn another_namespaces_elastic_superuser_is_refused_unless_allowed() {
    let eck_crd = ResourceDef::custom(
        "elasticsearch.k8s.elastic.co",
        "v1",
        "Elasticsearch",
        "elasticsearches",
        true,
        true,
    );
    let elastic_user = json!({"kind": "Elasticsearch", "name": "quickstart", "namespace": "elastic-system", "useElasticUser": true});
    // Cross-namespace references allowed, the superuser across namespaces not.
    let mut settings = Harness::settings();
    settings.rules.cross_namespace_eck = true;
    let h = Harness::with(
        StandinConfig::default(),
        settings.clone(),
        Duration::from_secs(5),
    )
    .await;
    h.kube.register(eck_crd.clone());
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("x", anthropic("x", Some(elastic_user.clone())));
    h.settle("x").await.expect("reconciles");
    let (ready, reason, message) = h.ready("x");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InsecureConnection")
    );
    assert!(
        message.contains("--allow-cross-namespace-elastic-user"),
        "{message}"
    );
    assert!(
        h.kube.requests_matching("GET", "elastic-system").is_empty(),
        "neither the cluster nor its elastic-user Secret was read"
    );
    // An API key of the resource's own namespace is fine.
    h.endpoint(
        "y",
        anthropic(
            "y",
            Some(
                json!({"kind": "Elasticsearch", "name": "quickstart", "namespace": "elastic-system",
                "apiKeySecretRef": {"name": "eck-key", "key": "api-key"}}),
            ),
        ),
    );
    h.settle("y").await.expect("reconciles");
    let (_, reason, message) = h.ready("y");
    assert_eq!(reason, "InvalidReference", "{message}");
    assert!(message.contains("does not exist"), "{message}");

    // Explicitly allowed: it goes on to the cluster.
    settings.rules.cross_namespace_elastic_user = true;
    let h = Harness::with(StandinConfig::default(), settings, Duration::from_secs(5)).await;
    h.kube.register(eck_crd.clone());
    h.secret("anthropic", &[("api-key", KEY)]);
    h.endpoint("x", anthropic("x", Some(elastic_user)));
    h.settle("x").await.expect("reconciles");
    let (_, reason, message) = h.ready("x");
    assert_eq!(reason, "InvalidReference", "{message}");
    assert!(message.contains("does not exist"), "{message}");

    // ECK with TLS disabled is plaintext: refused under the operator's defaults.
    let h = Harness::with(
        StandinConfig::default(),
        Default::default(),
        Duration::from_secs(5),
    )
    .await;
    h.kube.register(eck_crd);
    h.secret("anthropic", &[("api-key", KEY)]);
    h.secret("eck-key", &[("api-key", "eck-api-key")]);
    h.kube.insert(json!({
        "apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
        "metadata": {"name": "quickstart", "namespace": NS},
        "spec": {"version": "9.1.0", "http": {"tls": {"selfSignedCertificate": {"disabled": true}}}}
    }));
    h.endpoint(
        "z",
        anthropic(
            "z",
            Some(json!({"kind": "Elasticsearch", "name": "quickstart",
                "apiKeySecretRef": {"name": "eck-key", "key": "api-key"}})),
        ),
    );
    h.settle("z").await.expect("reconciles");
    let (_, reason, message) = h.ready("z");
    assert_eq!(reason, "InsecureConnection", "{message}");
    assert!(
        message.contains("--allow-plaintext-elasticsearch"),
        "{message}"
    );
}

#[tokio::test]
async fn cloud_connect_is_enabled_rotated_kept_and_disabled_from_a_secret() {
    const CCM_KEY: &str = "essu_CLOUD-CONNECT-KEY-ONE";
    const CCM_ROTATED: &str = "essu_CLOUD-CONNECT-KEY-TWO";
    let (_guard, logs) = support::harness::capture_logs();
    let h = Harness::new().await;
    h.secret("cloud", &[("api-key", CCM_KEY)]);
    let spec = json!({
        "url": h.es.url(),
        "cloudConnect": {"apiKeySecretRef": {"name": "cloud", "key": "api-key"}}
    });
    h.connection("eis", spec.clone());
    h.reconcile_connection("eis").await.expect("check");
    assert_eq!(h.es.ccm_key().as_deref(), Some(CCM_KEY));
    let st = h.get_connection("eis").status.expect("status");
    let cc = st.cloud_connect.clone().expect("cloudConnect status");
    assert_eq!(cc.enabled, Some(true));
    assert!(
        cc.secret_versions
            .as_deref()
            .is_some_and(|v| v.starts_with("cloud@"))
    );
    assert_eq!(
        st.condition("CloudConnect").expect("condition").status,
        "True"
    );
    assert!(
        h.event_reasons()
            .contains(&"CloudConnectEnabled".to_string())
    );

    // Nothing changed: the key is not sent again, nothing is written.
    h.es.clear_requests();
    let writes = h.kube.writes_excluding_events();
    h.reconcile_connection("eis").await.expect("check");
    let ccm: Vec<String> =
        h.es.requests()
            .iter()
            .filter(|r| r.path == "/_inference/_ccm")
            .map(|r| r.method.clone())
            .collect();
    assert_eq!(ccm, ["GET"], "only a look");
    assert_eq!(h.kube.writes_excluding_events(), writes);

    // Rotated: the new key reaches Elasticsearch.
    h.secret("cloud", &[("api-key", CCM_ROTATED)]);
    h.reconcile_connection("eis").await.expect("check");
    assert_eq!(h.es.ccm_key().as_deref(), Some(CCM_ROTATED));
    assert!(
        h.event_reasons()
            .contains(&"CloudConnectKeyRotated".to_string())
    );

    // Turned off behind the operator's back: turned on again.
    h.es.disable_ccm();
    h.reconcile_connection("eis").await.expect("check");
    assert_eq!(h.es.ccm_key().as_deref(), Some(CCM_ROTATED));

    // The field removed: Cloud Connect, which the operator enabled, is disabled.
    h.connection("eis", json!({"url": h.es.url()}));
    h.reconcile_connection("eis").await.expect("check");
    assert_eq!(h.es.ccm_key(), None);
    let st = h.get_connection("eis").status.expect("status");
    assert!(st.cloud_connect.is_none() && st.condition("CloudConnect").is_none());

    // Neither key was written or logged anywhere.
    for key in [CCM_KEY, CCM_ROTATED] {
        assert!(
            !h.kubernetes_writes_text().contains(key),
            "key in a Kubernetes write"
        );
        assert!(!logs.text().contains(key), "key in the logs");
    }
}

#[tokio::test]
async fn a_cluster_that_forbids_cloud_connect_is_reported_once_not_retried() {
    let h = Harness::new().await;
    h.es.set_ccm_forbidden(true);
    h.secret("cloud", &[("api-key", "essu_KEY")]);
    h.connection(
        "eis",
        json!({"url": h.es.url(),
            "cloudConnect": {"apiKeySecretRef": {"name": "cloud", "key": "api-key"}}}),
    );
    h.reconcile_connection("eis").await.expect("check");
    let st = h.get_connection("eis").status.expect("status");
    let c = st.condition("CloudConnect").expect("condition");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "Forbidden")
    );
    assert!(c.message.contains("Enterprise"), "{}", c.message);
    assert_eq!(
        st.condition("Ready").expect("ready").status,
        "True",
        "the cluster itself is fine"
    );
    // The same inputs are not sent again.
    h.es.clear_requests();
    h.reconcile_connection("eis").await.expect("check");
    assert!(
        h.es.requests().iter().all(|r| r.path != "/_inference/_ccm"),
        "{:?}",
        h.es.requests()
    );
    // A missing Secret is its own reason.
    h.connection(
        "other",
        json!({"url": h.es.url(),
            "cloudConnect": {"apiKeySecretRef": {"name": "missing", "key": "api-key"}}}),
    );
    h.reconcile_connection("other").await.expect("check");
    let st = h.get_connection("other").status.expect("status");
    assert_eq!(
        st.condition("CloudConnect").expect("c").reason,
        "SecretNotFound"
    );
}

#[tokio::test]
async fn a_connection_serves_other_namespaces_only_when_its_policy_selects_them() {
    let h = Harness::new().await;
    let shared = EsStandin::start(StandinConfig::default()).await;
    h.secret("es-key", &[("api-key", "platform-key")]);
    // The platform team's connection, in its own namespace ("search").
    h.connection("shared", json!({"url": shared.url()}));
    for (ns, labels) in [("team-a", json!({"tenant": "true"})), ("team-b", json!({}))] {
        h.kube
            .insert(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels}}));
        h.kube.insert(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "anthropic", "namespace": ns},
            "data": {"api-key": "c2stYW50LWtleQ=="}}));
    }
    let spec = |id: &str| anthropic(id, Some(json!({"name": "shared", "namespace": NS})));
    // No policy: the connection serves its own namespace only.
    h.endpoint_in("team-a", "x", spec("team-a-x"));
    let (status, reason, message) = h.settle_in("team-a", "x").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PolicyViolation"),
        "{message}"
    );
    assert!(shared.requests().is_empty(), "nothing sent");

    // A policy that admits namespaces labelled tenant=true, with their prefix.
    h.connection(
        "shared",
        json!({"url": shared.url(), "policy": {
            "namespaceSelector": {"matchLabels": {"tenant": "true"}},
            "inferenceIdPrefix": "{namespace}-"}}),
    );
    let (_, reason, message) = h.settle_in("team-a", "x").await;
    assert_eq!(reason, "InSync", "{message}");
    assert!(shared.endpoint("team-a-x").is_some());
    // team-b is not selected; a same-named connection of its own is not used instead.
    h.kube.insert(
        json!({"apiVersion": "es-inference.dev/v1alpha1", "kind": "ElasticsearchConnection",
        "metadata": {"name": "shared", "namespace": "team-b", "generation": 1},
        "spec": {"url": h.es.url()}}),
    );
    h.endpoint_in("team-b", "y", spec("team-b-y"));
    let (_, reason, message) = h.settle_in("team-b", "y").await;
    assert_eq!(reason, "PolicyViolation", "{message}");
    assert!(message.contains("namespaceSelector"), "{message}");
    assert!(shared.endpoint("team-b-y").is_none() && h.es.endpoint("team-b-y").is_none());
    // The connection counts the resources that use it, wherever they are.
    h.reconcile_connection("shared").await.expect("check");
    let st = h.get_connection("shared").status.expect("status");
    assert_eq!(st.endpoints, Some(2));
}

#[tokio::test]
async fn secret_references_to_other_namespaces_are_refused_everywhere() {
    let h = Harness::new().await;
    let b = EsStandin::start(StandinConfig::default()).await;
    h.secret("anthropic", &[("api-key", KEY)]);
    h.connection(
        "c",
        json!({"url": b.url(), "auth": {"apiKeySecretRef":
            {"name": "es-key", "key": "api-key", "namespace": "kube-system"}}}),
    );
    h.endpoint("x", anthropic("x", Some(json!({"name": "c"}))));
    h.settle("x").await.expect("reconciles");
    let (_, reason, message) = h.ready("x");
    assert_eq!(reason, "InvalidReference", "{message}");
    assert!(
        message.contains("other namespaces are refused"),
        "{message}"
    );
    assert!(
        h.kube
            .requests_matching("GET", "/namespaces/kube-system/")
            .is_empty(),
        "the other namespace's Secret was never read"
    );
    h.connection(
        "cc",
        json!({"url": b.url(), "cloudConnect": {"apiKeySecretRef":
            {"name": "cloud", "key": "api-key", "namespace": "kube-system"}}}),
    );
    h.reconcile_connection("cc").await.expect("check");
    let st = h.get_connection("cc").status.expect("status");
    let c = st.condition("CloudConnect").expect("condition");
    assert_eq!(c.reason, "SecretNotFound");
    assert!(
        c.message.contains("other namespaces are refused"),
        "{}",
        c.message
    );
    assert_eq!(b.ccm_key(), None);
}
