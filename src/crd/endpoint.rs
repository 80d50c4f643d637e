//! The `InferenceEndpoint` kind: spec, status and the policies they name.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    connection::ElasticsearchRef,
    schema::{SecretKeyRef, conditions_schema, service_settings_schema, task_settings_schema},
};

/// An Elasticsearch inference endpoint, kept in sync with this resource.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "es-inference.dev",
    version = "v1alpha1",
    kind = "InferenceEndpoint",
    doc = "An Elasticsearch inference endpoint, declared in Kubernetes and kept in sync by es-inference-operator.",
    plural = "inferenceendpoints",
    shortname = "ie",
    category = "elastic",
    namespaced,
    status = "InferenceEndpointStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#,
    printcolumn = r#"{"name":"Task","type":"string","jsonPath":".spec.taskType"}"#,
    printcolumn = r#"{"name":"Inference ID","type":"string","jsonPath":".status.inferenceId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("(has(self.inferenceId) ? self.inferenceId : '') == (has(oldSelf.inferenceId) ? oldSelf.inferenceId : '')")
        .message("inferenceId is immutable (and cannot be added or removed after creation): create a new InferenceEndpoint to use another id"),
    validation = Rule::new("!has(self.chunkingSettings) || self.taskType in ['text_embedding', 'sparse_embedding', 'embedding']")
        .message("chunkingSettings apply only to the text_embedding, sparse_embedding and embedding task types"),
    validation = Rule::new("has(self.elasticsearchRef) == has(oldSelf.elasticsearchRef) && (!has(self.elasticsearchRef) || self.elasticsearchRef == oldSelf.elasticsearchRef)")
        .message("elasticsearchRef is immutable: moving an endpoint to another cluster is a new InferenceEndpoint"),
    validation = Rule::new("!has(self.inferenceId) || !self.inferenceId.startsWith('.') || self.managementPolicy == 'Observe'")
        .message("inference ids starting with '.' are preconfigured endpoints of Elasticsearch: they can only be observed (managementPolicy: Observe)"),
    // What `catalog::SERVICES` says of these services' secrets (tests/crd.rs keeps the two equal).
    validation = Rule::new("!(self.service in ['amazonbedrock', 'amazon_sagemaker', 'sagemaker', 'amazonsagemaker']) || (has(self.managementPolicy) && self.managementPolicy == 'Observe') || (has(self.secretSettings) && 'access_key' in self.secretSettings && 'secret_key' in self.secretSettings)")
        .message("amazonbedrock and amazon_sagemaker need secretSettings.access_key and secretSettings.secret_key together"),
    validation = Rule::new("self.service != 'azureopenai' || ((has(self.secretSettings) ? ['api_key', 'entra_id', 'client_secret'].filter(k, k in self.secretSettings).size() : 0) <= 1 && ((has(self.managementPolicy) && self.managementPolicy == 'Observe') || (has(self.secretSettings) ? ['api_key', 'entra_id', 'client_secret'].filter(k, k in self.secretSettings).size() : 0) == 1))")
        .message("azureopenai takes exactly one of secretSettings.api_key, secretSettings.entra_id and secretSettings.client_secret"),
    validation = Rule::new("self.service != 'openai' || ((has(self.secretSettings) ? ['api_key', 'client_secret'].filter(k, k in self.secretSettings).size() : 0) <= 1 && ((has(self.managementPolicy) && self.managementPolicy == 'Observe') || (has(self.secretSettings) ? ['api_key', 'client_secret'].filter(k, k in self.secretSettings).size() : 0) == 1))")
        .message("openai takes exactly one of secretSettings.api_key and secretSettings.client_secret (client_secret from Elasticsearch 9.5)"),
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceEndpointSpec {
    /// The Elasticsearch inference id. Defaults to metadata.name. Lowercase letters, digits,
    /// '-', '_' and '.', starting and ending with a letter or digit. A leading '.' names a
    /// preconfigured endpoint, allowed only with managementPolicy: Observe. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^\.?[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")
    )]
    pub inference_id: Option<String>,

    /// Manage (default): create, update and delete the endpoint. Observe: only report whether it
    /// exists and matches this spec; never write to Elasticsearch, never delete, need no Secret.
    /// Moving from Observe to Manage on an existing endpoint is an adoption (needs adopt: true).
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// The inference task type. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("taskType is immutable: create a new InferenceEndpoint for another task type"))]
    pub task_type: TaskType,

    /// The Elasticsearch service name (anthropic, openai, cohere, amazonbedrock, googlevertexai,
    /// elasticsearch, ...). Checked with the connected cluster's version against the operator's
    /// table of services before anything is sent; a name the table does not know is sent as
    /// written, with a warning. Immutable.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("service is immutable: create a new InferenceEndpoint for another service"))]
    pub service: String,

    /// Sent as `service_settings`, with Elasticsearch's own snake_case keys (model_id, url,
    /// dimensions, rate_limit, ...). Credentials are not allowed here: use secretSettings.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schemars(schema_with = "service_settings_schema")]
    pub service_settings: Map<String, Value>,

    /// Credentials merged into the request only while it is sent. Each key is a
    /// `service_settings` key (api_key, access_key, secret_key, service_account_json,
    /// client_secret, entra_id), `secret_parameters.<name>` for the custom service,
    /// `headers.<Header-Name>` for the custom service's `service_settings.headers`, or
    /// `task_settings.headers.<Header-Name>` for the task settings headers of openai and
    /// azureopenai; each value names a key of a Secret in this namespace. Which keys a service
    /// takes: the README's table of services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new(r"self.all(k, k.matches('^([a-z][a-z0-9_]*|secret_parameters[.][A-Za-z0-9_.-]+|headers[.][A-Za-z0-9_-]+|task_settings[.]headers[.][A-Za-z0-9_-]+)$') && k != 'secret_parameters')")
        .message("secretSettings keys are service_settings keys such as api_key, secret_parameters.<name> (one per parameter) for the custom service, headers.<Header-Name>, or task_settings.headers.<Header-Name>"))]
    pub secret_settings: BTreeMap<String, SecretValueSource>,

    /// Sent as `task_settings` (for example max_tokens, temperature, user), free-form.
    /// Credentials in `headers` come from secretSettings (`task_settings.headers.<Name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "task_settings_schema")]
    pub task_settings: Option<Map<String, Value>>,

    /// How documents are chunked before embedding (embedding task types only). When omitted,
    /// Elasticsearch applies its default (sentence, 250 words, overlap 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking_settings: Option<ChunkingSettings>,

    /// How long Elasticsearch may take to create the endpoint (its `timeout` parameter, sent to
    /// 8.19 and 9.1+), e.g. `30s` or `10m`. Built-in model services default to 5m, as creation
    /// waits for the model deployment to start; others default to the operator's
    /// --create-timeout. A create that times out is not sent again: the operator follows the
    /// endpoint until its deployment is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub create_timeout: Option<String>,

    /// What happens to the Elasticsearch endpoint when this resource is deleted. Unset: the
    /// namespace's annotation es-inference.dev/deletion-policy, else the operator's
    /// --default-deletion-policy (Delete unless configured). status.deletionPolicy shows the
    /// policy in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Delete with `force=true` even while ingest pipelines or semantic_text fields use the
    /// endpoint (they break until an endpoint with this id exists again).
    #[serde(default)]
    pub force_delete: bool,

    /// Take over an endpoint that already exists in Elasticsearch with this id (its service and
    /// task type must match). Without it an existing endpoint is never touched.
    #[serde(default)]
    pub adopt: bool,

    /// What to do when the endpoint is changed outside Kubernetes.
    #[serde(default)]
    pub drift_policy: DriftPolicy,

    /// How to apply changes Elasticsearch cannot make in place (model, url, dimensions, ...).
    #[serde(default)]
    pub replacement_policy: ReplacementPolicy,

    /// The Elasticsearch cluster: an ElasticsearchConnection in this namespace, or an ECK
    /// Elasticsearch. Without it, the operator's default cluster (--elasticsearch-url).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch_ref: Option<ElasticsearchRef>,
}

impl InferenceEndpoint {
    /// The Elasticsearch inference id this resource manages.
    pub fn inference_id(&self) -> String {
        self.inference_id_str().to_string()
    }

    /// [`Self::inference_id`] without a copy: what the scans over every object compare.
    pub fn inference_id_str(&self) -> &str {
        EndpointParts::inference_id_str(self)
    }
}

/// What the scans over every object read of an InferenceEndpoint: the whole object, or what
/// the watch cache keeps of it (`guard::CachedView`, which has no settings at all, so a scan cannot
/// read them by mistake).
pub trait EndpointParts {
    fn metadata(&self) -> &ObjectMeta;
    /// `spec.inferenceId`.
    fn spec_inference_id(&self) -> Option<&str>;
    /// `spec.elasticsearchRef`.
    fn elasticsearch_ref(&self) -> Option<&ElasticsearchRef>;

    /// The inference id (`spec.inferenceId`, else the name), without a copy.
    fn inference_id_str(&self) -> &str {
        self.spec_inference_id()
            .or(self.metadata().name.as_deref())
            .unwrap_or_default()
    }
}

/// An endpoint with its status: what the conflict rule reads of the resources it compares.
pub trait EndpointWithStatus: EndpointParts {
    fn status(&self) -> Option<&InferenceEndpointStatus>;
}

impl EndpointParts for InferenceEndpoint {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn spec_inference_id(&self) -> Option<&str> {
        self.spec.inference_id.as_deref()
    }
    fn elasticsearch_ref(&self) -> Option<&ElasticsearchRef> {
        self.spec.elasticsearch_ref.as_ref()
    }
}

impl EndpointWithStatus for InferenceEndpoint {
    fn status(&self) -> Option<&InferenceEndpointStatus> {
        self.status.as_ref()
    }
}

/// Inference task types accepted by Elasticsearch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    TextEmbedding,
    SparseEmbedding,
    Rerank,
    Completion,
    ChatCompletion,
    Embedding,
}

impl TaskType {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::TextEmbedding => "text_embedding",
            TaskType::SparseEmbedding => "sparse_embedding",
            TaskType::Rerank => "rerank",
            TaskType::Completion => "completion",
            TaskType::ChatCompletion => "chat_completion",
            TaskType::Embedding => "embedding",
        }
    }

    /// Task types whose endpoints carry chunking settings.
    pub fn is_embedding(self) -> bool {
        matches!(
            self,
            TaskType::TextEmbedding | TaskType::SparseEmbedding | TaskType::Embedding
        )
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a secret value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueSource {
    /// A key of a Secret in the same namespace as this resource.
    pub secret_key_ref: SecretKeyRef,
}

/// Chunking settings (CONTRACT §7.2), written in camelCase and sent in snake_case.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.strategy != 'sentence' || (has(self.maxChunkSize) && self.maxChunkSize >= 20)")
        .message("sentence chunking needs maxChunkSize of at least 20"),
    validation = Rule::new("self.strategy != 'sentence' || !has(self.sentenceOverlap) || self.sentenceOverlap <= 1")
        .message("sentenceOverlap must be 0 or 1"),
    validation = Rule::new("self.strategy != 'sentence' || (!has(self.overlap) && !has(self.separatorGroup) && !has(self.separators))")
        .message("sentence chunking accepts only maxChunkSize and sentenceOverlap"),
    validation = Rule::new("self.strategy != 'word' || (has(self.maxChunkSize) && self.maxChunkSize >= 10 && has(self.overlap) && self.overlap <= self.maxChunkSize / 2)")
        .message("word chunking needs maxChunkSize of at least 10 and an overlap of at most half of maxChunkSize"),
    validation = Rule::new("self.strategy != 'word' || (!has(self.sentenceOverlap) && !has(self.separatorGroup) && !has(self.separators))")
        .message("word chunking accepts only maxChunkSize and overlap"),
    validation = Rule::new("self.strategy != 'recursive' || (has(self.maxChunkSize) && self.maxChunkSize >= 10)")
        .message("recursive chunking needs maxChunkSize of at least 10"),
    validation = Rule::new("self.strategy != 'recursive' || !(has(self.separatorGroup) && has(self.separators))")
        .message("recursive chunking takes either separatorGroup or separators, not both"),
    validation = Rule::new("self.strategy != 'recursive' || (!has(self.overlap) && !has(self.sentenceOverlap))")
        .message("recursive chunking accepts only maxChunkSize and separatorGroup or separators"),
    validation = Rule::new("self.strategy != 'none' || (!has(self.maxChunkSize) && !has(self.overlap) && !has(self.sentenceOverlap) && !has(self.separatorGroup) && !has(self.separators))")
        .message("strategy none takes no other settings"),
)]
pub struct ChunkingSettings {
    /// Chunking strategy; recursive and none need Elasticsearch 9.1 or newer.
    pub strategy: ChunkingStrategy,
    /// Maximum words per chunk (sentence: at least 20; word, recursive: at least 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_chunk_size: Option<i64>,
    /// Sentence strategy: sentences shared by neighbouring chunks, 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sentence_overlap: Option<i64>,
    /// Word strategy: words shared by neighbouring chunks, at most maxChunkSize / 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 50000))]
    pub overlap: Option<i64>,
    /// Recursive strategy: a predefined separator list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator_group: Option<SeparatorGroup>,
    /// Recursive strategy: separators (regular expressions), tried in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub separators: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChunkingStrategy {
    Sentence,
    Word,
    Recursive,
    None,
}

impl ChunkingStrategy {
    /// The strategy as Elasticsearch spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkingStrategy::Sentence => "sentence",
            ChunkingStrategy::Word => "word",
            ChunkingStrategy::Recursive => "recursive",
            ChunkingStrategy::None => "none",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeparatorGroup {
    Plaintext,
    Markdown,
}

/// Whether the operator manages the endpoint or only watches it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update, replace and delete the endpoint.
    #[default]
    Manage,
    /// Report whether the endpoint exists and matches the spec; never write to Elasticsearch.
    Observe,
}

/// What happens to the Elasticsearch endpoint when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the endpoint (refused while it is referenced, unless forceDelete).
    #[default]
    Delete,
    /// Leave the endpoint in Elasticsearch.
    Retain,
}

/// What to do about changes made outside Kubernetes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Put the endpoint back to the spec.
    #[default]
    Correct,
    /// Report the difference (Ready=False, DriftDetected) but change nothing.
    Report,
    /// Neither report nor correct setting changes (a deleted endpoint is still created again).
    Ignore,
}

/// How to apply changes Elasticsearch cannot make in place.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReplacementPolicy {
    /// Never delete to apply a change: report RequiresReplacement.
    #[default]
    Never,
    /// Delete and create the endpoint again (respects references and forceDelete).
    Recreate,
}

/// Who brought the Elasticsearch endpoint under this resource's management.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Ownership {
    /// A create request was about to be sent; the endpoint may or may not exist.
    Creating,
    /// This resource created the endpoint.
    Created,
    /// This resource adopted an endpoint that already existed.
    Adopted,
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceEndpointStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, plus Reconciling and Stalled (kstatus) when they apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The Elasticsearch inference id this resource manages (set once it created or adopted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_id: Option<String>,
    /// How the endpoint came under management.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// UID of the resource that wrote the ownership record. A record carrying another UID (a
    /// status restored from a backup or copied onto another object) confers no ownership.
    #[serde(default, rename = "ownerUID", skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<String>,
    /// While ownership is Creating: how many create requests may have been sent for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub create_attempts: Option<i32>,
    /// appliedConfigHash of the spec for which the endpoint was last deleted and created again:
    /// at most one replacement per configuration; a difference that survives it is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_for: Option<String>,
    /// cluster_uuid of the Elasticsearch cluster the endpoint lives on.
    #[serde(
        default,
        rename = "clusterUUID",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_uuid: Option<String>,
    /// Version of that Elasticsearch cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch_version: Option<String>,
    /// Which versions of the referenced Secrets Elasticsearch holds values from
    /// (`name@resourceVersion`): detects rotation without anything derived from a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_versions: Option<String>,
    /// Deprecated (written by 0.1): an HMAC of the values keyed by the UID. Read once to migrate
    /// to secretVersions, then removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_fingerprint: Option<String>,
    /// Hash of the non-secret configuration last applied; tells spec edits from drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_config_hash: Option<String>,
    /// The trained-model deployment behind an `elasticsearch`/`elser` endpoint, as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_deployment: Option<ModelDeploymentStatus>,
    /// The deletion policy in effect (spec, else the namespace's annotation, else the
    /// operator's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// The last value of the es-inference.dev/reconcile-requested-at (or Flux's
    /// reconcile.fluxcd.io/requestedAt) annotation that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// For EIS endpoints: the model's lifecycle as Elasticsearch reports it in the endpoint's
    /// metadata (status and end of life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_lifecycle: Option<ModelLifecycle>,
}

/// The lifecycle of an EIS model, from the endpoint's `metadata.heuristics`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelLifecycle {
    /// As Elasticsearch reports it, e.g. ga, preview, deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The date after which requests to the model fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life_date: Option<String>,
}

/// A trained-model deployment, as `GET _ml/trained_models/<id>/_stats` reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// The deployment id (the inference id, or the shared serviceSettings.deployment_id).
    pub deployment_id: String,
    /// The model deployed (platform-specific ids such as .elser_model_2_linux-x86_64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_id: String,
    /// starting, started, stopping or failed.
    pub state: String,
    /// Allocations running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<i64>,
    /// Allocations wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_allocations: Option<i64>,
    /// starting, started or fully_allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_state: Option<String>,
}

impl InferenceEndpointStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
