use std::{
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
};

use clap::Parser;
use es_inference_operator::{
    config::{Cli, Command, RunArgs},
    controller::{self, Context, Settings},
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
        Command::Crd => {
            print!("{}", crd::crd_yaml());
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
        warn!("no Elasticsearch credentials configured: requests are sent without authentication");
        EsAuth::None
    };
    let ca_pem = match &args.elasticsearch_ca_file {
        Some(p) => Some(
            std::fs::read(p).map_err(|e| format!("cannot read CA file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let es = EsClient::new(
        &EsConfig {
            url: args.elasticsearch_url.clone(),
            auth,
            ca_pem,
            request_timeout: args.elasticsearch_timeout,
            max_concurrency: args.elasticsearch_max_concurrency,
        },
        Some(metrics.clone()),
    )
    .map_err(|e| e.to_string())?;

    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}")
    })?;
    // Fail early and clearly when the CRD is missing.
    let api: kube::Api<crd::InferenceEndpoint> = kube::Api::all(client.clone());
    api.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| format!("cannot list InferenceEndpoints; is the CRD installed (kubectl apply --server-side -f crds/) and may this identity list them? {e}"))?;

    let instance = std::env::var("POD_NAME").ok();
    let reporter = Reporter {
        controller: "es-inference-operator".into(),
        instance,
    };
    let settings = Settings {
        resync: args.resync_interval,
        create_timeout: args.create_timeout,
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(
        client,
        es,
        metrics.clone(),
        settings,
        reporter,
    ));
    let ready = Arc::new(AtomicBool::new(false));

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    info!(addr = %args.metrics_addr, "serving /healthz, /readyz and /metrics");
    let app = server::router(server::ServerState {
        metrics,
        ready: ready.clone(),
    });
    let mut server_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|s| *s).await;
            })
            .await;
    });

    let mut controller_shutdown = shutdown_rx.clone();
    let controller = tokio::spawn(controller::run(
        ctx,
        args.namespace.clone(),
        args.max_concurrent_reconciles,
        async move {
            let _ = controller_shutdown.wait_for(|s| *s).await;
        },
        ready,
    ));
    info!(elasticsearch = %args.elasticsearch_url, namespace = args.namespace.as_deref().unwrap_or("<all>"), "operator started");

    shutdown_signal().await;
    info!("shutting down: no new reconciles; waiting for those in flight");
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(args.shutdown_timeout, controller)
        .await
        .is_err()
    {
        warn!(
            "in-flight reconciles did not finish within {:?}",
            args.shutdown_timeout
        );
    }
    let _ = server.await;
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
