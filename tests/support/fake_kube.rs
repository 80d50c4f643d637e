#![allow(dead_code)]
//! A stateful, in-memory stand-in for the Kubernetes API server.
//!
//! [`FakeKube::client`] returns a real [`kube::Client`] whose transport is a tower service that
//! answers requests from an in-memory object store, following the apiserver's conventions:
//! URL layout, `Status` error bodies, `resourceVersion` bumps on every (non no-op) write,
//! `metadata.generation` tracking for custom resources, `status` subresource isolation,
//! `deletionTimestamp` + finalizer semantics, and the four PATCH content types kube sends.
//!
//! Every request is recorded ([`FakeKube::requests`]) so tests can count writes, and single
//! requests can be made to fail ([`FakeKube::fail_next`]).
//!
//! What the operator's tests rely on is checked against a real API server too: the same
//! assertions (`contracts.rs`) run against this fake (`tests/contract.rs`) and, in the e2e suite,
//! against a real one (`contracts_on_a_real_api_server`).
//!
//! Deliberate simplifications (see each handler for details):
//! - server-side apply does not track field managers: for `/status` the applied `.status`
//!   replaces the stored one; for the main resource labels/annotations are merged, finalizers and
//!   ownerReferences are unioned and every other applied top-level field (e.g. `spec`) replaces
//!   the stored one. Conflicts are never reported.
//! - strategic merge patches are applied as JSON merge patches (lists are replaced, not merged by
//!   key). Like the real apiserver, custom resources reject them with 415.
//! - no watch, no pagination, no admission/defaulting/schema validation, no garbage collection
//!   (`propagationPolicy` is ignored), `managedFields` are not maintained.
//! - a write whose result equals the stored object is a no-op: it is answered with the stored
//!   object and does not bump `resourceVersion`, exactly like the apiserver.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderValue, Request, Response, StatusCode, header};
use kube::client::Body;
use serde_json::{Map, Value, json};

const CT_JSON_PATCH: &str = "application/json-patch+json";
const CT_MERGE_PATCH: &str = "application/merge-patch+json";
const CT_STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const CT_APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Metadata fields owned by the server: clients cannot change them with PUT/PATCH.
const SERVER_MANAGED_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
];

/// One request as received by the fake API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// HTTP method, upper case (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: String,
    /// URL path, e.g. `/api/v1/namespaces/ns/secrets/name`.
    pub path: String,
    /// Raw (still percent-encoded) query string, if any.
    pub query: Option<String>,
    /// `Content-Type` request header, if any.
    pub content_type: Option<String>,
    /// Request body parsed as JSON (a JSON string holding the raw text if it was not JSON).
    pub body: Option<Value>,
    /// HTTP status code the fake answered with.
    pub status: u16,
}

impl Recorded {
    /// Whether this is a mutating request (POST, PUT, PATCH or DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// Whether this request targets events (`events.k8s.io` or core `v1` events).
    pub fn is_event(&self) -> bool {
        is_event_path(&self.path)
    }

    /// The decoded value of a query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        parse_query(query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The last path segment (the object name or subresource).
    pub fn last_segment(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// Describes one resource served by the fake. The set of known resources is data driven: add more
/// with [`FakeKube::register`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `secrets`.
    pub plural: String,
    /// Namespaced (`true`) or cluster scoped (`false`).
    pub namespaced: bool,
    /// Whether the resource has a `status` subresource: the main resource then cannot change
    /// `.status` and `/status` can change nothing else.
    pub has_status: bool,
    /// Served from a CustomResourceDefinition: list items carry apiVersion/kind, PUT requires
    /// `metadata.resourceVersion`, strategic merge patches are rejected with 415.
    pub custom: bool,
    /// Whether `metadata.generation` is maintained (starts at 1, bumped when anything outside
    /// `metadata` (and `status` when it is a subresource) changes, and on deletion marking).
    pub tracks_generation: bool,
    /// Whether DELETE answers with the deleted object (`ReturnDeletedObject`) instead of a
    /// `Status` of `Success` when the object is removed immediately.
    pub returns_deleted_object: bool,
}

impl ResourceDef {
    /// A built-in resource (no status subresource, no generation, Status on delete).
    pub fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
            has_status: false,
            custom: false,
            tracks_generation: false,
            returns_deleted_object: false,
        }
    }

    /// A custom resource served from a CRD (generation tracked).
    pub fn custom(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        has_status: bool,
    ) -> Self {
        ResourceDef {
            has_status,
            custom: true,
            tracks_generation: true,
            ..Self::builtin(group, version, kind, plural, namespaced)
        }
    }

    /// A custom resource described by a kube `Resource` type (e.g. a `#[derive(CustomResource)]`).
    pub fn custom_of<K>(has_status: bool) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let namespaced =
            TypeId::of::<K::Scope>() == TypeId::of::<kube::core::NamespaceResourceScope>();
        Self::custom(
            &K::group(&()),
            &K::version(&()),
            &K::kind(&()),
            &K::plural(&()),
            namespaced,
            has_status,
        )
    }

    /// Builder: give the resource a `status` subresource.
    pub fn with_status(mut self) -> Self {
        self.has_status = true;
        self
    }

    /// Builder: maintain `metadata.generation`.
    pub fn with_generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }

    /// Builder: answer DELETE with the deleted object.
    pub fn returning_deleted_object(mut self) -> Self {
        self.returns_deleted_object = true;
        self
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// URL prefix without leading slash: `api/v1` or `apis/group/version`.
    fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `inferenceendpoints.es-inference.dev`, as used in apiserver messages.
    fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Secret` or `InferenceEndpoint.es-inference.dev`, as used in "is invalid" messages.
    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn is_core_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }

    fn key(&self, namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            prefix: self.prefix(),
            plural: self.plural.clone(),
            namespace: if self.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// The resources every [`FakeKube`] knows about.
pub fn default_resources() -> Vec<ResourceDef> {
    vec![
        ResourceDef::builtin("", "v1", "Secret", "secrets", true),
        ResourceDef::builtin("", "v1", "ConfigMap", "configmaps", true),
        ResourceDef::builtin("", "v1", "Namespace", "namespaces", false).with_status(),
        ResourceDef::builtin("events.k8s.io", "v1", "Event", "events", true),
        ResourceDef::custom(
            "es-inference.dev",
            "v1alpha1",
            "InferenceEndpoint",
            "inferenceendpoints",
            true,
            true,
        ),
    ]
}

/// Storage key: (api path prefix, plural, namespace ("" when cluster scoped), name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ObjKey {
    prefix: String,
    plural: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug)]
struct Fault {
    method: String,
    path_contains: String,
    status: u16,
}

struct Inner {
    resources: Vec<ResourceDef>,
    objects: BTreeMap<ObjKey, Value>,
    resource_version: u64,
    uid_counter: u64,
    name_counter: u64,
    requests: Vec<Recorded>,
    faults: Vec<Fault>,
}

/// A stateful fake Kubernetes API server. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeKube {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("FakeKube")
            .field("objects", &inner.objects.len())
            .field("resource_version", &inner.resource_version)
            .field("requests", &inner.requests.len())
            .finish()
    }
}

impl FakeKube {
    /// An empty fake serving [`default_resources`].
    pub fn new() -> FakeKube {
        FakeKube {
            inner: Arc::new(Mutex::new(Inner {
                resources: default_resources(),
                objects: BTreeMap::new(),
                resource_version: 1000,
                uid_counter: 0,
                name_counter: 0,
                requests: Vec::new(),
                faults: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("FakeKube state mutex poisoned")
    }

    /// A `kube::Client` backed by this fake, default namespace `default`.
    ///
    /// Must be called inside a Tokio runtime (`Client::new` spawns its request buffer task).
    pub fn client(&self) -> kube::Client {
        self.client_with_namespace("default")
    }

    /// A `kube::Client` backed by this fake with the given default namespace.
    pub fn client_with_namespace(&self, default_namespace: &str) -> kube::Client {
        let inner = Arc::clone(&self.inner);
        let service = tower::service_fn(move |req: Request<Body>| {
            let inner = Arc::clone(&inner);
            async move { Ok::<_, Infallible>(serve(inner, req).await) }
        });
        kube::Client::new(service, default_namespace)
    }

    /// A `kube::Client` backed by this fake that cannot reach it while `cut` is true: every
    /// request fails as a connection error would (the API server is unreachable).
    pub fn client_with_switch(&self, cut: Arc<std::sync::atomic::AtomicBool>) -> kube::Client {
        let inner = Arc::clone(&self.inner);
        let service = tower::service_fn(move |req: Request<Body>| {
            let inner = Arc::clone(&inner);
            let cut = cut.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if cut {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the API server is unreachable",
                    ));
                }
                Ok(serve(inner, req).await)
            }
        });
        kube::Client::new(service, "default")
    }

    /// Serve one more resource type (replaces a definition with the same group/version/plural).
    pub fn register(&self, def: ResourceDef) {
        let mut inner = self.lock();
        inner.resources.retain(|d| {
            !(d.group == def.group && d.version == def.version && d.plural == def.plural)
        });
        inner.resources.push(def);
    }

    /// Builder form of [`FakeKube::register`].
    pub fn with_resource(self, def: ResourceDef) -> Self {
        self.register(def);
        self
    }

    /// Insert or replace an object directly, bypassing the API (not recorded as a request).
    ///
    /// `apiVersion` + `kind` select the resource, `metadata.namespace` (default `default`) and
    /// `metadata.name` the slot. Fills `uid`, `resourceVersion`, `creationTimestamp` and, for
    /// resources tracking it, `generation` when missing. Secret `stringData` is folded into
    /// `data` as the apiserver does. Panics on an unknown kind or a missing name (test setup bug).
    pub fn insert(&self, obj: Value) {
        let mut inner = self.lock();
        if let Err(err) = inner.insert_direct(obj) {
            panic!("FakeKube::insert: {err}");
        }
    }

    /// Insert or replace a typed object (see [`FakeKube::insert`]).
    pub fn insert_typed<K>(&self, obj: &K)
    where
        K: serde::Serialize + kube::Resource<DynamicType = ()>,
    {
        let mut value = match serde_json::to_value(obj) {
            Ok(value) => value,
            Err(err) => panic!("FakeKube::insert_typed: cannot serialize object: {err}"),
        };
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "apiVersion".into(),
                Value::String(K::api_version(&()).into()),
            );
            map.insert("kind".into(), Value::String(K::kind(&()).into()));
        }
        self.insert(value);
    }

    /// The stored object, if any. `namespace` is ignored for cluster scoped resources.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.lock();
        let def = inner.def_for(api_version, kind)?;
        inner.objects.get(&def.key(namespace, name)).cloned()
    }

    /// The stored object deserialized into `K`. Panics if it does not deserialize.
    pub fn get_typed<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: serde::de::DeserializeOwned + kube::Resource<DynamicType = ()>,
    {
        match self.try_get_typed::<K>(namespace, name) {
            Ok(obj) => obj,
            Err(err) => panic!(
                "FakeKube::get_typed: stored {} {namespace}/{name} does not deserialize: {err}",
                K::kind(&())
            ),
        }
    }

    /// The stored object deserialized into `K`, reporting deserialization errors.
    pub fn try_get_typed<K>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, serde_json::Error>
    where
        K: serde::de::DeserializeOwned + kube::Resource<DynamicType = ()>,
    {
        self.get(&K::api_version(&()), &K::kind(&()), namespace, name)
            .map(serde_json::from_value)
            .transpose()
    }

    /// All stored objects of a kind, optionally restricted to one namespace, sorted by
    /// namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let inner = self.lock();
        let Some(def) = inner.def_for(api_version, kind) else {
            return Vec::new();
        };
        inner
            .matching_objects(&def, namespace)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Remove an object directly (no finalizer handling), returning it.
    pub fn remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let mut inner = self.lock();
        let def = inner.def_for(api_version, kind)?;
        inner.objects.remove(&def.key(namespace, name))
    }

    /// Set `metadata.deletionTimestamp` like a DELETE on an object with finalizers (bumps
    /// `generation` when tracked and `resourceVersion`). Unlike a real DELETE it never removes
    /// the object, even without finalizers, so tests can also build that state. Returns whether
    /// the object exists.
    pub fn mark_deleting(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let mut inner = self.lock();
        let Some(def) = inner.def_for(api_version, kind) else {
            return false;
        };
        let key = def.key(namespace, name);
        let Some(mut obj) = inner.objects.get(&key).cloned() else {
            return false;
        };
        if deletion_timestamp(&obj).is_none() {
            mark_as_deleting(&mut obj);
            let rv = inner.next_resource_version();
            set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
            inner.objects.insert(key, obj);
        }
        true
    }

    /// The current (latest) resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests whose method matches (case-insensitively, `*` for any) and whose path contains
    /// `path_contains`.
    pub fn requests_matching(&self, method: &str, path_contains: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| method_matches(method, &r.method) && r.path.contains(path_contains))
            .cloned()
            .collect()
    }

    /// Only the POST/PUT/PATCH/DELETE requests.
    pub fn writes(&self) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_write())
            .cloned()
            .collect()
    }

    /// Forget the recorded requests (objects and pending faults are kept).
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Number of POST/PUT/PATCH/DELETE requests received (whatever their outcome).
    pub fn write_count(&self) -> usize {
        self.lock().requests.iter().filter(|r| r.is_write()).count()
    }

    /// Like [`FakeKube::write_count`] but ignoring writes to events.
    pub fn writes_excluding_events(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_write() && !r.is_event())
            .count()
    }

    /// The stored `events.k8s.io/v1` events, sorted by namespace and name.
    pub fn events(&self) -> Vec<Value> {
        self.list("events.k8s.io/v1", "Event", None)
    }

    /// Make the next request whose method matches (case-insensitively, `*` for any) and whose
    /// path contains `path_contains` fail with `status` and a Kubernetes `Status` body. The request
    /// is still recorded; the store is untouched. Faults queue up and each fires once.
    pub fn fail_next(&self, method: &str, path_contains: &str, status: u16) {
        self.lock().faults.push(Fault {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
        });
    }

    /// Number of injected faults that have not fired yet.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }
}

async fn serve(inner: Arc<Mutex<Inner>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let raw = body.collect_bytes().await.map(|b| b.to_vec());
    let header_str = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let accept = header_str(header::ACCEPT);
    let (body, body_error) = match raw {
        Ok(bytes) if bytes.is_empty() => (None, None),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => (Some(value), None),
            Err(err) => (
                Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
                Some(format!("body is not valid JSON: {err}")),
            ),
        },
        Err(err) => (None, Some(format!("cannot read request body: {err}"))),
    };
    let incoming = Incoming {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_string(),
        raw_query: parts.uri.query().map(str::to_string),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        content_type,
        accept,
        body,
        body_error,
    };
    let reply = inner
        .lock()
        .expect("FakeKube state mutex poisoned")
        .handle(incoming);
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() =
        StatusCode::from_u16(reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

struct Incoming {
    method: String,
    path: String,
    raw_query: Option<String>,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    accept: Option<String>,
    body: Option<Value>,
    body_error: Option<String>,
}

impl Incoming {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
            || self
                .body
                .as_ref()
                .and_then(|b| b.get("dryRun"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"))
    }

    /// The media type of the body, without parameters.
    fn media_type(&self) -> String {
        self.content_type
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    fn wants_partial_metadata(&self) -> bool {
        self.accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }

    fn json_body(&self) -> ApiResult<&Value> {
        if let Some(err) = &self.body_error {
            return Err(ApiError::bad_request(err.clone()));
        }
        self.body
            .as_ref()
            .ok_or_else(|| ApiError::bad_request("the request body is empty".to_string()))
    }
}

struct Reply {
    code: u16,
    body: Value,
}

impl Reply {
    fn new(code: u16, body: Value) -> Self {
        Reply { code, body }
    }
}

/// An apiserver error, rendered as a `Status` object.
#[derive(Clone, Debug)]
struct ApiError {
    code: u16,
    reason: Option<&'static str>,
    message: String,
    details: Option<Value>,
}

type ApiResult<T> = Result<T, ApiError>;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.reason.unwrap_or("no reason"),
            self.message
        )
    }
}

impl ApiError {
    fn new(code: u16, reason: Option<&'static str>, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if let Some(reason) = self.reason {
            status["reason"] = json!(reason);
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status["code"] = json!(self.code);
        status
    }

    fn bad_request(message: String) -> Self {
        Self::new(400, Some("BadRequest"), message)
    }

    fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            Some("NotFound"),
            format!("{} \"{name}\" not found", def.qualified_resource()),
        )
        .with_details(resource_details(def, name))
    }

    fn no_such_resource() -> Self {
        Self::new(
            404,
            Some("NotFound"),
            "the server could not find the requested resource".to_string(),
        )
        .with_details(json!({}))
    }

    fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            Some("AlreadyExists"),
            format!("{} \"{name}\" already exists", def.qualified_resource()),
        )
        .with_details(resource_details(def, name))
    }

    fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            409,
            Some("Conflict"),
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                def.qualified_resource()
            ),
        )
        .with_details(resource_details(def, name))
    }

    fn modified(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    fn invalid(
        def: &ResourceDef,
        name: &str,
        cause_reason: &str,
        field: &str,
        detail: &str,
    ) -> Self {
        let mut details = json!({
            "name": name,
            "kind": def.kind,
            "causes": [{"reason": cause_reason, "message": detail, "field": field}],
        });
        if !def.group.is_empty() {
            details["group"] = json!(def.group);
        }
        Self::new(
            422,
            Some("Invalid"),
            format!(
                "{} \"{name}\" is invalid: {field}: {detail}",
                def.qualified_kind()
            ),
        )
        .with_details(details)
    }

    /// What the apiserver answers when a JSON patch cannot be applied (including failed `test`).
    fn patch_rejected() -> Self {
        Self::new(
            422,
            Some("Invalid"),
            "the server rejected our request due to an error in our request".to_string(),
        )
        .with_details(json!({}))
    }

    fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            Some("UnsupportedMediaType"),
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 {CT_JSON_PATCH}, {CT_MERGE_PATCH}, {CT_APPLY_PATCH} (got {content_type:?})"
            ),
        )
        .with_details(json!({}))
    }

    fn method_not_allowed(message: String) -> Self {
        Self::new(405, Some("MethodNotAllowed"), message).with_details(json!({}))
    }

    fn injected(status: u16) -> Self {
        let reason = match status {
            400 => Some("BadRequest"),
            401 => Some("Unauthorized"),
            403 => Some("Forbidden"),
            404 => Some("NotFound"),
            405 => Some("MethodNotAllowed"),
            409 => Some("Conflict"),
            410 => Some("Expired"),
            415 => Some("UnsupportedMediaType"),
            422 => Some("Invalid"),
            429 => Some("TooManyRequests"),
            500 => Some("InternalError"),
            503 => Some("ServiceUnavailable"),
            504 => Some("Timeout"),
            _ => None,
        };
        Self::new(
            status,
            reason,
            format!("injected failure (FakeKube::fail_next, status {status})"),
        )
    }
}

fn resource_details(def: &ResourceDef, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    details
}

/// A parsed request URL.
struct Route {
    def: ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    fn key(&self, name: &str) -> ObjKey {
        self.def
            .key(self.namespace.as_deref().unwrap_or_default(), name)
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

impl Inner {
    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// Five characters from the apiserver's generateName alphabet, deterministic.
    fn next_name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.name_counter += 1;
        let mut n = self.name_counter;
        let mut suffix = String::new();
        for _ in 0..5 {
            let idx = usize::try_from(n % 27).unwrap_or_default();
            suffix.push(char::from(ALPHABET[idx]));
            n /= 27;
        }
        suffix
    }

    fn def_for(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.resources
            .iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
            .cloned()
    }

    fn matching_objects(&self, def: &ResourceDef, namespace: Option<&str>) -> Vec<(ObjKey, Value)> {
        let prefix = def.prefix();
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.prefix == prefix
                    && k.plural == def.plural
                    && namespace.is_none_or(|ns| !def.namespaced || k.namespace == ns)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn insert_direct(&mut self, mut obj: Value) -> ApiResult<()> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let def = self.def_for(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no resource registered for apiVersion {api_version:?} kind {kind:?}"
            ))
        })?;
        let name = meta_str(&obj, "name")
            .ok_or_else(|| ApiError::bad_request("metadata.name is required".to_string()))?;
        let namespace = if def.namespaced {
            let ns = meta_str(&obj, "namespace").unwrap_or_else(|| "default".to_string());
            set_meta(&mut obj, "namespace", Value::String(ns.clone()));
            ns
        } else {
            remove_meta(&mut obj, "namespace");
            String::new()
        };
        if meta_str(&obj, "uid").is_none() {
            let uid = self.next_uid();
            set_meta(&mut obj, "uid", Value::String(uid));
        }
        if meta_str(&obj, "creationTimestamp").is_none() {
            set_meta(&mut obj, "creationTimestamp", Value::String(now_rfc3339()));
        }
        if def.tracks_generation && meta(&obj, "generation").is_none() {
            set_meta(&mut obj, "generation", json!(1));
        }
        match meta_str(&obj, "resourceVersion").map(|rv| rv.parse::<u64>()) {
            Some(Ok(rv)) => self.resource_version = self.resource_version.max(rv),
            Some(Err(_)) => {}
            None => {
                let rv = self.next_resource_version();
                set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
            }
        }
        if def.is_core_secret() {
            fold_string_data(&mut obj);
        }
        normalize_metadata(&mut obj);
        self.objects.insert(def.key(&namespace, &name), obj);
        Ok(())
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<u16> {
        let idx = self
            .faults
            .iter()
            .position(|f| method_matches(&f.method, method) && path.contains(&f.path_contains))?;
        Some(self.faults.remove(idx).status)
    }

    fn handle(&mut self, incoming: Incoming) -> Reply {
        let reply = match self.take_fault(&incoming.method, &incoming.path) {
            Some(status) => {
                let err = ApiError::injected(status);
                Reply::new(err.code, err.body())
            }
            None => match self.dispatch(&incoming) {
                Ok(reply) => reply,
                Err(err) => Reply::new(err.code, err.body()),
            },
        };
        self.requests.push(Recorded {
            method: incoming.method,
            path: incoming.path,
            query: incoming.raw_query,
            content_type: incoming.content_type,
            body: incoming.body,
            status: reply.code,
        });
        reply
    }

    fn route(&self, path: &str) -> ApiResult<Route> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(ApiError::no_such_resource()),
        };
        let (namespace, rest) = match rest {
            // `namespaces/{name}/status` is the Namespace object's own subresource.
            ["namespaces", ns, rest @ ..] if !rest.is_empty() && rest != ["status"] => {
                (Some((*ns).to_string()), rest)
            }
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some((*name).to_string()), None),
            [plural, name, sub] => (*plural, Some((*name).to_string()), Some((*sub).to_string())),
            _ => return Err(ApiError::no_such_resource()),
        };
        let def = self
            .resources
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
            .ok_or_else(ApiError::no_such_resource)?;
        if (namespace.is_some() && !def.namespaced)
            || (def.namespaced && namespace.is_none() && name.is_some())
        {
            return Err(ApiError::no_such_resource());
        }
        match subresource.as_deref() {
            None => {}
            Some("status") if def.has_status => {}
            Some(_) => return Err(ApiError::no_such_resource()),
        }
        Ok(Route {
            def,
            namespace,
            name,
            subresource,
        })
    }

    fn dispatch(&mut self, incoming: &Incoming) -> ApiResult<Reply> {
        let route = self.route(&incoming.path)?;
        let reply = match (incoming.method.as_str(), route.name.clone()) {
            ("GET", None) => {
                if matches!(incoming.param("watch"), Some("true" | "1")) {
                    return Err(ApiError::method_not_allowed(
                        "FakeKube does not support watch requests".to_string(),
                    ));
                }
                self.list(&route, incoming)?
            }
            ("GET", Some(name)) => {
                let obj = self
                    .objects
                    .get(&route.key(&name))
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(&route.def, &name))?;
                Reply::new(200, obj)
            }
            ("POST", None) => self.create(&route, incoming)?,
            ("PUT", Some(name)) => self.replace(&route, &name, incoming)?,
            ("PATCH", Some(name)) => self.patch(&route, &name, incoming)?,
            ("DELETE", Some(name)) if route.subresource.is_none() => {
                self.delete(&route, &name, incoming)?
            }
            ("DELETE", None) => self.delete_collection(&route, incoming)?,
            (method, _) => {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({method} {})",
                    incoming.path
                )));
            }
        };
        if incoming.wants_partial_metadata() {
            return Ok(Reply::new(reply.code, to_partial_metadata(reply.body)));
        }
        Ok(reply)
    }

    fn list(&self, route: &Route, incoming: &Incoming) -> ApiResult<Reply> {
        let labels = incoming
            .param("labelSelector")
            .map(parse_label_selector)
            .transpose()?
            .unwrap_or_default();
        let fields = incoming
            .param("fieldSelector")
            .map(parse_field_selector)
            .transpose()?
            .unwrap_or_default();
        let items: Vec<Value> = self
            .matching_objects(&route.def, route.namespace.as_deref())
            .into_iter()
            .map(|(_, obj)| obj)
            .filter(|obj| labels_match(&labels, obj) && fields_match(&fields, obj))
            .map(|mut obj| {
                if !route.def.custom
                    && let Some(map) = obj.as_object_mut()
                {
                    // Typed (built-in) lists do not repeat apiVersion/kind on their items.
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                obj
            })
            .collect();
        Ok(Reply::new(
            200,
            json!({
                "apiVersion": route.def.api_version(),
                "kind": format!("{}List", route.def.kind),
                "metadata": {"resourceVersion": self.resource_version.to_string()},
                "items": items,
            }),
        ))
    }

    /// Checks and fills a new object; shared by POST and apply-create.
    fn prepare_create(
        &mut self,
        route: &Route,
        mut obj: Value,
        check_type_meta: bool,
    ) -> ApiResult<(ObjKey, Value)> {
        let def = &route.def;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object".to_string(),
            ));
        }
        if check_type_meta {
            check_type_meta_matches(def, &obj)?;
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        if let Some(ns) = meta_str(&obj, "namespace").filter(|ns| !ns.is_empty())
            && route.namespace.as_deref() != Some(ns.as_str())
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .to_string(),
            ));
        }
        let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => {
                    let name = format!("{prefix}{}", self.next_name_suffix());
                    set_meta(&mut obj, "name", Value::String(name.clone()));
                    name
                }
                None => {
                    return Err(ApiError::invalid(
                        def,
                        "",
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::new(
                500,
                None,
                "resourceVersion should not be set on objects to be created".to_string(),
            ));
        }
        let key = route.key(&name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(def, &name));
        }
        match &route.namespace {
            Some(ns) => set_meta(&mut obj, "namespace", Value::String(ns.clone())),
            None => remove_meta(&mut obj, "namespace"),
        }
        for field in SERVER_MANAGED_METADATA {
            remove_meta(&mut obj, field);
        }
        if def.has_status
            && let Some(map) = obj.as_object_mut()
        {
            // Create cannot set status when it is a subresource.
            map.remove("status");
        }
        if def.is_core_secret() {
            fold_string_data(&mut obj);
        }
        let uid = self.next_uid();
        set_meta(&mut obj, "uid", Value::String(uid));
        set_meta(&mut obj, "creationTimestamp", Value::String(now_rfc3339()));
        if def.tracks_generation {
            set_meta(&mut obj, "generation", json!(1));
        }
        normalize_metadata(&mut obj);
        Ok((key, obj))
    }

    fn store_new(&mut self, key: ObjKey, mut obj: Value, dry_run: bool) -> Value {
        if !dry_run {
            let rv = self.next_resource_version();
            set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
            self.objects.insert(key, obj.clone());
        }
        obj
    }

    fn create(&mut self, route: &Route, incoming: &Incoming) -> ApiResult<Reply> {
        if route.def.namespaced && route.namespace.is_none() {
            return Err(ApiError::method_not_allowed(
                "namespaced resources must be created in a namespace".to_string(),
            ));
        }
        let body = incoming.json_body()?.clone();
        let (key, obj) = self.prepare_create(route, body, true)?;
        Ok(Reply::new(
            201,
            self.store_new(key, obj, incoming.dry_run()),
        ))
    }

    fn replace(&mut self, route: &Route, name: &str, incoming: &Incoming) -> ApiResult<Reply> {
        let def = &route.def;
        let body = incoming.json_body()?.clone();
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object".to_string(),
            ));
        }
        check_type_meta_matches(def, &body)?;
        let key = route.key(name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        match meta_str(&body, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(rv) if Some(&rv) != meta_str(&old, "resourceVersion").as_ref() => {
                return Err(ApiError::modified(def, name));
            }
            Some(_) => {}
            None if def.custom => {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                ));
            }
            None => {}
        }
        let updated = prepare_update(def, name, &old, body, route.is_status())?;
        Ok(Reply::new(
            200,
            self.commit_update(key, &old, updated, incoming.dry_run()),
        ))
    }

    fn patch(&mut self, route: &Route, name: &str, incoming: &Incoming) -> ApiResult<Reply> {
        let def = &route.def;
        let media_type = incoming.media_type();
        let body = incoming.json_body()?;
        let key = route.key(name);
        let old = self.objects.get(&key).cloned();
        let is_apply = media_type == CT_APPLY_PATCH;
        if is_apply {
            if incoming.param("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::new(
                    422,
                    Some("Invalid"),
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                        .to_string(),
                ));
            }
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "the apply patch must be a JSON object (FakeKube does not parse YAML)"
                        .to_string(),
                ));
            }
            check_apply_type_meta(def, body)?;
            if meta_str(body, "name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(body, "name").unwrap_or_default()
                )));
            }
        }
        let Some(old) = old else {
            if is_apply && !route.is_status() {
                // Server-side apply creates missing objects.
                let mut obj = apply_to_object(def, None, body);
                set_meta(&mut obj, "name", Value::String(name.to_string()));
                let (key, obj) = self.prepare_create(route, obj, false)?;
                return Ok(Reply::new(
                    201,
                    self.store_new(key, obj, incoming.dry_run()),
                ));
            }
            return Err(ApiError::not_found(def, name));
        };
        let candidate = match media_type.as_str() {
            CT_MERGE_PATCH => merge_patch(&old, body)?,
            CT_STRATEGIC_PATCH if def.custom => {
                return Err(ApiError::unsupported_media_type(&media_type));
            }
            CT_STRATEGIC_PATCH => merge_patch(&old, body)?,
            CT_JSON_PATCH => json_patch_apply(&old, body)?,
            CT_APPLY_PATCH if route.is_status() => {
                let mut candidate = old.clone();
                if let Some(status) = body.get("status") {
                    candidate["status"] = status.clone();
                }
                if let Some(rv) = meta(body, "resourceVersion") {
                    set_meta(&mut candidate, "resourceVersion", rv.clone());
                }
                candidate
            }
            CT_APPLY_PATCH => apply_to_object(def, Some(&old), body),
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        if let Some(rv) = meta_str(&candidate, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(&rv) != meta_str(&old, "resourceVersion").as_ref()
        {
            return Err(ApiError::modified(def, name));
        }
        let updated = prepare_update(def, name, &old, candidate, route.is_status())?;
        Ok(Reply::new(
            200,
            self.commit_update(key, &old, updated, incoming.dry_run()),
        ))
    }

    /// Stores an updated object: no-op writes keep the old resourceVersion; a deleting object
    /// left without finalizers is removed.
    fn commit_update(
        &mut self,
        key: ObjKey,
        old: &Value,
        mut updated: Value,
        dry_run: bool,
    ) -> Value {
        if let Some(rv) = meta(old, "resourceVersion").cloned() {
            set_meta(&mut updated, "resourceVersion", rv);
        }
        if updated == *old || dry_run {
            return updated;
        }
        let rv = self.next_resource_version();
        set_meta(
            &mut updated,
            "resourceVersion",
            Value::String(rv.to_string()),
        );
        if deletion_timestamp(&updated).is_some() && finalizers(&updated).is_empty() {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, updated.clone());
        }
        updated
    }

    fn delete(&mut self, route: &Route, name: &str, incoming: &Incoming) -> ApiResult<Reply> {
        let def = &route.def;
        let key = route.key(name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        if let Some(pre) = incoming.body.as_ref().and_then(|b| b.get("preconditions")) {
            for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
                if let Some(want) = pre.get(field).and_then(Value::as_str) {
                    let have = meta_str(&old, field).unwrap_or_default();
                    if want != have {
                        return Err(ApiError::conflict(
                            def,
                            name,
                            &format!(
                                "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                            ),
                        ));
                    }
                }
            }
        }
        let (code, body) = self.delete_one(def, key, old, incoming.dry_run());
        Ok(Reply::new(code, body))
    }

    fn delete_one(
        &mut self,
        def: &ResourceDef,
        key: ObjKey,
        old: Value,
        dry_run: bool,
    ) -> (u16, Value) {
        if !finalizers(&old).is_empty() {
            if deletion_timestamp(&old).is_some() {
                return (200, old);
            }
            let mut obj = old;
            mark_as_deleting(&mut obj);
            if !dry_run {
                let rv = self.next_resource_version();
                set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
                self.objects.insert(key, obj.clone());
            }
            return (200, obj);
        }
        if !dry_run {
            self.objects.remove(&key);
            self.next_resource_version();
        }
        if def.returns_deleted_object {
            return (200, old);
        }
        let mut details = resource_details(def, &key.name);
        if let Some(uid) = meta(&old, "uid") {
            details["uid"] = uid.clone();
        }
        (
            200,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        )
    }

    fn delete_collection(&mut self, route: &Route, incoming: &Incoming) -> ApiResult<Reply> {
        let labels = incoming
            .param("labelSelector")
            .map(parse_label_selector)
            .transpose()?
            .unwrap_or_default();
        let fields = incoming
            .param("fieldSelector")
            .map(parse_field_selector)
            .transpose()?
            .unwrap_or_default();
        let dry_run = incoming.dry_run();
        let targets: Vec<(ObjKey, Value)> = self
            .matching_objects(&route.def, route.namespace.as_deref())
            .into_iter()
            .filter(|(_, obj)| labels_match(&labels, obj) && fields_match(&fields, obj))
            .collect();
        let mut items = Vec::new();
        for (key, obj) in targets {
            let (_, body) = self.delete_one(&route.def, key, obj.clone(), dry_run);
            items.push(if body.get("kind") == Some(&json!("Status")) {
                obj
            } else {
                body
            });
        }
        Ok(Reply::new(
            200,
            json!({
                "apiVersion": route.def.api_version(),
                "kind": format!("{}List", route.def.kind),
                "metadata": {"resourceVersion": self.resource_version.to_string()},
                "items": items,
            }),
        ))
    }
}

/// Turns a candidate object (PUT body or patched object) into the object to store, applying the
/// apiserver's update strategy: server-managed metadata is kept, the status subresource isolates
/// `.status`, generation is bumped on spec changes, finalizers cannot be added while deleting.
fn prepare_update(
    def: &ResourceDef,
    name: &str,
    old: &Value,
    candidate: Value,
    status_only: bool,
) -> ApiResult<Value> {
    if !candidate.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object".to_string(),
        ));
    }
    if let Some(new_name) = meta_str(&candidate, "name")
        && new_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(ns) = meta_str(&candidate, "namespace").filter(|ns| !ns.is_empty())
        && Some(&ns) != meta_str(old, "namespace").as_ref()
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_string(),
        ));
    }
    let mut updated = if status_only {
        let mut updated = old.clone();
        match candidate.get("status") {
            Some(status) => updated["status"] = status.clone(),
            None => {
                if let Some(map) = updated.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        updated
    } else {
        let mut updated = candidate;
        if !updated.get("metadata").is_some_and(Value::is_object) {
            updated["metadata"] = json!({});
        }
        if def.has_status
            && let Some(map) = updated.as_object_mut()
        {
            match old.get("status") {
                Some(status) => {
                    map.insert("status".into(), status.clone());
                }
                None => {
                    map.remove("status");
                }
            }
        }
        for field in SERVER_MANAGED_METADATA
            .into_iter()
            .chain(["name", "namespace"])
        {
            match meta(old, field).cloned() {
                Some(value) => set_meta(&mut updated, field, value),
                None => remove_meta(&mut updated, field),
            }
        }
        if def.is_core_secret() {
            fold_string_data(&mut updated);
        }
        updated
    };
    updated["apiVersion"] = json!(def.api_version());
    updated["kind"] = json!(def.kind);
    normalize_metadata(&mut updated);

    if deletion_timestamp(old).is_some() {
        let old_finalizers = finalizers(old);
        let added: Vec<String> = finalizers(&updated)
            .into_iter()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                def,
                name,
                "FieldValueForbidden",
                "metadata.finalizers",
                &format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }

    if def.tracks_generation && !status_only {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("metadata");
                if def.has_status {
                    map.remove("status");
                }
            }
            v
        };
        if strip(old) != strip(&updated) {
            let generation = meta(old, "generation").and_then(Value::as_i64).unwrap_or(0);
            set_meta(&mut updated, "generation", json!(generation + 1));
        }
    }
    Ok(updated)
}

/// The simplified server-side apply of `applied` onto `old` for the main resource.
fn apply_to_object(def: &ResourceDef, old: Option<&Value>, applied: &Value) -> Value {
    let mut out = old.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    if !out.get("metadata").is_some_and(Value::is_object) {
        out["metadata"] = json!({});
    }
    let Some(applied) = applied.as_object() else {
        return out;
    };
    for (key, value) in applied {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "status" if def.has_status => {}
            "metadata" => apply_metadata(&mut out["metadata"], value),
            _ => out[key.as_str()] = value.clone(),
        }
    }
    out
}

fn apply_metadata(target: &mut Value, applied: &Value) {
    let Some(applied) = applied.as_object() else {
        return;
    };
    for (key, value) in applied {
        match key.as_str() {
            "labels" | "annotations" => {
                if !target.get(key.as_str()).is_some_and(Value::is_object) {
                    target[key.as_str()] = json!({});
                }
                if let (Some(dst), Some(src)) =
                    (target[key.as_str()].as_object_mut(), value.as_object())
                {
                    for (k, v) in src {
                        if v.is_null() {
                            dst.remove(k);
                        } else {
                            dst.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            "finalizers" => {
                let mut merged: Vec<Value> = target
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for f in value.as_array().into_iter().flatten() {
                    if !merged.contains(f) {
                        merged.push(f.clone());
                    }
                }
                target["finalizers"] = Value::Array(merged);
            }
            "ownerReferences" => {
                let mut merged: Vec<Value> = target
                    .get("ownerReferences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for r in value.as_array().into_iter().flatten() {
                    match merged.iter_mut().find(|m| m.get("uid") == r.get("uid")) {
                        Some(existing) => *existing = r.clone(),
                        None => merged.push(r.clone()),
                    }
                }
                target["ownerReferences"] = Value::Array(merged);
            }
            "managedFields" => {}
            _ => target[key.as_str()] = value.clone(),
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(old: &Value, patch: &Value) -> ApiResult<Value> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "a merge patch must be a JSON object".to_string(),
        ));
    }
    let mut doc = old.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// RFC 6902 JSON patch with the apiserver's (evanphx/json-patch) `test` semantics: testing a
/// missing member of an existing parent against `null` succeeds.
fn json_patch_apply(old: &Value, patch: &Value) -> ApiResult<Value> {
    let ops: Vec<json_patch::PatchOperation> = serde_json::from_value(patch.clone())
        .map_err(|err| ApiError::bad_request(format!("invalid JSON patch: {err}")))?;
    let mut doc = old.clone();
    for op in &ops {
        match op {
            json_patch::PatchOperation::Test(test) => {
                let path = test.path.as_str();
                let ok = match doc.pointer(path) {
                    Some(actual) => *actual == test.value,
                    None => {
                        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
                        test.value.is_null()
                            && doc
                                .pointer(parent)
                                .is_some_and(|p| p.is_object() || p.is_array())
                    }
                };
                if !ok {
                    return Err(ApiError::patch_rejected());
                }
            }
            other => json_patch::patch(&mut doc, std::slice::from_ref(other))
                .map_err(|_| ApiError::patch_rejected())?,
        }
    }
    Ok(doc)
}

fn check_type_meta_matches(def: &ResourceDef, obj: &Value) -> ApiResult<()> {
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str)
        && api_version != def.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    Ok(())
}

fn check_apply_type_meta(def: &ResourceDef, obj: &Value) -> ApiResult<()> {
    for field in ["apiVersion", "kind"] {
        if obj
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "apply patches must set {field} (Object '{field}' is missing)"
            )));
        }
    }
    check_type_meta_matches(def, obj)
}

fn to_partial_metadata(body: Value) -> Value {
    let convert = |obj: &Value| {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    };
    match body.get("kind").and_then(Value::as_str) {
        Some("Status") => body,
        Some(kind) if kind.ends_with("List") && body.get("items").is_some() => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": body["items"].as_array().into_iter().flatten().map(convert).collect::<Vec<_>>(),
        }),
        _ => convert(&body),
    }
}

fn meta<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    obj.get("metadata")?.get(field).filter(|v| !v.is_null())
}

fn meta_str(obj: &Value, field: &str) -> Option<String> {
    meta(obj, field).and_then(Value::as_str).map(str::to_string)
}

fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"][field] = value;
}

fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(map) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        map.remove(field);
    }
}

fn deletion_timestamp(obj: &Value) -> Option<&Value> {
    meta(obj, "deletionTimestamp")
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj, "finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// What the apiserver's `markAsDeleting` does.
fn mark_as_deleting(obj: &mut Value) {
    if deletion_timestamp(obj).is_none() {
        let generation = meta(obj, "generation").and_then(Value::as_i64).unwrap_or(0);
        if generation > 0 {
            set_meta(obj, "generation", json!(generation + 1));
        }
        set_meta(obj, "deletionTimestamp", Value::String(now_rfc3339()));
    }
    set_meta(obj, "deletionGracePeriodSeconds", json!(0));
}

/// Go's `omitempty`: drop null fields and empty lists/maps from metadata.
fn normalize_metadata(obj: &mut Value) {
    if let Some(map) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        map.retain(|_, v| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        });
    }
}

/// Secrets: `stringData` is write-only and merged into `data` (base64) by the apiserver.
fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(string_data) = map.remove("stringData") else {
        return;
    };
    let Some(string_data) = string_data.as_object() else {
        return;
    };
    if !map.get("data").is_some_and(Value::is_object) {
        map.insert("data".into(), Value::Object(Map::new()));
    }
    if let Some(data) = map.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in string_data {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            data.insert(k.clone(), Value::String(base64_encode(text.as_bytes())));
        }
    }
}

fn base64_encode(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> (18 - 6 * i)) & 0x3f).unwrap_or_default();
                out.push(char::from(TABLE[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(method)
}

fn is_event_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segments.as_slice(),
        ["apis", "events.k8s.io", ..]
            | ["api", _, "events", ..]
            | ["api", _, "namespaces", _, "events", ..]
    )
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(input: &str) -> String {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One label selector requirement.
#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn parse_label_selector(selector: &str) -> ApiResult<Vec<LabelReq>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let bad = |part: &str| ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
    let parse_set = |set: &str, part: &str| -> ApiResult<Vec<String>> {
        let inner = set
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| bad(part))?;
        Ok(inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect())
    };
    let mut reqs = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let req = if let Some(key) = part.strip_prefix('!') {
            LabelReq::NotExists(key.trim().to_string())
        } else if let Some((key, set)) = part.split_once(" notin ") {
            LabelReq::NotIn(key.trim().to_string(), parse_set(set, part)?)
        } else if let Some((key, set)) = part.split_once(" in ") {
            LabelReq::In(key.trim().to_string(), parse_set(set, part)?)
        } else if let Some((key, value)) = part.split_once("!=") {
            LabelReq::NotIn(key.trim().to_string(), vec![value.trim().to_string()])
        } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
            LabelReq::In(key.trim().to_string(), vec![value.trim().to_string()])
        } else if part.contains(char::is_whitespace) || part.contains(['(', ')']) {
            return Err(bad(part));
        } else {
            LabelReq::Exists(part.to_string())
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn labels_match(reqs: &[LabelReq], obj: &Value) -> bool {
    let label = |key: &str| {
        meta(obj, "labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    reqs.iter().all(|req| match req {
        LabelReq::Exists(k) => label(k).is_some(),
        LabelReq::NotExists(k) => label(k).is_none(),
        LabelReq::In(k, values) => label(k).is_some_and(|v| values.contains(&v)),
        LabelReq::NotIn(k, values) => label(k).is_none_or(|v| !values.contains(&v)),
    })
}

/// Field selector requirement: (dotted path, expected value, negated).
type FieldReq = (String, String, bool);

fn parse_field_selector(selector: &str) -> ApiResult<Vec<FieldReq>> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            if let Some((k, v)) = part.split_once("!=") {
                Ok((k.trim().to_string(), v.trim().to_string(), true))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Ok((k.trim().to_string(), v.trim().to_string(), false))
            } else {
                Err(ApiError::bad_request(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )))
            }
        })
        .collect()
}

fn fields_match(reqs: &[FieldReq], obj: &Value) -> bool {
    reqs.iter().all(|(path, want, negated)| {
        let have = path
            .split('.')
            .try_fold(obj, |v, segment| v.get(segment))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        (have == *want) != *negated
    })
}
