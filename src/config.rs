//! Command line and environment (every flag has an environment equivalent).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The environment variables the binary reads besides the `[env: ...]` of its flags, shown by
/// `--help` and `run --help` (tests/cli.rs checks that every variable the code reads is here).
pub const ENVIRONMENT_HELP: &str = "\
Environment (besides the [env: ...] of each flag):
  RUST_LOG          log filter of `run` (default info), e.g. info,es_inference_operator=debug
  POD_NAME          this replica's name in the leader-election Lease and in Events (the chart
                    sets it from the Pod); else HOSTNAME, else a generated name
  HOSTNAME          see POD_NAME
  POD_NAMESPACE     namespace of the Lease when --leader-election-namespace is not given
  KUBECONFIG        kubeconfig to use outside a cluster (default ~/.kube/config, under HOME);
                    in a Pod, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT with the
                    ServiceAccount token
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or lower case)
                    proxies for the requests to Elasticsearch; outside a cluster the
                    kubeconfig loader reads HTTPS_PROXY and NO_PROXY too";

#[derive(Parser)]
#[command(
    name = "es-inference-operator",
    version,
    about = "Elasticsearch inference endpoints as Kubernetes resources",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the controller.
    #[command(after_help = ENVIRONMENT_HELP)]
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd {
        /// Write every generated file (crds/ and the chart's CRD templates) under the current
        /// directory instead.
        #[arg(long)]
        write: bool,
    },
    /// Print, offline, the Elasticsearch requests the operator would send for a manifest
    /// (secret values shown as `<redacted>`).
    Render(RenderArgs),
    /// Write InferenceEndpoint manifests (adopt: true) and Secret stubs for the endpoints an
    /// Elasticsearch cluster already has: the way in from Kibana, Terraform or scripts.
    Import(Box<ImportArgs>),
}

/// Flags of `import`.
#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub es: EsConnectionArgs,
    /// Timeout of one Elasticsearch request.
    #[arg(long, env = "ELASTICSEARCH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub elasticsearch_timeout: Duration,
    /// Namespace of the manifests.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Only endpoints whose id matches one of these globs (`*` and `?`), e.g. `team-a-*`.
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Write one file per endpoint (`<name>.yaml`, its Secret stub included) into this directory
    /// instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// `--default-deletion-policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeletionDefault {
    #[default]
    #[value(name = "Delete")]
    Delete,
    #[value(name = "Retain")]
    Retain,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How to reach an Elasticsearch cluster (`run`'s default cluster, `import`'s source). Not
/// `Debug`: it holds credentials.
#[derive(Args)]
pub struct EsConnectionArgs {
    /// URL of the Elasticsearch cluster. `run`: the default cluster, for InferenceEndpoints
    /// without spec.elasticsearchRef (optional when every resource names its cluster).
    /// `import`: the cluster to read (required).
    #[arg(long, env = "ELASTICSEARCH_URL")]
    pub elasticsearch_url: Option<String>,
    /// Encoded API key, sent as `Authorization: ApiKey <key>`. Prefer the _FILE form.
    #[arg(long, env = "ELASTICSEARCH_API_KEY", hide_env_values = true, conflicts_with_all = ["elasticsearch_api_key_file", "elasticsearch_username"])]
    pub elasticsearch_api_key: Option<String>,
    /// File holding the encoded API key (a mounted Secret).
    #[arg(
        long,
        env = "ELASTICSEARCH_API_KEY_FILE",
        conflicts_with = "elasticsearch_username"
    )]
    pub elasticsearch_api_key_file: Option<PathBuf>,
    /// Username for basic authentication.
    #[arg(long, env = "ELASTICSEARCH_USERNAME")]
    pub elasticsearch_username: Option<String>,
    /// Password for basic authentication. Prefer the _FILE form.
    #[arg(
        long,
        env = "ELASTICSEARCH_PASSWORD",
        hide_env_values = true,
        requires = "elasticsearch_username",
        conflicts_with = "elasticsearch_password_file"
    )]
    pub elasticsearch_password: Option<String>,
    /// File holding the password (a mounted Secret).
    #[arg(
        long,
        env = "ELASTICSEARCH_PASSWORD_FILE",
        requires = "elasticsearch_username"
    )]
    pub elasticsearch_password_file: Option<PathBuf>,
    /// PEM file of the CA(s) that signed Elasticsearch's certificate (default: the Mozilla roots).
    /// `run` reads it again when its content changes.
    #[arg(long, env = "ELASTICSEARCH_CA_FILE")]
    pub elasticsearch_ca_file: Option<PathBuf>,
}

/// Flags of `run`. Not `Debug`: it holds credentials.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub es: EsConnectionArgs,
    /// Allow spec.elasticsearchRef to ECK clusters in other namespaces.
    #[arg(long, env = "ALLOW_CROSS_NAMESPACE_REFS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_cross_namespace_refs: bool,
    /// Allow useElasticUser (the ECK superuser) for ECK clusters in other namespaces.
    #[arg(long, env = "ALLOW_CROSS_NAMESPACE_ELASTIC_USER", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_cross_namespace_elastic_user: bool,
    /// Allow http:// URLs: the default cluster's --elasticsearch-url (refused at start
    /// otherwise), ElasticsearchConnections and ECK clusters with TLS disabled (credentials then
    /// cross the network unencrypted).
    #[arg(long, env = "ALLOW_PLAINTEXT_ELASTICSEARCH", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_plaintext_elasticsearch: bool,
    /// Allow tls.insecureSkipVerify on ElasticsearchConnections.
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_insecure_skip_verify: bool,
    /// Deletion policy of resources that set none and whose namespace sets none (annotation
    /// es-inference.dev/deletion-policy).
    #[arg(long, env = "DEFAULT_DELETION_POLICY", value_enum, default_value_t = DeletionDefault::Delete)]
    pub default_deletion_policy: DeletionDefault,
    /// Default cluster: inference ids must start with this (`{namespace}` is replaced by the
    /// resource's namespace, e.g. `{namespace}-`).
    #[arg(long, env = "INFERENCE_ID_PREFIX")]
    pub inference_id_prefix: Option<String>,
    /// Default cluster: namespaces (label selector `key=value,...`) whose resources may set
    /// adopt: true. Unset: all.
    #[arg(long, env = "ADOPT_NAMESPACE_SELECTOR")]
    pub adopt_namespace_selector: Option<String>,
    /// Default cluster: namespaces whose resources may set forceDelete: true. Unset: all.
    #[arg(long, env = "FORCE_DELETE_NAMESPACE_SELECTOR")]
    pub force_delete_namespace_selector: Option<String>,
    /// Default cluster: namespaces whose resources may set replacementPolicy: Recreate.
    /// Unset: all.
    #[arg(long, env = "RECREATE_NAMESPACE_SELECTOR")]
    pub recreate_namespace_selector: Option<String>,
    /// Timeout of one Elasticsearch request.
    #[arg(long, env = "ELASTICSEARCH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub elasticsearch_timeout: Duration,
    /// Most Elasticsearch requests in flight at once.
    #[arg(long, env = "ELASTICSEARCH_MAX_CONCURRENCY", default_value_t = 8)]
    pub elasticsearch_max_concurrency: usize,
    /// Largest Elasticsearch response accepted, in bytes (a list of 10,000 endpoints is about
    /// 6 MiB).
    #[arg(long, env = "ELASTICSEARCH_MAX_RESPONSE_BYTES", default_value_t = 32 << 20)]
    pub elasticsearch_max_response_bytes: usize,
    /// `timeout` sent with create where the cluster accepts it (8.19, 9.1+).
    #[arg(long, env = "CREATE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub create_timeout: Duration,
    /// Interval of the drift check: one list per cluster, jittered by ±10%.
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Most reconciles running at once.
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 8)]
    pub max_concurrent_reconciles: u16,
    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Elect a leader through a coordination.k8s.io Lease, so only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the Pod's namespace, from POD_NAMESPACE).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE_NAME",
        default_value = "es-inference-operator"
    )]
    pub leader_election_lease_name: String,
    /// How long a standby waits, after it last saw the Lease renewed, before it takes over. The
    /// leader stops writing 2/3 of this after its last successful renewal.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long in-flight reconciles may take to finish after SIGTERM (with leader election,
    /// shorter than the lease, so that the drain ends while the Lease is still held).
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

#[derive(Args)]
pub struct RenderArgs {
    /// Manifest(s) with InferenceEndpoint documents ("-" for standard input).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Secret manifest(s): checks that every referenced key exists (values stay redacted).
    #[arg(long)]
    pub secret: Vec<PathBuf>,
    /// Elasticsearch version to render for (decides whether create carries `timeout`).
    #[arg(long, default_value = "9.1.0")]
    pub elasticsearch_version: String,
    /// `timeout` to show on create where that version accepts it.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub create_timeout: Duration,
}
