//! Which Elasticsearch a resource talks to: the operator's default cluster, an
//! `ElasticsearchConnection`, or an ECK `Elasticsearch`. Pure resolution rules first, then the
//! reads that gather what they need.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    crd::{
        ElasticsearchConnection, ElasticsearchConnectionSpec, ElasticsearchRef,
        ElasticsearchRefKind, EndpointParts, SecretKeyRef,
    },
    es::EsAuth,
};

/// Everything needed to build a client for one cluster.
#[derive(Clone, Debug)]
pub struct Target {
    /// Identity for pooling and conflict checks: `default`, `conn/<ns>/<name>` or
    /// `eck/<ns>/<name>`.
    pub key: String,
    pub url: String,
    pub auth: EsAuth,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    /// The tenancy rules of the cluster (a connection's `spec.policy`, or the operator's for
    /// the default cluster).
    pub policy: Option<crate::crd::TenancyPolicy>,
    /// The namespace of the connection, for connections (its own namespace may use it).
    pub home_namespace: Option<String>,
}

/// What the operator allows references to do (flags; the defaults are the safe choice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReferenceRules {
    /// `elasticsearchRef` to ECK clusters in other namespaces.
    pub cross_namespace_eck: bool,
    /// `useElasticUser` with an ECK cluster in another namespace (its superuser).
    pub cross_namespace_elastic_user: bool,
    /// `http://` URLs (connections, and ECK clusters with TLS disabled).
    pub plaintext: bool,
    /// `tls.insecureSkipVerify` on connections.
    pub insecure_skip_verify: bool,
}

impl Target {
    /// Changes whenever the URL, the credentials, the CA or the TLS mode change, so that a pooled
    /// client is rebuilt (credentials enter only as a hash).
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.url.as_bytes());
        h.update([0]);
        match &self.auth {
            EsAuth::None => h.update(b"none"),
            EsAuth::ApiKey(k) => {
                h.update(b"apikey");
                h.update(k.expose_secret().as_bytes());
            }
            EsAuth::Basic { username, password } => {
                h.update(b"basic");
                h.update(username.as_bytes());
                h.update([0]);
                h.update(password.expose_secret().as_bytes());
            }
        }
        h.update([0]);
        h.update(self.ca_pem.as_deref().unwrap_or_default());
        h.update([u8::from(self.insecure_skip_verify)]);
        hex::encode(&h.finalize()[..8])
    }
}

/// Why a resource's cluster cannot be resolved. Never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetProblem {
    #[error(
        "no elasticsearchRef and the operator has no default cluster (--elasticsearch-url): set spec.elasticsearchRef"
    )]
    NoCluster,
    #[error(
        "elasticsearchRef names {kind} {namespace}/{name}, which does not exist; create it or fix the reference"
    )]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error(
        "elasticsearchRef refers to namespace {other:?}, but references across namespaces are refused unless the operator runs with --allow-cross-namespace-refs"
    )]
    CrossNamespace { other: String },
    #[error("{0}")]
    Reference(String),
    #[error(
        "{what}: the operator refuses it unless it runs with {flag} (chart value {value}), so that no namespace can turn off the protection of credentials on its own"
    )]
    Insecure {
        what: String,
        flag: &'static str,
        value: &'static str,
    },
    /// The Kubernetes API could not be read: transient.
    #[error("{0}")]
    Unreadable(String),
}

impl TargetProblem {
    /// The Ready reason a resource with this problem gets.
    pub fn reason(&self) -> &'static str {
        match self {
            TargetProblem::Insecure { .. } => crate::conditions::reason::INSECURE_CONNECTION,
            _ => crate::conditions::reason::INVALID_REFERENCE,
        }
    }
}

/// The namespace of the ElasticsearchConnection `ie` refers to, if it refers to one (pure).
pub fn connection_namespace(ie: &impl EndpointParts) -> Option<String> {
    let r = ie.elasticsearch_ref()?;
    (r.kind == ElasticsearchRefKind::ElasticsearchConnection).then(|| {
        r.namespace
            .clone()
            .or_else(|| ie.metadata().namespace.clone())
            .unwrap_or_default()
    })
}

/// The pooling/conflict identity of where `ie`'s endpoint lives (pure).
pub fn target_key(ie: &impl EndpointParts) -> String {
    let ns = ie.metadata().namespace.clone().unwrap_or_default();
    match ie.elasticsearch_ref() {
        None => "default".into(),
        Some(r) => match r.kind {
            ElasticsearchRefKind::ElasticsearchConnection => {
                format!("conn/{}/{}", r.namespace.as_deref().unwrap_or(&ns), r.name)
            }
            ElasticsearchRefKind::Elasticsearch => eck_key(&ns, r),
        },
    }
}

/// The key of an ECK reference made from `namespace`: one client per credential source, so that
/// two namespaces with their own API keys for one ECK cluster never share a client.
fn eck_key(namespace: &str, r: &ElasticsearchRef) -> String {
    let creds = match &r.api_key_secret_ref {
        Some(k) => format!("apikey:{namespace}/{}/{}", k.name, k.key),
        None => "elastic".into(),
    };
    format!(
        "eck/{}/{}#{creds}",
        r.namespace.as_deref().unwrap_or(namespace),
        r.name
    )
}

/// ECK's HTTP URL for an `Elasticsearch` object, the way ECK's own associations build it: the
/// `<name>-es-http` Service on port 9200, https unless self-signed TLS is disabled (pure).
pub fn eck_url(name: &str, namespace: &str, es: &Value) -> String {
    let tls_disabled = es
        .pointer("/spec/http/tls/selfSignedCertificate/disabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let scheme = if tls_disabled { "http" } else { "https" };
    format!("{scheme}://{name}-es-http.{namespace}.svc:9200")
}

/// ECK's public CA Secret for the HTTP layer (key `ca.crt`; absent for publicly trusted certs).
pub fn eck_ca_secret(name: &str) -> String {
    format!("{name}-es-http-certs-public")
}

/// ECK's Secret with the `elastic` superuser's password (key `elastic`).
pub fn eck_elastic_user_secret(name: &str) -> String {
    format!("{name}-es-elastic-user")
}

/// The Secret names a resource's cluster reference depends on, in their namespaces (pure, for
/// mapping Secret changes to resources). `connection` is the referenced connection, if known.
pub fn referenced_secrets(
    ie: &impl EndpointParts,
    connection: Option<&ElasticsearchConnectionSpec>,
) -> Vec<(String, String)> {
    let ns = ie.metadata().namespace.clone().unwrap_or_default();
    let mut out = Vec::new();
    match ie.elasticsearch_ref() {
        None => {}
        Some(r) if r.kind == ElasticsearchRefKind::ElasticsearchConnection => {
            let conn_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
            if let Some(c) = connection {
                out.extend(
                    connection_secrets(c)
                        .into_iter()
                        .map(|n| (conn_ns.clone(), n)),
                );
            }
        }
        Some(r) => {
            let es_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
            out.push((es_ns.clone(), eck_ca_secret(&r.name)));
            if r.use_elastic_user == Some(true) {
                out.push((es_ns, eck_elastic_user_secret(&r.name)));
            }
            if let Some(k) = &r.api_key_secret_ref {
                out.push((ns, k.name.clone()));
            }
        }
    }
    out
}

/// Secrets and ConfigMaps a connection reads (all in its namespace).
pub fn connection_secrets(c: &ElasticsearchConnectionSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = &c.auth {
        if let Some(k) = &a.api_key_secret_ref {
            out.push(k.name.clone());
        }
        if let Some(b) = &a.basic {
            out.push(b.password_secret_ref.name.clone());
        }
    }
    if let Some(cc) = &c.cloud_connect {
        out.push(cc.api_key_secret_ref.name.clone());
    }
    if let Some(ca) = c.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        if let Some(s) = &ca.secret_ref {
            out.push(s.name.clone());
        }
        if let Some(m) = &ca.config_map_ref {
            out.push(m.name.clone());
        }
    }
    out
}

async fn secret_value(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    what: &str,
) -> Result<SecretString, TargetProblem> {
    secret_value_and_version(client, namespace, name, key, what)
        .await
        .map(|(v, _)| v)
}

/// A Secret's key, and the Secret's `name@resourceVersion` (which version the value is from).
pub async fn secret_value_and_version(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    what: &str,
) -> Result<(SecretString, String), TargetProblem> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| {
            TargetProblem::Unreadable(format!(
                "cannot read Secret {namespace}/{name} ({what}): {e}"
            ))
        })?
        .ok_or_else(|| {
            TargetProblem::Reference(format!("Secret {namespace}/{name} ({what}) does not exist"))
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            TargetProblem::Reference(format!(
                "Secret {namespace}/{name} has no key {key:?} ({what})"
            ))
        })?;
    let version = format!(
        "{name}@{}",
        secret
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
    );
    match std::str::from_utf8(&bytes.0).map(str::trim) {
        Ok(v) if !v.is_empty() => Ok((SecretString::from(v.to_string()), version)),
        _ => Err(TargetProblem::Reference(format!(
            "key {key:?} of Secret {namespace}/{name} ({what}) is empty or not UTF-8 text"
        ))),
    }
}

async fn secret_key(
    client: &Client,
    namespace: &str,
    r: &SecretKeyRef,
    what: &str,
) -> Result<SecretString, TargetProblem> {
    same_namespace(r, namespace, what)?;
    secret_value(client, namespace, &r.name, &r.key, what).await
}

/// A Secret reference may name only its own namespace (pure).
pub fn same_namespace(r: &SecretKeyRef, namespace: &str, what: &str) -> Result<(), TargetProblem> {
    match r.namespace.as_deref() {
        Some(other) if other != namespace => Err(TargetProblem::Reference(format!(
            "{what} names Secret {other}/{}: references to Secrets in other namespaces are refused; use a Secret in {namespace}",
            r.name
        ))),
        _ => Ok(()),
    }
}

/// The CA bundle of a connection, from a Secret or ConfigMap key (`ca.crt` by default).
async fn connection_ca(
    client: &Client,
    namespace: &str,
    spec: &ElasticsearchConnectionSpec,
) -> Result<Option<Vec<u8>>, TargetProblem> {
    let Some(ca) = spec.tls.as_ref().and_then(|t| t.ca.as_ref()) else {
        return Ok(None);
    };
    if let Some(r) = &ca.secret_ref {
        let key = r.key.as_deref().unwrap_or("ca.crt");
        let v = secret_value(client, namespace, &r.name, key, "tls.ca").await?;
        return Ok(Some(v.expose_secret().as_bytes().to_vec()));
    }
    if let Some(r) = &ca.config_map_ref {
        let key = r.key.as_deref().unwrap_or("ca.crt");
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let cm = api
            .get_opt(&r.name)
            .await
            .map_err(|e| {
                TargetProblem::Unreadable(format!(
                    "cannot read ConfigMap {namespace}/{} (tls.ca): {e}",
                    r.name
                ))
            })?
            .ok_or_else(|| {
                TargetProblem::Reference(format!(
                    "ConfigMap {namespace}/{} (tls.ca) does not exist",
                    r.name
                ))
            })?;
        let pem = cm.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| {
            TargetProblem::Reference(format!(
                "ConfigMap {namespace}/{} has no key {key:?} (tls.ca)",
                r.name
            ))
        })?;
        return Ok(Some(pem.as_bytes().to_vec()));
    }
    Ok(None)
}

/// Resolve an `ElasticsearchConnection`'s spec into a target.
pub async fn resolve_connection(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &ElasticsearchConnectionSpec,
    rules: &ReferenceRules,
) -> Result<Target, TargetProblem> {
    let insecure_skip_verify = spec
        .tls
        .as_ref()
        .and_then(|t| t.insecure_skip_verify)
        .unwrap_or(false);
    check_transport(&spec.url, insecure_skip_verify, rules)?;
    let auth = match &spec.auth {
        None => EsAuth::None,
        Some(a) => match (&a.api_key_secret_ref, &a.basic) {
            (Some(k), _) => {
                EsAuth::ApiKey(secret_key(client, namespace, k, "auth.apiKeySecretRef").await?)
            }
            (None, Some(b)) => EsAuth::Basic {
                username: b.username.clone(),
                password: secret_key(
                    client,
                    namespace,
                    &b.password_secret_ref,
                    "auth.basic.passwordSecretRef",
                )
                .await?,
            },
            (None, None) => EsAuth::None,
        },
    };
    Ok(Target {
        key: format!("conn/{namespace}/{name}"),
        url: spec.url.clone(),
        auth,
        ca_pem: connection_ca(client, namespace, spec).await?,
        insecure_skip_verify,
        policy: Some(spec.policy.clone().unwrap_or_default()),
        home_namespace: Some(namespace.to_string()),
    })
}

/// Plaintext and unverified TLS only where the operator allows them.
pub fn check_transport(
    url: &str,
    insecure_skip_verify: bool,
    rules: &ReferenceRules,
) -> Result<(), TargetProblem> {
    if url.starts_with("http://") && !rules.plaintext {
        return Err(TargetProblem::Insecure {
            what: format!(
                "the cluster is reached over plaintext HTTP ({url}): credentials and secret settings would cross the network unencrypted"
            ),
            flag: "--allow-plaintext-elasticsearch",
            value: "security.allowPlaintextElasticsearch",
        });
    }
    if insecure_skip_verify && !rules.insecure_skip_verify {
        return Err(TargetProblem::Insecure {
            what: "tls.insecureSkipVerify turns off certificate checks".into(),
            flag: "--allow-insecure-skip-verify",
            value: "security.allowInsecureSkipVerify",
        });
    }
    Ok(())
}

/// Resolve a resource's `elasticsearchRef` (not the default cluster: the caller handles `None`).
pub async fn resolve_ref(
    client: &Client,
    namespace: &str,
    r: &ElasticsearchRef,
    rules: &ReferenceRules,
) -> Result<Target, TargetProblem> {
    match r.kind {
        ElasticsearchRefKind::ElasticsearchConnection => {
            // The connection's own namespace; whether this resource's may use it is the
            // connection's policy, checked before anything is sent.
            let namespace = r.namespace.as_deref().unwrap_or(namespace);
            let api: Api<ElasticsearchConnection> = Api::namespaced(client.clone(), namespace);
            let conn = api
                .get_opt(&r.name)
                .await
                .map_err(|e| {
                    TargetProblem::Unreadable(format!(
                        "cannot read ElasticsearchConnection {namespace}/{}: {e}",
                        r.name
                    ))
                })?
                .ok_or_else(|| TargetProblem::NotFound {
                    kind: "ElasticsearchConnection",
                    namespace: namespace.to_string(),
                    name: r.name.clone(),
                })?;
            resolve_connection(client, namespace, &r.name, &conn.spec, rules).await
        }
        ElasticsearchRefKind::Elasticsearch => resolve_eck(client, namespace, r, rules).await,
    }
}

/// The ECK `Elasticsearch` object named by a reference, as JSON.
async fn eck_object(client: &Client, es_ns: &str, name: &str) -> Result<Value, TargetProblem> {
    let gvk = GroupVersionKind::gvk("elasticsearch.k8s.elastic.co", "v1", "Elasticsearch");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), es_ns, &ApiResource::from_gvk(&gvk));
    match api.get_opt(name).await {
        Ok(Some(es)) => Ok(serde_json::to_value(&es).unwrap_or_default()),
        Ok(None) => Err(TargetProblem::NotFound {
            kind: "Elasticsearch (elasticsearch.k8s.elastic.co/v1)",
            namespace: es_ns.to_string(),
            name: name.to_string(),
        }),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(TargetProblem::Reference(
            "kind: Elasticsearch needs ECK's CRD (elasticsearch.k8s.elastic.co/v1), which is not installed".into(),
        )),
        Err(e) => Err(TargetProblem::Unreadable(format!(
            "cannot read Elasticsearch {es_ns}/{name}: {e}"
        ))),
    }
}

/// Resolve a reference to an ECK `Elasticsearch` the way ECK's own associations do.
async fn resolve_eck(
    client: &Client,
    namespace: &str,
    r: &ElasticsearchRef,
    rules: &ReferenceRules,
) -> Result<Target, TargetProblem> {
    let es_ns = r.namespace.clone().unwrap_or_else(|| namespace.to_string());
    if es_ns != namespace && !rules.cross_namespace_eck {
        return Err(TargetProblem::CrossNamespace { other: es_ns });
    }
    if es_ns != namespace && r.use_elastic_user == Some(true) && !rules.cross_namespace_elastic_user
    {
        return Err(TargetProblem::Insecure {
            what: format!(
                "useElasticUser would give namespace {namespace:?} the superuser of the cluster in namespace {es_ns:?}; use an API key (apiKeySecretRef) instead"
            ),
            flag: "--allow-cross-namespace-elastic-user",
            value: "security.allowCrossNamespaceElasticUser",
        });
    }
    let es = eck_object(client, &es_ns, &r.name).await?;
    let url = eck_url(&r.name, &es_ns, &es);
    check_transport(&url, false, rules)?;
    let auth = match (&r.api_key_secret_ref, r.use_elastic_user) {
        (Some(k), _) => EsAuth::ApiKey(
            secret_key(client, namespace, k, "elasticsearchRef.apiKeySecretRef").await?,
        ),
        (None, Some(true)) => EsAuth::Basic {
            username: "elastic".into(),
            password: secret_value(
                client,
                &es_ns,
                &eck_elastic_user_secret(&r.name),
                "elastic",
                "ECK elastic user",
            )
            .await?,
        },
        _ => {
            return Err(TargetProblem::Reference(
                        "elasticsearchRef of kind Elasticsearch needs apiKeySecretRef or useElasticUser: true".into(),
                    ));
        }
    };
    // Absent for publicly trusted certificates: then the public roots apply.
    let ca_pem = if url.starts_with("https://") {
        let api: Api<Secret> = Api::namespaced(client.clone(), &es_ns);
        api.get_opt(&eck_ca_secret(&r.name))
            .await
            .map_err(|e| {
                TargetProblem::Unreadable(format!(
                    "cannot read Secret {es_ns}/{}: {e}",
                    eck_ca_secret(&r.name)
                ))
            })?
            .and_then(|s| s.data)
            .and_then(|d| d.get("ca.crt").map(|b| b.0.clone()))
    } else {
        None
    };
    Ok(Target {
        key: eck_key(namespace, r),
        url,
        auth,
        ca_pem,
        insecure_skip_verify: false,
        policy: None,
        home_namespace: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::InferenceEndpoint;
    use serde_json::json;

    fn ie(ns: &str, r: Option<Value>) -> InferenceEndpoint {
        let mut spec = json!({"taskType": "completion", "service": "anthropic"});
        if let Some(r) = r {
            spec["elasticsearchRef"] = r;
        }
        serde_json::from_value(json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "x", "namespace": ns}, "spec": spec
        }))
        .expect("ie")
    }

    #[test]
    fn eck_references_resolve_like_eck_associations() {
        assert_eq!(
            eck_url("quickstart", "elastic", &json!({"spec": {}})),
            "https://quickstart-es-http.elastic.svc:9200"
        );
        let plain =
            json!({"spec": {"http": {"tls": {"selfSignedCertificate": {"disabled": true}}}}});
        assert_eq!(eck_url("qs", "ns", &plain), "http://qs-es-http.ns.svc:9200");
        assert_eq!(eck_ca_secret("qs"), "qs-es-http-certs-public");
        assert_eq!(eck_elastic_user_secret("qs"), "qs-es-elastic-user");
    }

    #[test]
    fn target_keys_identify_the_cluster_reference() {
        assert_eq!(target_key(&ie("a", None)), "default");
        assert_eq!(
            target_key(&ie("a", Some(json!({"name": "prod"})))),
            "conn/a/prod"
        );
        let eck = json!({"kind": "Elasticsearch", "name": "qs", "useElasticUser": true});
        assert_eq!(target_key(&ie("a", Some(eck))), "eck/a/qs#elastic");
        let other = json!({"kind": "Elasticsearch", "name": "qs", "namespace": "elastic", "useElasticUser": true});
        assert_eq!(target_key(&ie("a", Some(other))), "eck/elastic/qs#elastic");
        // Two namespaces reaching one ECK cluster with their own API keys never share a
        // pooled client (and so never each other's credentials).
        let keyed = json!({"kind": "Elasticsearch", "name": "qs", "namespace": "elastic",
            "apiKeySecretRef": {"name": "k", "key": "api-key"}});
        let a = target_key(&ie("a", Some(keyed.clone())));
        let b = target_key(&ie("b", Some(keyed)));
        assert_eq!(a, "eck/elastic/qs#apikey:a/k/api-key");
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_a_reference_depends_on() {
        let conn: ElasticsearchConnectionSpec = serde_json::from_value(json!({
            "url": "https://es:9200",
            "auth": {"apiKeySecretRef": {"name": "key", "key": "api-key"}},
            "tls": {"ca": {"configMapRef": {"name": "ca"}}}
        }))
        .expect("spec");
        let r = referenced_secrets(&ie("a", Some(json!({"name": "prod"}))), Some(&conn));
        assert_eq!(
            r,
            vec![("a".into(), "key".into()), ("a".into(), "ca".into())]
        );
        let eck = json!({"kind": "Elasticsearch", "name": "qs", "namespace": "elastic", "useElasticUser": true});
        let r = referenced_secrets(&ie("a", Some(eck)), None);
        assert_eq!(
            r,
            vec![
                ("elastic".into(), "qs-es-http-certs-public".into()),
                ("elastic".into(), "qs-es-elastic-user".into())
            ]
        );
    }

    #[test]
    fn fingerprint_changes_with_credentials_and_trust() {
        let t = Target {
            key: "k".into(),
            url: "https://es:9200".into(),
            auth: EsAuth::ApiKey(SecretString::from("one")),
            ca_pem: None,
            insecure_skip_verify: false,
            policy: None,
            home_namespace: None,
        };
        let a = t.fingerprint();
        let mut rotated = t.clone();
        rotated.auth = EsAuth::ApiKey(SecretString::from("two"));
        assert_ne!(a, rotated.fingerprint());
        let mut ca = t.clone();
        ca.ca_pem = Some(b"pem".to_vec());
        assert_ne!(a, ca.fingerprint());
        assert!(!a.contains("one"));
    }
}
