//! The custom resources (`es-inference.dev/v1alpha1`): `InferenceEndpoint` and
//! `ElasticsearchConnection`.
//!
//! The CRDs under `crds/` and in the chart are generated from these types
//! (`es-inference-operator crd --write`); doc comments become the schema descriptions that
//! `kubectl explain` shows, and the CEL rules are enforced by the API server at `kubectl apply`.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

/// API group of every kind this operator serves.
pub const GROUP: &str = "es-inference.dev";
/// Finalizer that guards the Elasticsearch endpoint of a resource.
pub const FINALIZER: &str = "es-inference.dev/cleanup";
/// Field manager for server-side apply (status, finalizer).
pub const FIELD_MANAGER: &str = "es-inference-operator";

/// Pattern Elasticsearch enforces on inference ids.
pub const INFERENCE_ID_PATTERN: &str = r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$";

/// `service_settings` keys that hold credentials in at least one Elasticsearch service
/// (never returned by Elasticsearch). They are refused inline in `serviceSettings` and must come
/// from a Secret through `secretSettings`.
pub const SECRET_SETTING_KEYS: &[&str] = &[
    "api_key",
    "access_key",
    "secret_key",
    "service_account_json",
    "client_secret",
    "entra_id",
    "secret_parameters",
];

mod connection;
mod endpoint;

pub use connection::*;
pub use endpoint::*;

/// Most keys at the top of serviceSettings or taskSettings (real services use a handful).
pub const MAX_SETTINGS_PROPERTIES: u32 = 64;

/// Most HTTP headers in one `headers` map, and the longest value.
const MAX_HEADERS: u32 = 32;
const MAX_HEADER_VALUE: u32 = 8192;

/// The usual spellings of a lower-case header name: as is, Title-Case, upper case, and
/// Title-Case with `API` (`X-API-Key`).
fn casings(lower: &str) -> Vec<String> {
    let title: Vec<String> = lower
        .split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let acronym: Vec<&str> = title
        .iter()
        .map(|p| if p == "Api" { "API" } else { p.as_str() })
        .collect();
    let mut all = vec![
        lower.to_string(),
        title.join("-"),
        lower.to_ascii_uppercase(),
        acronym.join("-"),
    ];
    all.sort();
    all.dedup();
    all
}

/// The CEL test of a header name that carries a credential (`catalog::is_credential_header`),
/// spelled out in the usual casings: CEL's lowerAscii would cost in proportion to the name, and
/// the operator checks every casing again before anything is sent.
fn credential_header_cel(k: &str) -> String {
    let list = crate::catalog::CREDENTIAL_HEADERS
        .iter()
        .flat_map(|n| casings(n))
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let suffixes = crate::catalog::CREDENTIAL_HEADER_SUFFIXES
        .iter()
        .flat_map(|s| casings(s))
        .map(|s| format!("{k}.endsWith('{s}')"))
        .collect::<Vec<_>>()
        .join(" || ");
    format!("({k} in [{list}] || {suffixes})")
}

/// The schema of a `headers` map (`scope`: `serviceSettings` or `taskSettings`): literal values
/// of credential headers are refused (a `${name}` placeholder of the custom service is not one).
fn headers_schema(scope: &str) -> Value {
    let (allowed, secret_key) = if scope == "serviceSettings" {
        (
            " || (self[k].startsWith('${') && self[k].endsWith('}'))",
            "headers.<Name>",
        )
    } else {
        ("", "task_settings.headers.<Name>")
    };
    serde_json::json!({
        "type": "object",
        "description": "HTTP headers sent with each request to the provider. Credentials do not belong here: reference them with secretSettings.",
        "maxProperties": MAX_HEADERS,
        "additionalProperties": { "type": "string", "maxLength": MAX_HEADER_VALUE },
        "x-kubernetes-validations": [{
            "rule": format!("self.all(k, !{}{allowed})", credential_header_cel("k")),
            "message": format!(
                "{scope}.headers must not hold credentials (Authorization, api-key, x-api-key, names ending in -token or -key) in clear: store the value in a Secret and reference it with secretSettings.{secret_key}"
            ),
        }],
    })
}

pub(crate) fn task_settings_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_SETTINGS_PROPERTIES,
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": { "headers": headers_schema("taskSettings") },
    })
}

pub(crate) fn service_settings_schema(_: &mut SchemaGenerator) -> Schema {
    // Secret keys are declared so that CEL can see them and refuse them with a message
    // that says what to do; every other key passes through to Elasticsearch.
    let mut properties: Map<String, Value> = SECRET_SETTING_KEYS
        .iter()
        .map(|k| {
            let description = format!(
                "Not allowed here: a credential. Store it in a Secret and reference it with secretSettings.{k}.secretKeyRef."
            );
            let schema = if *k == "secret_parameters" {
                serde_json::json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": description })
            } else {
                serde_json::json!({ "type": "string", "description": description })
            };
            ((*k).to_string(), schema)
        })
        .collect();
    properties.insert("headers".into(), headers_schema("serviceSettings"));
    let rules: Vec<Value> = SECRET_SETTING_KEYS
        .iter()
        .map(|k| {
            let reference = if *k == "secret_parameters" {
                "secretSettings.secret_parameters.<name>.secretKeyRef, one entry per parameter"
                    .to_string()
            } else {
                format!("secretSettings.{k}.secretKeyRef")
            };
            serde_json::json!({
                "rule": format!("!has(self.{k})"),
                "message": format!(
                    "serviceSettings.{k} is a credential and must not be written inline: store it in a Secret and reference it with {reference}"
                ),
            })
        })
        .collect();
    json_schema!({
        "type": "object",
        "maxProperties": MAX_SETTINGS_PROPERTIES,
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": properties,
        "x-kubernetes-validations": rules,
    })
}

pub(crate) fn conditions_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": { "type": "string", "description": "Condition type: Ready, Reconciling or Stalled." },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"], "description": "Whether the condition holds: True, False or Unknown." },
                "reason": { "type": "string", "description": "One-word CamelCase reason; see the README's troubleshooting table." },
                "message": { "type": "string", "description": "What happened and what to do about it." },
                "observedGeneration": { "type": "integer", "format": "int64", "description": "The metadata.generation of the spec the condition was computed from." },
                "lastTransitionTime": { "type": "string", "format": "date-time", "description": "When the status of the condition last changed." },
            },
        },
    })
}

/// The chart's template of a CRD: the same CRD as under `crds/`, installed and upgraded by the
/// chart when `crds.enabled`, and kept on uninstall when `crds.keep` (cert-manager's pattern).
fn helm_template(plain: &str, name: &str) -> String {
    let body = plain
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let anchor = format!("  name: {name}\n");
    let templated = body.replacen(
        &anchor,
        &format!(
            "{anchor}  labels:\n    {{{{- include \"es-inference-operator.labels\" . | nindent 4 }}}}\n  {{{{- if .Values.crds.keep }}}}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{{{- end }}}}\n"
        ),
        1,
    );
    format!(
        "{{{{- if .Values.crds.enabled }}}}\n# Generated by `es-inference-operator crd --write` from src/crd/. Do not edit by hand.\n{templated}\n{{{{- end }}}}\n"
    )
}

/// Every file generated from these types, by path relative to the repository root: the CRDs
/// under `crds/` and their templates in the Helm chart. `crd --write` writes them; a test fails
/// when a committed copy is stale.
pub fn generated_files() -> Vec<(&'static str, String)> {
    let ie = inference_endpoint_crd_yaml();
    let conn = connection_crd_yaml();
    vec![
        ("crds/inferenceendpoints.es-inference.dev.yaml", ie.clone()),
        (
            "crds/elasticsearchconnections.es-inference.dev.yaml",
            conn.clone(),
        ),
        (
            "charts/es-inference-operator/templates/crd-inferenceendpoints.yaml",
            helm_template(&ie, "inferenceendpoints.es-inference.dev"),
        ),
        (
            "charts/es-inference-operator/templates/crd-elasticsearchconnections.yaml",
            helm_template(&conn, "elasticsearchconnections.es-inference.dev"),
        ),
    ]
}

/// Every CRD as one multi-document YAML stream (what `crd` prints).
pub fn all_crds_yaml() -> String {
    [inference_endpoint_crd_yaml(), connection_crd_yaml()].join("---\n")
}

/// YAML of one CRD with the generated-file header.
fn crd_to_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    let mut out = String::from(
        "# Generated by `es-inference-operator crd` from src/crd/. Do not edit by hand.\n",
    );
    out.push_str(&serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML"));
    out
}

/// The InferenceEndpoint CRD, as committed under `crds/`.
pub fn inference_endpoint_crd_yaml() -> String {
    use kube::CustomResourceExt;
    crd_to_yaml(&InferenceEndpoint::crd())
}

/// The ElasticsearchConnection CRD, as committed under `crds/`.
pub fn connection_crd_yaml() -> String {
    use kube::CustomResourceExt;
    crd_to_yaml(&ElasticsearchConnection::crd())
}
