//! Reconciler test harness: the real `reconcile` against the Kubernetes fake and the
//! Elasticsearch stand-in, with log capture for secret-leak checks.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use es_inference_operator::{
    cluster::{ClusterPool, ClusterSettings, DefaultTarget},
    connection::Target,
    context::{Context, Settings},
    crd::{ElasticsearchConnection, InferenceEndpoint},
    error::Error,
    es::EsAuth,
    guard::Watched,
    lease::Fence,
    metrics::Metrics,
    reconcile::{error_policy, reconcile},
};
use kube::runtime::{controller::Action, events::Reporter, reflector, watcher};
use serde_json::{Value, json};

use super::{
    es_standin::{EsStandin, StandinConfig},
    fake_kube::{FakeKube, ResourceDef},
};

pub const NS: &str = "search";

pub struct Harness {
    pub kube: FakeKube,
    pub es: Arc<EsStandin>,
    pub ctx: Arc<Context>,
    pub metrics: Arc<Metrics>,
    peers: Mutex<reflector::store::Writer<Watched>>,
    /// The Secret metadata store, once `watch_secrets` made one (as the controller's watch).
    secret_meta: Mutex<Option<(SecretMetaWriter, tokio::sync::watch::Sender<bool>)>>,
}

type SecretMetaWriter =
    reflector::store::Writer<kube::api::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>;

impl Harness {
    /// The operator's settings with one difference: the stand-in speaks plain `http://`, which
    /// the operator refuses by default, so these allow it.
    pub fn settings() -> Settings {
        let mut s = Settings::default();
        s.rules.plaintext = true;
        s
    }

    pub async fn new() -> Self {
        Self::with(
            StandinConfig::default(),
            Self::settings(),
            Duration::from_secs(5),
        )
        .await
    }

    pub async fn with(cfg: StandinConfig, settings: Settings, es_timeout: Duration) -> Self {
        let es = Arc::new(EsStandin::start(cfg).await);
        Self::on(
            es,
            settings,
            ClusterSettings {
                request_timeout: es_timeout,
                ..ClusterSettings::default()
            },
        )
    }

    /// An operator (its own Kubernetes fake and memory) on an Elasticsearch stand-in that may
    /// be shared with another harness: two operator installs on one cluster.
    pub fn on(es: Arc<EsStandin>, settings: Settings, cluster: ClusterSettings) -> Self {
        Self::on_with_fence(es, settings, cluster, Fence::open())
    }

    pub fn on_with_fence(
        es: Arc<EsStandin>,
        settings: Settings,
        cluster: ClusterSettings,
        fence: Fence,
    ) -> Self {
        let api_key = es.config().api_key.clone();
        let kube = FakeKube::new();
        let metrics = Arc::new(Metrics::new());
        let default = Target {
            key: "default".into(),
            url: es.url(),
            auth: api_key
                .map(|k| EsAuth::ApiKey(k.into()))
                .unwrap_or_default(),
            ca_pem: None,
            insecure_skip_verify: false,
            policy: None,
            home_namespace: None,
        };
        let pool = ClusterPool::new(
            Some(DefaultTarget::new(default, None)),
            ClusterSettings {
                max_concurrency: 4,
                refresh: settings.resync,
                ..cluster
            },
            fence.clone(),
            Some(metrics.clone()),
        );
        let reporter = Reporter {
            controller: "es-inference-operator".into(),
            instance: Some("test".into()),
        };
        let (peers, writer) = reflector::store();
        kube.register(ResourceDef::custom(
            "es-inference.dev",
            "v1alpha1",
            "ElasticsearchConnection",
            "elasticsearchconnections",
            true,
            true,
        ));
        let ctx = Context::new(
            kube.client(),
            pool,
            metrics.clone(),
            settings,
            reporter,
            fence,
        );
        ctx.add_store(peers);
        Self {
            kube,
            es,
            ctx: Arc::new(ctx),
            metrics,
            peers: Mutex::new(writer),
            secret_meta: Mutex::new(None),
        }
    }

    /// Make the conflict rule see every InferenceEndpoint in the fake, as the controller's cache
    /// would.
    pub fn sync_peers(&self) {
        let mut writer = self.peers.lock().expect("peers");
        let all: Vec<Watched> = self
            .kube
            .list("es-inference.dev/v1alpha1", "InferenceEndpoint", None)
            .into_iter()
            .filter_map(|v| serde_json::from_str(&v.to_string()).ok())
            .collect();
        writer.apply_watcher_event(&watcher::Event::Init);
        for ie in all {
            writer.apply_watcher_event(&watcher::Event::InitApply(ie));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }

    /// Give the operator a Secret metadata store, as the controller's Secret watch does, holding
    /// the Secrets the fake has now (call `sync_secrets` after changing them).
    pub fn watch_secrets(&self) {
        let (store, writer) = reflector::store();
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.ctx.secret_reads.add_store(None, store, rx);
        *self.secret_meta.lock().expect("secret meta") = Some((writer, tx));
        self.sync_secrets();
    }

    /// Make the Secret metadata store show the Secrets the fake has now.
    pub fn sync_secrets(&self) {
        let mut guard = self.secret_meta.lock().expect("secret meta");
        let Some((writer, synced)) = guard.as_mut() else {
            return;
        };
        writer.apply_watcher_event(&watcher::Event::Init);
        for v in self.kube.list("v1", "Secret", None) {
            let m = kube::api::PartialObjectMeta::<k8s_openapi::api::core::v1::Secret> {
                metadata: serde_json::from_value(v["metadata"].clone()).expect("metadata"),
                ..Default::default()
            };
            writer.apply_watcher_event(&watcher::Event::InitApply(m));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let _ = synced.send(true);
    }

    /// GET requests for Secrets the operator sent.
    pub fn secret_reads(&self) -> usize {
        self.kube
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/secrets/"))
            .count()
    }

    pub fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let string_data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        use base64::Engine;
        let data: serde_json::Map<String, Value> = string_data
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!(
                        base64::engine::general_purpose::STANDARD
                            .encode(v.as_str().unwrap_or_default())
                    ),
                )
            })
            .collect();
        self.kube.insert(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "data": data,
        }));
    }

    pub fn config_map(&self, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        self.kube.insert(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS},
            "data": data,
        }));
    }

    /// Insert or replace an ElasticsearchConnection given its spec.
    /// A spec change keeps the status, as on a real API server.
    pub fn connection(&self, name: &str, spec: Value) {
        let existing = self.kube.get(
            "es-inference.dev/v1alpha1",
            "ElasticsearchConnection",
            NS,
            name,
        );
        let generation = existing
            .as_ref()
            .and_then(|c| c["metadata"]["generation"].as_i64())
            .map_or(1, |g| g + 1);
        let mut obj = json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "ElasticsearchConnection",
            "metadata": {"name": name, "namespace": NS, "generation": generation},
            "spec": spec,
        });
        if let Some(status) = existing.as_ref().and_then(|c| c.get("status")) {
            obj["status"] = status.clone();
        }
        self.kube.insert(obj);
    }

    pub fn get_connection(&self, name: &str) -> ElasticsearchConnection {
        self.kube
            .get_typed::<ElasticsearchConnection>(NS, name)
            .unwrap_or_else(|| panic!("no ElasticsearchConnection {name}"))
    }

    pub async fn reconcile_connection(&self, name: &str) -> Result<Action, Error> {
        self.sync_peers();
        es_inference_operator::connection_status::reconcile(
            Arc::new(self.get_connection(name)),
            self.ctx.clone(),
        )
        .await
    }

    /// Insert an InferenceEndpoint given its spec.
    pub fn endpoint(&self, name: &str, spec: Value) {
        self.kube.insert(json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }));
    }

    /// Replace the spec, as `kubectl apply` would (bumps generation).
    pub fn edit(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut obj = self.raw(name);
        f(&mut obj["spec"]);
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
        obj["metadata"]["generation"] = json!(generation + 1);
        self.kube.insert(obj);
    }

    pub fn raw(&self, name: &str) -> Value {
        self.kube
            .get("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, name)
            .unwrap_or_else(|| panic!("no InferenceEndpoint {name}"))
    }

    /// Whether the object exists (decodable or not).
    pub fn exists(&self, name: &str) -> bool {
        self.kube
            .get("es-inference.dev/v1alpha1", "InferenceEndpoint", NS, name)
            .is_some()
    }

    pub fn get(&self, name: &str) -> Option<InferenceEndpoint> {
        self.kube.get_typed::<InferenceEndpoint>(NS, name)
    }

    /// The object as the controller's cache would hold it (decoded leniently).
    pub fn watched(&self, name: &str) -> Watched {
        serde_json::from_str(&self.raw(name).to_string()).expect("decodes as Watched")
    }

    pub async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        self.sync_peers();
        reconcile(Arc::new(self.watched(name)), self.ctx.clone()).await
    }

    /// An InferenceEndpoint in another namespace than `NS`.
    pub fn endpoint_in(&self, namespace: &str, name: &str, spec: Value) {
        self.kube.insert(json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }));
    }

    /// Reconcile an InferenceEndpoint of another namespace until a pass writes nothing (as
    /// `settle`); returns its (Ready status, reason, message).
    pub async fn settle_in(&self, namespace: &str, name: &str) -> (String, String, String) {
        for _ in 0..6 {
            let before = self.kube.writes_excluding_events();
            self.sync_peers();
            let raw = self
                .kube
                .get(
                    "es-inference.dev/v1alpha1",
                    "InferenceEndpoint",
                    namespace,
                    name,
                )
                .unwrap_or_else(|| panic!("no InferenceEndpoint {namespace}/{name}"));
            let watched: Watched = serde_json::from_str(&raw.to_string()).expect("decodes");
            let _ = reconcile(Arc::new(watched), self.ctx.clone()).await;
            if self.kube.writes_excluding_events() == before {
                break;
            }
        }
        let obj: InferenceEndpoint = self
            .kube
            .get_typed(namespace, name)
            .unwrap_or_else(|| panic!("no InferenceEndpoint {namespace}/{name}"));
        let c = obj
            .status
            .as_ref()
            .and_then(|s| s.condition("Ready").cloned())
            .unwrap_or_else(|| panic!("no Ready condition on {namespace}/{name}"));
        (c.status, c.reason, c.message)
    }

    /// What the controller's error policy would do with this error.
    pub fn error_policy(&self, name: &str, err: &Error) -> Action {
        error_policy(Arc::new(self.watched(name)), err, self.ctx.clone())
    }

    /// Reconcile until a pass writes nothing to Kubernetes (at most 6 passes), as the
    /// controller would after each of its own writes. Returns the last result.
    pub async fn settle(&self, name: &str) -> Result<Action, Error> {
        let mut last = None;
        for _ in 0..6 {
            let before = self.kube.writes_excluding_events();
            let r = self.reconcile(name).await;
            let wrote = self.kube.writes_excluding_events() != before;
            let done = !wrote || self.get(name).is_none();
            last = Some(r);
            if done {
                break;
            }
        }
        last.expect("at least one pass")
    }

    /// Reconcile until a pass succeeds and writes nothing, within `deadline` (passes that fail
    /// fast while a connection backs off are repeated, as the controller would when its
    /// requeue comes).
    pub async fn settle_within(&self, name: &str, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if !self.exists(name) {
                return;
            }
            let before = self.kube.writes_excluding_events();
            let r = self.reconcile(name).await;
            let wrote = self.kube.writes_excluding_events() != before;
            if r.is_ok() && !wrote {
                return;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{name} did not settle within {deadline:?}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (Ready status, reason, message) of the object.
    pub fn ready(&self, name: &str) -> (String, String, String) {
        let obj = self.get(name).expect("object");
        let c = obj
            .status
            .as_ref()
            .and_then(|s| s.condition("Ready").cloned())
            .unwrap_or_else(|| panic!("no Ready condition on {name}"));
        (c.status, c.reason, c.message)
    }

    /// `status.ownership` of the object, as written (`Created`, `Adopted`, …).
    pub fn ownership(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|o| o.status)
            .and_then(|s| s.ownership)
            .map(|o| format!("{o:?}"))
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.kube
            .events()
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// Everything the operator wrote to Kubernetes, as text.
    pub fn kubernetes_writes_text(&self) -> String {
        self.kube
            .writes()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.method,
                    r.path,
                    r.body.as_ref().map(Value::to_string).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn es_writes(&self) -> Vec<String> {
        self.es
            .requests()
            .iter()
            .filter(|r| matches!(r.method.as_str(), "PUT" | "POST" | "DELETE"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// A buffer that collects every log line (all levels, all crates) of the current thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs lock")).to_string()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture TRACE-level logs of everything on this thread (use a current-thread runtime).
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

/// Poll `cond` until it holds or `deadline` passes.
pub async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
