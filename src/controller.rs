//! The I/O shell around `plan::decide`: read Secrets and Elasticsearch, perform the decided
//! step, write status and events, and wire the kube-runtime Controller.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{PartialObjectMeta, Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use rand::Rng;
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    conditions::{Outcome, READY, Severity, conditions_for, reason, same_conditions},
    connection::{Target, TargetProblem, connection_secrets, resolve_ref, target_key},
    crd::{
        ElasticsearchConnection, FIELD_MANAGER, FINALIZER, InferenceEndpoint,
        InferenceEndpointStatus, ModelDeploymentStatus, Ownership,
    },
    desired::{SecretMode, SecretValues, config_hash, create_body, update_body},
    error::{Error, Result},
    es::{ClusterInfo, Deleted, EndpointConfig, EsClient, EsConfig, EsError, SecretBody},
    metrics::Metrics,
    plan::{
        Cleanup, Decision, Facts, Record, Step, UpdateCause, conflict_owner, decide,
        decide_cleanup, deployment_id, deployment_outcome, uses_model_deployment,
    },
    secrets::{SecretProblem, endpoints_using_secret, fingerprint, referenced_secrets, resolve},
};

/// Tunables of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Periodic resync: drift is looked for at this interval (jittered).
    pub resync: Duration,
    /// First retry delay after a transient error; doubles per failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// `timeout` sent with create where the cluster accepts it.
    pub create_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            create_timeout: Duration::from_secs(60),
        }
    }
}

/// One Elasticsearch cluster: its client, its identity, and the shared list snapshot that
/// resyncs read instead of one GET per endpoint.
pub struct Cluster {
    pub es: EsClient,
    refresh: Duration,
    info: AsyncMutex<Option<(Instant, ClusterInfo)>>,
    snapshot: AsyncMutex<Option<(Instant, HashMap<String, EndpointConfig>)>>,
    /// Shared backoff of the connection: after it failed, no reconcile calls it again until
    /// `until`; they all report the same failure.
    down: Mutex<Option<Down>>,
}

struct Down {
    until: Instant,
    failures: u32,
    error: EsError,
}

impl Cluster {
    pub fn new(es: EsClient, refresh: Duration) -> Self {
        Self {
            es,
            refresh,
            info: AsyncMutex::new(None),
            snapshot: AsyncMutex::new(None),
            down: Mutex::new(None),
        }
    }

    /// `GET /`, at most once per refresh interval; fails fast while the connection backs off.
    pub async fn info(&self) -> Result<ClusterInfo, EsError> {
        if let Some(d) = self.down.lock().expect("down lock poisoned").as_ref()
            && Instant::now() < d.until
        {
            return Err(d.error.clone());
        }
        let mut guard = self.info.lock().await;
        if let Some((at, info)) = guard.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(info.clone());
        }
        match self.es.info().await {
            Ok(info) => {
                *guard = Some((Instant::now(), info.clone()));
                *self.down.lock().expect("down lock poisoned") = None;
                Ok(info)
            }
            Err(e) => {
                drop(guard);
                self.failed(&e).await;
                Err(e)
            }
        }
    }

    /// Record a failure of the connection (unreachable, TLS, refused credentials): back off for
    /// every reconcile that uses it, 1 s doubling to 60 s.
    pub async fn failed(&self, e: &EsError) {
        if !e.is_connection_failure() {
            return;
        }
        *self.info.lock().await = None;
        let mut down = self.down.lock().expect("down lock poisoned");
        let failures = down.as_ref().map_or(0, |d| d.failures) + 1;
        let wait = Duration::from_secs(1)
            .saturating_mul(1u32 << (failures - 1).min(6))
            .min(Duration::from_secs(60));
        *down = Some(Down {
            until: Instant::now() + wait,
            failures,
            error: e.clone(),
        });
    }

    /// The endpoint as of the shared snapshot (`GET _inference/_all` at most once per refresh
    /// interval; concurrent callers wait for the one list in flight).
    pub async fn cached(&self, id: &str) -> Result<Option<EndpointConfig>, EsError> {
        let mut guard = self.snapshot.lock().await;
        if let Some((at, map)) = guard.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(map.get(id).cloned());
        }
        let list = self.es.list().await?;
        let map: HashMap<_, _> = list
            .into_iter()
            .map(|e| (e.inference_id.clone(), e))
            .collect();
        let found = map.get(id).cloned();
        *guard = Some((Instant::now(), map));
        Ok(found)
    }

    /// Forget the cached identity and list, so the next reads go to Elasticsearch.
    pub async fn invalidate(&self) {
        *self.info.lock().await = None;
        *self.snapshot.lock().await = None;
    }

    /// Keep the snapshot truthful after our own writes.
    async fn remember(&self, id: &str, ep: Option<&EndpointConfig>) {
        if let Some((_, map)) = self.snapshot.lock().await.as_mut() {
            match ep {
                Some(ep) => map.insert(id.to_string(), ep.clone()),
                None => map.remove(id),
            };
        }
    }
}

/// How clients are built for every cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub request_timeout: Duration,
    /// Most requests in flight at once, per cluster.
    pub max_concurrency: usize,
}

/// One client (and identity cache, list snapshot, backoff) per cluster reference, rebuilt when
/// the reference's URL, credentials or CA change.
pub struct ClusterPool {
    default: Option<Target>,
    options: ClientOptions,
    refresh: Duration,
    metrics: Option<Arc<Metrics>>,
    clusters: Mutex<HashMap<String, (String, Arc<Cluster>)>>,
}

impl ClusterPool {
    pub fn new(
        default: Option<Target>,
        options: ClientOptions,
        refresh: Duration,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            default,
            options,
            refresh,
            metrics,
            clusters: Mutex::default(),
        }
    }

    /// The operator's default cluster, if it has one.
    pub fn default_target(&self) -> Option<&Target> {
        self.default.as_ref()
    }

    /// The cluster for `target`, built (or rebuilt, when its configuration changed) as needed.
    pub fn get(&self, target: &Target) -> Result<Arc<Cluster>, crate::es::EsConfigError> {
        let fingerprint = target.fingerprint();
        let mut clusters = self.clusters.lock().expect("pool lock poisoned");
        if let Some((f, c)) = clusters.get(&target.key)
            && *f == fingerprint
        {
            return Ok(c.clone());
        }
        let es = EsClient::new(
            &EsConfig {
                url: target.url.clone(),
                auth: target.auth.clone(),
                ca_pem: target.ca_pem.clone(),
                insecure_skip_verify: target.insecure_skip_verify,
                request_timeout: self.options.request_timeout,
                max_concurrency: self.options.max_concurrency,
            },
            self.metrics.clone(),
        )?;
        if clusters.contains_key(&target.key) {
            info!(connection = %target.key, "connection settings changed: new Elasticsearch client");
        }
        let cluster = Arc::new(Cluster::new(es, self.refresh));
        clusters.insert(target.key.clone(), (fingerprint, cluster.clone()));
        Ok(cluster)
    }

    /// The cluster already built for `key`, if any (used when its reference can no longer be
    /// resolved, e.g. during deletion).
    pub fn existing(&self, key: &str) -> Option<Arc<Cluster>> {
        self.clusters
            .lock()
            .expect("pool lock poisoned")
            .get(key)
            .map(|(_, c)| c.clone())
    }

    /// Forget every cached identity and list snapshot.
    pub async fn invalidate_all(&self) {
        let clusters: Vec<_> = self
            .clusters
            .lock()
            .expect("pool lock poisoned")
            .values()
            .map(|(_, c)| c.clone())
            .collect();
        for c in clusters {
            c.invalidate().await;
        }
    }
}

/// Everything the reconciler needs.
pub struct Context {
    pub client: Client,
    pub clusters: ClusterPool,
    /// Every InferenceEndpoint the controllers know (for the conflict rule).
    peers: Mutex<Vec<Store<InferenceEndpoint>>>,
    /// Allow elasticsearchRef to ECK clusters in other namespaces.
    pub allow_cross_namespace_refs: bool,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
    /// Model deployments being followed, by object: how many times they were looked at.
    polls: Mutex<HashMap<String, u32>>,
    /// Writes that failed permanently, by object: not tried again with the same inputs until the
    /// resync interval has passed.
    gates: Mutex<HashMap<String, (String, Instant)>>,
}

impl Context {
    pub fn new(
        client: Client,
        clusters: ClusterPool,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            clusters,
            peers: Mutex::default(),
            allow_cross_namespace_refs: false,
            client,
            recorder,
            metrics,
            settings,
            failures: Mutex::default(),
            polls: Mutex::default(),
            gates: Mutex::default(),
        }
    }

    /// Let the conflict rule see the controllers' caches of InferenceEndpoints.
    pub fn add_peers(&self, store: Store<InferenceEndpoint>) {
        self.peers.lock().expect("peers lock poisoned").push(store);
    }

    /// Every InferenceEndpoint the controllers know.
    pub fn peer_endpoints(&self) -> Vec<Arc<InferenceEndpoint>> {
        self.peers
            .lock()
            .expect("peers lock poisoned")
            .iter()
            .flat_map(|s| s.state())
            .collect()
    }

    /// The cluster a resource's endpoint lives on.
    async fn target(&self, obj: &InferenceEndpoint) -> Result<Target, TargetProblem> {
        let ns = obj.namespace().unwrap_or_default();
        match &obj.spec.elasticsearch_ref {
            None => self
                .clusters
                .default_target()
                .cloned()
                .ok_or(TargetProblem::NoCluster),
            Some(r) => resolve_ref(&self.client, &ns, r, self.allow_cross_namespace_refs).await,
        }
    }

    fn gate_closed(&self, object: &str, attempt: &str) -> bool {
        let gates = self.gates.lock().expect("gates lock poisoned");
        gates
            .get(object)
            .is_some_and(|(a, at)| a == attempt && at.elapsed() < self.settings.resync)
    }

    fn close_gate(&self, object: &str, attempt: String) {
        self.gates
            .lock()
            .expect("gates lock poisoned")
            .insert(object.to_string(), (attempt, Instant::now()));
    }

    fn open_gate(&self, object: &str) {
        self.gates
            .lock()
            .expect("gates lock poisoned")
            .remove(object);
    }

    /// The retry delay after one more failure of `object`: exponential, capped, jittered.
    pub fn next_backoff(&self, object: &str, at_least: Option<Duration>) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock poisoned");
        let n = failures.entry(object.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = self
            .settings
            .backoff_base
            .saturating_mul(1u32 << (*n - 1).min(16))
            .min(self.settings.backoff_max);
        // Jitter in [exp/2, exp], so objects that failed together do not retry together.
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        jittered.max(at_least.unwrap_or_default())
    }

    /// The delay before looking at a starting model deployment again: 5 s doubling to 60 s.
    fn next_poll(&self, object: &str) -> Duration {
        let mut polls = self.polls.lock().expect("polls lock poisoned");
        let n = polls.entry(object.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(5)
            .saturating_mul(1u32 << (*n - 1).min(8))
            .min(Duration::from_secs(60))
    }

    fn reset_poll(&self, object: &str) {
        self.polls
            .lock()
            .expect("polls lock poisoned")
            .remove(object);
    }

    pub fn reset_backoff(&self, object: &str) {
        self.failures
            .lock()
            .expect("failures lock poisoned")
            .remove(object);
    }

    fn resync_action(&self) -> Action {
        Action::requeue(
            self.settings
                .resync
                .mul_f64(rand::rng().random_range(0.9..=1.1)),
        )
    }
}

/// The `timeout` for creating this endpoint: the spec's, else 5 minutes for built-in models
/// (creation waits for the deployment), else the operator's default.
fn create_timeout(spec: &crate::crd::InferenceEndpointSpec, default: Duration) -> Duration {
    spec.create_timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(if uses_model_deployment(spec) {
            Duration::from_secs(300).max(default)
        } else {
            default
        })
}

fn object_key(obj: &InferenceEndpoint) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Reconcile one InferenceEndpoint: the entry point for the Controller.
pub async fn reconcile(obj: Arc<InferenceEndpoint>, ctx: Arc<Context>) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingNamespace)?;
    let key = object_key(&obj);
    let span = info_span!("reconcile", namespace = %ns, name = %obj.name_any());
    let started = Instant::now();
    let api: Api<InferenceEndpoint> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(o) => apply(o, &ctx).await,
            FinalizerEvent::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(Error::from_finalizer);
    ctx.metrics.observe_reconcile(started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    result
}

/// Per-object exponential backoff with jitter; honours `Retry-After`.
pub fn error_policy(obj: Arc<InferenceEndpoint>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(&obj);
    ctx.metrics.reconcile_error(err.metric_label());
    let delay = ctx.next_backoff(&key, err.retry_after());
    warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Build status from the record and outcome.
fn build_status(
    prev: &InferenceEndpointStatus,
    rec: &Record,
    outcome: &Outcome,
    generation: Option<i64>,
    version: Option<String>,
    model: Option<ModelDeploymentStatus>,
) -> InferenceEndpointStatus {
    let now = Time(Timestamp::now());
    InferenceEndpointStatus {
        observed_generation: generation,
        conditions: conditions_for(&prev.conditions, outcome, generation, &now),
        inference_id: rec.inference_id.clone(),
        ownership: rec.ownership,
        cluster_uuid: rec.cluster_uuid.clone(),
        elasticsearch_version: version.or_else(|| prev.elasticsearch_version.clone()),
        secret_fingerprint: rec.secret_fingerprint.clone(),
        applied_config_hash: rec.applied_config_hash.clone(),
        model_deployment: model,
    }
}

fn same_status(a: &InferenceEndpointStatus, b: &InferenceEndpointStatus) -> bool {
    same_conditions(&a.conditions, &b.conditions)
        && InferenceEndpointStatus {
            conditions: Vec::new(),
            ..a.clone()
        } == InferenceEndpointStatus {
            conditions: Vec::new(),
            ..b.clone()
        }
}

/// Write status with server-side apply, only when it says something new. Returns the status
/// now in effect.
async fn write_status(
    ctx: &Context,
    obj: &InferenceEndpoint,
    prev: &InferenceEndpointStatus,
    next: InferenceEndpointStatus,
) -> Result<InferenceEndpointStatus> {
    if same_status(prev, &next) {
        return Ok(prev.clone());
    }
    let api: Api<InferenceEndpoint> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": InferenceEndpoint::api_version(&()),
        "kind": InferenceEndpoint::kind(&()),
        "status": next,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(next)
}

async fn publish(
    ctx: &Context,
    obj: &InferenceEndpoint,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

fn ready_reason(s: &InferenceEndpointStatus) -> Option<&str> {
    s.condition(READY).map(|c| c.reason.as_str())
}

/// Load the referenced Secrets and resolve secretSettings.
async fn load_secrets(
    ctx: &Context,
    obj: &InferenceEndpoint,
    ns: &str,
) -> Result<Result<SecretValues, SecretProblem>> {
    if let Err(p) = crate::secrets::check_references(&obj.spec, ns) {
        return Ok(Err(p));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut fetched = BTreeMap::new();
    for name in referenced_secrets(&obj.spec) {
        let secret = api.get_opt(&name).await?;
        fetched.insert(name, secret);
    }
    Ok(resolve(&obj.spec, ns, &fetched))
}

/// Classify an Elasticsearch error from a write into an outcome. Transient errors come back as
/// `Err` so the error policy backs off; permanent ones as a stalled outcome.
fn write_failure(what: &str, id: &str, e: EsError) -> Result<Outcome> {
    // Transient errors back off; a refused credential is the connection's problem (401).
    if e.is_transient() || e.is_connection_failure() {
        return Err(Error::Es(e));
    }
    let status = e.status().unwrap_or_default();
    if status == 403 {
        return Ok(Outcome::stalled(
            reason::UNAUTHORIZED,
            format!(
                "Elasticsearch refused to {what} inference endpoint {id:?} ({status}): {}. The operator's Elasticsearch credentials need the manage_inference and monitor_inference cluster privileges (and a licence that allows the service)",
                e.reason_text()
            ),
        ));
    }
    Ok(Outcome::stalled(
        reason::REJECTED,
        format!(
            "Elasticsearch rejected the request to {what} inference endpoint {id:?} ({status}): {}. Fix the spec or the referenced Secret; the operator tries again when either changes",
            e.reason_text()
        ),
    ))
}

/// Map an error from a read to an outcome for status (reads are retried with backoff).
fn read_failure_outcome(e: &Error) -> Outcome {
    match e {
        Error::Es(es) if es.is_connection_failure() => {
            let hint = es
                .hint()
                .map(|h| format!(". Likely cause: {h}"))
                .unwrap_or_default();
            let message = format!(
                "cannot use the Elasticsearch connection: {es}{hint}; retrying with backoff"
            );
            // Refused credentials and untrusted certificates need a person; an unreachable
            // cluster may come back by itself.
            if es.status() == Some(401) || es.to_string().contains("certificate") {
                Outcome::stalled(reason::CONNECTION_FAILED, message)
            } else {
                Outcome::progressing(reason::CONNECTION_FAILED, message)
            }
        }
        Error::Es(es) if es.status() == Some(403) => Outcome::stalled(
            reason::UNAUTHORIZED,
            format!(
                "Elasticsearch refused the operator's request ({}): {}. The operator's credentials need the manage_inference and monitor_inference cluster privileges",
                es.status().unwrap_or_default(),
                es.reason_text()
            ),
        ),
        Error::Es(es) => Outcome::progressing(
            reason::ELASTICSEARCH_UNAVAILABLE,
            format!("{es}; retrying with backoff"),
        ),
        Error::Kube(k) => Outcome::progressing(
            reason::KUBERNETES_ERROR,
            format!("{k}; retrying with backoff (check the operator's RBAC if this persists)"),
        ),
        other => Outcome::progressing(
            reason::ELASTICSEARCH_UNAVAILABLE,
            format!("{other}; retrying with backoff"),
        ),
    }
}

struct Working {
    rec: Record,
    version: Option<String>,
    model: Option<ModelDeploymentStatus>,
    /// The status currently stored (updated by intermediate writes).
    stored: InferenceEndpointStatus,
}

async fn apply(obj: Arc<InferenceEndpoint>, ctx: &Context) -> Result<Action> {
    let key = object_key(&obj);
    let prev = obj.status.clone().unwrap_or_default();
    let mut w = Working {
        rec: Record::from_status(&prev),
        version: prev.elasticsearch_version.clone(),
        model: prev.model_deployment.clone(),
        stored: prev.clone(),
    };
    let result = sync(&obj, ctx, &mut w).await;
    let (outcome, ret) = match result {
        Ok(o) if o.reason == reason::MODEL_DEPLOYING => {
            // Follow the deployment with backoff until it is ready; no faster than needed.
            let action = Action::requeue(ctx.next_poll(&key));
            (o, Ok(action))
        }
        Ok(o) => {
            ctx.reset_poll(&key);
            let action = ctx.resync_action();
            (o, Ok(action))
        }
        Err(e) => (read_failure_outcome(&e), Err(e)),
    };
    let previous_reason = ready_reason(&w.stored).map(str::to_string);
    let next = build_status(
        &w.stored,
        &w.rec,
        &outcome,
        obj.metadata.generation,
        w.version.clone(),
        w.model.clone(),
    );
    write_status(ctx, &obj, &w.stored, next).await?;
    ctx.metrics.set_endpoint_reason(&key, Some(&outcome.reason));
    if outcome.severity != Severity::Ready
        && previous_reason.as_deref() != Some(outcome.reason.as_str())
    {
        publish(
            ctx,
            &obj,
            EventType::Warning,
            &outcome.reason,
            outcome.message.clone(),
        )
        .await;
    }
    if outcome.severity == Severity::Ready {
        ctx.open_gate(&key);
    }
    ret
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::MarkCreating => "mark",
        Step::Create => "create",
        Step::Claim(_) => "claim",
        Step::Update { .. } => "update",
        Step::Replace { .. } => "replace",
    }
}

/// One reconcile pass up to its outcome. `Err` only for transient problems.
async fn sync(obj: &InferenceEndpoint, ctx: &Context, w: &mut Working) -> Result<Outcome> {
    let ns = obj.namespace().ok_or(Error::MissingNamespace)?;

    let values = match load_secrets(ctx, obj, &ns).await? {
        Ok(v) => v,
        Err(problem) => {
            let r = if problem.is_spec_error() {
                reason::INVALID_SPEC
            } else {
                reason::SECRET_NOT_FOUND
            };
            return Ok(Outcome::stalled(
                r,
                format!("{problem}; the operator retries as soon as the Secret changes"),
            ));
        }
    };
    let fp = fingerprint(&obj.uid().unwrap_or_default(), &values);
    let target = match ctx.target(obj).await {
        Ok(t) => t,
        Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
        Err(problem) => {
            return Ok(Outcome::stalled(
                reason::INVALID_REFERENCE,
                format!("{problem}; nothing was sent to Elasticsearch"),
            ));
        }
    };
    let conn = match ctx.clusters.get(&target) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::stalled(
                reason::CONNECTION_FAILED,
                format!("cannot build a client for {}: {e}", target.url),
            ));
        }
    };
    let result = sync_on(obj, ctx, w, &conn, &target.key, values, fp).await;
    if let Err(Error::Es(e)) = &result {
        conn.failed(e).await;
    }
    result
}

/// The rest of a pass, on the resolved cluster.
async fn sync_on(
    obj: &InferenceEndpoint,
    ctx: &Context,
    w: &mut Working,
    conn: &Cluster,
    target_key: &str,
    values: SecretValues,
    fp: Option<String>,
) -> Result<Outcome> {
    let key = object_key(obj);
    let id = obj.inference_id();
    let spec = &obj.spec;
    let cluster = conn.info().await.map_err(Error::Es)?;
    w.version = Some(cluster.version.to_string());
    let peers = ctx.peer_endpoints();
    if let Some(owner) = conflict_owner(
        obj,
        target_key,
        &cluster.uuid,
        peers.iter().map(|p| p.as_ref()),
    ) {
        return Ok(Outcome::stalled(
            reason::CONFLICT,
            format!(
                "InferenceEndpoint {owner} (older) already manages inference endpoint {id:?} on this cluster; this resource sends nothing to Elasticsearch. Choose another spec.inferenceId, or delete one of the two"
            ),
        ));
    }
    if w.rec.manages_something()
        && w.rec.inference_id.as_deref() == Some(id.as_str())
        && w.rec
            .cluster_uuid
            .as_deref()
            .is_some_and(|u| u != cluster.uuid)
    {
        publish(ctx, obj, EventType::Warning, "ClusterChanged", format!(
            "the Elasticsearch cluster behind this resource changed (cluster_uuid {} is now {}): inference endpoint {id:?} is created on the new cluster",
            w.rec.cluster_uuid.as_deref().unwrap_or_default(), cluster.uuid
        )).await;
    }
    let desired_hash = config_hash(spec);

    // A resync of an endpoint that was in sync reads the shared list snapshot; anything else, or
    // a snapshot that disagrees, reads the endpoint itself.
    let quiet = ready_reason(&w.stored) == Some(reason::IN_SYNC)
        && w.stored.observed_generation == obj.metadata.generation
        && w.rec.secret_fingerprint == fp
        && w.rec.applied_config_hash.as_deref() == Some(desired_hash.as_str())
        && matches!(
            w.rec.ownership_of(&id, &cluster.uuid),
            Some(Ownership::Created | Ownership::Adopted)
        );
    if quiet {
        let cached = conn.cached(&id).await.map_err(Error::Es)?;
        let facts = Facts {
            spec,
            inference_id: &id,
            record: &w.rec,
            cluster: &cluster,
            fingerprint: fp.as_deref(),
            observed: cached.as_ref(),
        };
        if let Decision::Done(o) = decide(&facts)
            && o.is_ready()
        {
            debug!("in sync (from the shared snapshot)");
            return Ok(o);
        }
    }
    let mut observed = conn.es.get(&id).await.map_err(Error::Es)?;

    let mut last_update: Option<Vec<String>> = None;
    for _ in 0..8 {
        let facts = Facts {
            spec,
            inference_id: &id,
            record: &w.rec,
            cluster: &cluster,
            fingerprint: fp.as_deref(),
            observed: observed.as_ref(),
        };
        let step = match decide(&facts) {
            Decision::Done(o) => {
                if !o.is_ready() {
                    return Ok(o);
                }
                w.rec.applied_config_hash = Some(desired_hash);
                if !uses_model_deployment(spec) {
                    return Ok(o);
                }
                // The configuration is in sync; a model-backed endpoint is usable only once its
                // deployment has started.
                let dep = deployment_id(spec, &id);
                let stats = conn.es.deployment_stats(&dep).await.map_err(Error::Es)?;
                w.model = stats.as_ref().map(|d| ModelDeploymentStatus {
                    deployment_id: d.deployment_id.clone(),
                    model_id: d.model_id.clone(),
                    state: d.state.clone(),
                    allocations: d.allocations,
                    target_allocations: d.target_allocations,
                    allocation_state: d.allocation_state.clone(),
                });
                return Ok(deployment_outcome(spec, &id, stats.as_ref()).unwrap_or(o));
            }
            Decision::Act(step) => step,
        };
        let attempt = format!(
            "{}/{desired_hash}/{}",
            step_name(&step),
            fp.as_deref().unwrap_or("-")
        );
        if ctx.gate_closed(&key, &attempt) {
            // The same write failed permanently with the same inputs: keep reporting it and wait
            // for a change (or the next resync) instead of paying for it again.
            debug!(attempt, "not repeating a write that failed permanently");
            let c = w.stored.condition(READY);
            return Ok(Outcome::stalled(
                reason::REJECTED,
                c.map(|c| c.message.clone())
                    .unwrap_or_else(|| "the last request was rejected".into()),
            )
            .with_reason(c.map(|c| c.reason.clone())));
        }
        match step {
            Step::MarkCreating => {
                // The mark records which secret values the create sends: a pass that finds the
                // endpoint created (possibly from a cache that still shows this mark) knows
                // whether they are current, and does not push them again.
                w.rec = Record {
                    inference_id: Some(id.clone()),
                    ownership: Some(Ownership::Creating),
                    cluster_uuid: Some(cluster.uuid.clone()),
                    secret_fingerprint: fp.clone(),
                    applied_config_hash: None,
                };
                let next = build_status(
                    &w.stored,
                    &w.rec,
                    &Outcome::progressing(
                        reason::CREATING,
                        format!("creating inference endpoint {id:?} in Elasticsearch"),
                    ),
                    obj.metadata.generation,
                    w.version.clone(),
                    None,
                );
                w.stored = write_status(ctx, obj, &w.stored, next).await?;
            }
            Step::Create => {
                let was_ours = w.rec.ownership == Some(Ownership::Created)
                    || w.rec.ownership == Some(Ownership::Adopted);
                let body = SecretBody {
                    body: create_body(spec, SecretMode::Reveal(&values)),
                    secrets: values.values.values().cloned().collect(),
                };
                let timeout = cluster
                    .version
                    .put_accepts_timeout()
                    .then(|| create_timeout(spec, ctx.settings.create_timeout));
                match conn
                    .es
                    .create(spec.task_type.as_str(), &id, body, timeout)
                    .await
                {
                    Ok(ep) => {
                        info!(inference_id = %id, "created inference endpoint");
                        if w.rec.ownership == Some(Ownership::Creating) {
                            w.rec.ownership = Some(Ownership::Created);
                        }
                        w.rec.secret_fingerprint = fp.clone();
                        conn.remember(&id, Some(&ep)).await;
                        observed = Some(ep);
                        if was_ours {
                            publish(ctx, obj, EventType::Warning, "Recreated", format!(
                                "inference endpoint {id:?} was missing from Elasticsearch (deleted outside Kubernetes) and was created again"
                            )).await;
                        } else {
                            publish(
                                ctx,
                                obj,
                                EventType::Normal,
                                "Created",
                                format!(
                                    "created inference endpoint {id:?} ({} {})",
                                    spec.service, spec.task_type
                                ),
                            )
                            .await;
                        }
                    }
                    Err(e) => {
                        // Elasticsearch may have stored the endpoint before failing (a timeout, or
                        // a model deployment that did not start): look before trying again.
                        warn!(inference_id = %id, error = %e, "create failed; checking whether the endpoint was stored");
                        match conn.es.get(&id).await.map_err(Error::Es)? {
                            Some(ep) => {
                                // Stored by this or an earlier attempt; the recorded fingerprint
                                // says which secret values that attempt sent.
                                observed = Some(ep);
                            }
                            None => {
                                let outcome = write_failure("create", &id, e)?;
                                ctx.close_gate(&key, attempt);
                                return Ok(outcome);
                            }
                        }
                    }
                }
            }
            Step::Claim(ownership) => {
                w.rec.inference_id = Some(id.clone());
                w.rec.cluster_uuid = Some(cluster.uuid.clone());
                w.rec.ownership = Some(ownership);
                if ownership == Ownership::Adopted {
                    // What the adopted endpoint holds is unknown: send the Secret's values once.
                    w.rec.secret_fingerprint = None;
                    info!(inference_id = %id, "adopted inference endpoint");
                    publish(ctx, obj, EventType::Normal, "Adopted", format!(
                        "adopted the existing inference endpoint {id:?}; it is now managed by this resource"
                    )).await;
                }
            }
            Step::Update { changed, cause } => {
                let fields: Vec<String> = changed.iter().map(|d| d.field.clone()).collect();
                if !fields.is_empty() && last_update.as_ref() == Some(&fields) {
                    return Ok(Outcome::stalled(
                        reason::REQUIRES_REPLACEMENT,
                        format!(
                            "Elasticsearch {} accepted an update of {} for endpoint {id:?} but did not apply it; it cannot change these in place. Revert the change or set spec.replacementPolicy: Recreate",
                            cluster.version,
                            fields.join(", ")
                        ),
                    ));
                }
                let Some(body) =
                    update_body(spec, SecretMode::Reveal(&values), &changed, cluster.version)
                else {
                    // Nothing Elasticsearch could take (no secrets, no task settings).
                    w.rec.secret_fingerprint = fp.clone();
                    continue;
                };
                let body = SecretBody {
                    body,
                    secrets: values.values.values().cloned().collect(),
                };
                match conn.es.update(spec.task_type.as_str(), &id, body).await {
                    Ok(ep) => {
                        w.rec.secret_fingerprint = fp.clone();
                        conn.remember(&id, Some(&ep)).await;
                        observed = Some(ep);
                        let (event_reason, note) = match cause {
                            UpdateCause::SpecChanged => (
                                "Updated",
                                format!(
                                    "updated {} of inference endpoint {id:?}",
                                    describe(&fields, "secrets")
                                ),
                            ),
                            UpdateCause::SecretRotated => {
                                ctx.metrics.secret_rotated();
                                (
                                    "SecretRotated",
                                    format!(
                                        "sent the rotated secret values to inference endpoint {id:?}"
                                    ),
                                )
                            }
                            UpdateCause::DriftCorrected => {
                                ctx.metrics.drift_corrected();
                                (
                                    "DriftCorrected",
                                    format!(
                                        "corrected {} of inference endpoint {id:?}, changed outside Kubernetes",
                                        describe(&fields, "settings")
                                    ),
                                )
                            }
                            UpdateCause::Adopted => (
                                "SecretsApplied",
                                format!(
                                    "sent the referenced secret values to adopted inference endpoint {id:?}"
                                ),
                            ),
                        };
                        info!(inference_id = %id, reason = event_reason, "updated inference endpoint");
                        publish(ctx, obj, EventType::Normal, event_reason, note).await;
                        last_update = Some(fields);
                    }
                    Err(e) if e.status() == Some(404) => {
                        observed = None;
                    }
                    Err(e) => {
                        let outcome = write_failure("update", &id, e)?;
                        ctx.close_gate(&key, attempt);
                        return Ok(outcome);
                    }
                }
            }
            Step::Replace { fields } => {
                match conn
                    .es
                    .delete(spec.task_type.as_str(), &id, spec.force_delete)
                    .await
                {
                    Ok(_) => {
                        info!(inference_id = %id, "deleted inference endpoint to replace it");
                        conn.remember(&id, None).await;
                        publish(ctx, obj, EventType::Normal, "Replacing", format!(
                            "deleted inference endpoint {id:?} to create it again with the new {}", fields.join(", ")
                        )).await;
                        observed = None;
                        // Still ours: the next step creates it again.
                        w.rec.ownership = Some(Ownership::Created);
                        w.rec.secret_fingerprint = None;
                    }
                    Err(e) if e.status() == Some(409) => {
                        return Ok(Outcome::stalled(
                            reason::REPLACEMENT_BLOCKED,
                            format!(
                                "cannot replace inference endpoint {id:?} to change {}: {}. Remove those references, or set spec.forceDelete: true to replace it anyway",
                                fields.join(", "),
                                e.reason_text()
                            ),
                        ));
                    }
                    Err(e) => {
                        let outcome = write_failure("replace", &id, e)?;
                        ctx.close_gate(&key, attempt);
                        return Ok(outcome);
                    }
                }
            }
        }
    }
    Err(Error::Finalizer(format!(
        "reconcile of {id:?} did not settle after several steps"
    )))
}

fn describe(fields: &[String], empty: &str) -> String {
    if fields.is_empty() {
        empty.to_string()
    } else {
        fields.join(", ")
    }
}

async fn cleanup(obj: Arc<InferenceEndpoint>, ctx: &Context) -> Result<Action> {
    let key = object_key(&obj);
    let id = obj.inference_id();
    let rec = Record::from_status(
        obj.status
            .as_ref()
            .unwrap_or(&InferenceEndpointStatus::default()),
    );
    // Retain and never-managed need no Elasticsearch at all.
    if obj.spec.deletion_policy == crate::crd::DeletionPolicy::Retain || rec.ownership.is_none() {
        let why = match decide_cleanup(&obj.spec, &rec, &id, "") {
            Cleanup::Release(why) => why,
            Cleanup::Delete { .. } => unreachable!("decide_cleanup deletes only what it manages"),
        };
        return release(ctx, &obj, &key, &id, why).await;
    }
    let conn = match ctx.target(&obj).await {
        Ok(target) => ctx
            .clusters
            .get(&target)
            .map_err(|e| Error::Unavailable(e.to_string()))?,
        Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
        // The reference is gone (often: the whole namespace is being deleted). Use the client
        // built before, if any; otherwise say plainly what was left behind instead of blocking
        // the deletion forever.
        Err(problem) => match ctx.clusters.existing(&target_key(&obj)) {
            Some(c) => c,
            None => {
                let why = format!(
                    "inference endpoint {id:?} could NOT be deleted from Elasticsearch: {problem}. Delete it there by hand (DELETE _inference/{}/{id})",
                    obj.spec.task_type
                );
                warn!(inference_id = %id, "{why}");
                publish(ctx, &obj, EventType::Warning, "NotDeleted", why).await;
                ctx.metrics.set_endpoint_reason(&key, None);
                return Ok(Action::await_change());
            }
        },
    };
    let cluster_uuid = match conn.info().await {
        Ok(i) => i.uuid,
        Err(e) => {
            conn.failed(&e).await;
            let err = Error::Es(e);
            report_cleanup_problem(ctx, &obj, read_failure_outcome(&err)).await?;
            return Err(err);
        }
    };
    match decide_cleanup(&obj.spec, &rec, &id, &cluster_uuid) {
        Cleanup::Release(why) => {
            info!(inference_id = %id, "released without deleting: {why}");
            publish(ctx, &obj, EventType::Normal, "Released", why).await;
        }
        Cleanup::Delete {
            force,
            verify_first,
        } => {
            if verify_first {
                let ours = conn
                    .es
                    .get(&id)
                    .await
                    .map_err(Error::Es)?
                    .is_some_and(|ep| {
                        ep.service == obj.spec.service
                            && ep.task_type == obj.spec.task_type.as_str()
                    });
                if !ours {
                    publish(
                        ctx,
                        &obj,
                        EventType::Normal,
                        "Released",
                        format!("inference endpoint {id:?} was never created; nothing to delete"),
                    )
                    .await;
                    ctx.metrics.set_endpoint_reason(&key, None);
                    return Ok(Action::await_change());
                }
            }
            match conn
                .es
                .delete(obj.spec.task_type.as_str(), &id, force)
                .await
            {
                Ok(gone) => {
                    conn.remember(&id, None).await;
                    let note = match gone {
                        Deleted::Deleted => format!(
                            "deleted inference endpoint {id:?}{}",
                            if force { " (forced)" } else { "" }
                        ),
                        Deleted::AlreadyGone => {
                            format!("inference endpoint {id:?} was already gone")
                        }
                    };
                    info!(inference_id = %id, "{note}");
                    publish(ctx, &obj, EventType::Normal, "Deleted", note).await;
                }
                Err(e) if e.status() == Some(409) => {
                    let message = format!(
                        "Elasticsearch refuses to delete inference endpoint {id:?} while it is in use: {}. Remove those references, set spec.forceDelete: true, or set spec.deletionPolicy: Retain",
                        e.reason_text()
                    );
                    report_cleanup_problem(
                        ctx,
                        &obj,
                        Outcome::stalled(reason::DELETION_BLOCKED, message.clone()),
                    )
                    .await?;
                    return Err(Error::DeletionBlocked(message));
                }
                Err(e) => {
                    let err = Error::Es(e);
                    report_cleanup_problem(ctx, &obj, read_failure_outcome(&err)).await?;
                    return Err(err);
                }
            }
        }
    }
    ctx.metrics.set_endpoint_reason(&key, None);
    ctx.open_gate(&key);
    Ok(Action::await_change())
}

async fn release(
    ctx: &Context,
    obj: &InferenceEndpoint,
    key: &str,
    id: &str,
    why: String,
) -> Result<Action> {
    info!(inference_id = %id, "released without deleting: {why}");
    publish(ctx, obj, EventType::Normal, "Released", why).await;
    ctx.metrics.set_endpoint_reason(key, None);
    ctx.open_gate(key);
    Ok(Action::await_change())
}

async fn report_cleanup_problem(
    ctx: &Context,
    obj: &InferenceEndpoint,
    outcome: Outcome,
) -> Result<()> {
    let prev = obj.status.clone().unwrap_or_default();
    let previous_reason = ready_reason(&prev).map(str::to_string);
    let next = build_status(
        &prev,
        &Record::from_status(&prev),
        &outcome,
        obj.metadata.generation,
        None,
        prev.model_deployment.clone(),
    );
    write_status(ctx, obj, &prev, next).await?;
    ctx.metrics
        .set_endpoint_reason(&object_key(obj), Some(&outcome.reason));
    if previous_reason.as_deref() != Some(outcome.reason.as_str()) {
        publish(
            ctx,
            obj,
            EventType::Warning,
            &outcome.reason,
            outcome.message,
        )
        .await;
    }
    Ok(())
}

/// The APIs one scope (a namespace, or all of them) watches.
struct Apis {
    endpoints: Api<InferenceEndpoint>,
    connections: Api<ElasticsearchConnection>,
    secrets: Api<PartialObjectMeta<Secret>>,
    config_maps: Api<PartialObjectMeta<ConfigMap>>,
}

impl Apis {
    fn new(client: &Client, namespace: Option<&str>) -> Self {
        match namespace {
            Some(ns) => Self {
                endpoints: Api::namespaced(client.clone(), ns),
                connections: Api::namespaced(client.clone(), ns),
                secrets: Api::namespaced(client.clone(), ns),
                config_maps: Api::namespaced(client.clone(), ns),
            },
            None => Self {
                endpoints: Api::all(client.clone()),
                connections: Api::all(client.clone()),
                secrets: Api::all(client.clone()),
                config_maps: Api::all(client.clone()),
            },
        }
    }
}

/// Run one controller per watched namespace (one for all namespaces when `namespaces` is empty)
/// until `shutdown` turns true. `ready` is set once every controller has synced its watches.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    concurrency: u16,
    shutdown: tokio::sync::watch::Receiver<bool>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = scopes.len();
    let runs = scopes.into_iter().map(|namespace| {
        let ctx = ctx.clone();
        let mut shutdown = shutdown.clone();
        let ready = ready.clone();
        let synced = synced.clone();
        async move {
            let client = ctx.client.clone();
            let Apis {
                endpoints,
                connections,
                secrets,
                config_maps,
            } = Apis::new(&client, namespace.as_deref());
            let watch = || watcher::Config::default().any_semantic();

            // ElasticsearchConnections: their own status, re-checked when their Secrets change.
            let conn_controller = Controller::new(connections.clone(), watch());
            let conn_store: Store<ElasticsearchConnection> = conn_controller.store();
            let users_of = |store: Store<ElasticsearchConnection>| {
                move |ns: String, name: String| -> Vec<ObjectRef<ElasticsearchConnection>> {
                    store
                        .state()
                        .iter()
                        .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
                        .filter(|c| connection_secrets(&c.spec).contains(&name))
                        .map(|c| ObjectRef::from_obj(c.as_ref()))
                        .collect()
                }
            };
            let (by_secret, by_config_map) =
                (users_of(conn_store.clone()), users_of(conn_store.clone()));
            let Apis {
                secrets: conn_secrets,
                config_maps: conn_config_maps,
                ..
            } = Apis::new(&client, namespace.as_deref());
            let conn_controller = conn_controller
                .with_config(kube::runtime::controller::Config::default().concurrency(2))
                .watches(conn_secrets, watch(), move |s| {
                    by_secret(
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .watches(conn_config_maps, watch(), move |m| {
                    by_config_map(
                        m.metadata.namespace.clone().unwrap_or_default(),
                        m.metadata.name.clone().unwrap_or_default(),
                    )
                });

            // InferenceEndpoints, re-reconciled when a Secret, ConfigMap or connection they depend
            // on changes. Secrets and ConfigMaps are watched by metadata only
            // (`PartialObjectMeta`): the operator never holds data it does not need, and reads
            // what a resource references when it reconciles it.
            let controller = Controller::new(endpoints, watch())
                .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
            let store: Store<InferenceEndpoint> = controller.store();
            ctx.add_peers(store.clone());
            let dependents = |ies: Store<InferenceEndpoint>,
                              conns: Store<ElasticsearchConnection>| {
                move |ns: String, name: String| -> Vec<ObjectRef<InferenceEndpoint>> {
                    let conns = conns.state();
                    let ies = ies.state();
                    let mut out =
                        endpoints_using_secret(ies.iter().map(|a| a.as_ref()), &ns, &name);
                    for ie in ies.iter() {
                        let conn = ie.spec.elasticsearch_ref.as_ref().and_then(|r| {
                            conns
                                .iter()
                                .find(|c| c.name_any() == r.name && c.namespace() == ie.namespace())
                                .map(|c| &c.spec)
                        });
                        let uses = crate::connection::referenced_secrets(ie, conn)
                            .iter()
                            .any(|(n, s)| *n == ns && *s == name);
                        let r = ObjectRef::from_obj(ie.as_ref());
                        if uses && !out.contains(&r) {
                            out.push(r);
                        }
                    }
                    out
                }
            };
            let by_secret = dependents(store.clone(), conn_store.clone());
            let by_config_map = dependents(store.clone(), conn_store.clone());
            let by_connection = store.clone();
            let by_inference_id = store.clone();
            let peer_endpoints = Apis::new(&client, namespace.as_deref()).endpoints;
            let controller = controller
                .watches(secrets, watch(), move |s| {
                    by_secret(
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .watches(config_maps, watch(), move |m| {
                    by_config_map(
                        m.metadata.namespace.clone().unwrap_or_default(),
                        m.metadata.name.clone().unwrap_or_default(),
                    )
                })
                // When a resource changes or goes away, the others with the same inference id
                // re-check the conflict rule at once (the next owner takes over without waiting
                // for a resync).
                .watches(
                    peer_endpoints,
                    watch(),
                    move |changed: InferenceEndpoint| {
                        let id = changed.inference_id();
                        by_inference_id
                            .state()
                            .iter()
                            .filter(|ie| {
                                ie.metadata.uid != changed.metadata.uid && ie.inference_id() == id
                            })
                            .map(|ie| ObjectRef::from_obj(ie.as_ref()))
                            .collect::<Vec<_>>()
                    },
                )
                .watches(connections, watch(), move |c| {
                    by_connection
                        .state()
                        .iter()
                        .filter(|ie| ie.namespace() == c.namespace())
                        .filter(|ie| {
                            ie.spec.elasticsearch_ref.as_ref().is_some_and(|r| {
                                r.kind == crate::crd::ElasticsearchRefKind::ElasticsearchConnection
                                    && r.name == c.name_any()
                            })
                        })
                        .map(|ie| ObjectRef::from_obj(ie.as_ref()))
                        .collect::<Vec<_>>()
                });
            let scope = namespace
                .clone()
                .unwrap_or_else(|| "<all namespaces>".into());
            let ready_store = store.clone();
            let ready_conns = conn_store.clone();
            tokio::spawn(async move {
                if ready_store.wait_until_ready().await.is_ok()
                    && ready_conns.wait_until_ready().await.is_ok()
                {
                    info!(namespace = %scope, "watches synced");
                    if synced.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == total {
                        ready.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
            let mut conn_shutdown = shutdown.clone();
            let endpoints_run = controller
                .graceful_shutdown_on(async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|res| async move {
                    if let Err(e) = res {
                        debug!(error = %e, "controller event");
                    }
                });
            let connections_run = conn_controller
                .graceful_shutdown_on(async move {
                    let _ = conn_shutdown.wait_for(|stop| *stop).await;
                })
                .run(
                    crate::connection_status::reconcile,
                    crate::connection_status::error_policy,
                    ctx,
                )
                .for_each(|res| async move {
                    if let Err(e) = res {
                        debug!(error = %e, "connection controller event");
                    }
                });
            futures::join!(endpoints_run, connections_run);
        }
    });
    futures::future::join_all(runs).await;
}
