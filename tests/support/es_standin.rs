#![allow(dead_code)]
//! Stateful Elasticsearch stand-in for the inference endpoint lifecycle API.
//!
//! Follows the HTTP contract in `/work/shared/elasticsearch/CONTRACT.md` (cited as §n).
//! Binds `127.0.0.1:0` only; dropping [`EsStandin`] shuts the server down.
//!
//! Not simulated: licences (§2.2 step 5), mixed-version clusters (step 7), trained-model
//! id collisions and deployments (steps 8, 13), semantic_text mapping compatibility
//! (step 10), provider-reported `dimensions`, unknown keys inside `service_settings` /
//! `task_settings`, OAuth2 secrets, `GET _inference/_services`, running inference (POST),
//! privileges (403) and `filter_path` (accepted, ignored).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub type Obj = Map<String, Value>;

/// How the stand-in presents itself.
#[derive(Clone, Debug)]
pub struct StandinConfig {
    /// Elasticsearch version, e.g. `"9.1.0"`; drives every version-dependent behaviour.
    pub version: String,
    pub cluster_uuid: String,
    pub cluster_name: String,
    /// If set, requests may authenticate with `Authorization: ApiKey <api_key>`.
    pub api_key: Option<String>,
    /// If set, requests may authenticate with HTTP basic auth (user, password).
    pub basic_auth: Option<(String, String)>,
}

impl Default for StandinConfig {
    fn default() -> Self {
        Self {
            version: "9.1.0".into(),
            cluster_uuid: "Xq3dGv8yT2uO7lM5nB1c4w".into(),
            cluster_name: "es-standin".into(),
            api_key: None,
            basic_auth: None,
        }
    }
}

impl StandinConfig {
    /// The default configuration with another version.
    pub fn for_version(version: &str) -> Self {
        let version = version.to_owned();
        Self {
            version,
            ..Self::default()
        }
    }
}

/// A request as the stand-in received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Parsed JSON body (a non-JSON body is kept as a JSON string); `None` when empty.
    pub body: Option<Value>,
    pub authorization: Option<String>,
}

/// A failure injected in front of the normal handling.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// This HTTP status with an ES-style error envelope.
    Status(u16),
    /// 429 with a `Retry-After` header.
    TooManyRequests { retry_after_secs: u64 },
    /// Sleep inside the server, then handle the request normally.
    Latency(Duration),
    /// Close the connection without a response (the client sees a transport error).
    DropConnection,
    /// Handle the request completely (a create is stored), then close the connection without
    /// the response: an answer lost on the way back.
    LoseAnswer,
}

/// A running stand-in; the server lives on a tokio task until this is dropped.
pub struct EsStandin {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EsStandin {
    /// Starts the server on `127.0.0.1:<ephemeral port>`; panics if that bind fails.
    pub async fn start(cfg: StandinConfig) -> EsStandin {
        match Self::try_start(cfg).await {
            Ok(standin) => standin,
            Err(e) => panic!("es-standin: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Like [`EsStandin::start`], returning bind errors.
    pub async fn try_start(cfg: StandinConfig) -> std::io::Result<EsStandin> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), cfg).await
    }

    /// Listen on `addr` (loopback, or the pod network's gateway so that Pods reach it).
    pub async fn start_on(addr: SocketAddr, cfg: StandinConfig) -> std::io::Result<EsStandin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(cfg));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let signal = async move {
            let _ = rx.await;
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        let (shutdown, task) = (Some(tx), Some(task));
        Ok(EsStandin {
            addr,
            tls: false,
            shared,
            shutdown,
            task,
        })
    }

    /// Stops accepting connections, closes idle ones and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Like [`EsStandin::start`], over TLS with a certificate for 127.0.0.1 and localhost
    /// signed by a CA made for this server alone. Returns the server and that CA's PEM.
    pub async fn start_tls(cfg: StandinConfig) -> (EsStandin, String) {
        use hyper_util::{
            rt::{TokioExecutor, TokioIo},
            server::conn::auto::Builder,
            service::TowerToHyperService,
        };
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "es-standin test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                    server_key.serialize_der().into(),
                ),
            )
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("es-standin: cannot listen on 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::new(cfg));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, mut rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let (acceptor, app) = (acceptor.clone(), app.clone());
                        tokio::spawn(async move {
                            // A failed handshake (e.g. a client that does not trust the CA) just
                            // closes the connection, as a real server does.
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let service = TowerToHyperService::new(app);
                                let _ = Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        });
                    }
                }
            }
        });
        let standin = EsStandin {
            addr,
            tls: true,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        };
        (standin, ca_cert.pem())
    }

    pub fn config(&self) -> &StandinConfig {
        &self.shared.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// Every request received, in arrival order (faulted and unauthorised ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Number of recorded PUT, POST and DELETE requests.
    pub fn write_count(&self) -> usize {
        let writes = ["PUT", "POST", "DELETE"];
        let inner = self.lock();
        let is_write = |r: &&RecordedRequest| writes.contains(&r.method.as_str());
        inner.requests.iter().filter(is_write).count()
    }

    /// The stored endpoint as GET shows it (never contains secrets).
    pub fn endpoint(&self, id: &str) -> Option<Value> {
        let inner = self.lock();
        let stored = inner.endpoints.get(id)?;
        serde_json::to_value(self.shared.view(&stored.config)).ok()
    }

    /// The stored secret settings of an endpoint.
    pub fn endpoint_secrets(&self, id: &str) -> Option<Obj> {
        let inner = self.lock();
        inner.endpoints.get(id).map(|s| s.secrets.clone())
    }

    /// Out-of-band create (or overwrite): a PUT body plus `inference_id` and `task_type`.
    /// Parsed and defaulted like a real create, without id check or provider call.
    /// Panics if a real create would reject the body (a broken test).
    pub fn insert_endpoint(&self, body: Value) {
        let Value::Object(mut cfg) = body else {
            panic!("insert_endpoint: the body must be a JSON object");
        };
        let Some(Value::String(id)) = cfg.remove("inference_id") else {
            panic!("insert_endpoint: the body needs a string \"inference_id\"");
        };
        match build_endpoint(self.shared.ver(), None, &id, cfg, false) {
            Ok(stored) => {
                self.lock().endpoints.insert(id, stored);
            }
            Err(e) => panic!("insert_endpoint({id}): {}: {}", e.kind, e.reason),
        }
    }

    /// Out-of-band delete; true if the endpoint existed.
    pub fn remove_endpoint(&self, id: &str) -> bool {
        self.lock().endpoints.remove(id).is_some()
    }

    /// Out-of-band change of the stored public config (`inference_id`, `task_type`,
    /// `service`, `service_settings`, `task_settings`, `chunking_settings`).
    /// Replacing the object by a non-object is ignored.
    pub fn modify_endpoint(&self, id: &str, f: impl FnOnce(&mut Value)) {
        let config = self.lock().endpoints.get(id).map(|s| s.config.clone());
        let Some(config) = config else { return };
        let mut value = Value::Object(config);
        f(&mut value); // without the lock: a panicking closure cannot poison it
        if let Value::Object(config) = value
            && let Some(stored) = self.lock().endpoints.get_mut(id)
        {
            stored.config = config;
        }
    }

    /// Simulates an ingest pipeline whose `inference` processor uses the endpoint (§8).
    pub fn add_pipeline_reference(&self, inference_id: &str, pipeline: &str) {
        let mut inner = self.lock();
        let set = inner.pipelines.entry(inference_id.into()).or_default();
        set.insert(pipeline.into());
    }

    /// Simulates a `semantic_text` field of `index` using the endpoint (§8).
    pub fn add_index_reference(&self, inference_id: &str, index: &str) {
        let mut inner = self.lock();
        let set = inner.indexes.entry(inference_id.into()).or_default();
        set.insert(index.into());
    }

    pub fn clear_references(&self, inference_id: &str) {
        let mut inner = self.lock();
        inner.pipelines.remove(inference_id);
        inner.indexes.remove(inference_id);
    }

    /// The next `times` requests (any route except `GET /`) get `fault`. Replaces whatever
    /// was still pending, so `inject(_, 0)` ends an outage.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.plan_faults(None, fault, times);
    }

    /// Like [`EsStandin::inject`], but only requests with this HTTP method (e.g. `"PUT"`) get
    /// the fault; requests with other methods pass untouched.
    pub fn inject_on(&self, method: &str, fault: Fault, times: usize) {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok();
        self.plan_faults(method, fault, times);
    }

    fn plan_faults(&self, method: Option<Method>, fault: Fault, times: usize) {
        let faults = std::iter::repeat_n((method, fault), times);
        self.lock().faults = faults.collect();
    }

    /// Waits until no request is being processed, e.g. a `Latency`-delayed create whose
    /// client already gave up (Elasticsearch finishes such work anyway).
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.idle.notified(); // armed before the check
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Number of injected faults not consumed yet.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Off by default (unknown `service_settings` keys are accepted and stored). When on, a
    /// create with `service_settings` keys the service does not know fails like real ES:
    /// 400 `Model configuration contains settings [{k=v}] unknown to the [<service>] service`,
    /// an error that echoes the values, secrets included (§4).
    pub fn set_echo_unknown_settings(&self, on: bool) {
        self.lock().echo_unknown = on;
    }

    /// The simulated provider answers 401 to a create/update whose secret equals this
    /// value (`api_key`, `secret_key`, `service_account_json`, … — §2.2 step 11, §5).
    /// Deployments of endpoints created from now on start after `polls` stats calls; with
    /// `create_times_out`, a create whose deployment is still starting stores the endpoint and
    /// then answers 408, as Elasticsearch does when `timeout` passes (§2.2 step 13).
    pub fn set_model_deployment(&self, polls: u32, create_times_out: bool) {
        self.lock().model_plan = ModelPlan {
            polls_until_started: polls,
            create_times_out,
        };
    }

    /// Make a deployment fail with `reason` (e.g. not enough ML memory).
    pub fn fail_model_deployment(&self, deployment_id: &str, reason: &str) {
        if let Some(d) = self.lock().deployments.get_mut(deployment_id) {
            d.failure = Some(reason.to_string());
        }
    }

    /// Stop and remove a deployment out of band.
    pub fn remove_deployment(&self, deployment_id: &str) -> bool {
        self.lock().deployments.remove(deployment_id).is_some()
    }

    /// The deployment's state as stats would report it, without advancing it.
    pub fn deployment_state(&self, deployment_id: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .deployments
            .get(deployment_id)
            .map(|d| deployment_state(d).to_string())
    }

    /// Every request (but `GET /`) takes at least this long, as a remote cluster would.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Every create from now on stores its configuration changed by `hook` (e.g. a model alias
    /// resolved to another id), as an Elasticsearch that normalises a setting would.
    pub fn set_store_hook(&self, hook: fn(&mut Obj)) {
        self.lock().store_hook = Some(hook);
    }

    /// While on, every connection is cut off without an answer, `GET /` included: an outage.
    pub fn set_unreachable(&self, on: bool) {
        self.lock().unreachable = on;
    }

    /// Answer `GET /` with this `cluster_uuid` (e.g. `_na_`, as while the cluster state is not
    /// recovered); `None` restores the configured one.
    /// The key Cloud Connect was enabled with (`None`: disabled).
    pub fn ccm_key(&self) -> Option<String> {
        self.lock().ccm_key.clone()
    }

    /// Turn Cloud Connect off behind the operator's back.
    pub fn disable_ccm(&self) {
        self.lock().ccm_key = None;
    }

    pub fn set_ccm_forbidden(&self, on: bool) {
        self.lock().ccm_forbidden = on;
    }

    /// The `metadata` of EIS endpoints created with `model_id` from now on.
    pub fn set_eis_metadata(&self, model_id: &str, metadata: Value) {
        self.lock().eis_metadata.insert(model_id.into(), metadata);
    }

    /// Upgrade (or downgrade) the cluster in place: `GET /` and every version-dependent
    /// behaviour follow `version` from now on.
    pub fn set_version(&self, version: &str) {
        *self.shared.version.write().expect("version lock") = version.to_string();
    }

    pub fn set_cluster_uuid(&self, uuid: Option<&str>) {
        self.lock().uuid_override = uuid.map(str::to_string);
    }

    pub fn set_provider_rejects(&self, api_key_value: &str) {
        self.lock().rejected.insert(api_key_value.into());
    }
}

impl Drop for EsStandin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ----------------------------------------------------------------------------------------
// State
// ----------------------------------------------------------------------------------------

const TEXT: &str = "text_embedding";
const SPARSE: &str = "sparse_embedding";
const RERANK: &str = "rerank";
const COMPLETION: &str = "completion";
const CHAT: &str = "chat_completion";
const EMBEDDING: &str = "embedding";
const BUILT_IN: [&str; 2] = ["elasticsearch", "elser"];

/// Keys that are secrets wherever they appear in `service_settings` (§2.3).
const SECRET_FIELDS: [&str; 7] = [
    "api_key",
    "access_key",
    "secret_key",
    "service_account_json",
    "entra_id",
    "client_secret",
    "secret_parameters",
];
const CHALLENGES: [&str; 3] = [
    "Basic realm=\"security\", charset=\"UTF-8\"",
    "Bearer realm=\"security\"",
    "ApiKey",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ver(u32, u32);

impl Ver {
    fn parse(s: &str) -> Ver {
        let mut parts = s.split(['.', '-']).map(|p| p.trim().parse().unwrap_or(0));
        Ver(parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Ver(major, minor)
    }
}

struct Stored {
    config: Obj,
    secrets: Obj,
}

#[derive(Default)]
struct Inner {
    endpoints: BTreeMap<String, Stored>, // sorted by id, like every list (§3)
    requests: Vec<RecordedRequest>,
    faults: VecDeque<(Option<Method>, Fault)>,
    rejected: HashSet<String>,
    echo_unknown: bool,
    pipelines: BTreeMap<String, BTreeSet<String>>,
    indexes: BTreeMap<String, BTreeSet<String>>,
    deployments: BTreeMap<String, Deployment>,
    model_plan: ModelPlan,
    /// Every request, `GET /` included, is cut off (the cluster is unreachable).
    unreachable: bool,
    /// `cluster_uuid` answered by `GET /` instead of the configured one (e.g. `_na_`).
    uuid_override: Option<String>,
    /// Applied to the stored configuration of every create (Elasticsearch storing a setting in
    /// another form than it was sent).
    store_hook: Option<fn(&mut Obj)>,
    /// Added to every request but `GET /`.
    latency: Duration,
    /// Cloud Connect (§12.2): the key it was enabled with, if enabled.
    ccm_key: Option<String>,
    /// `_inference/_ccm` is forbidden here (no Enterprise licence, or not a CCM environment).
    ccm_forbidden: bool,
    /// The `metadata` Elasticsearch gives EIS (`elastic`) endpoints, by model id (§12.3).
    eis_metadata: BTreeMap<String, Value>,
}

/// How trained-model deployments of `elasticsearch`/`elser` endpoints behave (§2.2 step 13,
/// §7.3). Time is simulated by stats calls: each `GET _ml/trained_models/<id>/_stats` moves a
/// starting deployment one step closer to `started`, so tests need no clock.
#[derive(Clone, Default)]
struct ModelPlan {
    /// Stats calls that still see `starting` after create.
    polls_until_started: u32,
    /// Create waits for `started` and times out (after storing the endpoint) while starting.
    create_times_out: bool,
}

#[derive(Clone)]
struct Deployment {
    model_id: String,
    target: u64,
    polls_left: u32,
    failure: Option<String>,
}

struct Shared {
    cfg: StandinConfig,
    /// The version `GET /` reports and every behaviour follows: `cfg.version` until
    /// `set_version` (an upgrade), kept apart from `inner` so it is read without its lock.
    version: std::sync::RwLock<String>,
    inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Counts a request as in flight until dropped (also when its task is cancelled).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

fn str_of<'a>(config: &'a Obj, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl Shared {
    fn new(cfg: StandinConfig) -> Shared {
        let ver = Ver::parse(&cfg.version);
        let mut inner = Inner::default();
        if ver.at_least(8, 16) {
            // §3: lists include preconfigured endpoints (ids starting with '.').
            let body = json!({
                "task_type": SPARSE, "service": "elasticsearch",
                "service_settings": {"model_id": ".elser_model_2", "num_threads": 1,
                    "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0,
                        "max_number_of_allocations": 32}}
            });
            let id = ".elser-2-elasticsearch";
            if let Value::Object(cfg) = body
                && let Ok(stored) = build_endpoint(ver, None, id, cfg, false)
            {
                inner.endpoints.insert(id.into(), stored);
            }
        }
        let (inner, in_flight, idle) = (Mutex::new(inner), AtomicUsize::new(0), Notify::new());
        let _ = ver;
        Shared {
            version: std::sync::RwLock::new(cfg.version.clone()),
            cfg,
            inner,
            in_flight,
            idle,
        }
    }

    fn ver(&self) -> Ver {
        Ver::parse(&self.version.read().expect("version lock"))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("es-standin state mutex poisoned")
    }

    /// §1.2: 8.11–8.14 print `model_id` instead of `inference_id`.
    fn view<'a>(&self, cfg: &'a Obj) -> EndpointView<'a> {
        let modern = self.ver().at_least(8, 15);
        let id_key = if modern { "inference_id" } else { "model_id" };
        EndpointView { cfg, id_key }
    }

    /// §1.2: `{"endpoints":[...]}` from 8.15, `{"models":[...]}` before.
    fn list_response(&self, items: Vec<EndpointView<'_>>) -> Response {
        let modern = self.ver().at_least(8, 15);
        let key = if modern { "endpoints" } else { "models" };
        let mut body = BTreeMap::new();
        body.insert(key, items);
        json_response(StatusCode::OK, &body)
    }

    /// `PUT _ingest/pipeline/<id>`: only what references endpoints is kept: the `model_id` of
    /// its `inference` processors (§8).
    fn put_pipeline(&self, id: &str, body: &Bytes) -> Result<Response, EsError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| EsError::bad(format!("failed to parse pipeline: {e}")))?;
        let models: Vec<String> = v["processors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/inference/model_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let mut inner = self.lock();
        for set in inner.pipelines.values_mut() {
            set.remove(id);
        }
        for m in models {
            inner.pipelines.entry(m).or_default().insert(id.to_string());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"acknowledged": true}),
        ))
    }

    fn delete_pipeline(&self, id: &str) -> Result<Response, EsError> {
        let mut inner = self.lock();
        for set in inner.pipelines.values_mut() {
            set.remove(id);
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"acknowledged": true}),
        ))
    }

    /// Generic ES security (§4, §10): 401 with `WWW-Authenticate` challenges.
    fn check_auth(&self, auth: Option<&str>, uri: &Uri) -> Result<(), EsError> {
        let (api_key, basic) = (&self.cfg.api_key, &self.cfg.basic_auth);
        if api_key.is_none() && basic.is_none() {
            return Ok(());
        }
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        let Some(auth) = auth else {
            let reason = format!("missing authentication credentials for REST request [{target}]");
            return Err(EsError::unauthorized(reason));
        };
        if let Some(key) = api_key
            && auth.strip_prefix("ApiKey ") == Some(key.as_str())
        {
            return Ok(());
        }
        let given = auth.strip_prefix("Basic ").and_then(b64_decode);
        if let (Some((user, password)), Some(given)) = (basic, &given)
            && *given == format!("{user}:{password}")
        {
            return Ok(());
        }
        let reason = match given {
            Some(given) => {
                let user = given.split_once(':').map_or(given.as_str(), |(u, _)| u);
                format!("unable to authenticate user [{user}] for REST request [{target}]")
            }
            None => "unable to authenticate with provided credentials and anonymous access is \
                     not allowed for this request"
                .into(),
        };
        Err(EsError::unauthorized(reason))
    }

    fn route(&self, method: &Method, uri: &Uri, body: &Bytes) -> Result<Response, EsError> {
        let segments = uri.path().split('/').filter(|s| !s.is_empty());
        let decoded: Vec<String> = segments.map(pct_decode).collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let query = Query::<Vec<(String, String)>>::try_from_uri(uri);
        let params = query.map_err(|e| EsError::illegal(e.body_text()))?.0;
        let path = uri.path();
        let req = Req { path, params, body };
        let (get, put) = (method == Method::GET, method == Method::PUT);
        let delete = method == Method::DELETE;
        let update = put && self.ver().at_least(8, 17); // §1.2: _update exists from 8.17
        match segs.as_slice() {
            [] if get || method == Method::HEAD => req.check_params(&[]).map(|_| self.root()),
            ["_ingest", "pipeline", id] if put => self.put_pipeline(id, body),
            ["_ingest", "pipeline", id] if delete => self.delete_pipeline(id),
            ["_inference", "_ccm"] if get => self.ccm_get(),
            ["_inference", "_ccm"] if put => self.ccm_put(body),
            ["_inference"] | ["_inference", "_all" | "*"] if get => self.list(&req, None),
            ["_inference", id] if get => self.get(&req, None, id),
            ["_inference", task, "_all" | "*"] if get => {
                let task = parse_task(task, self.ver())?;
                self.list(&req, task)
            }
            ["_inference", task, id] if get => {
                let task = parse_task(task, self.ver())?;
                self.get(&req, task, id)
            }
            ["_inference", id, "_update"] if update => self.update(&req, None, id),
            ["_inference", task, id, "_update"] if update => self.update(&req, Some(task), id),
            ["_inference", id] if put => self.create(&req, None, id),
            ["_inference", task, id] if put => self.create(&req, Some(task), id),
            ["_inference", id] if delete => self.delete(&req, None, id),
            ["_inference", task, id] if delete => self.delete(&req, Some(task), id),
            ["_ml", "trained_models", id, "_stats"] if get => self.model_stats(&req, id),
            _ => {
                let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
                let reason = format!("no handler found for uri [{target}] and method [{method}]");
                Err(EsError::illegal(reason))
            }
        }
    }

    /// §12.2 `GET _inference/_ccm`.
    fn ccm_get(&self) -> Result<Response, EsError> {
        let inner = self.lock();
        if inner.ccm_forbidden {
            return Err(ccm_forbidden());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"enabled": inner.ccm_key.is_some()}),
        ))
    }

    /// §12.2 `PUT _inference/_ccm`: `{"api_key": …}` enables (or replaces the key),
    /// `{"enabled": false}` disables.
    fn ccm_put(&self, body: &Bytes) -> Result<Response, EsError> {
        let mut inner = self.lock();
        if inner.ccm_forbidden {
            return Err(ccm_forbidden());
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| EsError::parse(e.to_string()))?;
        let key = v.get("api_key").and_then(Value::as_str);
        let enabled = v.get("enabled").and_then(Value::as_bool);
        match (key, enabled) {
            (Some(k), None | Some(true)) if !k.is_empty() => inner.ccm_key = Some(k.to_string()),
            (None, Some(false)) => inner.ccm_key = None,
            _ => {
                return Err(EsError::validation(&[
                    "[api_key] must be provided to enable, or [enabled] set to false".into(),
                ]));
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"enabled": inner.ccm_key.is_some()}),
        ))
    }

    fn root(&self) -> Response {
        let (cfg, build) = (&self.cfg, "0000000000000000000000000000000000000000");
        let uuid = self
            .lock()
            .uuid_override
            .clone()
            .unwrap_or_else(|| cfg.cluster_uuid.clone());
        let body = json!({
            "name": "es-standin-0", "cluster_name": cfg.cluster_name, "cluster_uuid": uuid,
            "version": {"number": *self.version.read().expect("version lock"), "build_flavor": "default", "build_type": "docker",
                "build_hash": build, "build_date": "2025-01-01T00:00:00.000Z", "build_snapshot": false,
                "lucene_version": "10.0.0", "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "You Know, for Search"
        });
        json_response(StatusCode::OK, &body)
    }

    /// §3 list, optionally filtered by task type.
    fn list(&self, req: &Req, task: Option<&str>) -> Result<Response, EsError> {
        req.check_params(&[])?;
        let inner = self.lock();
        let wanted = |s: &&Stored| task.is_none_or(|t| str_of(&s.config, "task_type") == t);
        let stored = inner.endpoints.values().filter(wanted);
        Ok(self.list_response(stored.map(|s| self.view(&s.config)).collect()))
    }

    /// §3 read one.
    fn get(&self, req: &Req, task: Option<&str>, id: &str) -> Result<Response, EsError> {
        req.check_params(&[])?;
        let inner = self.lock();
        let stored = inner
            .endpoints
            .get(id)
            .ok_or_else(|| EsError::not_found(id))?;
        check_task_matches(task, &stored.config)?;
        Ok(self.list_response(vec![self.view(&stored.config)]))
    }

    /// §2 create, in the processing order of §2.2.
    fn create(&self, req: &Req, path_task: Option<&str>, id: &str) -> Result<Response, EsError> {
        let v = self.ver();
        // REST layer: path task type, query parameters, body presence.
        let url_task = path_task.map(|t| parse_task(t, v)).transpose()?.flatten();
        let timeout = (v.at_least(8, 19) && !v.at_least(9, 0)) || v.at_least(9, 1); // §1.3
        req.check_params(if timeout { &["timeout"] } else { &[] })?;
        req.time_param("timeout")?;
        let raw = req.required_body()?;
        // 1. request validation
        if !valid_id(id) {
            let reason = format!(
                "Validation Failed: 1: Invalid inference_id; '{id}' can contain lowercase \
                 alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with \
                 alphanumeric;"
            );
            let kind = "action_request_validation_exception";
            return Err(EsError::new(400, kind, reason));
        }
        // 2. reserved ids (preconfigured ids start with '.', so step 1 already refuses them)
        if id.starts_with('.') {
            return Err(EsError::bad(format!(
                "[{id}] is a reserved inference ID. Cannot create a new inference endpoint with \
                 a reserved ID."
            )));
        }
        // 3.–9. task type, service, settings, secrets, chunking; defaults (§2.4)
        let strict = self.lock().echo_unknown;
        let mut stored = build_endpoint(v, url_task, id, parse_object(raw)?, strict)?;
        let mut inner = self.lock();
        if let Some(hook) = inner.store_hook {
            hook(&mut stored.config);
        }
        // 11. validation call to the provider; 12. duplicates only detected when storing
        provider_check(&inner.rejected, v, id, &stored)?;
        if inner.endpoints.contains_key(id) {
            let reason = format!("Inference endpoint [{id}] already exists");
            let kind = "resource_already_exists_exception";
            return Err(EsError::new(400, kind, reason));
        }
        // §12.3: EIS endpoints carry a `metadata` object (only when non-empty).
        if str_of(&stored.config, "service") == "elastic"
            && let Some(meta) = stored
                .config
                .get("service_settings")
                .and_then(|s| s.get("model_id"))
                .and_then(Value::as_str)
                .and_then(|m| inner.eis_metadata.get(m))
        {
            stored.config.insert("metadata".into(), meta.clone());
        }
        let response = json_response(StatusCode::OK, &self.view(&stored.config));
        let starting = self.start_deployment(&mut inner, id, &stored.config);
        inner.endpoints.insert(id.into(), stored);
        if starting && inner.model_plan.create_times_out {
            // Stored first, then the wait for `started` times out (§2.2 step 13).
            let reason = format!(
                "Timed out after [30s] waiting for trained model deployment [{id}] to start. Use \
                 the trained model stats API to track the state of the deployment."
            );
            return Err(EsError::new(408, "status_exception", reason));
        }
        Ok(response)
    }

    /// For `elasticsearch`/`elser` endpoints without a shared `deployment_id`, a deployment named
    /// after the inference id starts (§7.3). Returns whether it is still starting.
    fn start_deployment(&self, inner: &mut Inner, id: &str, config: &Obj) -> bool {
        let service = str_of(config, "service");
        if service != "elasticsearch" && service != "elser" {
            return false;
        }
        let ss = config.get("service_settings").and_then(Value::as_object);
        let ss = ss.cloned().unwrap_or_default();
        if ss.contains_key("deployment_id") {
            return false;
        }
        let adaptive = ss.get("adaptive_allocations");
        let min = adaptive
            .and_then(|a| a.get("min_number_of_allocations"))
            .and_then(Value::as_u64);
        let target = ss
            .get("num_allocations")
            .and_then(Value::as_u64)
            .or(min)
            .unwrap_or(1)
            .max(1);
        let polls_left = inner.model_plan.polls_until_started;
        let deployment = Deployment {
            model_id: str_of(&ss, "model_id").to_string(),
            target,
            polls_left,
            failure: None,
        };
        inner.deployments.insert(id.to_string(), deployment);
        polls_left > 0
    }

    /// `GET _ml/trained_models/<model or deployment id>/_stats`: one call advances a starting
    /// deployment by one step.
    fn model_stats(&self, req: &Req, id: &str) -> Result<Response, EsError> {
        req.check_params(&[])?;
        let mut inner = self.lock();
        let found = inner
            .deployments
            .iter_mut()
            .find(|(dep_id, d)| dep_id.as_str() == id || d.model_id == id);
        let Some((dep_id, d)) = found else {
            let reason = format!("No known trained model with model_id [{id}]");
            return Err(EsError::new(404, "resource_not_found_exception", reason));
        };
        let state = deployment_state(d);
        let allocated = if state == "started" { d.target } else { 0 };
        let allocation_state = match state {
            "started" => "fully_allocated",
            _ => "starting",
        };
        let mut stats = json!({
            "deployment_id": dep_id, "model_id": d.model_id, "state": state,
            "number_of_allocations": d.target, "threads_per_allocation": 1,
            "allocation_status": {"allocation_count": allocated,
                "target_allocation_count": d.target, "state": allocation_state},
        });
        if let Some(reason) = &d.failure {
            stats["reason"] = json!(reason);
        }
        let body = json!({"count": 1, "trained_model_stats": [{
            "model_id": d.model_id, "pipeline_count": 0, "deployment_stats": stats,
        }]});
        d.polls_left = d.polls_left.saturating_sub(1);
        Ok(json_response(StatusCode::OK, &body))
    }

    /// §9 update.
    fn update(&self, req: &Req, path_task: Option<&str>, id: &str) -> Result<Response, EsError> {
        let v = self.ver();
        // The single-segment form failed until the fix of Feb 2025 (taken as 8.18 / 9.0).
        if path_task.is_none() && !v.at_least(8, 18) {
            return Err(EsError::bad("Inference ID must be provided in the path"));
        }
        let url_task = path_task.map(|t| parse_task(t, v)).transpose()?.flatten();
        let allowed: &[&str] = if v.at_least(9, 5) {
            &["master_timeout", "timeout"]
        } else {
            &["master_timeout"]
        };
        req.check_params(allowed)?;
        req.time_param("master_timeout")?;
        req.time_param("timeout")?;
        let mut body = parse_object(req.required_body()?)?;
        if body.is_empty() {
            return Err(EsError::bad("Request body is empty"));
        }
        let mut updatable = vec!["service_settings", "task_settings", "task_type"];
        if v.at_least(9, 5) {
            updatable.push("chunking_settings");
        }
        let is_rest = |(k, _): &(String, Value)| !updatable.contains(&k.as_str());
        let rest: Obj = body.clone().into_iter().filter(is_rest).collect();
        if !rest.is_empty() {
            return Err(EsError::bad(format!(
                "Request contained fields which cannot be updated, remove these fields and try \
                 again [{}]",
                java_str(&Value::Object(rest))
            )));
        }
        let body_task = match body.remove("task_type") {
            Some(t) => parse_task(&java_str(&t), v)?,
            None => None,
        };
        if id.starts_with('.') {
            return Err(EsError::bad(format!(
                "Default endpoint [{id}] cannot be updated"
            )));
        }
        let mut inner = self.lock();
        // The real 404 text for _update is unknown (§4); the GET message is reused.
        let stored = inner
            .endpoints
            .get(id)
            .ok_or_else(|| EsError::not_found(id))?;
        let task = str_of(&stored.config, "task_type").to_owned();
        if url_task.is_some_and(|t| t != task) || body_task.is_some_and(|t| t != task) {
            return Err(EsError::bad(
                "Task type must match the task type of the existing endpoint",
            ));
        }
        let mut config = stored.config.clone();
        let mut secrets = stored.secrets.clone();
        if let Some(upd) = take_object(&mut body, "service_settings", false, true)? {
            let mut ss = take_map(&mut config, "service_settings");
            let service = str_of(&config, "service");
            update_service_settings(v, service, &mut ss, &mut secrets, upd)?;
            config.insert("service_settings".into(), Value::Object(ss));
        }
        if let Some(upd) = take_object(&mut body, "task_settings", false, true)? {
            let mut ts = take_map(&mut config, "task_settings");
            ts.extend(upd); // merged key by key
            config.insert("task_settings".into(), Value::Object(ts));
        }
        if is_embedding(&task) && v.at_least(9, 5) {
            if let Some(chunking) = body.remove("chunking_settings") {
                let chunking = parse_chunking(v, Some(chunking))?; // replaced wholesale
                config.insert("chunking_settings".into(), chunking);
            }
        } else if is_embedding(&task) && !v.at_least(9, 3) {
            // Bug #139574: every update reset chunking to the legacy default.
            config.insert("chunking_settings".into(), legacy_chunking());
        }
        let stored = Stored { config, secrets };
        if v.at_least(9, 4) {
            provider_check(&inner.rejected, v, id, &stored)?; // §5.2
        }
        let target = stored
            .config
            .get("service_settings")
            .and_then(|ss| ss.get("num_allocations"))
            .and_then(Value::as_u64);
        if let (Some(d), Some(target)) = (inner.deployments.get_mut(id), target) {
            d.target = target.max(1);
        }
        let response = json_response(StatusCode::OK, &self.view(&stored.config));
        inner.endpoints.insert(id.into(), stored);
        Ok(response)
    }

    /// §8 delete.
    fn delete(&self, req: &Req, path_task: Option<&str>, id: &str) -> Result<Response, EsError> {
        let v = self.ver();
        let task = path_task.map(|t| parse_task(t, v)).transpose()?.flatten();
        let (with_pipelines, with_indexes) = (v.at_least(8, 15), v.at_least(8, 16));
        let params = ["dry_run", "force"];
        req.check_params(if with_pipelines { &params } else { &[] })?;
        let (dry_run, force) = (req.bool_param("dry_run")?, req.bool_param("force")?);
        let mut inner = self.lock();
        let stored = inner
            .endpoints
            .get(id)
            .ok_or_else(|| EsError::not_found(id))?;
        check_task_matches(task, &stored.config)?;
        if id.starts_with('.') {
            return Err(EsError::bad(format!(
                "[{id}] is a reserved inference endpoint. Cannot delete a reserved inference \
                 endpoint."
            )));
        }
        let refs = |map: &BTreeMap<String, BTreeSet<String>>, on: bool| -> Vec<String> {
            let set = map.get(id).filter(|_| on);
            set.map(|s| s.iter().cloned().collect()).unwrap_or_default()
        };
        let pipelines = refs(&inner.pipelines, with_pipelines);
        let indexes = refs(&inner.indexes, with_indexes);
        let mut message = String::new();
        if !pipelines.is_empty() {
            message = format!(
                "Inference endpoint {id} is referenced by pipelines: [{}]. Ensure that no \
                 pipelines are using this inference endpoint, or use force to ignore this \
                 warning and delete the inference endpoint.",
                pipelines.join(", ")
            );
        }
        if !indexes.is_empty() {
            message.push_str(&format!(
                " Inference endpoint {id} is being used in the mapping for indexes: [{}]. Ensure \
                 that no index mappings are using this inference endpoint, or use force to \
                 ignore this warning and delete the inference endpoint.",
                indexes.join(", ")
            ));
        }
        let dry_run = dry_run && with_pipelines;
        if !dry_run && !force && !message.is_empty() {
            return Err(EsError::new(409, "status_exception", message));
        }
        let mut body = vec![("acknowledged", json!(!dry_run))];
        if with_pipelines {
            body.push(("pipelines", json!(if dry_run { pipelines } else { vec![] })));
        }
        if with_indexes {
            body.push(("indexes", json!(if dry_run { indexes } else { vec![] })));
        }
        if dry_run {
            body.push(("error_message", json!(message)));
        } else {
            inner.endpoints.remove(id);
            inner.deployments.remove(id); // §7.3: delete stops the deployment
        }
        Ok(json_response(StatusCode::OK, &Ordered(body)))
    }
}

fn deployment_state(d: &Deployment) -> &'static str {
    match (&d.failure, d.polls_left) {
        (Some(_), _) => "failed",
        (None, 0) => "started",
        (None, _) => "starting",
    }
}

/// Applies an `_update`'s `service_settings` (§9 table).
fn update_service_settings(
    v: Ver,
    service: &str,
    ss: &mut Obj,
    secrets: &mut Obj,
    mut upd: Obj,
) -> Result<(), EsError> {
    let kind = find_service(service, None).map_or(K::NoSecret, |s| s.secrets);
    let built_in = BUILT_IN.contains(&service);
    if !v.at_least(9, 4) {
        // 8.17–9.3: the whole map goes to the service's secret parser; everything else is
        // ignored, except num_allocations of the built-in services.
        match kind {
            K::NoSecret => {}
            K::OptionalApiKey => {
                secrets.extend(upd.remove("api_key").map(|k| ("api_key".into(), k)))
            }
            _ => *secrets = take_secrets(kind, &mut upd)?,
        }
        if built_in && let Some(n) = upd.remove("num_allocations") {
            ss.insert("num_allocations".into(), n);
        }
        return Ok(());
    }
    // 9.4+: each secret optional; a small mutable subset of the rest, other keys ignored.
    let azure = ["api_key", "entra_id", "client_secret"];
    for field in SECRET_FIELDS {
        if let Some(value) = upd.remove(field) {
            if kind == K::Azure {
                secrets.retain(|k, _| !azure.contains(&k.as_str()));
            }
            secrets.insert(field.into(), value);
        }
    }
    let mut mutable = Vec::new();
    if built_in {
        mutable.extend(["num_allocations", "adaptive_allocations"]);
    }
    if v.at_least(9, 5) && ss.contains_key("rate_limit") {
        mutable.extend(["rate_limit", "max_input_tokens"]);
    }
    for key in mutable {
        if let Some(value) = upd.remove(key) {
            ss.insert(key.into(), value);
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// HTTP entry point
// ----------------------------------------------------------------------------------------

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let is_root = uri.path() == "/" && (method == Method::GET || method == Method::HEAD);
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body: recorded_body(&body),
        authorization: auth.map(str::to_owned),
    };
    let (fault, base_latency) = {
        let mut inner = shared.lock();
        inner.requests.push(recorded);
        if inner.unreachable {
            drop(inner);
            std::panic::resume_unwind(Box::new("simulated outage"));
        }
        let base_latency = (!is_root).then_some(inner.latency).filter(|d| !d.is_zero());
        let applies =
            |(only, _): &(Option<Method>, Fault)| only.as_ref().is_none_or(|m| *m == method);
        let position = inner.faults.iter().position(applies).filter(|_| !is_root);
        let fault = position
            .and_then(|i| inner.faults.remove(i))
            .map(|(_, fault)| fault);
        (fault, base_latency)
    }; // the lock is released before anything below can unwind
    let delay = match fault {
        // Unwinding out of the handler aborts hyper's connection task, so the socket closes
        // without a response. `resume_unwind` skips the panic hook: nothing is printed.
        Some(Fault::DropConnection) => std::panic::resume_unwind(Box::new("simulated drop")),
        Some(Fault::Status(code)) => return fault_response(code, None),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            return fault_response(429, Some(retry_after_secs));
        }
        Some(Fault::Latency(delay)) => Some(delay + base_latency.unwrap_or_default()),
        Some(Fault::LoseAnswer) | None => base_latency,
    };
    let lose_answer = fault == Some(Fault::LoseAnswer);
    // Like Elasticsearch, finish the work even when the client stops waiting for it.
    let in_flight = InFlight::new(shared.clone());
    let work = async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let response = respond(&shared, &method, &uri, &headers, &body);
        drop(in_flight);
        response
    };
    match tokio::spawn(work).await {
        Ok(_) if lose_answer => std::panic::resume_unwind(Box::new("simulated lost answer")),
        Ok(response) => response,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn respond(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if let Some(refusal) = content_type_refusal(headers, body) {
        return refusal;
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let result = shared.check_auth(auth, uri);
    let result = result.and_then(|()| shared.route(method, uri, body));
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    let product = HeaderValue::from_static("Elasticsearch");
    response.headers_mut().insert("x-elastic-product", product);
    response
}

/// ES refuses a body without a supported `Content-Type` before any handler runs:
/// 406 with a plain-string `error`.
fn content_type_refusal(headers: &HeaderMap, body: &Bytes) -> Option<Response> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let given = given.unwrap_or_default();
    let media = given.split(';').next().unwrap_or_default().trim();
    let json_types = ["application/json", "application/vnd.elasticsearch+json"];
    if body.is_empty() || json_types.iter().any(|t| t.eq_ignore_ascii_case(media)) {
        return None;
    }
    let error = format!("Content-Type header [{given}] is not supported");
    let body = json!({ "error": error, "status": 406 });
    Some(json_response(StatusCode::NOT_ACCEPTABLE, &body))
}

fn fault_response(code: u16, retry_after: Option<u64>) -> Response {
    let error = match code {
        429 => EsError::new(
            code,
            "es_rejected_execution_exception",
            "rejected execution",
        ),
        503 => EsError::new(
            code,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        ),
        _ => EsError::new(code, "status_exception", format!("simulated HTTP {code}")),
    };
    let mut response = error.into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

struct Req<'a> {
    path: &'a str,
    params: Vec<(String, String)>,
    body: &'a Bytes,
}

impl Req<'_> {
    /// Generic ES REST behaviour (§1.1): unknown query parameters are refused.
    fn check_params(&self, allowed: &[&str]) -> Result<(), EsError> {
        let generic = ["pretty", "human", "error_trace", "filter_path"];
        let known = |k: &&str| allowed.contains(k) || generic.contains(k);
        let keys = self.params.iter().map(|(k, _)| k.as_str());
        let unknown: BTreeSet<&str> = keys.filter(|k| !known(k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let plural = if unknown.len() > 1 { "s" } else { "" };
        let list: Vec<String> = unknown.iter().map(|k| format!("[{k}]")).collect();
        let (path, list) = (self.path, list.join(", "));
        Err(EsError::illegal(format!(
            "request [{path}] contains unrecognized parameter{plural}: {list}"
        )))
    }

    fn param(&self, name: &str) -> Option<&str> {
        let found = self.params.iter().rev().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str())
    }

    fn bool_param(&self, name: &str) -> Result<bool, EsError> {
        match self.param(name) {
            None | Some("false") => Ok(false),
            Some("" | "true") => Ok(true),
            Some(other) => Err(EsError::illegal(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    }

    fn time_param(&self, name: &str) -> Result<(), EsError> {
        let Some(raw) = self.param(name) else {
            return Ok(());
        };
        let value = raw.trim().to_ascii_lowercase();
        let units = ["nanos", "micros", "ms", "s", "m", "h", "d"];
        let number = units.iter().find_map(|u| value.strip_suffix(u));
        if value == "-1" || value == "0" || number.is_some_and(|n| n.parse::<f64>().is_ok()) {
            return Ok(());
        }
        Err(EsError::parse(format!(
            "failed to parse setting [{name}] with value [{raw}] as a time value: unit is \
             missing or unrecognized"
        )))
    }

    fn required_body(&self) -> Result<&[u8], EsError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(EsError::parse("request body is required"));
        }
        Ok(self.body)
    }
}

fn parse_object(raw: &[u8]) -> Result<Obj, EsError> {
    let reason = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(map)) => return Ok(map),
        Ok(other) => format!("request body is not an object: {other}"),
        Err(e) => e.to_string(),
    };
    let mut error = EsError::parse("Failed to parse content to map");
    error.cause = Some(("json_parse_exception", reason));
    Err(error)
}

fn recorded_body(body: &Bytes) -> Option<Value> {
    let text = || Value::String(String::from_utf8_lossy(body).into_owned());
    (!body.is_empty()).then(|| serde_json::from_slice(body).unwrap_or_else(|_| text()))
}

// ----------------------------------------------------------------------------------------
// Services (§6) and endpoint parsing (§2)
// ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretKind {
    NoSecret,
    ApiKey,
    OptionalApiKey,
    Aws,
    Vertex,
    Azure,
    Custom,
}
use SecretKind as K;

/// One row of the §6 table.
struct Service {
    name: &'static str,
    /// The spec's "since"; older versions answer `Unknown service`.
    since: Ver,
    tasks: &'static [&'static str],
    /// Required non-secret `service_settings` (`a|b`: `b` is an accepted alias).
    required: &'static [&'static str],
    secrets: SecretKind,
    /// Default `rate_limit.requests_per_minute` per task type (`*` = any); none if undocumented.
    rpm: &'static [(&'static str, u64)],
}

const fn svc(
    name: &'static str,
    since: (u32, u32),
    tasks: &'static [&'static str],
    required: &'static [&'static str],
    secrets: SecretKind,
    rpm: &'static [(&'static str, u64)],
) -> Service {
    let since = Ver(since.0, since.1);
    Service {
        name,
        since,
        tasks,
        required,
        secrets,
        rpm,
    }
}

#[rustfmt::skip]
const SERVICES: &[Service] = &[
    svc("ai21", (9, 2), &[CHAT, COMPLETION], &["model_id"], K::ApiKey, &[("*", 200)]),
    svc("alibabacloud-ai-search", (8, 16), &[COMPLETION, RERANK, SPARSE, TEXT], &["host", "service_id", "workspace"], K::ApiKey, &[("*", 1000)]),
    svc("amazonbedrock", (8, 12), &[COMPLETION, TEXT, CHAT], &["region", "model"], K::Aws, &[("*", 240)]),
    svc("amazon_sagemaker", (9, 1), &[TEXT, COMPLETION, CHAT, SPARSE, RERANK], &["endpoint_name", "api", "region"], K::Aws, &[]),
    svc("anthropic", (8, 16), &[COMPLETION, CHAT], &["model_id"], K::ApiKey, &[("*", 50)]),
    svc("azureaistudio", (8, 14), &[COMPLETION, RERANK, TEXT], &["target", "provider", "endpoint_type"], K::ApiKey, &[("*", 240)]),
    svc("azureopenai", (8, 14), &[COMPLETION, CHAT, TEXT], &["resource_name", "deployment_id", "api_version"], K::Azure, &[(TEXT, 1440), ("*", 120)]),
    svc("cohere", (8, 13), &[COMPLETION, RERANK, TEXT], &["model_id|model"], K::ApiKey, &[("*", 10000)]),
    svc("contextualai", (9, 2), &[RERANK], &["model_id"], K::ApiKey, &[("*", 1000)]),
    svc("custom", (8, 19), &[TEXT, SPARSE, RERANK, COMPLETION], &["url", "request", "response"], K::Custom, &[("*", 10000)]),
    svc("deepseek", (9, 1), &[COMPLETION, CHAT], &["model_id"], K::ApiKey, &[]),
    svc("elastic", (8, 16), &[SPARSE, CHAT, COMPLETION, TEXT, RERANK, EMBEDDING], &["model_id"], K::NoSecret, &[(CHAT, 240)]),
    svc("elasticsearch", (8, 13), &[RERANK, SPARSE, TEXT], &[], K::NoSecret, &[]),
    svc("elser", (8, 11), &[SPARSE], &[], K::NoSecret, &[]),
    svc("fireworksai", (9, 4), &[CHAT, COMPLETION, TEXT], &["model_id"], K::ApiKey, &[("*", 6000)]),
    svc("googleaistudio", (8, 15), &[COMPLETION, TEXT], &["model_id"], K::ApiKey, &[("*", 360)]),
    svc("googlevertexai", (8, 15), &[CHAT, COMPLETION, RERANK, TEXT], &["model_id", "project_id"], K::Vertex, &[("*", 30000)]),
    svc("groq", (9, 3), &[CHAT], &["model_id"], K::ApiKey, &[("*", 1000)]),
    svc("hugging_face", (8, 12), &[CHAT, COMPLETION, RERANK, TEXT], &["url"], K::ApiKey, &[("*", 3000)]),
    svc("jinaai", (8, 18), &[EMBEDDING, RERANK, TEXT], &["model_id"], K::ApiKey, &[("*", 2000)]),
    svc("llama", (9, 2), &[TEXT, COMPLETION, CHAT], &["url", "model_id"], K::OptionalApiKey, &[("*", 3000)]),
    svc("mistral", (8, 15), &[TEXT, COMPLETION, CHAT], &["model"], K::ApiKey, &[("*", 240)]),
    svc("nvidia", (9, 3), &[CHAT, COMPLETION, RERANK, TEXT], &["model_id"], K::ApiKey, &[("*", 3000)]),
    svc("openai", (8, 12), &[CHAT, COMPLETION, TEXT, EMBEDDING], &["model_id"], K::ApiKey, &[(TEXT, 3000), (EMBEDDING, 3000), ("*", 500)]),
    svc("openshift_ai", (9, 3), &[TEXT, COMPLETION, CHAT, RERANK], &["url"], K::ApiKey, &[("*", 3000)]),
    svc("voyageai", (8, 19), &[TEXT, RERANK], &["model_id"], K::ApiKey, &[("*", 2000)]),
    svc("watsonxai", (8, 16), &[TEXT, CHAT, COMPLETION, RERANK], &["api_version", "model_id", "project_id", "url"], K::ApiKey, &[("*", 120)]),
];

/// The names of the services the stand-in accepts (for the check that the operator's table
/// knows each of them).
pub fn service_names() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.name).collect()
}

/// §2.2 step 6, with the documented aliases; `v: None` skips the "since" gate.
fn find_service(name: &str, v: Option<Ver>) -> Option<&'static Service> {
    let name = match name {
        "sagemaker" | "amazonsagemaker" => "amazon_sagemaker",
        other => other,
    };
    let known = |s: &&Service| s.name == name && v.is_none_or(|v| v >= s.since);
    SERVICES.iter().find(known)
}

fn is_embedding(task: &str) -> bool {
    matches!(task, TEXT | SPARSE | EMBEDDING)
}

/// Case-insensitive; `Ok(None)` is `any`, which matches every task type.
fn parse_task(raw: &str, v: Ver) -> Result<Option<&'static str>, EsError> {
    let wanted = raw.trim().to_ascii_lowercase();
    if wanted == "any" {
        return Ok(None);
    }
    let known = [TEXT, SPARSE, RERANK, COMPLETION, CHAT, EMBEDDING].into_iter();
    let mut known = known.filter(|t| *t != EMBEDDING || v.at_least(9, 4)); // embedding: §1.1
    let found = known.find(|t| *t == wanted).map(Some);
    found.ok_or_else(|| EsError::bad(format!("Unknown task_type [{raw}]")))
}

fn check_task_matches(requested: Option<&str>, config: &Obj) -> Result<(), EsError> {
    let actual = str_of(config, "task_type");
    match requested {
        Some(requested) if requested != actual => Err(EsError::bad(format!(
            "Requested task type [{requested}] does not match the inference endpoint's task \
             type [{actual}]"
        ))),
        _ => Ok(()),
    }
}

/// `[a-z0-9](?:[a-z0-9_\-\.]*[a-z0-9])?` and not `_all` (§2.2 step 1).
fn valid_id(id: &str) -> bool {
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let inner = |c: &u8| edge(c) || matches!(c, b'_' | b'-' | b'.');
    let bytes = id.as_bytes();
    bytes.first().is_some_and(edge) && bytes.last().is_some_and(edge) && bytes.iter().all(inner)
}

/// Parses a create body (§2.1) into the stored public config plus secrets, with the
/// defaults of §2.4 applied. `strict` refuses unknown `service_settings` keys.
fn build_endpoint(
    v: Ver,
    url_task: Option<&'static str>,
    id: &str,
    mut cfg: Obj,
    strict: bool,
) -> Result<Stored, EsError> {
    // 3. task type from the path and/or the body
    let task = match (cfg.remove("task_type"), url_task) {
        (None | Some(Value::Null), Some(task)) => task,
        (None | Some(Value::Null), None) => {
            return Err(EsError::bad(
                "model is missing required setting [task_type]",
            ));
        }
        (Some(body), url) => match parse_task(&java_str(&body), v)? {
            None => {
                return Err(EsError::bad(
                    "task_type [any] is not valid type for inference",
                ));
            }
            Some(task) if url.is_none_or(|u| u == task) => task,
            Some(_) => {
                return Err(EsError::bad(format!(
                    "Cannot resolve conflicting task_type parameter in the request URL [{}] and \
                     the request body [{}]",
                    url.unwrap_or("any"),
                    java_str(&body)
                )));
            }
        },
    };
    // 4. service present; 6. known (in this version)
    let Some(service) = cfg.remove("service").filter(|s| !s.is_null()) else {
        let reason = "Inference endpoint configuration is missing the [service] setting";
        return Err(EsError::bad(reason));
    };
    let service = java_str(&service);
    let unknown = || EsError::bad(format!("Unknown service [{service}]"));
    let svc = find_service(&service, Some(v)).ok_or_else(unknown)?;
    // 9. the service parses the configuration
    if !svc.tasks.contains(&task) {
        return Err(EsError::bad(format!(
            "The [{service}] service does not support task type [{task}]"
        )));
    }
    let mut ss = take_object(&mut cfg, "service_settings", true, false)?.unwrap_or_default();
    let ts = take_object(&mut cfg, "task_settings", false, false)?.unwrap_or_default();
    let has_chunking = v.at_least(8, 16); // before 8.16 the key is an unknown setting
    let chunking = has_chunking.then(|| cfg.remove("chunking_settings"));
    check_required(svc, &ss, &ts)?;
    let secrets = take_secrets(svc.secrets, &mut ss)?;
    let with_chunking = has_chunking && is_embedding(task); // ignored for other task types
    let chunking = with_chunking.then(|| parse_chunking(v, chunking.flatten()));
    let chunking = chunking.transpose()?;
    let known = |k: &String| svc.required.iter().any(|r| r.split('|').any(|a| a == k));
    let known = |k: &String| known(k) || optional_settings(svc.name).contains(&k.as_str());
    let unknown: Obj = ss
        .iter()
        .filter(|(k, _)| strict && !known(k))
        .map(clone_entry)
        .collect();
    if let Some(leftover) = [cfg, unknown].into_iter().find(|m| !m.is_empty()) {
        return Err(EsError::bad(format!(
            "Model configuration contains settings [{}] unknown to the [{service}] service",
            java_str(&Value::Object(leftover))
        )));
    }
    apply_defaults(svc, task, &mut ss);
    let mut config = Obj::new();
    config.insert("inference_id".into(), id.into());
    config.insert("task_type".into(), task.into());
    config.insert("service".into(), service.into());
    config.insert("service_settings".into(), Value::Object(ss));
    config.insert("task_settings".into(), Value::Object(ts));
    if let Some(chunking) = chunking {
        config.insert("chunking_settings".into(), chunking);
    }
    Ok(Stored { config, secrets })
}

fn clone_entry((key, value): (&String, &Value)) -> (String, Value) {
    (key.clone(), value.clone())
}

/// Optional non-secret `service_settings` per service (§6 "Optional" column, plus the
/// fields that ES materialises itself).
#[rustfmt::skip]
fn optional_settings(service: &str) -> &'static [&'static str] {
    match service {
        "amazonbedrock" => &["provider", "rate_limit", "similarity", "max_input_tokens", "dimensions"],
        "amazon_sagemaker" => &["similarity", "element_type", "target_model", "target_container_hostname", "inference_component_name", "batch_size", "dimensions"],
        "azureopenai" => &["rate_limit", "dimensions", "similarity", "client_id", "scopes", "tenant_id"],
        "cohere" => &["embedding_type", "similarity", "rate_limit", "dimensions"],
        "custom" => &["headers", "input_type", "query_parameters", "batch_size", "rate_limit"],
        "deepseek" => &["url"],
        "elasticsearch" | "elser" => &["model_id", "deployment_id", "num_allocations", "num_threads", "adaptive_allocations", "long_document_strategy", "max_chunks_per_doc"],
        "googlevertexai" => &["location", "provider", "url", "streaming_url", "dimensions", "similarity", "max_batch_size", "max_input_tokens", "rate_limit"],
        "fireworksai" | "nvidia" | "openshift_ai" | "llama" | "mistral" | "watsonxai" => &["model_id", "url", "dimensions", "similarity", "max_input_tokens", "rate_limit"],
        "groq" => &["organization_id", "url", "rate_limit"],
        "hugging_face" => &["model_id", "rate_limit"],
        "jinaai" | "voyageai" => &["similarity", "dimensions", "embedding_type", "multimodal_model", "rate_limit"],
        "openai" => &["dimensions", "organization_id", "similarity", "url", "max_input_tokens", "rate_limit", "client_id", "scopes", "token_url"],
        _ => &["rate_limit"],
    }
}

/// Removes an optional object-valued key; `required` makes absence an error.
fn take_object(
    map: &mut Obj,
    key: &str,
    required: bool,
    update: bool,
) -> Result<Option<Obj>, EsError> {
    let reason = match map.remove(key) {
        Some(Value::Object(m)) => return Ok(Some(m)),
        None | Some(Value::Null) if !required => return Ok(None),
        None | Some(Value::Null) => format!("Missing required field [{key}]"),
        Some(other) if update => format!(
            "Unable to parse [{key}] in the request [{}]",
            java_str(&other)
        ),
        Some(other) => not_a_map(key, &other),
    };
    Err(EsError::bad(reason))
}

fn not_a_map(key: &str, value: &Value) -> String {
    let value = java_str(value);
    format!(
        "field [{key}] is not of the expected type. The value [{value}] cannot be converted to a [Map]"
    )
}

fn take_map(config: &mut Obj, key: &str) -> Obj {
    match config.remove(key) {
        Some(Value::Object(map)) => map,
        _ => Obj::new(),
    }
}

fn missing(scope: &str, field: &str) -> String {
    format!("[{scope}] does not contain the required setting [{field}]")
}

fn empty_string(scope: &str, field: &str) -> String {
    format!("[{scope}] Invalid value empty string. [{field}] must be a non-empty string")
}

/// Required non-secret settings (§4 "Missing non-secret setting", §7.3).
fn check_required(svc: &Service, ss: &Obj, ts: &Obj) -> Result<(), EsError> {
    let mut errors = Vec::new();
    for required in svc.required {
        let name = required.split('|').next().unwrap_or(required);
        match required.split('|').find_map(|alias| ss.get(alias)) {
            None | Some(Value::Null) => errors.push(missing("service_settings", name)),
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(empty_string("service_settings", name));
            }
            _ => {}
        }
    }
    if BUILT_IN.contains(&svc.name) && !ss.contains_key("deployment_id") {
        if !ss.contains_key("num_allocations") && !ss.contains_key("adaptive_allocations") {
            errors.push(
                "[service_settings] does not contain one of the required settings \
                 [num_allocations, adaptive_allocations]"
                    .into(),
            );
        }
        let mut needed = vec!["num_threads"];
        if svc.name == "elasticsearch" {
            needed.push("model_id");
        }
        let absent = needed.into_iter().filter(|k| !ss.contains_key(*k));
        errors.extend(absent.map(|k| missing("service_settings", k)));
    }
    if !errors.is_empty() {
        return Err(EsError::validation(&errors));
    }
    if svc.name == "anthropic" && !ts.contains_key("max_tokens") {
        let error = missing("task_settings", "max_tokens");
        return Err(EsError::validation(&[error]));
    }
    Ok(())
}

/// Moves every secret key out of `ss` and checks what the service needs (§6 secret fields).
fn take_secrets(kind: SecretKind, ss: &mut Obj) -> Result<Obj, EsError> {
    let secrets: Obj = SECRET_FIELDS
        .iter()
        .filter_map(|f| ss.remove(*f).map(|value| (f.to_string(), value)))
        .collect();
    let required: &[&str] = match kind {
        K::NoSecret | K::OptionalApiKey => &[],
        K::ApiKey => &["api_key"],
        K::Aws => &["access_key", "secret_key"],
        K::Vertex => &["service_account_json"],
        K::Custom => &["secret_parameters"],
        K::Azure => {
            let candidates = ["api_key", "entra_id", "client_secret"].into_iter();
            let given: Vec<&str> = candidates.filter(|k| secrets.contains_key(*k)).collect();
            let mut reason = "[secret_settings] must have exactly one of [api_key], [entra_id], \
                              or [client_secret] field set"
                .to_owned();
            match given.len() {
                1 => return Ok(secrets),
                0 => {}
                _ => reason.push_str(&format!(", received: [{}]", given.join(", "))),
            }
            return Err(EsError::validation(&[reason]));
        }
    };
    let problem = |field: &&str| match secrets.get(*field) {
        None | Some(Value::Null) => Some(missing("secret_settings", field)),
        Some(Value::String(s)) if s.is_empty() => Some(empty_string("secret_settings", field)),
        _ => None,
    };
    let errors: Vec<String> = required.iter().filter_map(problem).collect();
    if errors.is_empty() {
        Ok(secrets)
    } else {
        Err(EsError::validation(&errors))
    }
}

/// §2.4 defaults that a real create materialises.
fn apply_defaults(svc: &Service, task: &str, ss: &mut Obj) {
    // Enum settings are parsed case-insensitively and stored in Elasticsearch's own spelling.
    for key in ["similarity", "element_type", "embedding_type"] {
        if let Some(Value::String(v)) = ss.get_mut(key) {
            *v = v.to_ascii_lowercase();
        }
    }
    if let Some((_, rpm)) = svc.rpm.iter().find(|(t, _)| *t == task || *t == "*") {
        let rate_limit = json!({ "requests_per_minute": rpm });
        ss.entry("rate_limit").or_insert(rate_limit);
    }
    if BUILT_IN.contains(&svc.name) {
        if let Some(deployment) = ss.get("deployment_id").cloned() {
            ss.entry("model_id").or_insert(deployment);
            ss.entry("num_threads").or_insert(json!(1));
        }
        if !ss.contains_key("num_allocations") {
            let adaptive = ss.get("adaptive_allocations");
            let min = adaptive.and_then(|a| a.get("min_number_of_allocations"));
            let allocations = min.and_then(Value::as_i64).unwrap_or(1);
            ss.insert("num_allocations".into(), allocations.into());
        }
        if svc.name == "elasticsearch"
            && let Some(Value::String(model)) = ss.get_mut("model_id")
            && (model == ".elser_model_2" || model == ".multilingual-e5-small")
        {
            model.push_str("_linux-x86_64"); // platform-specific variant
        }
    } else if task == TEXT {
        // Normally learnt from the provider's answer to the validation call.
        let dimensions = match svc.name {
            "openai" | "azureopenai" => 1536,
            "googlevertexai" => 768,
            _ => 1024,
        };
        let cosine = matches!(svc.name, "amazonbedrock" | "fireworksai");
        let similarity = if cosine { "cosine" } else { "dot_product" };
        ss.entry("dimensions").or_insert(dimensions.into());
        ss.entry("similarity").or_insert(similarity.into());
    }
}

/// §2.2 step 11 / §5: the simulated provider rejects registered secret values.
fn provider_check(rejected: &HashSet<String>, v: Ver, id: &str, e: &Stored) -> Result<(), EsError> {
    let (service, task) = (str_of(&e.config, "service"), str_of(&e.config, "task_type"));
    // No upstream for built-in services; before 8.16 only text_embedding was probed (§5.1).
    if BUILT_IN.contains(&service) || (!v.at_least(8, 16) && task != TEXT) {
        return Ok(());
    }
    let is_rejected = |s: &Value| s.as_str().is_some_and(|s| rejected.contains(s));
    if !e.secrets.values().any(is_rejected) {
        return Ok(());
    }
    let mut error = EsError::bad(
        "Could not complete inference endpoint creation as validation call to service threw an \
         exception.",
    );
    let cause = format!(
        "Received an authentication error status code for request from inference entity id \
         [{id}] status [401]. Error message: [Incorrect API key provided]"
    );
    error.cause = Some(("status_exception", cause));
    Err(error)
}

// ----------------------------------------------------------------------------------------
// Chunking settings (§7.2)
// ----------------------------------------------------------------------------------------

fn default_chunking() -> Value {
    json!({ "strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1 })
}

fn legacy_chunking() -> Value {
    json!({ "strategy": "word", "max_chunk_size": 250, "overlap": 100 })
}

const PLAINTEXT: [&str; 2] = ["(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"];
const MARKDOWN: [&str; 8] = [
    "\n# ",
    "\n## ",
    "\n### ",
    "\n#### ",
    "\n##### ",
    "\n###### ",
    "\n^(?!\\s*$).*\\n-{1,}\\n",
    "\n^(?!\\s*$).*\\n={1,}\\n",
];

/// `ChunkingSettingsBuilder.fromMap` and the per-strategy parsers of the ES source.
fn parse_chunking(v: Ver, raw: Option<Value>) -> Result<Value, EsError> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(default_chunking()),
        Some(Value::Object(map)) if map.is_empty() => return Ok(default_chunking()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(EsError::bad(not_a_map("chunking_settings", &other))),
    };
    let Some(strategy) = map.get("strategy").map(java_str) else {
        let reason = "Can't generate Chunker without ChunkingStrategy provided";
        return Err(EsError::illegal(reason));
    };
    let newer = v.at_least(9, 1); // `recursive` and `none`
    let upper = if v.at_least(9, 2) { None } else { Some(300) };
    let mut errors = Vec::new();
    let mut allow_keys = |label: &str, valid: &[&str]| {
        let invalid: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !valid.contains(k))
            .collect();
        if !invalid.is_empty() {
            let invalid = invalid.join(", ");
            errors.push(format!(
                "{label} chunking settings can not have the following settings: [{invalid}]"
            ));
        }
    };
    let mut settings = Obj::new();
    match strategy.as_str() {
        "none" if newer => {}
        "sentence" => {
            allow_keys(
                "Sentence based",
                &["strategy", "max_chunk_size", "sentence_overlap"],
            );
            let max = bounded_int(&map, "max_chunk_size", 20, upper, &mut errors);
            let overlap = map.get("sentence_overlap").filter(|o| !o.is_null());
            let overlap = overlap.map_or(Some(1), Value::as_i64);
            if !matches!(overlap, Some(0 | 1)) {
                let shown = map
                    .get("sentence_overlap")
                    .map(java_str)
                    .unwrap_or_default();
                errors.push(format!("sentence_overlap[{shown}] must be either 0 or 1"));
            }
            settings.insert("max_chunk_size".into(), max.into());
            settings.insert("sentence_overlap".into(), overlap.into());
        }
        "word" => {
            allow_keys("Word based", &["strategy", "max_chunk_size", "overlap"]);
            let max = bounded_int(&map, "max_chunk_size", 10, upper, &mut errors);
            let half = max.map(|m| m / 2);
            let overlap = half.and_then(|h| bounded_int(&map, "overlap", 1, Some(h), &mut errors));
            settings.insert("max_chunk_size".into(), max.into());
            settings.insert("overlap".into(), overlap.into());
        }
        "recursive" if newer => {
            let keys = [
                "strategy",
                "max_chunk_size",
                "separator_group",
                "separators",
            ];
            allow_keys("Recursive", &keys);
            let max = bounded_int(&map, "max_chunk_size", 10, upper, &mut errors);
            let group = map.get("separator_group").map(java_str);
            let separators = match (group.as_deref(), map.get("separators")) {
                (Some(_), Some(_)) => Err(
                    "Recursive chunking settings can not have both separators and separator_set"
                        .to_owned(),
                ),
                (Some(group), None) => match group.trim().to_ascii_lowercase().as_str() {
                    "plaintext" => Ok(json!(PLAINTEXT)),
                    "markdown" => Ok(json!(MARKDOWN)),
                    _ => Err(format!(
                        "[chunking_settings] Invalid value [{group}] received. [separator_group] \
                         must be one of [markdown, plaintext]"
                    )),
                },
                (None, Some(Value::Array(list))) if list.is_empty() => Err(
                    "Recursive chunking settings can not have an empty list of separators"
                        .to_owned(),
                ),
                (None, Some(list)) => Ok(list.clone()),
                (None, None) => Ok(json!(PLAINTEXT)),
            };
            let separators = separators.unwrap_or_else(|e| {
                errors.push(e);
                Value::Null
            });
            settings.insert("max_chunk_size".into(), max.into());
            settings.insert("separators".into(), separators);
        }
        other => {
            return Err(EsError::illegal(format!(
                "Invalid chunkingStrategy {other}"
            )));
        }
    }
    if !errors.is_empty() {
        return Err(EsError::validation(&errors));
    }
    settings.insert("strategy".into(), strategy.into());
    Ok(Value::Object(settings))
}

/// `extractRequiredPositiveIntegerBetween` (bounds are printed as doubles, as in ES).
fn bounded_int(
    map: &Obj,
    field: &str,
    min: i64,
    max: Option<i64>,
    errors: &mut Vec<String>,
) -> Option<i64> {
    let scope = "chunking_settings";
    let error = match map.get(field).filter(|v| !v.is_null()) {
        None => missing(scope, field),
        Some(value) => match value.as_i64() {
            None => format!(
                "field [{field}] is not of the expected type. The value [{}] cannot be converted \
                 to a [Integer]",
                java_str(value)
            ),
            Some(n) if n <= 0 => {
                format!("[{scope}] Invalid value [{n}]. [{field}] must be a positive integer")
            }
            Some(n) if n < min => format!(
                "[{scope}] Invalid value [{n}.0]. [{field}] must be a greater than or equal to \
                 [{min}.0]"
            ),
            Some(n) => match max.filter(|max| n > *max) {
                None => return Some(n),
                Some(max) => format!(
                    "[{scope}] Invalid value [{n}.0]. [{field}] must be a less than or equal to \
                     [{max}.0]"
                ),
            },
        },
    };
    errors.push(error);
    None
}

// ----------------------------------------------------------------------------------------
// Responses (§2.3, §4)
// ----------------------------------------------------------------------------------------

/// An endpoint in the key order of `ModelConfigurations.toFilteredXContent`: `inference_id`,
/// `task_type`, `service`, `service_settings`, `task_settings` (omitted when empty),
/// `chunking_settings`.
struct EndpointView<'a> {
    cfg: &'a Obj,
    id_key: &'static str,
}

impl Serialize for EndpointView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const ORDER: [&str; 6] = [
            "inference_id",
            "task_type",
            "service",
            "service_settings",
            "task_settings",
            "chunking_settings",
        ];
        let empty = |k: &str, v: &Value| v.is_null() || (k == ORDER[4] && v == &json!({}));
        let mut map = serializer.serialize_map(None)?;
        for key in ORDER {
            if let Some(value) = self.cfg.get(key).filter(|v| !empty(key, v)) {
                let key = if key == ORDER[0] { self.id_key } else { key };
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in self
            .cfg
            .iter()
            .filter(|(k, _)| !ORDER.contains(&k.as_str()))
        {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A JSON object with its keys in the given order.
struct Ordered(Vec<(&'static str, Value)>);

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// An Elasticsearch exception: `kind`/`reason` outermost, `cause` the wrapped root cause.
#[derive(Debug)]
struct EsError {
    status: u16,
    kind: &'static str,
    reason: String,
    cause: Option<(&'static str, String)>,
    challenge: bool,
}

impl EsError {
    fn new(status: u16, kind: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        EsError {
            status,
            kind,
            reason,
            cause: None,
            challenge: false,
        }
    }

    fn bad(reason: impl Into<String>) -> Self {
        Self::new(400, "status_exception", reason)
    }

    fn parse(reason: impl Into<String>) -> Self {
        Self::new(400, "parse_exception", reason)
    }

    fn illegal(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    fn not_found(id: &str) -> Self {
        let reason = format!("Inference endpoint not found [{id}]");
        Self::new(404, "resource_not_found_exception", reason)
    }

    /// `ValidationException`: `Validation Failed: 1: a;2: b;`
    fn validation(errors: &[String]) -> Self {
        let numbered = errors
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{}: {e};", i + 1));
        let reason = format!("Validation Failed: {}", numbered.collect::<String>());
        Self::new(400, "validation_exception", reason)
    }

    fn unauthorized(reason: String) -> Self {
        let error = Self::new(401, "security_exception", reason);
        EsError {
            challenge: true,
            ..error
        }
    }
}

/// One level of the §4 envelope; `root_cause` only on the outermost level.
#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    root_cause: Option<[Box<ErrorJson<'a>>; 1]>,
    #[serde(rename = "type")]
    kind: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caused_by: Option<Box<ErrorJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<&'a Value>,
}

fn leaf<'a>(kind: &'a str, reason: &'a str, header: Option<&'a Value>) -> Box<ErrorJson<'a>> {
    let (root_cause, caused_by) = (None, None);
    Box::new(ErrorJson {
        root_cause,
        kind,
        reason,
        caused_by,
        header,
    })
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorJson<'a>,
    status: u16,
}

impl IntoResponse for EsError {
    fn into_response(self) -> Response {
        let header = self
            .challenge
            .then(|| json!({ "WWW-Authenticate": CHALLENGES }));
        let cause = self
            .cause
            .as_ref()
            .map(|(kind, reason)| leaf(kind, reason, None));
        let root = cause.as_ref().map_or_else(
            || leaf(self.kind, &self.reason, header.as_ref()),
            |c| leaf(c.kind, c.reason, None),
        );
        let error = ErrorJson {
            root_cause: Some([root]),
            kind: self.kind,
            reason: &self.reason,
            caused_by: cause,
            header: header.as_ref(),
        };
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(
            status,
            &Envelope {
                error,
                status: self.status,
            },
        );
        if self.challenge {
            for challenge in CHALLENGES {
                let value = HeaderValue::from_static(challenge);
                response
                    .headers_mut()
                    .append(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

// ----------------------------------------------------------------------------------------
// Small helpers
// ----------------------------------------------------------------------------------------

/// Java's `Map`/`List` `toString()`, used in several ES messages: `{k=v, k2=[a, b]}`.
fn java_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(java_str).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", java_str(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        other => other.to_string(),
    }
}

fn pct_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn b64_decode(input: &str) -> Option<String> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim().trim_end_matches('=').bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.extend(u8::try_from((acc >> bits) & 0xff).ok());
        }
    }
    String::from_utf8(out).ok()
}

/// What a cluster where Cloud Connect is not allowed answers.
fn ccm_forbidden() -> EsError {
    EsError::new(
        403,
        "status_exception",
        "Cloud Connected Mode configuration is not permitted for this environment",
    )
}
