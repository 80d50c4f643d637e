//! The `ElasticsearchConnection` kind, and how an `InferenceEndpoint` names its cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{SecretKeyRef, conditions_schema};

/// Which Elasticsearch cluster an InferenceEndpoint lives on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.kind == 'Elasticsearch' || (!has(self.apiKeySecretRef) && !has(self.useElasticUser))")
        .message("apiKeySecretRef and useElasticUser apply only to kind: Elasticsearch (ECK); an ElasticsearchConnection carries its own credentials"),
    validation = Rule::new("self.kind != 'Elasticsearch' || has(self.apiKeySecretRef) != (has(self.useElasticUser) && self.useElasticUser)")
        .message("for an ECK Elasticsearch, give exactly one of apiKeySecretRef (an API key with the cluster privileges manage_inference, monitor_inference and cluster:monitor/main) or useElasticUser: true"),
)]
pub struct ElasticsearchRef {
    /// ElasticsearchConnection (default) or Elasticsearch (an ECK
    /// elasticsearch.k8s.elastic.co/v1 cluster).
    #[serde(default)]
    pub kind: ElasticsearchRefKind,
    /// Name of the ElasticsearchConnection or ECK Elasticsearch.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the ElasticsearchConnection or ECK Elasticsearch (default: this resource's).
    /// A connection in another namespace is used only if its spec.policy.namespaceSelector
    /// selects this resource's namespace; an ECK cluster in another namespace needs the
    /// operator's --allow-cross-namespace-refs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// ECK only: a Secret key in this resource's namespace holding an encoded API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// ECK only: authenticate as the `elastic` superuser from ECK's `<name>-es-elastic-user`
    /// Secret. An explicit opt-in; prefer an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_elastic_user: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ElasticsearchRefKind {
    /// An ElasticsearchConnection (in this namespace, or one whose policy admits it).
    #[default]
    ElasticsearchConnection,
    /// An ECK elasticsearch.k8s.elastic.co/v1 Elasticsearch.
    Elasticsearch,
}

/// How to reach one Elasticsearch cluster. InferenceEndpoints in the same namespace refer to it
/// with `elasticsearchRef: {name: ...}`; those of the namespaces its spec.policy.namespaceSelector
/// selects, with `elasticsearchRef: {name: ..., namespace: ...}`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "es-inference.dev",
    version = "v1alpha1",
    kind = "ElasticsearchConnection",
    plural = "elasticsearchconnections",
    shortname = "esconn",
    category = "elastic",
    namespaced,
    status = "ElasticsearchConnectionStatus",
    doc = "A connection to an Elasticsearch cluster (external or Elastic Cloud) for InferenceEndpoints in the same namespace.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Endpoints","type":"integer","jsonPath":".status.endpoints"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("!has(self.auth) || (has(self.auth.apiKeySecretRef) != has(self.auth.basic))")
        .message("auth takes exactly one of apiKeySecretRef or basic"),
    validation = Rule::new("self.url.startsWith('https://') || !has(self.tls) || !has(self.tls.ca)")
        .message("tls.ca needs an https:// url"),
)]
#[serde(rename_all = "camelCase")]
pub struct ElasticsearchConnectionSpec {
    /// Elasticsearch URL, https:// (or http:// for clusters without TLS), without credentials.
    #[schemars(
        length(min = 8, max = 2048),
        regex(pattern = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
    )]
    pub url: String,
    /// How to authenticate. Without it, requests are anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectionAuth>,
    /// Which certificates to trust. Default: the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConnectionTls>,
    /// What InferenceEndpoints may do on this cluster (for clusters shared by several teams).
    /// Without it: only this namespace may use the connection, with no restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<TenancyPolicy>,
    /// Cloud Connect (`_inference/_ccm`): enable the Elastic Inference Service on this cluster
    /// with an API key from a Secret, rotated like endpoint secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_connect: Option<CloudConnect>,
}

/// Rules for the InferenceEndpoints that use a cluster. Every rule names what it restricts;
/// a resource that breaks one gets Ready=False, reason PolicyViolation, and nothing is sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenancyPolicy {
    /// Inference ids must start with this, `{namespace}` replaced by the resource's namespace
    /// (e.g. `{namespace}-`), so that teams cannot take each other's ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub inference_id_prefix: Option<String>,
    /// Namespaces, besides the connection's own, whose InferenceEndpoints may use it
    /// (`elasticsearchRef: {name, namespace}`). Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces whose resources may set adopt: true. Unset: all that may use the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_namespace_selector: Option<LabelSelector>,
    /// Namespaces whose resources may set forceDelete: true. Unset: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete_namespace_selector: Option<LabelSelector>,
    /// Namespaces whose resources may set replacementPolicy: Recreate. Unset: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate_namespace_selector: Option<LabelSelector>,
}

impl TenancyPolicy {
    /// Whether a rule depends on the labels of a resource's namespace.
    pub fn uses_labels(&self) -> bool {
        self.namespace_selector.is_some()
            || self.adopt_namespace_selector.is_some()
            || self.force_delete_namespace_selector.is_some()
            || self.recreate_namespace_selector.is_some()
    }
}

/// Cloud Connect of a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudConnect {
    /// A key of a Secret in the connection's namespace holding the Elastic Cloud API key.
    pub api_key_secret_ref: SecretKeyRef,
}

/// Credentials for an ElasticsearchConnection, from Secrets in its namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionAuth {
    /// An encoded API key (preferred): needs the cluster privileges manage_inference,
    /// monitor_inference and cluster:monitor/main (GET /).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// Username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The user name.
    #[schemars(length(min = 1, max = 1024))]
    pub username: String,
    /// A key of a Secret in the connection's namespace holding the password.
    pub password_secret_ref: SecretKeyRef,
}

/// TLS trust for an ElasticsearchConnection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.ca) && has(self.insecureSkipVerify) && self.insecureSkipVerify)")
    .message("set either tls.ca or tls.insecureSkipVerify, not both"))]
pub struct ConnectionTls {
    /// A PEM CA bundle from a Secret or ConfigMap key (key defaults to ca.crt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSource>,
    /// Do not verify the server's certificate. Insecure; reported in status as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Where a CA bundle comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.configMapRef)")
    .message("ca takes exactly one of secretRef or configMapRef"))]
pub struct CaSource {
    /// A Secret key in the connection's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalKeyRef>,
    /// A ConfigMap key in the connection's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalKeyRef>,
}

/// A key of an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalKeyRef {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Defaults to ca.crt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Observed state of a connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElasticsearchConnectionStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the cluster answered), and InsecureSkipVerify when certificate checks are off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Elasticsearch version, from GET /.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// cluster_name, from GET /.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// cluster_uuid, from GET /: identifies the cluster behind the URL.
    #[serde(
        default,
        rename = "clusterUUID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_uuid: Option<String>,
    /// When the cluster last answered (refreshed at most once per resync interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_check: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// InferenceEndpoints that use this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<i32>,
    /// Cloud Connect, when spec.cloudConnect asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_connect: Option<CloudConnectStatus>,
}

/// What the operator did with Cloud Connect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudConnectStatus {
    /// Whether Elasticsearch reports Cloud Connect enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Which version of the API key's Secret was sent (`name@resourceVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_versions: Option<String>,
}

impl ElasticsearchConnectionStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
