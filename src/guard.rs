//! `InferenceEndpoint`s as the operator watches them: decoded so that one object the API server
//! accepted but this operator cannot read is reported, never fatal.
//!
//! The API server accepts any JSON under `serviceSettings` (preserve-unknown-fields), but
//! serde_json refuses documents nested deeper than 128 levels; decoded the usual way, one such
//! object fails every LIST of the kind, and the operator goes blind in every namespace. Here the
//! object is read in two stages: the outer document with `spec` and `status` kept as raw JSON
//! text (skipped without recursion), then each of those on its own. A spec that fails to decode
//! becomes `Watched::Invalid`, with the metadata and the few spec fields cleanup needs.
//!
//! Metadata keeps only what the operator uses: `managedFields` and kubectl's
//! last-applied-configuration annotation (which mirror the whole object) are dropped, which also
//! keeps the controller's cache small.
//!
//! For the same reason the settings (`serviceSettings`, `taskSettings`, `chunkingSettings`,
//! `secretSettings`) are kept as compact JSON text: decoded, each map costs a `BTreeMap` node
//! sized for eleven entries, and only a pass over the object itself reads them. So is the
//! status (as the API server sent it, once it decoded): its struct of optional fields costs more
//! than twice its text (ARCHITECTURE.md, "Scale", has the measured sizes). The rest of the spec is a [`CachedSpec`], a type without
//! settings fields, so that reading settings from the cache does not compile. The watches read
//! metadata and spec (inference id, cluster reference) from [`Watched::endpoint`] and the names of the Secrets it reads from
//! [`Watched::uses_secret`]; the conflict rule gets the few resources with the same id with
//! their status from [`Watched::with_status`]; a pass gets the whole object from
//! [`Cached::decoded`].

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::{Resource, runtime::reflector::ObjectRef};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, value::RawValue};

use crate::crd::{
    ChunkingSettings, DeletionPolicy, DriftPolicy, ElasticsearchRef, EndpointParts,
    EndpointWithStatus, InferenceEndpoint, InferenceEndpointSpec, InferenceEndpointStatus,
    ManagementPolicy, ReplacementPolicy, SecretValueSource, TaskType,
};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An InferenceEndpoint, or the parts of one that could be read.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the cache holds each object in an Arc: a boxed Valid would cost one more allocation per object"
)]
pub enum Watched {
    Valid(Cached),
    /// Boxed: invalid objects are rare, and the enum is as large as its largest variant.
    Invalid(Box<Undecodable>),
}

/// A decodable InferenceEndpoint as the cache keeps it: metadata and spec decoded but the
/// settings, which are JSON text, and the status as JSON text.
#[derive(Clone, Debug)]
pub struct Cached {
    metadata: ObjectMeta,
    /// The spec but its settings.
    spec: CachedSpec,
    /// The settings (`serviceSettings`, `taskSettings`, `chunkingSettings`, `secretSettings`)
    /// as JSON text, `None` when all are empty.
    settings: Option<Box<str>>,
    /// The status as the API server sent it. It was decoded once when the object arrived (an
    /// undecodable one makes the object `Invalid`); a pass and the conflict rule decode it again,
    /// the watches read none of it (as text it takes less than half the memory).
    status: Option<Box<str>>,
    /// The Secrets `secretSettings` names (in the object's namespace), sorted.
    secrets: Box<[Box<str>]>,
}

/// The spec of a cached endpoint without its settings: a type of its own, so that code that
/// reads the cache cannot read settings that are not there (a pass reads them from
/// [`Cached::decoded`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedSpec {
    pub inference_id: Option<String>,
    pub management_policy: ManagementPolicy,
    pub task_type: TaskType,
    pub service: String,
    pub create_timeout: Option<String>,
    pub deletion_policy: Option<DeletionPolicy>,
    pub force_delete: bool,
    pub adopt: bool,
    pub drift_policy: DriftPolicy,
    pub replacement_policy: ReplacementPolicy,
    pub elasticsearch_ref: Option<ElasticsearchRef>,
}

impl CachedSpec {
    /// Split a spec into what the cache decodes and its settings.
    fn split(spec: InferenceEndpointSpec) -> (Self, Settings) {
        let InferenceEndpointSpec {
            inference_id,
            management_policy,
            task_type,
            service,
            service_settings,
            secret_settings,
            task_settings,
            chunking_settings,
            create_timeout,
            deletion_policy,
            force_delete,
            adopt,
            drift_policy,
            replacement_policy,
            elasticsearch_ref,
        } = spec;
        let cached = CachedSpec {
            inference_id,
            management_policy,
            task_type,
            service,
            create_timeout,
            deletion_policy,
            force_delete,
            adopt,
            drift_policy,
            replacement_policy,
            elasticsearch_ref,
        };
        let settings = Settings {
            service_settings,
            task_settings,
            chunking_settings,
            secret_settings,
        };
        (cached, settings)
    }

    /// The whole spec again, with `settings`.
    fn join(&self, settings: Settings) -> InferenceEndpointSpec {
        InferenceEndpointSpec {
            inference_id: self.inference_id.clone(),
            management_policy: self.management_policy,
            task_type: self.task_type,
            service: self.service.clone(),
            service_settings: settings.service_settings,
            secret_settings: settings.secret_settings,
            task_settings: settings.task_settings,
            chunking_settings: settings.chunking_settings,
            create_timeout: self.create_timeout.clone(),
            deletion_policy: self.deletion_policy,
            force_delete: self.force_delete,
            adopt: self.adopt,
            drift_policy: self.drift_policy,
            replacement_policy: self.replacement_policy,
            elasticsearch_ref: self.elasticsearch_ref.clone(),
        }
    }
}

/// What the watches and the scans read of a cached endpoint: its metadata and its spec without
/// settings.
#[derive(Clone, Copy, Debug)]
pub struct CachedView<'a> {
    pub metadata: &'a ObjectMeta,
    pub spec: &'a CachedSpec,
}

impl<'a> CachedView<'a> {
    /// The inference id, borrowed from the cached object.
    pub fn inference_id_str(&self) -> &'a str {
        self.spec
            .inference_id
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The key of the object in the controller's queue.
    pub fn object_ref(&self) -> ObjectRef<Watched> {
        ObjectRef::new(self.metadata.name.as_deref().unwrap_or_default())
            .within(self.metadata.namespace.as_deref().unwrap_or_default())
    }
}

impl EndpointParts for CachedView<'_> {
    fn metadata(&self) -> &ObjectMeta {
        self.metadata
    }
    fn spec_inference_id(&self) -> Option<&str> {
        self.spec.inference_id.as_deref()
    }
    fn elasticsearch_ref(&self) -> Option<&ElasticsearchRef> {
        self.spec.elasticsearch_ref.as_ref()
    }
}

/// A cached endpoint with its status but without settings: what the conflict rule reads of the
/// (few) other resources with the same inference id.
#[derive(Clone, Debug)]
pub struct Peer {
    pub metadata: ObjectMeta,
    pub spec: CachedSpec,
    pub status: Option<InferenceEndpointStatus>,
}

impl EndpointParts for Peer {
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

impl EndpointWithStatus for Peer {
    fn status(&self) -> Option<&InferenceEndpointStatus> {
        self.status.as_ref()
    }
}

/// The settings as they are kept (field names as in the spec).
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    service_settings: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_settings: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunking_settings: Option<ChunkingSettings>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secret_settings: BTreeMap<String, SecretValueSource>,
}

impl Cached {
    /// From a decoded object (built in memory; the watch keeps the status text it received).
    fn new(endpoint: InferenceEndpoint) -> Result<Self, serde_json::Error> {
        let status = endpoint
            .status
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok())
            .map(String::into_boxed_str);
        Self::from_decoded(endpoint.metadata, endpoint.spec, status)
    }

    fn from_decoded(
        metadata: ObjectMeta,
        spec: InferenceEndpointSpec,
        status: Option<Box<str>>,
    ) -> Result<Self, serde_json::Error> {
        let (spec, settings) = CachedSpec::split(spec);
        let secrets: BTreeSet<&str> = settings
            .secret_settings
            .values()
            .map(|s| s.secret_key_ref.name.as_str())
            .collect();
        let secrets = secrets.into_iter().map(Box::from).collect();
        let text = if settings.service_settings.is_empty()
            && settings.task_settings.is_none()
            && settings.chunking_settings.is_none()
            && settings.secret_settings.is_empty()
        {
            None
        } else {
            // Maps of JSON values always serialize; were it ever to fail, the object is reported
            // as one the operator cannot read rather than kept without its settings.
            Some(serde_json::to_string(&settings)?.into_boxed_str())
        };
        Ok(Cached {
            metadata,
            spec,
            settings: text,
            status,
            secrets,
        })
    }

    fn status(&self) -> Result<Option<InferenceEndpointStatus>, serde_json::Error> {
        self.status
            .as_deref()
            .map(serde_json::from_str::<InferenceEndpointStatus>)
            .transpose()
    }

    /// The whole object, settings and status decoded, for a pass over it.
    pub fn decoded(&self) -> Result<InferenceEndpoint, serde_json::Error> {
        let settings = match &self.settings {
            Some(text) => serde_json::from_str::<Settings>(text)?,
            None => Settings::default(),
        };
        Ok(InferenceEndpoint {
            metadata: self.metadata.clone(),
            spec: self.spec.join(settings),
            status: self.status()?,
        })
    }
}

/// An object whose spec could not be decoded.
#[derive(Clone, Debug)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    /// Why (the decoder's message; it names a position, never a value).
    pub error: String,
    /// The fields deletion needs, when they could be read.
    pub identity: Option<Identity>,
    pub status: Option<InferenceEndpointStatus>,
}

/// The spec fields that deleting an endpoint needs, read leniently (everything else skipped).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default)]
    pub inference_id: Option<String>,
    pub task_type: TaskType,
    pub service: String,
    #[serde(default)]
    pub deletion_policy: Option<DeletionPolicy>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    #[serde(default)]
    pub force_delete: bool,
    #[serde(default)]
    pub elasticsearch_ref: Option<ElasticsearchRef>,
}

impl Identity {
    /// A spec with these fields and no settings (enough for cleanup, which needs no settings).
    pub fn to_spec(&self) -> InferenceEndpointSpec {
        InferenceEndpointSpec {
            inference_id: self.inference_id.clone(),
            task_type: self.task_type,
            service: self.service.clone(),
            service_settings: Default::default(),
            secret_settings: Default::default(),
            task_settings: None,
            chunking_settings: None,
            create_timeout: None,
            deletion_policy: self.deletion_policy,
            management_policy: self.management_policy,
            force_delete: self.force_delete,
            adopt: false,
            drift_policy: Default::default(),
            replacement_policy: Default::default(),
            elasticsearch_ref: self.elasticsearch_ref.clone(),
        }
    }
}

impl Watched {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Watched::Valid(c) => &c.metadata,
            Watched::Invalid(u) => &u.metadata,
        }
    }

    /// The metadata and the spec without its settings (`serviceSettings`, `taskSettings`,
    /// `chunkingSettings` and `secretSettings` are empty): what the watches read.
    pub fn endpoint(&self) -> Option<CachedView<'_>> {
        match self {
            Watched::Valid(c) => Some(CachedView {
                metadata: &c.metadata,
                spec: &c.spec,
            }),
            Watched::Invalid(_) => None,
        }
    }

    /// The endpoint with its status but without its settings: what the conflict rule reads of
    /// the (few) other resources with the same inference id. The status decoded when the object
    /// arrived, so it decodes again; were it not to, the object is left out like an invalid one.
    pub fn with_status(&self) -> Option<Peer> {
        match self {
            Watched::Valid(c) => Some(Peer {
                metadata: c.metadata.clone(),
                spec: c.spec.clone(),
                status: c.status().ok()?,
            }),
            Watched::Invalid(_) => None,
        }
    }

    /// Whether `secretSettings` reads the Secret `namespace/name` (never for an invalid object).
    pub fn uses_secret(&self, namespace: &str, name: &str) -> bool {
        match self {
            Watched::Valid(c) => {
                self.namespace() == namespace && c.secrets.iter().any(|s| &**s == name)
            }
            Watched::Invalid(_) => false,
        }
    }

    pub fn uid(&self) -> Option<&str> {
        self.meta().uid.as_deref()
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }
}

impl From<InferenceEndpoint> for Watched {
    fn from(ie: InferenceEndpoint) -> Self {
        let metadata = ie.metadata.clone();
        match Cached::new(ie) {
            Ok(c) => Watched::Valid(c),
            Err(e) => Watched::Invalid(Box::new(Undecodable {
                metadata,
                error: format!("spec: {e}"),
                identity: None,
                status: None,
            })),
        }
    }
}

impl Resource for Watched {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        Watched::meta(self)
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Watched::Valid(c) => &mut c.metadata,
            Watched::Invalid(u) => &mut u.metadata,
        }
    }
}

/// The metadata fields the operator reads. Everything else (managedFields in particular) is
/// skipped by the decoder without being built.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> Self {
        let annotations = m.annotations.map(|mut a| {
            a.remove(LAST_APPLIED);
            a
        });
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            labels: m.labels,
            annotations: annotations.filter(|a| !a.is_empty()),
            ..ObjectMeta::default()
        }
    }
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            metadata: Meta,
            #[serde(default)]
            spec: Option<Box<RawValue>>,
            #[serde(default)]
            status: Option<Box<RawValue>>,
        }
        let raw = Raw::deserialize(d)?;
        Ok(Watched::from_parts(
            raw.metadata.into(),
            raw.spec.as_deref().map(RawValue::get),
            raw.status.as_deref().map(RawValue::get),
        ))
    }
}

impl Watched {
    /// Build from the metadata and the raw JSON of spec and status.
    fn from_parts(metadata: ObjectMeta, spec: Option<&str>, status: Option<&str>) -> Self {
        let status_parsed = status.map(serde_json::from_str::<InferenceEndpointStatus>);
        let spec_parsed = match spec {
            Some(s) => serde_json::from_str::<InferenceEndpointSpec>(s),
            None => serde_json::from_str::<InferenceEndpointSpec>("null"),
        };
        match (spec_parsed, status_parsed) {
            // The status decodes: keep its text.
            (Ok(spec), None | Some(Ok(_))) => {
                match Cached::from_decoded(metadata.clone(), spec, status.map(Box::from)) {
                    Ok(c) => Watched::Valid(c),
                    Err(e) => Watched::Invalid(Box::new(Undecodable {
                        metadata,
                        error: format!("spec: {e}"),
                        identity: None,
                        status: None,
                    })),
                }
            }
            (Ok(_), Some(Err(e))) => Watched::Invalid(Box::new(Undecodable {
                metadata,
                error: format!("status: {e}"),
                identity: spec.and_then(|s| serde_json::from_str(s).ok()),
                status: None,
            })),
            (Err(e), status) => Watched::Invalid(Box::new(Undecodable {
                metadata,
                error: format!("spec: {e}"),
                identity: spec.and_then(|s| serde_json::from_str(s).ok()),
                status: status.and_then(Result::ok),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        let mut v = String::from("1");
        for i in 0..depth {
            v = format!("{{\"k{i}\":{v}}}");
        }
        v
    }

    fn object(name: &str, settings: &str) -> String {
        format!(
            r#"{{"apiVersion":"es-inference.dev/v1alpha1","kind":"InferenceEndpoint",
            "metadata":{{"name":"{name}","namespace":"ns","uid":"u-{name}","resourceVersion":"7",
              "managedFields":[{{"manager":"kubectl","fieldsV1":{settings}}}],
              "annotations":{{"{LAST_APPLIED}":"{{}}","keep":"me"}}}},
            "spec":{{"inferenceId":"id-{name}","taskType":"completion","service":"anthropic",
              "deletionPolicy":"Retain","serviceSettings":{{"model_id":"m","deep":{settings}}}}},
            "status":{{"inferenceId":"id-{name}","ownership":"Created"}}}}"#
        )
    }

    #[test]
    fn one_object_too_deep_for_serde_does_not_fail_the_list() {
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[{},{}]}}"#,
            object("good", "{}"),
            object("deep", &nested(140))
        );
        // The plain type cannot decode the list at all.
        assert!(serde_json::from_str::<kube::api::ObjectList<InferenceEndpoint>>(&list).is_err());
        let decoded: kube::api::ObjectList<Watched> =
            serde_json::from_str(&list).expect("the list decodes");
        let good = decoded.items[0].with_status().expect("valid");
        assert_eq!(good.spec.inference_id.as_deref(), Some("id-good"));
        assert_eq!(
            good.status.as_ref().and_then(|s| s.ownership),
            Some(crate::crd::Ownership::Created)
        );
        let Watched::Invalid(bad) = &decoded.items[1] else {
            panic!("the deep object is invalid");
        };
        assert_eq!(bad.metadata.name.as_deref(), Some("deep"));
        assert!(bad.error.contains("recursion limit"), "{}", bad.error);
        // What cleanup needs is still there.
        let id = bad.identity.as_ref().expect("identity");
        assert_eq!(id.inference_id.as_deref(), Some("id-deep"));
        assert_eq!(id.deletion_policy, Some(DeletionPolicy::Retain));
        assert!(bad.status.is_some());
    }

    #[test]
    fn metadata_keeps_what_the_operator_uses_only() {
        let w: Watched = serde_json::from_str(&object("a", "{}")).expect("decodes");
        let m = w.meta();
        assert_eq!(m.uid.as_deref(), Some("u-a"));
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert!(m.managed_fields.is_none());
        let annotations = m.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));
    }

    #[test]
    fn a_spec_of_the_wrong_shape_is_invalid_not_an_error() {
        let text = r#"{"metadata":{"name":"x","namespace":"ns"},"spec":{"taskType":"nonsense","service":"s"}}"#;
        let w: Watched = serde_json::from_str(text).expect("decodes");
        assert!(matches!(w, Watched::Invalid(_)));
        assert_eq!(w.name(), "x");
    }

    const FULL: &str = r#"{"metadata":{"name":"a","namespace":"ns","uid":"u-a"},
        "spec":{"inferenceId":"id-a","taskType":"text_embedding","service":"amazonbedrock",
          "serviceSettings":{"region":"us-east-1","model":"amazon.titan-embed-text-v2:0","rate_limit":{"requests_per_minute":7},"dimensions":1024,"scale":0.1},
          "taskSettings":{"input_type":"search"},
          "chunkingSettings":{"strategy":"word","maxChunkSize":100,"overlap":10},
          "secretSettings":{"access_key":{"secretKeyRef":{"name":"aws","key":"id"}},
                            "secret_key":{"secretKeyRef":{"name":"aws","key":"secret"}},
                            "session":{"secretKeyRef":{"name":"sts","key":"token"}}},
          "elasticsearchRef":{"name":"prod"}},
        "status":{"inferenceId":"id-a","ownership":"Created","ownerUID":"u-a"}}"#;

    #[test]
    fn the_cache_keeps_settings_as_text_and_a_pass_gets_them_back_unchanged() {
        let plain: InferenceEndpoint = serde_json::from_str(FULL).expect("plain decode");
        let w: Watched = serde_json::from_str(FULL).expect("decodes");
        let Watched::Valid(cached) = &w else {
            panic!("valid");
        };
        // What the watches read has no settings (`CachedSpec` has no such fields: reading them
        // does not compile)...
        let light = w.endpoint().expect("valid");
        assert_eq!(light.spec.inference_id.as_deref(), Some("id-a"));
        assert_eq!(light.spec.elasticsearch_ref, plain.spec.elasticsearch_ref);
        assert_eq!(light.inference_id_str(), "id-a");
        // ...and keeps the status as text: the conflict rule gets it back with the metadata.
        assert!(cached.status.is_some());
        let peer = w.with_status().expect("valid");
        assert_eq!(peer.status, plain.status);
        assert_eq!(peer.metadata, plain.metadata);
        assert_eq!(peer.spec.service, plain.spec.service);
        // ...and a pass gets the object exactly as the API server sent it, so the configuration
        // hash and the request body are the same as before.
        let full = cached.decoded().expect("settings decode");
        assert_eq!(full.spec, plain.spec);
        assert_eq!(full.status, plain.status);
        assert_eq!(
            crate::desired::config_hash(&full.spec),
            crate::desired::config_hash(&plain.spec)
        );
        // The same through `From`, the path of objects built in memory.
        let Watched::Valid(built) = Watched::from(plain.clone()) else {
            panic!("valid");
        };
        let rebuilt = built.decoded().expect("decodes");
        assert_eq!(rebuilt.spec, plain.spec);
        assert_eq!(rebuilt.status, plain.status);
    }

    #[test]
    fn an_endpoint_without_settings_keeps_no_text() {
        let text = r#"{"metadata":{"name":"x","namespace":"ns"},"spec":{"taskType":"completion","service":"elastic"}}"#;
        let Watched::Valid(cached) = serde_json::from_str::<Watched>(text).expect("decodes") else {
            panic!("valid");
        };
        assert!(cached.settings.is_none());
        let plain: InferenceEndpoint = serde_json::from_str(text).expect("plain decode");
        let decoded = cached.decoded().expect("decodes");
        assert_eq!(decoded.spec, plain.spec);
        assert_eq!(decoded.metadata, plain.metadata);
        assert!(cached.status.is_none());
        assert!(decoded.status.is_none());
    }

    #[test]
    fn a_status_that_does_not_decode_makes_the_object_invalid_and_keeps_its_identity() {
        let text = r#"{"metadata":{"name":"x","namespace":"ns"},"spec":{"inferenceId":"i","taskType":"completion","service":"elastic"},"status":{"ownership":7}}"#;
        let Watched::Invalid(u) = serde_json::from_str::<Watched>(text).expect("decodes") else {
            panic!("invalid");
        };
        assert!(u.error.starts_with("status: "), "{}", u.error);
        assert_eq!(
            u.identity.and_then(|i| i.inference_id).as_deref(),
            Some("i")
        );
    }

    #[test]
    fn a_secret_maps_to_the_endpoints_that_read_it_in_its_namespace_only() {
        let w: Watched = serde_json::from_str(FULL).expect("decodes");
        assert!(w.uses_secret("ns", "aws"));
        assert!(w.uses_secret("ns", "sts"));
        assert!(!w.uses_secret("other", "aws"));
        assert!(!w.uses_secret("ns", "prod"));
        let text = r#"{"metadata":{"name":"x","namespace":"ns"},"spec":{"taskType":"nonsense","service":"s","secretSettings":{"k":{"secretKeyRef":{"name":"aws","key":"id"}}}}}"#;
        let invalid: Watched = serde_json::from_str(text).expect("decodes");
        assert!(!invalid.uses_secret("ns", "aws"));
    }
}
