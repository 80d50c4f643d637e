//! The Elasticsearch client: the inference lifecycle routes of CONTRACT.md and nothing else.
//!
//! It performs HTTP and maps responses to types; it makes no decisions. Request bodies that carry
//! secrets are built by the caller, sent, and dropped; error messages coming back are scrubbed of
//! every secret value of the request before they leave this module, because some Elasticsearch
//! errors echo the settings they were given (CONTRACT §4, "unknown to the service").

use std::{sync::Arc, time::Duration};

use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// An Elasticsearch version, as reported by `GET /`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(Self::new(
            it.next()??,
            it.next()??,
            it.next().flatten().unwrap_or(0),
        ))
    }

    /// Oldest supported version: `_update` appeared in 8.17 (CONTRACT §1.2).
    pub const MIN_SUPPORTED: Version = Version::new(8, 17, 0);

    /// `timeout` on create: 8.19 and 9.1+, not 9.0 (CONTRACT §1.2, §1.3).
    pub fn put_accepts_timeout(self) -> bool {
        (self.major == 8 && self.minor >= 19)
            || (self.major == 9 && self.minor >= 1)
            || self.major > 9
    }
    /// `_update` accepts `chunking_settings` (9.5+, CONTRACT §9).
    pub fn update_accepts_chunking(self) -> bool {
        self >= Version::new(9, 5, 0)
    }
    /// `adaptive_allocations` can be changed with `_update` (9.4+, CONTRACT §9).
    pub fn update_accepts_adaptive_allocations(self) -> bool {
        self >= Version::new(9, 4, 0)
    }
    /// `_update` resets stored chunking settings before 9.3 (elastic/elasticsearch#139574).
    pub fn update_resets_chunking(self) -> bool {
        self < Version::new(9, 3, 0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What `GET /` says about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub uuid: String,
    pub name: String,
    pub version: Version,
}

/// An inference endpoint as Elasticsearch returns it (never with secrets).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct EndpointConfig {
    /// `inference_id` since 8.15, `model_id` before.
    #[serde(alias = "model_id")]
    pub inference_id: String,
    pub task_type: String,
    pub service: String,
    #[serde(default)]
    pub service_settings: Map<String, Value>,
    #[serde(default)]
    pub task_settings: Map<String, Value>,
    #[serde(default)]
    pub chunking_settings: Option<Map<String, Value>>,
}

/// A trained-model deployment as `GET _ml/trained_models/<id>/_stats` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentStats {
    pub deployment_id: String,
    pub model_id: String,
    /// `starting`, `started`, `stopping`, `failed`.
    pub state: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    pub allocations: Option<u64>,
    pub target_allocations: Option<u64>,
    /// `starting`, `started`, `fully_allocated`.
    pub allocation_state: Option<String>,
}

/// The result of a DELETE that Elasticsearch accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// 404: already gone.
    AlreadyGone,
}

/// Errors from Elasticsearch, classified for retrying. Messages never contain secret values.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EsError {
    #[error("cannot reach Elasticsearch: {0}")]
    Transport(String),
    #[error("Elasticsearch did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Elasticsearch answered {status}: {}", .kind.as_deref().map(|k| format!("{k}: {}", .reason)).unwrap_or_else(|| .reason.clone()))]
    Status {
        status: u16,
        /// Elasticsearch's error type, e.g. `status_exception`.
        kind: Option<String>,
        /// Elasticsearch's reason, verbatim but for secrets, with `caused_by` reasons appended.
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("unexpected response from Elasticsearch: {0}")]
    Decode(String),
}

impl EsError {
    /// Transient errors are retried with backoff; the rest are reported and wait for a change.
    pub fn is_transient(&self) -> bool {
        match self {
            EsError::Transport(_) | EsError::Timeout(_) => true,
            EsError::Status { status, reason, .. } => {
                *status == 429
                    || *status >= 500
                    // A provider outage during create validation comes back as a 400 whose cause
                    // is the provider's 429 or 5xx (CONTRACT §5.3): that is not the user's fault.
                    || (*status == 400
                        && (reason.contains("Received a rate limit status code")
                            || reason.contains("Received a server error status code")))
            }
            EsError::Decode(_) => false,
        }
    }

    /// The cluster could not be reached or refused the operator's credentials: a problem of the
    /// connection, not of one endpoint.
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, EsError::Transport(_)) || self.status() == Some(401)
    }

    /// A hint for a person, when the failure has a usual cause.
    pub fn hint(&self) -> Option<&'static str> {
        let text = self.to_string();
        if text.contains("UnknownIssuer")
            || text.contains("certificate")
            || text.contains("invalid peer")
        {
            Some(
                "the server's TLS certificate is not trusted: give the connection the CA that signed it (tls.ca, or --elasticsearch-ca-file)",
            )
        } else if self.status() == Some(401) {
            Some(
                "the credentials were refused: check the API key (or username and password) in the referenced Secret",
            )
        } else if matches!(self, EsError::Transport(_)) {
            Some("check the URL, DNS and network policies between the operator and Elasticsearch")
        } else {
            None
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EsError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<&str> {
        match self {
            EsError::Status { kind, .. } => kind.as_deref(),
            _ => None,
        }
    }

    /// The reason text alone, without a final full stop, for embedding in a sentence.
    pub fn reason_text(&self) -> String {
        let text = match self {
            EsError::Status { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        text.trim_end().trim_end_matches('.').to_string()
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EsError::Transport(_) => "transport",
            EsError::Timeout(_) => "timeout",
            EsError::Status { status, .. } if *status >= 500 => "5xx",
            EsError::Status { status: 429, .. } => "429",
            EsError::Status { status: 401, .. } | EsError::Status { status: 403, .. } => "auth",
            EsError::Status { .. } => "4xx",
            EsError::Decode(_) => "decode",
        }
    }
}

/// How the operator authenticates to Elasticsearch.
#[derive(Clone, Default)]
pub enum EsAuth {
    #[default]
    None,
    /// The encoded API key, sent as `Authorization: ApiKey <key>`.
    ApiKey(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
}

impl std::fmt::Debug for EsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EsAuth::None => f.write_str("None"),
            EsAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            EsAuth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// Connection settings for one Elasticsearch cluster.
#[derive(Clone, Debug)]
pub struct EsConfig {
    pub url: String,
    pub auth: EsAuth,
    /// PEM bundle of CAs to trust instead of the built-in roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate. Insecure: only when a connection asks for it explicitly.
    pub insecure_skip_verify: bool,
    pub request_timeout: Duration,
    /// Most requests in flight at once, across all reconciles.
    pub max_concurrency: usize,
}

/// A request body that carries secret values, and those values, so that errors can be scrubbed.
pub struct SecretBody {
    pub body: Value,
    pub secrets: Vec<SecretString>,
}

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBody(<redacted>)")
    }
}

/// Client for one Elasticsearch cluster.
#[derive(Clone)]
pub struct EsClient {
    http: reqwest::Client,
    base: String,
    auth: Option<header::HeaderValue>,
    request_timeout: Duration,
    permits: Arc<Semaphore>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsClient").field("url", &self.base).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EsConfigError {
    #[error("invalid Elasticsearch URL {0:?}: it must start with http:// or https://")]
    Url(String),
    #[error(
        "the Elasticsearch URL must not contain credentials (user:password@): use the API key or username/password settings"
    )]
    CredentialsInUrl,
    #[error("invalid CA bundle: {0}")]
    Ca(String),
    #[error("invalid Elasticsearch credentials: {0}")]
    Credentials(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl EsClient {
    pub fn new(cfg: &EsConfig, metrics: Option<Arc<Metrics>>) -> Result<Self, EsConfigError> {
        let base = cfg.url.trim_end_matches('/').to_string();
        let Some(rest) = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
        else {
            return Err(EsConfigError::Url(cfg.url.clone()));
        };
        // Credentials in a URL would end up in error messages and status: refuse them.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(EsConfigError::CredentialsInUrl);
        }
        let tls = tls_config(cfg.ca_pem.as_deref(), cfg.insecure_skip_verify)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("es-inference-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EsConfigError::Client(e.to_string()))?;
        let auth = match &cfg.auth {
            EsAuth::None => None,
            EsAuth::ApiKey(key) => Some(sensitive_header(&format!(
                "ApiKey {}",
                key.expose_secret()
            ))?),
            EsAuth::Basic { username, password } => {
                use base64::Engine;
                let raw = format!("{username}:{}", password.expose_secret());
                let header = sensitive_header(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
                ));
                drop(raw);
                Some(header?)
            }
        };
        Ok(Self {
            http,
            base,
            auth,
            request_timeout: cfg.request_timeout,
            permits: Arc::new(Semaphore::new(cfg.max_concurrency.max(1))),
            metrics,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /`: cluster uuid, name and version.
    pub async fn info(&self) -> Result<ClusterInfo, EsError> {
        #[derive(Deserialize)]
        struct Info {
            cluster_name: String,
            cluster_uuid: String,
            version: InfoVersion,
        }
        #[derive(Deserialize)]
        struct InfoVersion {
            number: String,
        }
        let v = self
            .send("info", Method::GET, "/".to_string(), None, &[], None)
            .await?;
        let info: Info = serde_json::from_value(v).map_err(|e| EsError::Decode(e.to_string()))?;
        let version = Version::parse(&info.version.number).ok_or_else(|| {
            EsError::Decode(format!("unparsable version {:?}", info.version.number))
        })?;
        Ok(ClusterInfo {
            uuid: info.cluster_uuid,
            name: info.cluster_name,
            version,
        })
    }

    /// `GET /_inference/{id}`: the endpoint, or `None` when Elasticsearch has none.
    pub async fn get(&self, inference_id: &str) -> Result<Option<EndpointConfig>, EsError> {
        let path = format!("/_inference/{}", encode_segment(inference_id));
        match self.send("get", Method::GET, path, None, &[], None).await {
            Ok(v) => Ok(parse_endpoints(v)?
                .into_iter()
                .find(|e| e.inference_id == inference_id)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /_inference/_all`: every endpoint, including preconfigured ones.
    pub async fn list(&self) -> Result<Vec<EndpointConfig>, EsError> {
        let v = self
            .send(
                "list",
                Method::GET,
                "/_inference/_all".into(),
                None,
                &[],
                None,
            )
            .await?;
        parse_endpoints(v)
    }

    /// `GET _ml/trained_models/<deployment id>/_stats`: the deployment behind a built-in model
    /// endpoint, or `None` when there is none.
    pub async fn deployment_stats(
        &self,
        deployment_id: &str,
    ) -> Result<Option<DeploymentStats>, EsError> {
        let path = format!(
            "/_ml/trained_models/{}/_stats",
            encode_segment(deployment_id)
        );
        let v = match self
            .send("model_stats", Method::GET, path, None, &[], None)
            .await
        {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stats = v
            .get("trained_model_stats")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("deployment_stats"))
            .find(|d| d.get("deployment_id").and_then(Value::as_str) == Some(deployment_id));
        Ok(stats.map(|d| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            let alloc = d.get("allocation_status");
            DeploymentStats {
                deployment_id: deployment_id.to_string(),
                model_id: text(d.get("model_id")).unwrap_or_default(),
                state: text(d.get("state")).unwrap_or_default(),
                reason: text(d.get("reason")),
                allocations: alloc
                    .and_then(|a| a.get("allocation_count"))
                    .and_then(Value::as_u64),
                target_allocations: alloc
                    .and_then(|a| a.get("target_allocation_count"))
                    .and_then(Value::as_u64),
                allocation_state: text(alloc.and_then(|a| a.get("state"))),
            }
        }))
    }

    /// `PUT /_inference/{task_type}/{id}` (create). `timeout` is sent only when given, which the
    /// caller does only for versions that accept it.
    pub async fn create(
        &self,
        task_type: &str,
        inference_id: &str,
        body: SecretBody,
        timeout: Option<Duration>,
    ) -> Result<EndpointConfig, EsError> {
        let mut path = format!(
            "/_inference/{}/{}",
            encode_segment(task_type),
            encode_segment(inference_id)
        );
        let mut http_timeout = None;
        if let Some(t) = timeout {
            path.push_str(&format!("?timeout={}s", t.as_secs().max(1)));
            http_timeout = Some(t + Duration::from_secs(15));
        }
        let SecretBody { body, secrets } = body;
        let v = self
            .send(
                "create",
                Method::PUT,
                path,
                Some(body),
                &secrets,
                http_timeout,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| EsError::Decode(e.to_string()))
    }

    /// `PUT /_inference/{task_type}/{id}/_update` (always the two-segment form, CONTRACT §9).
    pub async fn update(
        &self,
        task_type: &str,
        inference_id: &str,
        body: SecretBody,
    ) -> Result<EndpointConfig, EsError> {
        let path = format!(
            "/_inference/{}/{}/_update",
            encode_segment(task_type),
            encode_segment(inference_id)
        );
        let SecretBody { body, secrets } = body;
        let v = self
            .send("update", Method::PUT, path, Some(body), &secrets, None)
            .await?;
        serde_json::from_value(v).map_err(|e| EsError::Decode(e.to_string()))
    }

    /// `DELETE /_inference/{task_type}/{id}`; 404 counts as done, 409 (referenced) is an error
    /// whose reason names the pipelines and indexes.
    pub async fn delete(
        &self,
        task_type: &str,
        inference_id: &str,
        force: bool,
    ) -> Result<Deleted, EsError> {
        let mut path = format!(
            "/_inference/{}/{}",
            encode_segment(task_type),
            encode_segment(inference_id)
        );
        if force {
            path.push_str("?force=true");
        }
        match self
            .send("delete", Method::DELETE, path, None, &[], None)
            .await
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.status() == Some(404) => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    async fn send(
        &self,
        route: &'static str,
        method: Method,
        path: String,
        body: Option<Value>,
        secrets: &[SecretString],
        timeout: Option<Duration>,
    ) -> Result<Value, EsError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EsError::Transport("client is shutting down".into()))?;
        let timeout = timeout.unwrap_or(self.request_timeout);
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path))
            .timeout(timeout)
            .header(header::ACCEPT, "application/json");
        if let Some(auth) = &self.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            // Serialized here and moved into the request; dropped when the request completes.
            let bytes = serde_json::to_vec(&body).map_err(|e| EsError::Decode(e.to_string()))?;
            drop(body);
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let started = std::time::Instant::now();
        let result = self.exchange(req, secrets, timeout).await;
        if let Some(m) = &self.metrics {
            let status = match &result {
                Ok(_) => "2xx".to_string(),
                Err(EsError::Status { status, .. }) => status.to_string(),
                Err(e) => e.label().to_string(),
            };
            m.observe_es_request(route, method.as_str(), &status, started.elapsed());
        }
        result
    }

    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        secrets: &[SecretString],
        timeout: Duration,
    ) -> Result<Value, EsError> {
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(e, timeout, &self.base))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(e, timeout, &self.base))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| EsError::Decode(e.to_string()));
        }
        let (kind, reason) = error_reason(status, &bytes);
        Err(EsError::Status {
            status: status.as_u16(),
            kind,
            reason: scrub(reason, secrets),
            retry_after,
        })
    }
}

fn transport_error(e: reqwest::Error, timeout: Duration, base: &str) -> EsError {
    if e.is_timeout() {
        return EsError::Timeout(timeout);
    }
    // reqwest puts the whole request URL in its message; name only the (credential-free) base.
    let e = e.without_url();
    // reqwest's Display is terse; the source chain says what actually failed (DNS, TLS, refused).
    let mut msg = format!("{base}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    EsError::Transport(msg)
}

/// Elasticsearch's error type and reason, with the `caused_by` chain appended, from its error
/// envelope (CONTRACT §4); falls back to the status line for non-JSON bodies.
fn error_reason(status: StatusCode, bytes: &[u8]) -> (Option<String>, String) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return (
            None,
            status.canonical_reason().unwrap_or("error").to_string(),
        );
    };
    let Some(err) = v.get("error") else {
        return (
            None,
            status.canonical_reason().unwrap_or("error").to_string(),
        );
    };
    if let Some(s) = err.as_str() {
        return (None, s.to_string());
    }
    let kind = err.get("type").and_then(Value::as_str).map(str::to_string);
    let mut reason = err
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut cause = err.get("caused_by");
    let mut depth = 0;
    while let Some(c) = cause {
        if let Some(r) = c.get("reason").and_then(Value::as_str)
            && !reason.contains(r)
        {
            reason.push_str(" Caused by: ");
            reason.push_str(r);
        }
        cause = c.get("caused_by");
        depth += 1;
        if depth > 5 {
            break;
        }
    }
    (kind, reason)
}

/// Replace every secret value that occurs in `text`.
pub fn scrub(mut text: String, secrets: &[SecretString]) -> String {
    for s in secrets {
        let s = s.expose_secret();
        if s.len() >= 4 && text.contains(s) {
            text = text.replace(s, "<redacted>");
        }
    }
    text
}

fn parse_endpoints(v: Value) -> Result<Vec<EndpointConfig>, EsError> {
    #[derive(Deserialize)]
    struct Endpoints {
        #[serde(alias = "models")]
        endpoints: Vec<Value>,
    }
    let list: Endpoints = serde_json::from_value(v).map_err(|e| EsError::Decode(e.to_string()))?;
    // One unparsable endpoint (e.g. a new field shape) must not hide the others.
    Ok(list
        .endpoints
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect())
}

/// Inference ids and task types are validated by the CRD, but encode anyway: a path is never
/// built from unchecked input.
fn encode_segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32 & 0xff)
            }
        })
        .collect()
}

fn sensitive_header(v: &str) -> Result<header::HeaderValue, EsConfigError> {
    let mut h = header::HeaderValue::from_str(v).map_err(|_| {
        EsConfigError::Credentials("contains characters not allowed in a header".into())
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn tls_config(
    ca_pem: Option<&[u8]>,
    insecure: bool,
) -> Result<rustls::ClientConfig, EsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if insecure {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| EsConfigError::Client(e.to_string()))?;
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let mut reader = std::io::BufReader::new(pem);
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut reader) {
                let cert = cert.map_err(|e| EsConfigError::Ca(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| EsConfigError::Ca(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(EsConfigError::Ca("no PEM certificate found".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EsConfigError::Client(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// `insecureSkipVerify`: any certificate is accepted, but handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_features() {
        let v = Version::parse("9.1.3").expect("parses");
        assert_eq!(v, Version::new(9, 1, 3));
        assert_eq!(
            Version::parse("8.19.0-SNAPSHOT"),
            Some(Version::new(8, 19, 0))
        );
        assert_eq!(Version::parse("garbage"), None);
        assert!(Version::new(8, 19, 0).put_accepts_timeout());
        assert!(!Version::new(9, 0, 4).put_accepts_timeout());
        assert!(Version::new(9, 1, 0).put_accepts_timeout());
        assert!(!Version::new(8, 18, 2).put_accepts_timeout());
        assert!(Version::new(8, 16, 0) < Version::MIN_SUPPORTED);
        assert!(Version::new(9, 2, 0).update_resets_chunking());
        assert!(!Version::new(9, 3, 0).update_resets_chunking());
    }

    #[test]
    fn error_envelope_reason_includes_causes() {
        let body = serde_json::json!({
            "error": {
                "root_cause": [{"type": "status_exception", "reason": "inner"}],
                "type": "status_exception",
                "reason": "Could not complete inference endpoint creation as validation call to service threw an exception.",
                "caused_by": {"type": "status_exception", "reason": "Received a server error status code for request from inference entity id [x] status [503]"}
            },
            "status": 400
        });
        let (kind, reason) = error_reason(StatusCode::BAD_REQUEST, body.to_string().as_bytes());
        assert_eq!(kind.as_deref(), Some("status_exception"));
        assert!(reason.starts_with("Could not complete"));
        assert!(reason.contains("status [503]"));
        let e = EsError::Status {
            status: 400,
            kind,
            reason,
            retry_after: None,
        };
        assert!(e.is_transient(), "provider 5xx behind a 400 is transient");
    }

    #[test]
    fn classification() {
        let st = |status: u16, reason: &str| EsError::Status {
            status,
            kind: None,
            reason: reason.into(),
            retry_after: None,
        };
        assert!(st(503, "x").is_transient());
        assert!(st(429, "x").is_transient());
        assert!(!st(400, "Unknown service [foo]").is_transient());
        assert!(!st(401, "x").is_transient());
        assert!(EsError::Transport("refused".into()).is_transient());
        assert!(EsError::Timeout(Duration::from_secs(1)).is_transient());
    }

    #[test]
    fn scrub_removes_secret_values() {
        let secrets = vec![SecretString::from("sk-very-secret")];
        let msg =
            "Model configuration contains settings [{api_key=sk-very-secret}] unknown".to_string();
        let out = scrub(msg, &secrets);
        assert!(!out.contains("sk-very-secret"));
        assert!(out.contains("<redacted>"));
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        let cfg = |url: &str| EsConfig {
            url: url.into(),
            auth: EsAuth::None,
            ca_pem: None,
            insecure_skip_verify: false,
            request_timeout: Duration::from_secs(1),
            max_concurrency: 1,
        };
        let e = EsClient::new(&cfg("https://elastic:hunter2@es.example:9200"), None)
            .expect_err("refused");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(matches!(e, EsConfigError::CredentialsInUrl));
        assert!(EsClient::new(&cfg("https://es.example:9200/prefix?x=a@b"), None).is_ok());
        assert!(matches!(
            EsClient::new(&cfg("es.example:9200"), None),
            Err(EsConfigError::Url(_))
        ));
    }

    #[test]
    fn auth_debug_never_shows_secrets() {
        let a = EsAuth::ApiKey(SecretString::from("abc123secret"));
        assert!(!format!("{a:?}").contains("abc123secret"));
        let b = EsAuth::Basic {
            username: "elastic".into(),
            password: SecretString::from("pw-secret"),
        };
        assert!(!format!("{b:?}").contains("pw-secret"));
    }
}
