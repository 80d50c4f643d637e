//! Wiring: one InferenceEndpoint controller and one ElasticsearchConnection controller per
//! watched scope (a namespace, or the whole cluster), the watches that re-trigger them, the
//! periodic resync, and readiness.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client, ResourceExt,
    api::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        reflector::{self, ObjectRef, Store, reflector},
        watcher::{self, watcher},
    },
};
use rand::Rng;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::{
    connection::{connection_namespace, connection_secrets, referenced_secrets as connection_refs},
    context::Context,
    crd::ElasticsearchConnection,
    guard::Watched,
    reconcile::{error_policy, reconcile},
};

/// The APIs one scope (a namespace, or all of them) watches.
struct Apis {
    endpoints: Api<Watched>,
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

/// The connections that read the Secret or ConfigMap `m`.
fn users_of<K>(
    store: Store<ElasticsearchConnection>,
) -> impl Fn(PartialObjectMeta<K>) -> Vec<ObjectRef<ElasticsearchConnection>> {
    move |m| {
        let (ns, name) = (
            m.metadata.namespace.clone().unwrap_or_default(),
            m.metadata.name.clone().unwrap_or_default(),
        );
        store
            .state()
            .iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
            .filter(|c| connection_secrets(&c.spec).contains(&name))
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect()
    }
}

fn watch_config() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

/// Readiness of the operator: every main watch has listed its objects once.
///
/// Tracked from the watch streams themselves: kube's `Store::wait_until_ready` keeps a single
/// waker, so a second task waiting on it beside the controller's own runner is never woken (and
/// polling it would steal the runner's wakeup instead).
#[derive(Clone)]
struct Readiness {
    flags: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
    ready: Arc<AtomicBool>,
}

impl Readiness {
    fn new(ready: Arc<AtomicBool>) -> Self {
        Self {
            flags: Arc::default(),
            ready,
        }
    }

    /// A flag for one more watch; readiness waits for all of them.
    fn flag(&self) -> Arc<AtomicBool> {
        let f = Arc::new(AtomicBool::new(false));
        self.flags
            .lock()
            .expect("readiness lock poisoned")
            .push(f.clone());
        f
    }

    fn synced(&self, flag: &AtomicBool, what: &str) {
        if flag.swap(true, Ordering::SeqCst) {
            return;
        }
        info!(watch = what, "watch synced");
        let all = self
            .flags
            .lock()
            .expect("readiness lock poisoned")
            .iter()
            .all(|f| f.load(Ordering::SeqCst));
        if all {
            self.ready.store(true, Ordering::SeqCst);
        }
    }
}

/// A controller for `api` whose watch reports to `readiness` once it has listed everything.
/// Every object the watch sees goes to the store; only those `trigger` accepts start a pass.
fn controller_for<K>(
    api: Api<K>,
    readiness: &Readiness,
    what: String,
    trigger: impl Fn(&K) -> bool + Send + 'static,
) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let flag = readiness.flag();
    let readiness = readiness.clone();
    let stream = reflector(writer, watcher(api, watch_config()).default_backoff())
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event {
                readiness.synced(&flag, &what);
            }
        })
        .applied_objects()
        .try_filter(move |o| futures::future::ready(trigger(o)));
    Controller::for_stream(stream, reader)
}

/// The InferenceEndpoints in `endpoints` that depend on the Secret or ConfigMap `ns/name`
/// (through secretSettings or their cluster reference).
fn dependents(
    endpoints: &Store<Watched>,
    connections: &Store<ElasticsearchConnection>,
    ns: &str,
    name: &str,
) -> Vec<ObjectRef<Watched>> {
    let conns = connections.state();
    let all = endpoints.state();
    let mut out: Vec<ObjectRef<Watched>> = all
        .iter()
        .filter(|w| w.uses_secret(ns, name))
        .map(|w| ObjectRef::new(w.name()).within(w.namespace()))
        .collect();
    for ie in all.iter().filter_map(|w| w.endpoint()) {
        let conn = ie.spec.elasticsearch_ref.as_ref().and_then(|r| {
            let conn_ns = connection_namespace(&ie);
            conns
                .iter()
                .find(|c| c.name_any() == r.name && c.namespace() == conn_ns)
                .map(|c| &c.spec)
        });
        let uses = connection_refs(&ie, conn)
            .iter()
            .any(|(n, s)| n == ns && s == name);
        let r = ie.object_ref();
        if uses && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Run the controllers of every scope until `shutdown` turns true. `ready` turns true once every
/// controller's watches have synced (also with zero objects).
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    concurrency: u16,
    shutdown: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let readiness = Readiness::new(ready);
    let runs = scopes.into_iter().map(|scope| {
        run_scope(
            ctx.clone(),
            scope,
            concurrency,
            shutdown.clone(),
            readiness.clone(),
        )
    });
    let resync = resync_loop(ctx.clone(), shutdown.clone());
    futures::join!(futures::future::join_all(runs), resync);
}

/// The ElasticsearchConnection controller of a scope: their own status, re-checked when their
/// Secrets or ConfigMaps change.
fn connection_controller(
    apis: &Apis,
    readiness: &Readiness,
    scope: &str,
) -> Controller<ElasticsearchConnection> {
    let controller = controller_for(
        apis.connections.clone(),
        readiness,
        format!("ElasticsearchConnections in {scope}"),
        |_| true,
    );
    let store = controller.store();
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(2))
        .watches(
            apis.secrets.clone(),
            watch_config(),
            users_of(store.clone()),
        )
        .watches(apis.config_maps.clone(), watch_config(), users_of(store))
}

/// The InferenceEndpoint controller of a scope, re-reconciling a resource when a Secret,
/// ConfigMap or connection it depends on changes (Secrets and ConfigMaps are watched by metadata
/// only: the operator holds no data it does not need and reads what a resource references when
/// it reconciles it), when another resource with the same inference id changes (the conflict
/// rule: the next owner takes over at once), and when the resync sees its endpoint change.
fn endpoint_controller(
    ctx: &Arc<Context>,
    apis: Apis,
    connections: Store<ElasticsearchConnection>,
    scope: Option<String>,
    readiness: &Readiness,
    concurrency: u16,
) -> Controller<Watched> {
    let what = format!(
        "InferenceEndpoints in {}",
        scope.as_deref().unwrap_or("all namespaces")
    );
    // The operator's own writes (finalizer, mark, status) come back through the watch: the pass
    // that made them already decided on them, so they update the store without a new pass.
    let own = ctx.clone();
    let controller = controller_for(apis.endpoints.clone(), readiness, what, move |w| {
        !own.memory
            .is_own_write(w.uid(), w.meta().resource_version.as_deref())
    })
    .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
    let store: Store<Watched> = controller.store();
    ctx.add_store(store.clone());
    let (s1, c1) = (store.clone(), connections.clone());
    let (s2, c2) = (store.clone(), connections);
    let (by_id, by_connection) = (store.clone(), store);
    let triggers = futures::stream::unfold(ctx.triggers.subscribe(scope.clone()), |mut rx| async {
        rx.recv().await.map(|r| (r, rx))
    });
    let secrets = secret_metadata(ctx, apis.secrets, scope.clone());
    controller
        .watches_stream(secrets, move |s| {
            dependents(&s1, &c1, &s.namespace().unwrap_or_default(), &s.name_any())
        })
        .watches(apis.config_maps, watch_config(), move |m| {
            dependents(&s2, &c2, &m.namespace().unwrap_or_default(), &m.name_any())
        })
        .watches(apis.endpoints, watch_config(), move |changed: Watched| {
            same_inference_id(&by_id, &changed)
        })
        .watches(apis.connections, watch_config(), move |c| {
            using_connection(&by_connection, &c)
        })
        .reconcile_on(triggers)
}

/// The watch of Secret metadata: it re-triggers the resources that use a Secret, and its store
/// tells each pass which version of a Secret is current (`secret_reads`), so that a pass reads
/// values only when it sends them. The store keeps the name, namespace and resourceVersion of
/// each Secret and nothing else: the annotations can hold a copy of the data
/// (`kubectl.kubernetes.io/last-applied-configuration`).
fn secret_metadata(
    ctx: &Arc<Context>,
    api: Api<PartialObjectMeta<Secret>>,
    scope: Option<String>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    let (store, writer) = reflector::store();
    let (synced, listed) = watch::channel(false);
    ctx.secret_reads.add_store(scope, store, listed);
    let stream = watcher(api, watch_config()).default_backoff().modify(
        |s: &mut PartialObjectMeta<Secret>| {
            let m = &mut s.metadata;
            *m = kube::api::ObjectMeta {
                name: m.name.take(),
                namespace: m.namespace.take(),
                resource_version: m.resource_version.take(),
                uid: m.uid.take(),
                ..Default::default()
            };
        },
    );
    reflector(writer, stream)
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event {
                let _ = synced.send(true);
            }
        })
        .touched_objects()
}

/// The other resources with the inference id of `changed`.
fn same_inference_id(store: &Store<Watched>, changed: &Watched) -> Vec<ObjectRef<Watched>> {
    let Some(changed) = changed.endpoint() else {
        return Vec::new();
    };
    // Runs for every event of every endpoint: the scan compares in place under the store's read
    // lock and copies only the (rare) matches.
    let id = changed.inference_id_str();
    store
        .state_filter(|w| {
            w.endpoint().is_some_and(|ie| {
                ie.metadata.uid != changed.metadata.uid && ie.inference_id_str() == id
            })
        })
        .iter()
        .filter_map(|w| w.endpoint())
        .map(|ie| ie.object_ref())
        .collect()
}

/// The resources that name the connection `c`.
fn using_connection(
    store: &Store<Watched>,
    c: &ElasticsearchConnection,
) -> Vec<ObjectRef<Watched>> {
    store
        .state()
        .iter()
        .filter_map(|w| w.endpoint())
        .filter(|ie| connection_namespace(ie) == c.namespace())
        .filter(|ie| {
            ie.spec
                .elasticsearch_ref
                .as_ref()
                .is_some_and(|r| r.name == c.name_any())
        })
        .map(|ie| ie.object_ref())
        .collect()
}

async fn run_scope(
    ctx: Arc<Context>,
    scope: Option<String>,
    concurrency: u16,
    shutdown: watch::Receiver<bool>,
    readiness: Readiness,
) {
    let apis = Apis::new(&ctx.client, scope.as_deref());
    let name = scope.clone().unwrap_or_else(|| "all namespaces".into());
    let conn_controller = connection_controller(&apis, &readiness, &name);
    let conn_store = conn_controller.store();
    let controller = endpoint_controller(&ctx, apis, conn_store, scope, &readiness, concurrency);
    let stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let endpoints_run = controller
        .graceful_shutdown_on(stop(shutdown.clone()))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                debug!(error = %e, "controller event");
            }
        });
    let connections_run = conn_controller
        .graceful_shutdown_on(stop(shutdown))
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

/// Every resync interval (jittered): per cluster, one `GET /` and one list; only the resources
/// whose endpoint changed there (or vanished, or whose cluster changed identity) are reconciled.
/// Also forgets objects that are gone and clusters nobody uses.
async fn resync_loop(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let wait = ctx
            .settings
            .resync
            .mul_f64(rand::rng().random_range(0.9..=1.1));
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let triggered = resync_once(&ctx).await;
        let forgotten = ctx.sweep();
        let evicted = ctx.clusters.evict_idle(ctx.settings.resync * 3);
        debug!(triggered, forgotten, evicted = evicted.len(), "resync");
    }
}

/// One resync of every cluster in the pool: returns how many resources were triggered.
pub async fn resync_once(ctx: &Context) -> usize {
    let mut triggered = 0;
    for cluster in ctx.clusters.all() {
        let watches = ctx.memory.watches_on(cluster.key());
        if watches.is_empty() {
            continue;
        }
        // A fresh identity: a cluster that changed behind the same reference re-triggers all.
        cluster.forget_identity().await;
        let version = cluster.identity().await.ok().map(|i| i.version);
        let snapshot = match cluster.snapshot(Duration::ZERO).await {
            Ok(s) if version.is_some() => s,
            // Down: the resources are reconciled when it comes back (their own retries).
            _ => continue,
        };
        for w in watches {
            // Only what changed in Elasticsearch (the endpoint, or the version: an upgrade may
            // accept what was refused): permanent problems wait for a change.
            let upgraded = w.version.is_some_and(|v| Some(v) != version);
            if snapshot.hash(&w.inference_id) != w.endpoint || upgraded {
                ctx.triggers.send(w.object.clone());
                triggered += 1;
            }
        }
    }
    triggered
}
