//! What every reconcile shares: the Kubernetes client, the cluster pool, the event recorder,
//! metrics, settings, and one small memory per object, forgotten when the object goes.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{
    Client,
    runtime::{
        controller::Action,
        events::{Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use rand::Rng;
use tokio::sync::mpsc;

use crate::{
    cluster::ClusterPool,
    connection::ReferenceRules,
    crd::{DeletionPolicy, InferenceEndpoint, InferenceEndpointStatus},
    guard::Watched,
    lease::Fence,
    metrics::Metrics,
    policy::NamespaceInfo,
};

/// Tunables of the reconcilers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Drift is looked for at this interval (one list per cluster).
    pub resync: Duration,
    /// First retry delay after a transient error; doubles per failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// `timeout` sent with create where the cluster accepts it.
    pub create_timeout: Duration,
    /// What references may do (cross-namespace ECK, plaintext, unverified TLS).
    pub rules: ReferenceRules,
    /// The deletion policy of resources that set none (and whose namespace sets none).
    pub default_deletion_policy: DeletionPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            create_timeout: Duration::from_secs(60),
            rules: ReferenceRules::default(),
            default_deletion_policy: DeletionPolicy::Delete,
        }
    }
}

/// What the operator remembers about one object between passes (never secrets).
#[derive(Debug, Default)]
pub struct ObjectMemory {
    /// Transient failures in a row.
    failures: u32,
    /// Looks at a starting model deployment in a row.
    polls: u32,
    /// A write that failed permanently: not tried again with the same inputs.
    gate: Option<String>,
    /// Resource versions superseded by this operator's own writes (newest last): a pass that
    /// gets one of these from a lagging cache uses `written` instead.
    stale: VecDeque<String>,
    /// The last status this operator wrote.
    written: Option<Arc<InferenceEndpointStatus>>,
    /// The resource version this operator's last write produced: the object as its last pass
    /// left it.
    own: Option<String>,
    /// Where the object's endpoint is and what it looked like when last decided on: the
    /// periodic resync triggers the object only when that changes.
    pub watch: Option<EndpointWatch>,
    /// MAC (under the process key) of the secret values Elasticsearch holds.
    values_mac: Option<[u8; 16]>,
}

impl ObjectMemory {
    /// A write of this operator turned `previous` into `new`.
    fn superseded(&mut self, previous: Option<&str>, new: Option<&str>) {
        // What the pass read, and what the last write produced (a pass started from it, or
        // from what was kept for it when the cache had not seen it yet). A write that changed
        // nothing on the server (the same apply again) supersedes nothing.
        let own = self.own.take();
        for rv in [previous, own.as_deref()].into_iter().flatten() {
            if Some(rv) != new && !self.stale.iter().any(|s| s == rv) {
                self.stale.push_back(rv.to_string());
            }
        }
        while self.stale.len() > 8 {
            self.stale.pop_front();
        }
        self.own = new.map(str::to_string);
    }

    /// See [`Context::is_own_write`].
    fn own_write(&mut self, rv: &str) -> bool {
        if self.own.as_deref() == Some(rv) {
            self.written = None;
            self.stale = VecDeque::new();
            true
        } else {
            self.stale.iter().any(|s| s == rv)
        }
    }
}

/// The endpoint an object depends on, as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointWatch {
    pub object: ObjectRef<Watched>,
    pub cluster: String,
    pub inference_id: String,
    /// Hash of the endpoint's configuration, `None` when it did not exist.
    pub endpoint: Option<u64>,
    /// The Elasticsearch version the pass decided on: an upgrade triggers a pass (what the
    /// cluster accepts may have changed, e.g. `UnsupportedByCluster`).
    pub version: Option<crate::model::Version>,
    /// The inputs of the last pass were fully in sync with it.
    pub in_sync: bool,
}

/// Sends objects to their controller for a reconcile (the periodic resync, connection
/// recoveries). One channel per watched scope.
#[derive(Clone, Default)]
pub struct Triggers {
    senders: Arc<Mutex<Vec<ScopeSender>>>,
}

/// A scope (a namespace, or `None` for all) and the channel of its controller.
type ScopeSender = (Option<String>, mpsc::UnboundedSender<ObjectRef<Watched>>);

impl Triggers {
    /// A new channel for the controller of `scope` (a namespace, or `None` for all).
    pub fn subscribe(&self, scope: Option<String>) -> mpsc::UnboundedReceiver<ObjectRef<Watched>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.senders
            .lock()
            .expect("triggers lock poisoned")
            .push((scope, tx));
        rx
    }

    /// Ask the controller that watches `obj` to reconcile it.
    pub fn send(&self, obj: ObjectRef<Watched>) {
        let senders = self.senders.lock().expect("triggers lock poisoned");
        let target = senders
            .iter()
            .find(|(scope, _)| scope.is_some() && scope.as_deref() == obj.namespace.as_deref())
            .or_else(|| senders.iter().find(|(scope, _)| scope.is_none()));
        if let Some((_, tx)) = target {
            let _ = tx.send(obj);
        }
    }
}

/// Everything the reconcilers need.
pub struct Context {
    pub client: Client,
    pub clusters: ClusterPool,
    /// Who publishes Events. Each Event is published by a fresh `Recorder`: kube's Recorder
    /// keeps every Event it sent for six minutes (to patch repeats into a series), which at
    /// 10,000 endpoints is tens of MiB and a scan of all of them per Event. This operator
    /// publishes on transitions only, so there are no repeats to fold.
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub fence: Fence,
    pub triggers: Triggers,
    /// Secret versions from the watch, and values read once per version.
    pub secret_reads: crate::secret_reads::SecretReads,
    /// Boxed: the table has a slot per object and grows by doubling, so each empty slot costs a
    /// pointer instead of a whole `ObjectMemory` (about 260 bytes).
    memory: Mutex<HashMap<String, Box<ObjectMemory>>>,
    /// Objects whose cleanup is done (the finalizer removed), newest last: a pass on a cache that
    /// still shows one of them does nothing (UIDs are never reused). Bounded.
    released: Mutex<(VecDeque<String>, HashSet<String>)>,
    /// The controllers' caches of InferenceEndpoints (for the conflict rule and sweeping).
    stores: Mutex<Vec<Store<Watched>>>,
    /// Per-connection backoff of the ElasticsearchConnection controller.
    connection_failures: Mutex<HashMap<String, u32>>,
    /// A random key of this process, for MACs of secret values kept in memory only.
    process_key: [u8; 32],
    /// Namespaces' labels and annotations, read when needed and kept a short while.
    namespaces: Mutex<HashMap<String, (Instant, Option<NamespaceInfo>)>>,
    namespace_forbidden_logged: std::sync::atomic::AtomicBool,
}

impl Context {
    pub fn new(
        client: Client,
        clusters: ClusterPool,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
        fence: Fence,
    ) -> Self {
        Self {
            client,
            clusters,
            reporter,
            metrics,
            settings,
            fence,
            triggers: Triggers::default(),
            secret_reads: Default::default(),
            memory: Mutex::default(),
            released: Mutex::default(),
            stores: Mutex::default(),
            connection_failures: Mutex::default(),
            process_key: rand::random(),
            namespaces: Mutex::default(),
            namespace_forbidden_logged: Default::default(),
        }
    }

    /// The labels and annotations of `namespace` (for tenancy selectors and the deletion
    /// default), read at most every 30 s. `None` when they cannot be read (no permission): the
    /// caller applies its defaults.
    pub async fn namespace_info(&self, namespace: &str) -> Option<NamespaceInfo> {
        const TTL: Duration = Duration::from_secs(30);
        if let Some((at, info)) = self
            .namespaces
            .lock()
            .expect("namespaces lock poisoned")
            .get(namespace)
            && at.elapsed() < TTL
        {
            return info.clone();
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let info = match api.get_metadata_opt(namespace).await {
            Ok(Some(ns)) => Some(NamespaceInfo {
                labels: ns.metadata.labels.unwrap_or_default(),
                annotations: ns.metadata.annotations.unwrap_or_default(),
            }),
            Ok(None) => Some(NamespaceInfo::default()),
            // Not granted (a namespaced install may leave it out): a deployment choice, not a
            // fault. Namespaces then have no labels or annotations as far as rules go.
            Err(kube::Error::Api(s)) if s.code == 403 => {
                if !self
                    .namespace_forbidden_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        "cannot read Namespaces (forbidden): their labels and the es-inference.dev/deletion-policy annotation are ignored; grant get on namespaces to use them"
                    );
                }
                Some(NamespaceInfo::default())
            }
            Err(e) => {
                tracing::debug!(error = %e, %namespace, "cannot read the namespace");
                None
            }
        };
        // Only answers are kept: after a failure the next pass asks again.
        if info.is_some() {
            self.namespaces
                .lock()
                .expect("namespaces lock poisoned")
                .insert(namespace.to_string(), (Instant::now(), info.clone()));
        }
        info
    }

    /// This process's random key (never leaves memory).
    pub fn process_key(&self) -> &[u8] {
        &self.process_key
    }

    pub fn values_mac_of(&self, uid: &str) -> Option<[u8; 16]> {
        self.peek_memory(uid, |m| m.values_mac).flatten()
    }

    pub fn set_values_mac(&self, uid: &str, mac: Option<[u8; 16]>) {
        if mac.is_some() {
            self.with_memory(uid, |m| m.values_mac = mac);
        }
    }

    /// Let the conflict rule (and the sweep) see a controller's cache.
    pub fn add_store(&self, store: Store<Watched>) {
        self.stores
            .lock()
            .expect("stores lock poisoned")
            .push(store);
    }

    /// The InferenceEndpoints the controllers know that `keep` selects, found under the stores'
    /// read locks: nothing is copied for the others (these scans run per event and per pass).
    pub fn peers_where(&self, keep: impl Fn(&Watched) -> bool) -> Vec<Arc<Watched>> {
        self.stores
            .lock()
            .expect("stores lock poisoned")
            .iter()
            .flat_map(|s| s.state_filter(&keep))
            .collect()
    }

    /// The decodable InferenceEndpoints that manage the inference id `id`, with their status
    /// but not their settings (the conflict rule's candidates).
    pub fn peers_with_id(&self, id: &str) -> Vec<InferenceEndpoint> {
        self.peers_where(|w| w.endpoint().is_some_and(|ie| ie.inference_id_str() == id))
            .iter()
            .filter_map(|p| p.with_status())
            .collect()
    }

    fn with_memory<T>(&self, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> T {
        let mut memory = self.memory.lock().expect("memory lock poisoned");
        f(memory.entry(uid.to_string()).or_default())
    }

    fn peek_memory<T>(&self, uid: &str, f: impl FnOnce(&ObjectMemory) -> T) -> Option<T> {
        self.memory
            .lock()
            .expect("memory lock poisoned")
            .get(uid)
            .map(|m| f(m))
    }

    /// A recorder holding nothing between Events (see `reporter`).
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Like `peek_memory`, allowed to change what is remembered (never creates an entry).
    fn peek_memory_mut<T>(&self, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> Option<T> {
        self.memory
            .lock()
            .expect("memory lock poisoned")
            .get_mut(uid)
            .map(|m| f(m))
    }

    /// Forget everything about an object (it is gone).
    pub fn forget(&self, uid: &str) {
        self.memory
            .lock()
            .expect("memory lock poisoned")
            .remove(uid);
    }

    /// The object's cleanup is done and its finalizer removed: forget it, and remember only that.
    pub fn released(&self, uid: &str) {
        self.forget(uid);
        const KEEP: usize = 4096;
        let mut r = self.released.lock().expect("released lock poisoned");
        if r.1.insert(uid.to_string()) {
            r.0.push_back(uid.to_string());
            while r.0.len() > KEEP {
                if let Some(old) = r.0.pop_front() {
                    r.1.remove(&old);
                }
            }
        }
    }

    /// Whether the object's cleanup is already done (a cache that lags still shows it).
    pub fn is_released(&self, uid: &str) -> bool {
        self.released
            .lock()
            .expect("released lock poisoned")
            .1
            .contains(uid)
    }

    /// How many objects the operator remembers (for tests and the memory sweep).
    pub fn remembered(&self) -> usize {
        self.memory.lock().expect("memory lock poisoned").len()
    }

    /// Forget objects no controller knows any more (deleted without a finalizer, or while
    /// another replica led). Returns how many were forgotten.
    pub fn sweep(&self) -> usize {
        self.secret_reads.sweep();
        let stores = self.stores.lock().expect("stores lock poisoned").clone();
        if stores.is_empty() {
            return 0;
        }
        let known: std::collections::HashSet<String> = stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|w| w.uid().map(str::to_string))
            .collect();
        let mut memory = self.memory.lock().expect("memory lock poisoned");
        let before = memory.len();
        memory.retain(|uid, _| known.contains(uid));
        // A map keeps its capacity when entries go: give it back after a mass delete.
        memory.shrink_to_fit();
        let keys: std::collections::HashSet<(String, String)> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|w| (w.namespace().to_string(), w.name().to_string()))
            .collect();
        for (ns, name) in self.metrics.known_endpoints() {
            if !keys.contains(&(ns.clone(), name.clone())) {
                self.metrics.set_endpoint_reason(&ns, &name, None);
            }
        }
        before - memory.len()
    }

    // ----- the status this operator wrote, for caches that lag behind it -----

    /// The status to start from: what the object carries, or what this operator wrote if the
    /// object comes from a cache that has not seen that write yet.
    pub fn effective_status(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        carried: Option<&InferenceEndpointStatus>,
    ) -> InferenceEndpointStatus {
        let from_memory = self.peek_memory_mut(uid, |m| {
            let stale = resource_version.is_some_and(|rv| m.stale.iter().any(|s| s == rv));
            if !stale && resource_version.is_some() {
                // The cache has caught up with this operator's writes (watches never go
                // back): what was kept for a lagging cache is not needed any more.
                m.written = None;
                m.stale = VecDeque::new();
            }
            stale.then(|| m.written.clone()).flatten()
        });
        match from_memory.flatten() {
            Some(written) => (*written).clone(),
            None => carried.cloned().unwrap_or_default(),
        }
    }

    /// Remember a status write that replaced `previous_rv` with `new_rv`.
    pub fn wrote_status(
        &self,
        uid: &str,
        previous_rv: Option<&str>,
        new_rv: Option<&str>,
        written: InferenceEndpointStatus,
    ) {
        self.with_memory(uid, |m| {
            m.superseded(previous_rv, new_rv);
            m.written = Some(Arc::new(written));
        });
    }

    /// Remember that an object write (e.g. the finalizer) replaced `previous_rv` with `new_rv`.
    pub fn wrote_object(&self, uid: &str, previous_rv: Option<&str>, new_rv: Option<&str>) {
        self.with_memory(uid, |m| m.superseded(previous_rv, new_rv));
    }

    /// Whether an event of the object's own watch shows only what this operator's passes
    /// already saw or wrote: a version one of its writes superseded, or the version its last
    /// write produced. Such an event needs no pass (the pass that wrote it decided on it), so it
    /// is not a trigger; the store still takes it. Seeing the last write also means the cache
    /// has caught up: what was kept for a lagging cache is dropped.
    pub fn is_own_write(&self, uid: Option<&str>, resource_version: Option<&str>) -> bool {
        let (Some(uid), Some(rv)) = (uid, resource_version) else {
            return false;
        };
        self.peek_memory_mut(uid, |m| m.own_write(rv))
            .unwrap_or(false)
    }

    /// Whether `resource_version` is one this operator's writes superseded.
    pub fn is_stale(&self, uid: &str, resource_version: Option<&str>) -> bool {
        resource_version.is_some_and(|rv| {
            self.peek_memory(uid, |m| m.stale.iter().any(|s| s == rv))
                .unwrap_or(false)
        })
    }

    // ----- the resync watch -----

    pub fn set_watch(&self, uid: &str, watch: Option<EndpointWatch>) {
        self.with_memory(uid, |m| m.watch = watch);
    }

    pub fn watch_of(&self, uid: &str) -> Option<EndpointWatch> {
        self.peek_memory(uid, |m| m.watch.clone()).flatten()
    }

    /// Every object's watch on `cluster`.
    pub fn watches_on(&self, cluster: &str) -> Vec<EndpointWatch> {
        self.memory
            .lock()
            .expect("memory lock poisoned")
            .values()
            .filter_map(|m| m.watch.clone())
            .filter(|w| w.cluster == cluster)
            .collect()
    }

    // ----- the permanent-failure gate -----

    pub fn gate_closed(&self, uid: &str, attempt: &str) -> bool {
        self.peek_memory(uid, |m| m.gate.as_deref() == Some(attempt))
            .unwrap_or(false)
    }

    pub fn close_gate(&self, uid: &str, attempt: String) {
        self.with_memory(uid, |m| m.gate = Some(attempt));
    }

    pub fn open_gate(&self, uid: &str) {
        self.with_memory(uid, |m| m.gate = None);
    }

    // ----- retries -----

    /// The retry delay after one more transient failure: exponential from `backoff_base`,
    /// capped at `backoff_max`, jittered, and at least `at_least` (a capped `Retry-After`).
    pub fn next_backoff(&self, uid: &str, at_least: Option<Duration>) -> Duration {
        let n = self.with_memory(uid, |m| {
            m.failures = m.failures.saturating_add(1);
            m.failures
        });
        backoff(
            self.settings.backoff_base,
            self.settings.backoff_max,
            n,
            at_least,
        )
    }

    pub fn reset_backoff(&self, uid: &str) {
        if self.peek_memory(uid, |m| m.failures > 0).unwrap_or(false) {
            self.with_memory(uid, |m| m.failures = 0);
        }
    }

    /// The delay before looking at a starting model deployment again: 5 s doubling to 60 s.
    pub fn next_poll(&self, uid: &str) -> Duration {
        let n = self.with_memory(uid, |m| {
            m.polls = m.polls.saturating_add(1);
            m.polls
        });
        Duration::from_secs(5)
            .saturating_mul(1u32 << (n - 1).min(8))
            .min(Duration::from_secs(60))
    }

    pub fn reset_poll(&self, uid: &str) {
        if self.peek_memory(uid, |m| m.polls > 0).unwrap_or(false) {
            self.with_memory(uid, |m| m.polls = 0);
        }
    }

    /// Backoff of the ElasticsearchConnection controller, by connection.
    pub fn next_connection_backoff(&self, key: &str, at_least: Option<Duration>) -> Duration {
        let mut f = self
            .connection_failures
            .lock()
            .expect("connection failures lock poisoned");
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff(
            self.settings.backoff_base,
            self.settings.backoff_max,
            *n,
            at_least,
        )
    }

    pub fn reset_connection_backoff(&self, key: &str) {
        self.connection_failures
            .lock()
            .expect("connection failures lock poisoned")
            .remove(key);
    }

    /// Requeue at `until` (a connection's backoff window), plus up to a second of jitter so that
    /// the resources waiting on one cluster do not all retry at the same instant.
    pub fn requeue_at(&self, until: Instant) -> Action {
        let wait = until.saturating_duration_since(Instant::now());
        Action::requeue(wait + Duration::from_millis(rand::rng().random_range(0..1000)))
    }
}

/// `base · 2^(n-1)`, capped, with jitter in [d/2, d], and at least `at_least`.
pub fn backoff(base: Duration, max: Duration, n: u32, at_least: Option<Duration>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
    jittered.max(at_least.unwrap_or_default().min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_short_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        for n in 1..20 {
            let d = backoff(base, max, n, None);
            let exp = base.saturating_mul(1 << (n - 1).min(16)).min(max);
            assert!(
                d >= exp / 2 && d <= exp,
                "n={n}: {d:?} not in [{:?}, {exp:?}]",
                exp / 2
            );
        }
        // Five failures in a row wait at most 0.5+1+2+4+8 s together.
        let total: Duration = (1..=5).map(|n| backoff(base, max, n, None)).sum();
        assert!(total <= Duration::from_millis(15_500), "{total:?}");
        // Retry-After is honoured, but never beyond the cap.
        assert_eq!(backoff(base, max, 1, Some(Duration::from_secs(3600))), max);
        assert!(backoff(base, max, 1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn own_writes_are_not_triggers_and_everyone_elses_are() {
        let mut m = ObjectMemory::default();
        // Nothing written yet: every version is someone else's.
        assert!(!m.own_write("1"));
        // A pass on version 1 adds the finalizer (2); a user edits the spec (3) before the
        // pass marks (4, on top of the edit) and writes its status (5).
        m.superseded(Some("1"), Some("2"));
        m.superseded(Some("2"), Some("4"));
        m.written = Some(Arc::default());
        m.superseded(Some("4"), Some("5"));
        // The user's edit between two of the pass's writes is a trigger, and so is a later one...
        assert!(!m.own_write("3"));
        assert!(!m.own_write("6"));
        // ...what the pass read and wrote is not.
        for rv in ["1", "2", "4"] {
            assert!(m.own_write(rv), "{rv}");
        }
        assert!(
            m.written.is_some(),
            "kept until the cache has the last write"
        );
        assert!(m.own_write("5"));
        assert!(
            m.written.is_none() && m.stale.is_empty(),
            "the cache caught up"
        );
    }

    #[test]
    fn a_last_write_not_yet_seen_is_superseded_by_the_next_one() {
        let mut m = ObjectMemory::default();
        m.superseded(Some("1"), Some("4"));
        // A pass started from a cache still at 3 (with the status kept for it) writes again:
        // version 4, when it arrives, is a state that pass already had.
        m.superseded(Some("3"), Some("6"));
        assert!(m.own_write("4"));
        assert!(m.own_write("3"));
        assert!(!m.own_write("5"));
        // An apply that changed nothing on the server supersedes nothing.
        let mut same = ObjectMemory::default();
        same.superseded(Some("7"), Some("7"));
        assert!(same.stale.is_empty());
        assert!(same.own_write("7"));
    }
}
