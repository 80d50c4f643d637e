//! Reading the Secrets that `secretSettings` reference, as rarely as possible.
//!
//! - **Versions from the watch.** The operator already watches Secret metadata (to re-trigger
//!   the resources that use a Secret). Its store says each Secret's resourceVersion, so a pass
//!   whose recorded `secretVersions` are still current needs no value and sends no GET.
//! - **Values once per version.** A pass that will send values reads each Secret once per
//!   resourceVersion for all resources: 1,000 endpoints sharing a rotated Secret cause one GET.
//!   The value is kept only briefly ([`VALUE_TTL`]), long enough for the passes of one change
//!   to share it, then dropped.
//!
//! Without a synced store for the namespace (the tests' harness, the first seconds after a
//! start when the Secret list is slow), every read is a GET, as before.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::sync::watch;

/// How long a Secret's value read for one version is shared with other passes.
pub const VALUE_TTL: Duration = Duration::from_secs(10);

/// How long after a start passes wait for the Secret watch's first list before they read the
/// Secrets themselves. Counted once per store, not per pass: a watch that cannot list delays
/// the first passes by this much at most, never every pass.
pub const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The Secret metadata the watch of one scope (a namespace, or all) has listed.
struct ScopeStore {
    scope: Option<String>,
    store: Store<PartialObjectMeta<Secret>>,
    synced: watch::Receiver<bool>,
    /// Until when passes wait for the first list.
    wait_until: tokio::time::Instant,
}

/// A Secret read for one resourceVersion.
struct Cached {
    version: String,
    secret: Arc<Secret>,
    read_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Secret versions from the watch, and Secret values read once per version.
#[derive(Default)]
pub struct SecretReads {
    stores: Mutex<Vec<ScopeStore>>,
    values: Mutex<HashMap<(String, String), Slot>>,
}

impl SecretReads {
    /// The Secret metadata store of a scope, and whether its watch has listed once.
    pub fn add_store(
        &self,
        scope: Option<String>,
        store: Store<PartialObjectMeta<Secret>>,
        synced: watch::Receiver<bool>,
    ) {
        self.stores
            .lock()
            .expect("secret stores lock")
            .push(ScopeStore {
                scope,
                store,
                synced,
                wait_until: tokio::time::Instant::now() + SYNC_WAIT,
            });
    }

    /// The store that covers namespace `ns`, once its watch has listed (waiting until
    /// [`SYNC_WAIT`] after the store was added, and no longer).
    async fn store_for(&self, ns: &str) -> Option<Store<PartialObjectMeta<Secret>>> {
        let (store, mut synced, wait_until) = {
            let stores = self.stores.lock().expect("secret stores lock");
            let s = stores
                .iter()
                .find(|s| s.scope.as_deref().is_none_or(|scope| scope == ns))?;
            (s.store.clone(), s.synced.clone(), s.wait_until)
        };
        if *synced.borrow() {
            return Some(store);
        }
        let listed = tokio::time::timeout_at(wait_until, synced.wait_for(|s| *s)).await;
        matches!(listed, Ok(Ok(_))).then_some(store)
    }

    /// `name@resourceVersion` of each Secret in `names`, as the watch knows them, in the form
    /// of `secrets::versions` (`secrets::format_versions`). `None` when the watch cannot tell (no synced store, or a
    /// Secret it has not seen): then the Secrets must be read.
    pub async fn versions(&self, ns: &str, names: &BTreeSet<String>) -> Option<String> {
        if names.is_empty() {
            return None;
        }
        let store = self.store_for(ns).await?;
        let mut seen = Vec::with_capacity(names.len());
        for name in names {
            let meta = store.get(&ObjectRef::new(name).within(ns))?;
            seen.push((name.as_str(), meta.metadata.resource_version.clone()?));
        }
        crate::secrets::format_versions(seen.iter().map(|(n, rv)| (*n, rv.as_str())))
    }

    /// The Secrets `names` of namespace `ns` (`None`: it does not exist), each read at most once
    /// per resourceVersion while others still need it. `read` counts each GET.
    pub async fn read(
        &self,
        api: &Api<Secret>,
        ns: &str,
        names: &BTreeSet<String>,
        read: impl Fn(),
    ) -> Result<BTreeMap<String, Option<Secret>>, kube::Error> {
        self.sweep();
        let store = self.store_for(ns).await;
        let mut out = BTreeMap::new();
        for name in names {
            let current = store
                .as_ref()
                .and_then(|s| s.get(&ObjectRef::new(name).within(ns)))
                .and_then(|m| m.metadata.resource_version.clone());
            let slot = self.slot(ns, name);
            let mut cached = slot.lock().await;
            let hit = cached.as_ref().filter(|c| {
                current.as_deref() == Some(c.version.as_str()) && c.read_at.elapsed() < VALUE_TTL
            });
            if let Some(c) = hit {
                out.insert(name.clone(), Some(Secret::clone(&c.secret)));
                continue;
            }
            read();
            let secret = api.get_opt(name).await?;
            *cached = secret.as_ref().and_then(|s| {
                Some(Cached {
                    version: s.metadata.resource_version.clone()?,
                    secret: Arc::new(s.clone()),
                    read_at: Instant::now(),
                })
            });
            out.insert(name.clone(), secret);
        }
        Ok(out)
    }

    fn slot(&self, ns: &str, name: &str) -> Slot {
        self.values
            .lock()
            .expect("secret values lock")
            .entry((ns.to_string(), name.to_string()))
            .or_default()
            .clone()
    }

    /// Drop the values kept longer than [`VALUE_TTL`] that no pass is reading now.
    pub fn sweep(&self) {
        self.values
            .lock()
            .expect("secret values lock")
            .retain(|_, slot| {
                match slot.try_lock() {
                    Ok(cached) => cached
                        .as_ref()
                        .is_some_and(|c| c.read_at.elapsed() < VALUE_TTL),
                    // A pass is reading it.
                    Err(_) => true,
                }
            });
    }

    /// Drop every value held (what a restart of the process does).
    pub fn forget_values(&self) {
        self.values.lock().expect("secret values lock").clear();
    }

    /// How many Secrets' values are held now (for tests).
    pub fn held(&self) -> usize {
        self.values.lock().expect("secret values lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    fn meta(ns: &str, name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some(ns.into());
        m.metadata.resource_version = Some(rv.into());
        m
    }

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn versions_come_from_a_synced_store_only() {
        let reads = SecretReads::default();
        assert_eq!(reads.versions("a", &names(&["s"])).await, None, "no store");
        let (store, mut writer) = reflector::store();
        let (tx, rx) = watch::channel(false);
        reads.add_store(Some("a".into()), store, rx);
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(meta("a", "s", "7")));
        writer.apply_watcher_event(&watcher::Event::InitApply(meta("a", "t", "9")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        tx.send(true).expect("synced");
        assert_eq!(
            reads.versions("a", &names(&["t", "s"])).await.as_deref(),
            Some("s@7,t@9"),
            "the form secrets::versions gives"
        );
        assert_eq!(reads.versions("a", &names(&["gone"])).await, None);
        assert_eq!(
            reads.versions("b", &names(&["s"])).await,
            None,
            "another namespace"
        );
        assert_eq!(reads.versions("a", &names(&[])).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsynced_store_is_waited_for_then_given_up() {
        let reads = SecretReads::default();
        let (store, _writer) = reflector::store::<PartialObjectMeta<Secret>>();
        let (_tx, rx) = watch::channel(false);
        reads.add_store(None, store, rx);
        let started = tokio::time::Instant::now();
        assert_eq!(reads.versions("a", &names(&["s"])).await, None);
        assert!(started.elapsed() >= SYNC_WAIT);
        // Once waited for, never again: a watch that cannot list does not slow every pass.
        let again = tokio::time::Instant::now();
        assert_eq!(reads.versions("a", &names(&["s"])).await, None);
        assert_eq!(again.elapsed(), Duration::ZERO);
    }

    #[test]
    fn sweep_drops_expired_values() {
        let reads = SecretReads::default();
        let slot = reads.slot("a", "s");
        *slot.try_lock().expect("free") = Some(Cached {
            version: "1".into(),
            secret: Arc::new(Secret::default()),
            read_at: Instant::now() - VALUE_TTL,
        });
        reads.slot("a", "fresh");
        reads.sweep();
        assert_eq!(reads.held(), 0, "expired and empty slots are dropped");
        let slot = reads.slot("a", "s");
        *slot.try_lock().expect("free") = Some(Cached {
            version: "1".into(),
            secret: Arc::new(Secret::default()),
            read_at: Instant::now(),
        });
        reads.sweep();
        assert_eq!(reads.held(), 1, "a fresh value is kept");
    }
}
