//! The HTTP client for one Elasticsearch cluster: the inference lifecycle routes and nothing else.
//!
//! It performs HTTP and maps responses to types; it makes no decisions. Request bodies that carry
//! secrets are built by the caller, sent, and dropped. Error text coming back is scrubbed of the
//! request's secrets and of the operator's own credentials before it leaves this module.

use std::{sync::Arc, time::Duration};

use reqwest::{Method, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{
    error::{EsConfigError, EsError, TransportKind},
    response::{
        CcmState, RawEndpoint, decode, deployment_from_stats, error_reason, parse_endpoints,
        transport_error,
    },
    scrub::Scrubber,
    tls,
};
use crate::{
    metrics::Metrics,
    model::{ClusterInfo, Deleted, DeploymentStats, EndpointConfig, Version},
};

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
    /// Accept any server certificate. Insecure: only when a connection asks for it explicitly
    /// and the operator allows it.
    pub insecure_skip_verify: bool,
    pub request_timeout: Duration,
    /// Most requests in flight at once, across all reconciles.
    pub max_concurrency: usize,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl EsConfig {
    /// Settings with the operator's defaults for everything but the address and credentials.
    pub fn new(url: impl Into<String>, auth: EsAuth) -> Self {
        Self {
            url: url.into(),
            auth,
            ca_pem: None,
            insecure_skip_verify: false,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 8,
            max_response_bytes: 32 << 20,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A request body that carries secret values, and a scrubber for those values.
pub struct SecretBody {
    pub body: Value,
    pub scrubber: Scrubber,
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
    /// The operator's own credentials, scrubbed from every error.
    own: Scrubber,
    request_timeout: Duration,
    max_response_bytes: usize,
    max_retry_after: Duration,
    permits: Arc<Semaphore>,
    metrics: Option<Arc<Metrics>>,
    /// Label for metrics: which cluster reference this client serves.
    cluster: Arc<str>,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsClient").field("url", &self.base).finish()
    }
}

/// Check a cluster URL: http(s), no credentials, no query or fragment. Returns it without a
/// trailing slash.
pub fn check_url(url: &str) -> Result<String, EsConfigError> {
    let base = url.trim_end_matches('/').to_string();
    let Some(rest) = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
    else {
        return Err(EsConfigError::Url(url.to_string()));
    };
    // Credentials in a URL would end up in error messages and status: refuse them.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(EsConfigError::CredentialsInUrl);
    }
    if authority.is_empty() {
        return Err(EsConfigError::Url(url.to_string()));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(EsConfigError::QueryInUrl);
    }
    Ok(base)
}

impl EsClient {
    pub fn new(
        cfg: &EsConfig,
        metrics: Option<Arc<Metrics>>,
        cluster: &str,
    ) -> Result<Self, EsConfigError> {
        let base = check_url(&cfg.url)?;
        let tls = tls::client_config(cfg.ca_pem.as_deref(), cfg.insecure_skip_verify)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10).min(cfg.request_timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("es-inference-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EsConfigError::Client(e.to_string()))?;
        let mut own = Scrubber::default();
        let auth = match &cfg.auth {
            EsAuth::None => None,
            EsAuth::ApiKey(key) => {
                own.add(key.expose_secret());
                Some(sensitive_header(&format!(
                    "ApiKey {}",
                    key.expose_secret()
                ))?)
            }
            EsAuth::Basic { username, password } => {
                use base64::Engine;
                own.add(password.expose_secret());
                let raw = SecretString::from(format!("{username}:{}", password.expose_secret()));
                own.add(raw.expose_secret());
                let header = sensitive_header(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.expose_secret())
                ));
                Some(header?)
            }
        };
        Ok(Self {
            http,
            base,
            auth,
            own,
            request_timeout: cfg.request_timeout,
            max_response_bytes: cfg.max_response_bytes,
            max_retry_after: cfg.max_retry_after,
            permits: Arc::new(Semaphore::new(cfg.max_concurrency.max(1))),
            metrics,
            cluster: Arc::from(cluster),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /`: cluster uuid, name and version. A cluster that has not recovered its state
    /// (`cluster_uuid: "_na_"`) is an error: it has no identity yet.
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
        let bytes = self
            .send("info", Method::GET, "/".to_string(), None, None)
            .await?;
        let info: Info = decode(&bytes)?;
        let version = Version::parse(&info.version.number).ok_or_else(|| {
            EsError::Decode(format!("unparsable version {:?}", info.version.number))
        })?;
        let info = ClusterInfo {
            uuid: info.cluster_uuid,
            name: info.cluster_name,
            version,
        };
        if !info.has_identity() {
            return Err(EsError::NotRecovered { uuid: info.uuid });
        }
        Ok(info)
    }

    /// `GET /_inference/{id}`: the endpoint, or `None` when Elasticsearch has none.
    pub async fn get(&self, inference_id: &str) -> Result<Option<EndpointConfig>, EsError> {
        let path = format!("/_inference/{}", encode_segment(inference_id));
        match self.send("get", Method::GET, path, None, None).await {
            Ok(bytes) => Ok(parse_endpoints(&bytes)?
                .into_iter()
                .find(|e| e.inference_id == inference_id)
                .map(|e| e.parse())
                .transpose()?),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /_inference/_all`: every endpoint, including preconfigured ones, kept as JSON text.
    pub async fn list(&self) -> Result<Vec<RawEndpoint>, EsError> {
        let bytes = self
            .send("list", Method::GET, "/_inference/_all".into(), None, None)
            .await?;
        parse_endpoints(&bytes)
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
        let bytes = match self
            .send("model_stats", Method::GET, path, None, None)
            .await
        {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = decode(&bytes)?;
        Ok(deployment_from_stats(&v, deployment_id))
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
            path.push_str(&format!("?timeout={}", create_timeout_param(t)));
            http_timeout = Some(t + Duration::from_secs(15));
        }
        let bytes = self
            .send("create", Method::PUT, path, Some(body), http_timeout)
            .await?;
        decode(&bytes)
    }

    /// `PUT /_inference/{task_type}/{id}/_update` (always the two-segment form).
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
        let bytes = self
            .send("update", Method::PUT, path, Some(body), None)
            .await?;
        decode(&bytes)
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
        match self.send("delete", Method::DELETE, path, None, None).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.status() == Some(404) => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// `GET /_inference/_ccm`: whether Cloud Connect is enabled (`{"enabled": bool}`).
    pub async fn ccm_enabled(&self) -> Result<bool, EsError> {
        let bytes = self
            .send("ccm", Method::GET, "/_inference/_ccm".into(), None, None)
            .await?;
        decode::<CcmState>(&bytes).map(|s| s.enabled)
    }

    /// `PUT /_inference/_ccm` with `{"api_key": …}` (enable, or rotate the key) or
    /// `{"enabled": false}`; answers whether it is enabled now.
    pub async fn ccm_put(&self, body: SecretBody) -> Result<bool, EsError> {
        let bytes = self
            .send(
                "ccm",
                Method::PUT,
                "/_inference/_ccm".into(),
                Some(body),
                None,
            )
            .await?;
        decode::<CcmState>(&bytes).map(|s| s.enabled)
    }

    async fn send(
        &self,
        route: &'static str,
        method: Method,
        path: String,
        body: Option<SecretBody>,
        timeout: Option<Duration>,
    ) -> Result<bytes::Bytes, EsError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EsError::Transport {
                kind: TransportKind::Other,
                message: "client is shutting down".into(),
            })?;
        let timeout = timeout.unwrap_or(self.request_timeout);
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path))
            .timeout(timeout)
            .header(header::ACCEPT, "application/json");
        if let Some(auth) = &self.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let mut scrubber = self.own.clone();
        if let Some(SecretBody { body, scrubber: s }) = body {
            scrubber.extend(&s);
            // Serialized here and moved into the request; dropped when the request completes.
            let bytes = serde_json::to_vec(&body).map_err(|e| EsError::Decode(e.to_string()))?;
            drop(body);
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let started = std::time::Instant::now();
        let result = self
            .exchange(req, timeout)
            .await
            .map_err(|e| e.scrubbed(&scrubber));
        if let Some(m) = &self.metrics {
            let status = match &result {
                Ok(_) => "2xx".to_string(),
                Err(EsError::Status { status, .. }) => status.to_string(),
                Err(e) => e.label().to_string(),
            };
            m.observe_es_request(
                &self.cluster,
                route,
                method.as_str(),
                &status,
                started.elapsed(),
            );
        }
        result
    }

    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<bytes::Bytes, EsError> {
        let mut resp = req
            .send()
            .await
            .map_err(|e| transport_error(e, timeout, &self.base))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(self.max_retry_after));
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_response_bytes as u64)
        {
            return Err(EsError::TooLarge {
                limit: self.max_response_bytes,
            });
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(e, timeout, &self.base))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(EsError::TooLarge {
                    limit: self.max_response_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if status.is_success() {
            return Ok(body);
        }
        let (kind, reason) = error_reason(status, &body);
        Err(EsError::Status {
            status: status.as_u16(),
            kind,
            reason,
            retry_after,
        })
    }
}

/// `timeout` as Elasticsearch's time unit: whole seconds, at least one.
pub fn create_timeout_param(t: Duration) -> String {
    format!("{}s", t.as_secs().max(1))
}

/// Inference ids and task types are validated by the CRD, but encode anyway: a path is never
/// built from unchecked input.
fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Everything but unreserved characters is encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn sensitive_header(v: &str) -> Result<header::HeaderValue, EsConfigError> {
    let mut h = header::HeaderValue::from_str(v).map_err(|_| {
        EsConfigError::Credentials("contains characters not allowed in a header".into())
    })?;
    h.set_sensitive(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_or_queries_are_refused() {
        let e = check_url("https://elastic:hunter2@es.example:9200").expect_err("refused");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(matches!(e, EsConfigError::CredentialsInUrl));
        assert!(matches!(
            check_url("https://es.example:9200/prefix?x=a@b"),
            Err(EsConfigError::QueryInUrl)
        ));
        assert!(matches!(
            check_url("https://es.example:9200/#frag"),
            Err(EsConfigError::QueryInUrl)
        ));
        assert_eq!(
            check_url("https://es.example:9200/prefix/").expect("ok"),
            "https://es.example:9200/prefix"
        );
        assert!(matches!(
            check_url("es.example:9200"),
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

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("my-id_1.x"), "my-id_1.x");
        assert_eq!(encode_segment("a/b?c"), "a%2Fb%3Fc");
    }
}
