//! One Elasticsearch cluster as the reconcilers use it: its client, its identity, its health
//! (a shared backoff when the connection fails), the shared list snapshot, and the verbs that keep
//! all of these up to date. `ClusterPool` holds one per cluster reference. The list snapshot is
//! in `snapshot`, the default cluster's credential and CA files in `default_target`.
//!
//! Rules enforced here, in one place:
//! - only a real request can extend a connection's backoff; a call that fails fast on the cached
//!   "down" state does not, so a cluster that comes back is noticed at the end of the window;
//! - a timeout, a transport error, refused credentials or an unrecovered cluster state mark the
//!   connection down; other errors belong to one request;
//! - every write checks the leadership fence immediately before it is sent.

mod default_target;
mod snapshot;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::sync::Mutex as AsyncMutex;
use tracing::{info, warn};

pub use default_target::{CredentialFile, DefaultTarget};
use snapshot::build_snapshot;
pub use snapshot::{Snapshot, endpoint_hash};

use crate::{
    connection::Target,
    error::{Error, Result},
    es::{EsClient, EsConfig, EsConfigError, EsError, SecretBody},
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::EsAuth;

    fn target(key: &str, url: &str) -> Target {
        Target {
            key: key.into(),
            url: url.into(),
            auth: EsAuth::None,
            ca_pem: None,
            insecure_skip_verify: false,
            policy: None,
            home_namespace: None,
        }
    }

    fn pool() -> ClusterPool {
        ClusterPool::new(None, ClusterSettings::default(), Fence::open(), None)
    }

    #[test]
    fn the_pool_reuses_a_cluster_by_key_until_its_settings_change() {
        let pool = pool();
        let a = pool
            .get(&target("conn/ns/a", "http://es-a:9200"))
            .expect("built");
        let again = pool
            .get(&target("conn/ns/a", "http://es-a:9200"))
            .expect("built");
        assert!(Arc::ptr_eq(&a, &again));
        let b = pool
            .get(&target("conn/ns/b", "http://es-a:9200"))
            .expect("built");
        assert!(!Arc::ptr_eq(&a, &b), "one cluster per key");
        let moved = pool
            .get(&target("conn/ns/a", "http://es-a2:9200"))
            .expect("built");
        assert!(!Arc::ptr_eq(&a, &moved), "rebuilt when the URL changed");
        assert_eq!(moved.url(), "http://es-a2:9200");
        let existing = pool.existing("conn/ns/a").expect("in the pool");
        assert!(Arc::ptr_eq(&existing, &moved));
        assert_eq!(pool.all().len(), 2);
        assert!(pool.existing("conn/ns/c").is_none());
    }

    #[test]
    fn eviction_drops_only_clusters_nobody_holds() {
        let pool = pool();
        drop(
            pool.get(&target("conn/ns/a", "http://es-a:9200"))
                .expect("built"),
        );
        let held = pool
            .get(&target("conn/ns/b", "http://es-b:9200"))
            .expect("built");
        assert_eq!(pool.evict_idle(Duration::ZERO), ["conn/ns/a"]);
        assert!(pool.existing("conn/ns/a").is_none());
        assert!(pool.existing(held.key()).is_some());
        assert!(pool.evict_idle(Duration::from_secs(3600)).is_empty());
    }
}
