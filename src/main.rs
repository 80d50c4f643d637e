use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use clap::Parser;
use es_inference_operator::{
    config::{Cli, Command, RunArgs},
    connection::Target,
    controller::{self, ClientOptions, ClusterPool, Context, Settings},
    crd,
    es::{EsAuth, EsClient, EsConfig, Version},
    metrics::Metrics,
    render, server, telemetry,
};
use kube::runtime::events::Reporter;
use secrecy::SecretString;
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { write: false } => {
            print!("{}", crd::all_crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { write: true } => {
            for (path, content) in crd::generated_files() {
                if let Err(e) = std::fs::write(path, content) {
                    eprintln!("error: cannot write {path}: {e} (run from the repository root)");
                    return ExitCode::FAILURE;
                }
                println!("wrote {path}");
            }
            ExitCode::SUCCESS
        }
        Command::Render(args) => {
            let read = |p: &std::path::Path| -> std::io::Result<String> {
                if p.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())
                } else {
                    std::fs::read_to_string(p)
                }
            };
            let result = (|| -> Result<String, String> {
                let manifests =
                    read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
                let secrets = args
                    .secret
                    .iter()
                    .map(|p| read(p).map_err(|e| format!("{}: {e}", p.display())))
                    .collect::<Result<Vec<_>, _>>()?;
                let version = Version::parse(&args.elasticsearch_version).ok_or_else(|| {
                    format!(
                        "invalid --elasticsearch-version {:?}",
                        args.elasticsearch_version
                    )
                })?;
                render::render(&manifests, &secrets, version, args.create_timeout)
                    .map_err(|e| e.to_string())
            })();
            match result {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            telemetry::init(args.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(SecretString::from(text.trim().to_string()))
}

async fn run(args: RunArgs) -> Result<(), String> {
    let auth = if let Some(key) = args.elasticsearch_api_key {
        EsAuth::ApiKey(SecretString::from(key))
    } else if let Some(path) = &args.elasticsearch_api_key_file {
        EsAuth::ApiKey(read_secret_file(path)?)
    } else if let Some(username) = args.elasticsearch_username.clone() {
        let password = match (&args.elasticsearch_password, &args.elasticsearch_password_file) {
            (Some(p), _) => SecretString::from(p.clone()),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => return Err("--elasticsearch-username needs --elasticsearch-password or --elasticsearch-password-file".into()),
        };
        EsAuth::Basic { username, password }
    } else {
        if args.elasticsearch_url.is_some() {
            warn!(
                "no credentials for the default Elasticsearch: requests are sent without authentication"
            );
        }
        EsAuth::None
    };
    let ca_pem = match &args.elasticsearch_ca_file {
        Some(p) => Some(
            std::fs::read(p).map_err(|e| format!("cannot read CA file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let default = args.elasticsearch_url.clone().map(|url| Target {
        key: "default".into(),
        url,
        auth,
        ca_pem,
        insecure_skip_verify: false,
    });
    if let Some(t) = &default {
        // Check the default cluster's settings now: a bad URL or CA is a startup error.
        EsClient::new(
            &EsConfig {
                url: t.url.clone(),
                auth: t.auth.clone(),
                ca_pem: t.ca_pem.clone(),
                insecure_skip_verify: false,
                request_timeout: args.elasticsearch_timeout,
                max_concurrency: 1,
            },
            None,
        )
        .map_err(|e| e.to_string())?;
    } else {
        info!(
            "no default Elasticsearch (--elasticsearch-url): every InferenceEndpoint needs spec.elasticsearchRef"
        );
    }
    let pool = ClusterPool::new(
        default,
        ClientOptions {
            request_timeout: args.elasticsearch_timeout,
            max_concurrency: args.elasticsearch_max_concurrency,
        },
        args.resync_interval,
        Some(metrics.clone()),
    );

    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}")
    })?;
    // Fail early and clearly when the CRD is missing or this identity may not list the resources.
    for ns in scopes(&args.namespace) {
        let api: kube::Api<crd::InferenceEndpoint> = match &ns {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        api.list(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(|e| format!("cannot list InferenceEndpoints in {}; is the CRD installed (kubectl apply --server-side -f crds/) and may this identity list them? {e}", ns.as_deref().unwrap_or("all namespaces")))?;
        let conns: kube::Api<crd::ElasticsearchConnection> = match &ns {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        conns
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(|e| format!("cannot list ElasticsearchConnections in {}; are both CRDs installed (kubectl apply --server-side -f crds/)? {e}", ns.as_deref().unwrap_or("all namespaces")))?;
    }

    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("es-inference-operator-{}", std::process::id()));
    let reporter = Reporter {
        controller: "es-inference-operator".into(),
        instance: Some(identity.clone()),
    };
    let settings = Settings {
        resync: args.resync_interval,
        create_timeout: args.create_timeout,
        ..Settings::default()
    };
    let mut ctx = Context::new(client.clone(), pool, metrics.clone(), settings, reporter);
    ctx.allow_cross_namespace_refs = args.allow_cross_namespace_refs;
    let ctx = Arc::new(ctx);
    let ready = Arc::new(AtomicBool::new(false));

    // One stop signal for everything: SIGTERM/SIGINT, or a lost leadership.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /healthz, /readyz and /metrics");
    let app = server::router(server::ServerState {
        metrics,
        ready: ready.clone(),
    });
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let signal_tx = stop_tx.clone();
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down: no new reconciles; waiting for those in flight");
        let _ = signal_tx.send(true);
    });

    let lost_leadership = Arc::new(AtomicBool::new(false));
    let mut lease = None;
    if args.leader_election {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|s| !s.is_empty())
            .ok_or("leader election needs --leader-election-namespace or POD_NAMESPACE")?;
        let duration = args.leader_election_lease_duration.as_secs().max(2);
        let manager = kube_lease_manager::LeaseManagerBuilder::new(
            client.clone(),
            &args.leader_election_lease_name,
        )
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .build()
        .await
        .map_err(|e| {
            format!(
                "cannot set up leader election on Lease {namespace}/{}: {e}",
                args.leader_election_lease_name
            )
        })?;
        let (mut leading, task) = manager.watch().await;
        // A standby is ready: it serves metrics and waits for the Lease.
        ready.store(true, Ordering::SeqCst);
        info!(lease = %args.leader_election_lease_name, %namespace, %identity, "waiting to become the leader");
        let mut stop = stop_rx.clone();
        let became_leader = tokio::select! {
            r = leading.wait_for(|l| *l) => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !became_leader {
            // Stopped (or the election ended) before leading: release and leave.
            let stopped = *stop_rx.borrow();
            let _ = stop_tx.send(true);
            drop(leading);
            let _ = task.await;
            signals.abort();
            let _ = server.await;
            return if stopped {
                Ok(())
            } else {
                Err("leader election stopped unexpectedly".into())
            };
        }
        info!(%identity, "became the leader; starting the controller");
        ready.store(false, Ordering::SeqCst);
        let mut watch_loss = leading.clone();
        let lost = lost_leadership.clone();
        let loss_tx = stop_tx.clone();
        let watcher = tokio::spawn(async move {
            if watch_loss.wait_for(|l| !*l).await.is_ok() {
                error!("lost the leader Lease: stopping, so that another replica takes over");
                lost.store(true, Ordering::SeqCst);
                let _ = loss_tx.send(true);
            }
        });
        lease = Some((leading, task, watcher));
    }

    info!(elasticsearch = args.elasticsearch_url.as_deref().unwrap_or("<none>"), namespaces = ?args.namespace, "operator started");
    let controller = tokio::spawn(controller::run(
        ctx,
        args.namespace.clone(),
        args.max_concurrent_reconciles,
        stop_rx.clone(),
        ready,
    ));
    let mut stop = stop_rx.clone();
    let _ = stop.wait_for(|s| *s).await;
    if tokio::time::timeout(args.shutdown_timeout, controller)
        .await
        .is_err()
    {
        warn!(
            "in-flight reconciles did not finish within {:?}",
            args.shutdown_timeout
        );
    }
    if let Some((leading, task, watcher)) = lease {
        watcher.abort();
        // Dropping the last receiver makes the lease manager release the Lease.
        drop(leading);
        let _ = task.await;
        info!("released the leader Lease");
    }
    signals.abort();
    let _ = server.await;
    if lost_leadership.load(Ordering::SeqCst) {
        return Err("lost leadership".into());
    }
    Ok(())
}

fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
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
