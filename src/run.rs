//! The `run` command: connect, check what is installed, serve health and metrics, take part in
//! leader election, run the controllers, and stop gracefully.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::{
    Api, Client,
    api::{ListParams, PartialObjectMeta},
    runtime::events::Reporter,
};
use secrecy::SecretString;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    cluster::{ClusterPool, ClusterSettings, CredentialFile, DefaultTarget},
    config::{DeletionDefault, EsConnectionArgs, RunArgs},
    connection::{ReferenceRules, Target},
    context::{Context, Settings},
    controller,
    crd::DeletionPolicy,
    crd::ElasticsearchConnection,
    es::{EsAuth, EsClient, check_url},
    guard::Watched,
    lease::{Elector, Fence, LeaseConfig},
    metrics::Metrics,
    policy, server,
};

fn read_secret_file(path: &std::path::Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(SecretString::from(text.trim().to_string()))
}

/// The credentials of the cluster given by flags or files.
pub fn es_auth(args: &EsConnectionArgs) -> Result<EsAuth, String> {
    if let Some(key) = &args.elasticsearch_api_key {
        return Ok(EsAuth::ApiKey(SecretString::from(key.clone())));
    }
    if let Some(path) = &args.elasticsearch_api_key_file {
        return Ok(EsAuth::ApiKey(read_secret_file(path)?));
    }
    if let Some(username) = args.elasticsearch_username.clone() {
        let password = match (
            &args.elasticsearch_password,
            &args.elasticsearch_password_file,
        ) {
            (Some(p), _) => SecretString::from(p.clone()),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => {
                return Err("--elasticsearch-username needs --elasticsearch-password or --elasticsearch-password-file".into());
            }
        };
        return Ok(EsAuth::Basic { username, password });
    }
    if args.elasticsearch_url.is_some() {
        warn!(
            "no credentials for the default Elasticsearch: requests are sent without authentication"
        );
    }
    Ok(EsAuth::None)
}

/// The CA bundle given by `--elasticsearch-ca-file`.
pub fn es_ca(args: &EsConnectionArgs) -> Result<Option<Vec<u8>>, String> {
    match &args.elasticsearch_ca_file {
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| format!("cannot read CA file {}: {e}", p.display())),
        None => Ok(None),
    }
}

/// The default cluster, checked now: a bad URL or CA is a start-up error.
fn default_target(
    args: &RunArgs,
    settings: &ClusterSettings,
) -> Result<Option<DefaultTarget>, String> {
    let Some(url) = args.es.elasticsearch_url.clone() else {
        info!(
            "no default Elasticsearch (--elasticsearch-url): every InferenceEndpoint needs spec.elasticsearchRef"
        );
        return Ok(None);
    };
    check_url(&url).map_err(|e| e.to_string())?;
    plaintext_default_cluster(&url, args.allow_plaintext_elasticsearch)?;
    if url.starts_with("http://") {
        warn!(
            "the default Elasticsearch is reached over plaintext HTTP (allowed by --allow-plaintext-elasticsearch): credentials and secret settings cross the network unencrypted"
        );
    }
    let ca_pem = es_ca(&args.es)?;
    let target = Target {
        key: "default".into(),
        url,
        auth: es_auth(&args.es)?,
        ca_pem,
        insecure_skip_verify: false,
        policy: default_policy(args)?,
        home_namespace: None,
    };
    let pool = ClusterPool::new(None, settings.clone(), Fence::open(), None);
    EsClient::new(&pool.es_config(&target), None, "default").map_err(|e| e.to_string())?;
    // Credentials from a mounted Secret are read again when the file changes.
    let file = match (
        &args.es.elasticsearch_api_key_file,
        &args.es.elasticsearch_username,
    ) {
        (Some(p), _) => Some(CredentialFile::ApiKey(p.clone())),
        (None, Some(u)) if args.es.elasticsearch_password.is_none() => args
            .es
            .elasticsearch_password_file
            .clone()
            .map(|path| CredentialFile::Password {
                username: u.clone(),
                path,
            }),
        _ => None,
    };
    let default = DefaultTarget::new(target, file);
    // The CA from a mounted Secret or ConfigMap is read again when it changes, too.
    Ok(Some(match &args.es.elasticsearch_ca_file {
        Some(path) => default.with_ca_file(path.clone()),
        None => default,
    }))
}

/// The default cluster follows the rule of ElasticsearchConnections: `http://` only when the
/// operator allows plaintext. The message names the flag, not the URL.
fn plaintext_default_cluster(url: &str, allow_plaintext: bool) -> Result<(), String> {
    if url.starts_with("http://") && !allow_plaintext {
        return Err("--elasticsearch-url (ELASTICSEARCH_URL) is plaintext http://: the operator's credentials and secret settings would cross the network unencrypted. Use https://, or allow plaintext with --allow-plaintext-elasticsearch true (ALLOW_PLAINTEXT_ELASTICSEARCH, chart value security.allowPlaintextElasticsearch)".into());
    }
    Ok(())
}

/// The tenancy policy of the default cluster, from the flags (`None` when no flag is given).
fn default_policy(args: &RunArgs) -> Result<Option<crate::crd::TenancyPolicy>, String> {
    let selector = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| policy::parse_selector(s).map_err(|e| format!("{flag}: {e}")))
            .transpose()
    };
    let p = crate::crd::TenancyPolicy {
        inference_id_prefix: args.inference_id_prefix.clone().filter(|p| !p.is_empty()),
        namespace_selector: None,
        adopt_namespace_selector: selector(
            "--adopt-namespace-selector",
            &args.adopt_namespace_selector,
        )?,
        force_delete_namespace_selector: selector(
            "--force-delete-namespace-selector",
            &args.force_delete_namespace_selector,
        )?,
        recreate_namespace_selector: selector(
            "--recreate-namespace-selector",
            &args.recreate_namespace_selector,
        )?,
    };
    Ok((p != crate::crd::TenancyPolicy::default()).then_some(p))
}

/// Fail early and clearly when a CRD is missing or this identity may not list the resources.
/// Endpoints are read with the operator's own lenient decoder (their managedFields mirror
/// whatever the spec holds, so even a metadata-only list can be too deep for serde), so that no
/// object's content can make start-up fail.
async fn check_installed(client: &Client, namespaces: &[String]) -> Result<(), String> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    for ns in scopes {
        let where_ = ns.map_or("all namespaces".to_string(), |n| format!("namespace {n}"));
        let endpoints: Api<Watched> = match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let connections: Api<PartialObjectMeta<ElasticsearchConnection>> = match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        for (kind, result) in [
            (
                "InferenceEndpoints",
                endpoints
                    .list(&ListParams::default().limit(1))
                    .await
                    .map(|_| ()),
            ),
            (
                "ElasticsearchConnections",
                connections
                    .list_metadata(&ListParams::default().limit(1))
                    .await
                    .map(|_| ()),
            ),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Err(format!(
                        "cannot list {kind} in {where_}: the CRD is not installed (kubectl apply --server-side -f crds/, or the chart with crds.enabled=true)"
                    ));
                }
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    return Err(format!(
                        "cannot list {kind} in {where_}: this identity is not allowed to ({}); check the operator's RBAC",
                        s.message
                    ));
                }
                Err(e) => return Err(format!("cannot list {kind} in {where_}: {e}")),
            }
        }
    }
    Ok(())
}

fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("es-inference-operator-{}", std::process::id()))
}

/// Serve `/healthz`, `/readyz` and `/metrics` until `stop`.
async fn serve(
    args: &RunArgs,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /healthz, /readyz and /metrics");
    let app = server::router(server::ServerState { metrics, ready });
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }))
}

/// An elector not started yet, and the channel that will say when it leads.
type Candidate = (Elector, watch::Receiver<bool>);

/// The election, when enabled: the elector and its fence (always open without election).
fn election(
    args: &RunArgs,
    client: &Client,
    identity: &str,
) -> Result<(Fence, Option<Candidate>), String> {
    if !args.leader_election {
        return Ok((Fence::open(), None));
    }
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|s| !s.is_empty())
        .ok_or("leader election needs --leader-election-namespace or POD_NAMESPACE")?;
    let cfg = LeaseConfig::for_duration(
        &namespace,
        &args.leader_election_lease_name,
        identity,
        args.leader_election_lease_duration,
    );
    let (elector, fence, leading) = Elector::new(client.clone(), cfg);
    Ok((fence, Some((elector, leading))))
}

/// A running election of the leading replica.
struct Leading {
    elector_stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Leading {
    /// Wait to lead (or to be stopped first: `None`). While leading, a lost Lease stops
    /// everything through `stop_tx`.
    async fn wait(
        elector: Elector,
        mut leading: watch::Receiver<bool>,
        stop_tx: &watch::Sender<bool>,
        metrics: &Arc<Metrics>,
    ) -> Option<Leading> {
        let (elector_stop, elector_stop_rx) = watch::channel(false);
        let task = tokio::spawn(elector.run(elector_stop_rx));
        let mut stop = stop_tx.subscribe();
        let became_leader = tokio::select! {
            r = leading.wait_for(|l| *l) => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !became_leader {
            let _ = elector_stop.send(true);
            let _ = task.await;
            return None;
        }
        metrics.set_leader(true);
        let (loss_tx, loss_metrics) = (stop_tx.clone(), metrics.clone());
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let watcher = tokio::spawn(async move {
            if leading.wait_for(|l| !*l).await.is_ok() {
                loss_metrics.set_leader(false);
                flag.store(true, Ordering::SeqCst);
                let _ = loss_tx.send(true);
            }
        });
        Some(Leading {
            elector_stop,
            task,
            watcher,
            lost,
        })
    }

    /// Release the Lease (after the reconciles in flight ended). Returns whether it was lost
    /// before.
    async fn release(self, metrics: &Metrics) -> bool {
        self.watcher.abort();
        let _ = self.elector_stop.send(true);
        let _ = self.task.await;
        metrics.set_leader(false);
        self.lost.load(Ordering::SeqCst)
    }
}

fn context(
    args: &RunArgs,
    client: Client,
    pool: ClusterPool,
    metrics: Arc<Metrics>,
    identity: &str,
    fence: Fence,
) -> Arc<Context> {
    let settings = Settings {
        resync: args.resync_interval,
        create_timeout: args.create_timeout,
        rules: ReferenceRules {
            cross_namespace_eck: args.allow_cross_namespace_refs,
            cross_namespace_elastic_user: args.allow_cross_namespace_elastic_user,
            plaintext: args.allow_plaintext_elasticsearch,
            insecure_skip_verify: args.allow_insecure_skip_verify,
        },
        default_deletion_policy: match args.default_deletion_policy {
            DeletionDefault::Delete => DeletionPolicy::Delete,
            DeletionDefault::Retain => DeletionPolicy::Retain,
        },
        ..Settings::default()
    };
    let reporter = Reporter {
        controller: "es-inference-operator".into(),
        instance: Some(identity.to_string()),
    };
    Arc::new(Context::new(
        client, pool, metrics, settings, reporter, fence,
    ))
}

/// The rules between flags that clap cannot express; `run` refuses to start without them.
pub fn check_args(args: &RunArgs) -> Result<(), String> {
    if args.leader_election && args.shutdown_timeout >= args.leader_election_lease_duration {
        return Err(format!(
            "--shutdown-timeout ({:?}) must be shorter than --leader-election-lease-duration ({:?}): the drain after SIGTERM must fit inside the lease",
            args.shutdown_timeout, args.leader_election_lease_duration
        ));
    }
    if let Some(url) = &args.es.elasticsearch_url {
        plaintext_default_cluster(url, args.allow_plaintext_elasticsearch)?;
    }
    default_policy(args).map(|_| ())
}

fn cluster_settings(args: &RunArgs) -> ClusterSettings {
    ClusterSettings {
        request_timeout: args.elasticsearch_timeout,
        max_concurrency: args.elasticsearch_max_concurrency,
        max_response_bytes: args.elasticsearch_max_response_bytes,
        refresh: args.resync_interval,
        ..ClusterSettings::default()
    }
}

/// On SIGTERM or Ctrl-C, tell every task to stop.
fn stop_on_signal(stop: watch::Sender<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down: no new reconciles; waiting for those in flight");
        let _ = stop.send(true);
    })
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    check_args(&args)?;
    let metrics = Arc::new(Metrics::new());
    let cluster_settings = cluster_settings(&args);
    let default = default_target(&args, &cluster_settings)?;
    let client = Client::try_default().await.map_err(|e| {
        format!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}")
    })?;
    check_installed(&client, &args.namespace).await?;
    let identity = identity();
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = serve(&args, metrics.clone(), ready.clone(), stop_rx.clone()).await?;
    let signals = stop_on_signal(stop_tx.clone());
    let (fence, elector) = election(&args, &client, &identity)?;
    let pool = ClusterPool::new(
        default,
        cluster_settings,
        fence.clone(),
        Some(metrics.clone()),
    );
    let ctx = context(&args, client, pool, metrics.clone(), &identity, fence);

    let leading = match elector {
        None => {
            metrics.set_leader(true);
            None
        }
        Some((elector, leading)) => {
            // A standby is ready: it serves metrics, waits for the Lease, and writes nothing.
            ready.store(true, Ordering::SeqCst);
            info!(lease = %args.leader_election_lease_name, %identity, "waiting to become the leader");
            let Some(l) = Leading::wait(elector, leading, &stop_tx, &metrics).await else {
                signals.abort();
                let _ = stop_tx.send(true);
                let _ = server.await;
                return Ok(());
            };
            Some(l)
        }
    };
    info!(elasticsearch = args.es.elasticsearch_url.as_deref().unwrap_or("<none>"), namespaces = ?args.namespace, "operator started");
    let controllers = tokio::spawn(controller::run(
        ctx,
        args.namespace.clone(),
        args.max_concurrent_reconciles,
        stop_rx.clone(),
        ready,
    ));
    let mut stop = stop_rx.clone();
    let _ = stop.wait_for(|s| *s).await;
    if tokio::time::timeout(args.shutdown_timeout, controllers)
        .await
        .is_err()
    {
        warn!(
            "in-flight reconciles did not finish within {:?}",
            args.shutdown_timeout
        );
    }
    let lost = match leading {
        Some(l) => l.release(&metrics).await,
        None => false,
    };
    signals.abort();
    let _ = server.await;
    if lost {
        return Err("lost leadership".into());
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
