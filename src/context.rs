//! What every reconcile shares: the Kubernetes client, the cluster pool, the event recorder,
//! metrics, settings, and one small memory per object, forgotten when the object goes.

use std::{
    collections::HashMap,
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
    cluster::ClusterPool, connection::ReferenceRules, crd::DeletionPolicy, guard::Watched,
    lease::Fence, memory::Memory, memory::backoff, metrics::Metrics, policy::NamespaceInfo,
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
    /// What the operator remembers about each object (`memory`).
    pub memory: Memory,
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
        let memory = Memory::new(settings.backoff_base, settings.backoff_max);
        Self {
            client,
            clusters,
            reporter,
            metrics,
            settings,
            fence,
            triggers: Triggers::default(),
            secret_reads: Default::default(),
            memory,
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
    pub fn peers_with_id(&self, id: &str) -> Vec<crate::guard::Peer> {
        self.peers_where(|w| w.endpoint().is_some_and(|ie| ie.inference_id_str() == id))
            .iter()
            .filter_map(|p| p.with_status())
            .collect()
    }

    /// The cluster a resource in `namespace` with the reference `r` uses: the default cluster,
    /// an ElasticsearchConnection or an ECK cluster (what apply and cleanup both need).
    pub async fn target_for(
        &self,
        namespace: &str,
        r: Option<&crate::crd::ElasticsearchRef>,
    ) -> Result<crate::connection::Target, crate::connection::TargetProblem> {
        match r {
            None => self
                .clusters
                .default_target()
                .ok_or(crate::connection::TargetProblem::NoCluster),
            Some(r) => {
                crate::connection::resolve_ref(&self.client, namespace, r, &self.settings.rules)
                    .await
            }
        }
    }

    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Like `peek_memory`, allowed to change what is remembered (never creates an entry).
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
        let forgotten = self.memory.retain(&known);
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
        forgotten
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
