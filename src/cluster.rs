//! One Elasticsearch cluster as the reconcilers use it: its client, its identity, its health
//! (a shared backoff when the connection fails), the shared list snapshot, and the verbs that keep
//! all of these up to date. `ClusterPool` holds one per cluster reference.
//!
//! Rules enforced here, in one place:
//! - only a real request can extend a connection's backoff; a call that fails fast on the cached
//!   "down" state does not, so a cluster that comes back is noticed at the end of the window;
//! - a timeout, a transport error, refused credentials or an unrecovered cluster state mark the
//!   connection down; other errors belong to one request;
//! - every write checks the leadership fence immediately before it is sent.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::sync::Mutex as AsyncMutex;
use tracing::{info, warn};

use crate::{
    connection::Target,
    error::{Error, Result},
    es::{EsClient, EsConfig, EsConfigError, EsError, RawEndpoint, SecretBody},
    lease::Fence,
    metrics::Metrics,
    model::{ClusterInfo, Deleted, DeploymentStats, EndpointConfig},
};

/// Tunables shared by every cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub request_timeout: Duration,
    /// Most requests in flight at once, per cluster.
    pub max_concurrency: usize,
    pub max_response_bytes: usize,
    /// How long `GET /` (identity) and the list snapshot are reused.
    pub refresh: Duration,
    /// First wait after a connection failure; doubles per failure.
    pub backoff_base: Duration,
    /// Longest wait between two probes of a failed connection.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_concurrency: 8,
            max_response_bytes: 32 << 20,
            refresh: Duration::from_secs(600),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
enum Health {
    Up,
    Down {
        until: Instant,
        failures: u32,
        cause: EsError,
    },
}

/// What a list said, per inference id: the endpoint as JSON text and a hash of its
/// configuration. Kept until the next list; our own writes update it.
pub struct Snapshot {
    pub taken: Instant,
    endpoints: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    json: Box<str>,
    hash: u64,
}

impl Snapshot {
    /// The hash of the endpoint's configuration, `None` when the list did not have it.
    pub fn hash(&self, id: &str) -> Option<u64> {
        self.lock().get(id).map(|e| e.hash)
    }

    /// The endpoint as listed, parsed.
    pub fn get(&self, id: &str) -> Result<Option<EndpointConfig>> {
        let json = self.lock().get(id).map(|e| e.json.clone());
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| Error::Es(EsError::Decode(e.to_string())))
        })
        .transpose()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of every endpoint, for comparing snapshots.
    pub fn hashes(&self) -> HashMap<String, u64> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.hash))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.endpoints.lock().expect("snapshot lock poisoned")
    }

    fn remember(&self, id: &str, ep: Option<&EndpointConfig>) {
        let mut map = self.lock();
        match ep {
            Some(ep) => {
                map.insert(
                    id.to_string(),
                    Entry {
                        json: endpoint_json(ep).into(),
                        hash: endpoint_hash(ep),
                    },
                );
            }
            None => {
                map.remove(id);
            }
        }
    }
}

fn endpoint_json(ep: &EndpointConfig) -> String {
    serde_json::json!({
        "inference_id": ep.inference_id,
        "task_type": ep.task_type,
        "service": ep.service,
        "service_settings": ep.service_settings,
        "task_settings": ep.task_settings,
        "chunking_settings": ep.chunking_settings,
    })
    .to_string()
}

/// A hash of what an endpoint is configured to do (service, task type and settings; not EIS
/// metadata, which Elasticsearch changes on its own). Equal hashes mean "nothing to look at".
pub fn endpoint_hash(ep: &EndpointConfig) -> u64 {
    let canonical = serde_json::json!([
        ep.task_type,
        ep.service,
        ep.service_settings,
        ep.task_settings,
        ep.chunking_settings,
    ])
    .to_string();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut h);
    h.finish()
}

/// One Elasticsearch cluster.
pub struct Cluster {
    key: String,
    es: EsClient,
    settings: ClusterSettings,
    fence: Fence,
    metrics: Option<Arc<Metrics>>,
    identity: AsyncMutex<Option<(Instant, ClusterInfo)>>,
    health: Mutex<Health>,
    snapshot: AsyncMutex<Option<Arc<Snapshot>>>,
    last_used: Mutex<Instant>,
}

impl Cluster {
    pub fn new(
        key: &str,
        es: EsClient,
        settings: ClusterSettings,
        fence: Fence,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            key: key.to_string(),
            es,
            settings,
            fence,
            metrics,
            identity: AsyncMutex::new(None),
            health: Mutex::new(Health::Up),
            snapshot: AsyncMutex::new(None),
            last_used: Mutex::new(Instant::now()),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn url(&self) -> &str {
        self.es.url()
    }

    fn touch(&self) {
        *self.last_used.lock().expect("cluster lock poisoned") = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .expect("cluster lock poisoned")
            .elapsed()
    }

    /// `Err(ConnectionDown)` while the connection backs off; never extends the window.
    fn check_health(&self) -> Result<()> {
        match &*self.health.lock().expect("health lock poisoned") {
            Health::Down { until, cause, .. } if Instant::now() < *until => {
                Err(Error::ConnectionDown {
                    until: *until,
                    cause: cause.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the connection is backing off now, and until when.
    pub fn down_until(&self) -> Option<Instant> {
        match &*self.health.lock().expect("health lock poisoned") {
            Health::Down { until, .. } if Instant::now() < *until => Some(*until),
            _ => None,
        }
    }

    /// Feed the result of a real request into the connection's health.
    fn record_health<T>(&self, result: std::result::Result<T, EsError>) -> Result<T> {
        match result {
            Ok(v) => {
                let mut h = self.health.lock().expect("health lock poisoned");
                if matches!(*h, Health::Down { .. }) {
                    info!(cluster = %self.key, "Elasticsearch connection is back");
                    *h = Health::Up;
                    if let Some(m) = &self.metrics {
                        m.set_connection_up(&self.key, true);
                    }
                }
                Ok(v)
            }
            Err(e) if e.is_connection_failure() => Err(self.mark_down(e)),
            Err(e) => Err(Error::Es(e)),
        }
    }

    fn mark_down(&self, cause: EsError) -> Error {
        let mut h = self.health.lock().expect("health lock poisoned");
        let failures = match &*h {
            Health::Down { failures, .. } => failures + 1,
            Health::Up => 1,
        };
        let exp = self
            .settings
            .backoff_base
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(self.settings.backoff_max);
        // Jitter in [exp/2, exp]: operators sharing a cluster do not probe in lockstep.
        let wait = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        let until = Instant::now() + wait;
        if failures == 1 {
            warn!(cluster = %self.key, error = %cause, "Elasticsearch connection failed; backing off");
        }
        *h = Health::Down {
            until,
            failures,
            cause: cause.clone(),
        };
        if let Some(m) = &self.metrics {
            m.set_connection_up(&self.key, false);
        }
        if let Ok(mut identity) = self.identity.try_lock() {
            *identity = None;
        }
        Error::ConnectionDown { until, cause }
    }

    /// `GET /` at most once per refresh interval (single flight); fails fast while the connection
    /// backs off. A cluster without an identity yet (`_na_`) counts as a connection failure.
    pub async fn identity(&self) -> Result<ClusterInfo> {
        self.touch();
        self.check_health()?;
        let mut cached = self.identity.lock().await;
        // Another caller may have probed (and failed) while this one waited.
        self.check_health()?;
        if let Some((at, info)) = cached.as_ref()
            && at.elapsed() < self.settings.refresh
        {
            return Ok(info.clone());
        }
        let info = self.record_health(self.es.info().await)?;
        *cached = Some((Instant::now(), info.clone()));
        Ok(info)
    }

    /// Forget the identity, so the next call asks Elasticsearch.
    pub async fn forget_identity(&self) {
        *self.identity.lock().await = None;
    }

    /// The shared list snapshot, no older than `max_age` (single flight: concurrent callers wait
    /// for the one list in flight).
    pub async fn snapshot(&self, max_age: Duration) -> Result<Arc<Snapshot>> {
        self.touch();
        self.check_health()?;
        let mut guard = self.snapshot.lock().await;
        if let Some(s) = guard.as_ref()
            && s.taken.elapsed() < max_age
        {
            return Ok(s.clone());
        }
        self.check_health()?;
        let list = self.record_health(self.es.list().await)?;
        let snap = Arc::new(build_snapshot(list));
        *guard = Some(snap.clone());
        Ok(snap)
    }

    /// The snapshot as it is, without listing.
    pub async fn current_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.lock().await.clone()
    }

    /// Keep the snapshot truthful after our own writes.
    async fn remember(&self, id: &str, ep: Option<&EndpointConfig>) {
        if let Some(s) = self.snapshot.lock().await.as_ref() {
            s.remember(id, ep);
        }
    }

    /// `GET _inference/{id}`: a fresh read.
    pub async fn get(&self, id: &str) -> Result<Option<EndpointConfig>> {
        self.touch();
        self.check_health()?;
        let found = self.record_health(self.es.get(id).await)?;
        self.remember(id, found.as_ref()).await;
        Ok(found)
    }

    pub async fn deployment_stats(&self, deployment_id: &str) -> Result<Option<DeploymentStats>> {
        self.check_health()?;
        self.record_health(self.es.deployment_stats(deployment_id).await)
    }

    /// Before every write: the connection is usable and this replica may write.
    fn before_write(&self) -> Result<()> {
        self.touch();
        self.check_health()?;
        self.fence.check()
    }

    pub async fn create(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
        timeout: Option<Duration>,
    ) -> Result<EndpointConfig> {
        self.before_write()?;
        let ep = self.record_health(self.es.create(task_type, id, body, timeout).await)?;
        self.remember(id, Some(&ep)).await;
        Ok(ep)
    }

    pub async fn update(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
    ) -> Result<EndpointConfig> {
        self.before_write()?;
        let ep = self.record_health(self.es.update(task_type, id, body).await)?;
        self.remember(id, Some(&ep)).await;
        Ok(ep)
    }

    /// Whether Cloud Connect is enabled on the cluster.
    pub async fn ccm_enabled(&self) -> Result<bool> {
        self.record_health(self.es.ccm_enabled().await)
    }

    /// Enable Cloud Connect with a key, or disable it; whether it is enabled afterwards.
    pub async fn ccm_put(&self, body: SecretBody) -> Result<bool> {
        self.before_write()?;
        self.record_health(self.es.ccm_put(body).await)
    }

    pub async fn delete(&self, task_type: &str, id: &str, force: bool) -> Result<Deleted> {
        self.before_write()?;
        let gone = self.record_health(self.es.delete(task_type, id, force).await)?;
        self.remember(id, None).await;
        Ok(gone)
    }
}

fn build_snapshot(list: Vec<RawEndpoint>) -> Snapshot {
    let endpoints = list
        .into_iter()
        .filter_map(|raw| {
            // An endpoint that does not parse is left out: it is looked at with a GET if a
            // resource needs it.
            let ep = raw.parse().ok()?;
            let hash = endpoint_hash(&ep);
            // The list's own text is kept (moved, not copied).
            let RawEndpoint { inference_id, raw } = raw;
            Some((
                inference_id,
                Entry {
                    json: raw.into(),
                    hash,
                },
            ))
        })
        .collect();
    Snapshot {
        taken: Instant::now(),
        endpoints: Mutex::new(endpoints),
    }
}

/// Where the default cluster's credentials come from, when they are a file (a mounted Secret):
/// read again when the file changes, so a rotated Secret reaches the operator without a restart.
#[derive(Clone, Debug)]
pub enum CredentialFile {
    ApiKey(std::path::PathBuf),
    Password {
        username: String,
        path: std::path::PathBuf,
    },
}

impl CredentialFile {
    fn path(&self) -> &std::path::Path {
        match self {
            CredentialFile::ApiKey(p) | CredentialFile::Password { path: p, .. } => p,
        }
    }

    fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let m = std::fs::metadata(self.path()).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    fn read(&self) -> Option<crate::es::EsAuth> {
        let text = std::fs::read_to_string(self.path()).ok()?;
        let value = secrecy::SecretString::from(text.trim().to_string());
        Some(match self {
            CredentialFile::ApiKey(_) => crate::es::EsAuth::ApiKey(value),
            CredentialFile::Password { username, .. } => crate::es::EsAuth::Basic {
                username: username.clone(),
                password: value,
            },
        })
    }
}

/// The operator's default cluster, with credentials and a CA bundle that may come from files.
pub struct DefaultTarget {
    target: Mutex<Target>,
    file: Option<CredentialFile>,
    ca_file: Option<std::path::PathBuf>,
    check_every: Duration,
    seen: Mutex<Seen>,
}

/// What `DefaultTarget` last saw of its files.
struct Seen {
    checked: Instant,
    credentials: Option<(std::time::SystemTime, u64)>,
    /// The CA file could not be used at the last check (warned once until it can again).
    ca_unusable: bool,
}

impl DefaultTarget {
    pub fn new(target: Target, file: Option<CredentialFile>) -> Self {
        let stamp = file.as_ref().and_then(CredentialFile::stamp);
        Self {
            target: Mutex::new(target),
            file,
            ca_file: None,
            check_every: Duration::from_secs(1),
            seen: Mutex::new(Seen {
                checked: Instant::now(),
                credentials: stamp,
                ca_unusable: false,
            }),
        }
    }

    /// The CA bundle comes from this file (a mounted Secret or ConfigMap, e.g. one that
    /// cert-manager or Vault rotates): read again when its content changes.
    pub fn with_ca_file(mut self, path: std::path::PathBuf) -> Self {
        self.ca_file = Some(path);
        self
    }

    /// How often the files are looked at (1 second unless set; tests use zero).
    pub fn with_check_interval(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// The target with the credentials and the CA as the files hold them now (checked at most
    /// every second; the credentials are read again only when the file's modification time or
    /// size changed, the CA when its content differs from the one in use). A CA file that cannot
    /// be read or holds no usable certificate keeps the previous CA, with a warning.
    pub fn current(&self) -> Target {
        if self.file.is_some() || self.ca_file.is_some() {
            let mut seen = self.seen.lock().expect("default target lock poisoned");
            if seen.checked.elapsed() >= self.check_every {
                seen.checked = Instant::now();
                if let Some(file) = &self.file {
                    let stamp = file.stamp();
                    if stamp != seen.credentials
                        && let Some(auth) = file.read()
                    {
                        seen.credentials = stamp;
                        info!(
                            "the operator's Elasticsearch credentials file changed: using the new credentials"
                        );
                        self.target
                            .lock()
                            .expect("default target lock poisoned")
                            .auth = auth;
                    }
                }
                if let Some(path) = &self.ca_file {
                    self.reload_ca(path, &mut seen);
                }
            }
        }
        self.target
            .lock()
            .expect("default target lock poisoned")
            .clone()
    }

    fn reload_ca(&self, path: &std::path::Path, seen: &mut Seen) {
        let pem = match std::fs::read(path) {
            Ok(pem) => pem,
            Err(e) => {
                if !seen.ca_unusable {
                    warn!(path = %path.display(), error = %e, "cannot read the operator's Elasticsearch CA file: keeping the CA in use");
                }
                seen.ca_unusable = true;
                return;
            }
        };
        let mut target = self.target.lock().expect("default target lock poisoned");
        if target.ca_pem.as_deref() == Some(pem.as_slice()) {
            seen.ca_unusable = false;
            return;
        }
        let check = EsConfig {
            ca_pem: Some(pem.clone()),
            ..EsConfig::new(target.url.clone(), crate::es::EsAuth::None)
        };
        match EsClient::new(&check, None, &target.key) {
            Ok(_) => {
                info!(path = %path.display(), "the operator's Elasticsearch CA file changed: using the new CA");
                target.ca_pem = Some(pem);
                seen.ca_unusable = false;
            }
            Err(e) => {
                if !seen.ca_unusable {
                    warn!(path = %path.display(), error = %e, "the operator's Elasticsearch CA file changed but cannot be used: keeping the CA in use");
                }
                seen.ca_unusable = true;
            }
        }
    }
}

/// One `Cluster` per cluster reference, rebuilt when the reference's URL, credentials or CA
/// change, and dropped when no resource used it for a while.
pub struct ClusterPool {
    default: Option<DefaultTarget>,
    settings: ClusterSettings,
    fence: Fence,
    metrics: Option<Arc<Metrics>>,
    clusters: Mutex<HashMap<String, (String, Arc<Cluster>)>>,
}

impl ClusterPool {
    pub fn new(
        default: Option<DefaultTarget>,
        settings: ClusterSettings,
        fence: Fence,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            default,
            settings,
            fence,
            metrics,
            clusters: Mutex::default(),
        }
    }

    /// The operator's default cluster, if it has one, with its current credentials.
    pub fn default_target(&self) -> Option<Target> {
        self.default.as_ref().map(DefaultTarget::current)
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The client settings for `target`.
    pub fn es_config(&self, target: &Target) -> EsConfig {
        EsConfig {
            url: target.url.clone(),
            auth: target.auth.clone(),
            ca_pem: target.ca_pem.clone(),
            insecure_skip_verify: target.insecure_skip_verify,
            request_timeout: self.settings.request_timeout,
            max_concurrency: self.settings.max_concurrency,
            max_response_bytes: self.settings.max_response_bytes,
            max_retry_after: self.settings.max_retry_after,
        }
    }

    /// The cluster for `target`, built (or rebuilt, when its configuration changed) as needed.
    pub fn get(&self, target: &Target) -> std::result::Result<Arc<Cluster>, EsConfigError> {
        let fingerprint = target.fingerprint();
        let mut clusters = self.clusters.lock().expect("pool lock poisoned");
        if let Some((f, c)) = clusters.get(&target.key)
            && *f == fingerprint
        {
            return Ok(c.clone());
        }
        let es = EsClient::new(&self.es_config(target), self.metrics.clone(), &target.key)?;
        if clusters.contains_key(&target.key) {
            info!(connection = %target.key, "connection settings changed: new Elasticsearch client");
        }
        let cluster = Arc::new(Cluster::new(
            &target.key,
            es,
            self.settings.clone(),
            self.fence.clone(),
            self.metrics.clone(),
        ));
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

    /// Every cluster now in the pool.
    pub fn all(&self) -> Vec<Arc<Cluster>> {
        self.clusters
            .lock()
            .expect("pool lock poisoned")
            .values()
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Drop clusters no resource used for `idle` (their clients, snapshots and metrics).
    pub fn evict_idle(&self, idle: Duration) -> Vec<String> {
        let mut clusters = self.clusters.lock().expect("pool lock poisoned");
        let gone: Vec<String> = clusters
            .iter()
            .filter(|(_, (_, c))| c.idle_for() >= idle && Arc::strong_count(c) == 1)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            clusters.remove(k);
            if let Some(m) = &self.metrics {
                m.forget_connection(k);
            }
        }
        gone
    }

    /// Forget every cached identity and snapshot.
    pub async fn invalidate_all(&self) {
        for c in self.all() {
            c.forget_identity().await;
            *c.snapshot.lock().await = None;
        }
    }
}
