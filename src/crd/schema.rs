//! The pieces both kinds' schemas share: the credentials refused inline (setting keys and header
//! names, with the CEL rules that refuse them at `kubectl apply`, and the operator's own check of
//! header names), the bounds of settings and headers, conditions, and `SecretKeyRef`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Header names whose literal values are credentials (lower case): refused in
/// `serviceSettings.headers` and `taskSettings.headers`, where `secretSettings` must be used. A
/// rule of this operator, not of Elasticsearch, which sends headers as given.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
];
/// Endings of header names whose literal values are credentials (lower case).
pub const CREDENTIAL_HEADER_SUFFIXES: &[&str] = &["-token", "-key"];

/// Whether the header `name` carries a credential ([`CREDENTIAL_HEADERS`],
/// [`CREDENTIAL_HEADER_SUFFIXES`]), without regard to case.
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    CREDENTIAL_HEADERS.contains(&n.as_str())
        || CREDENTIAL_HEADER_SUFFIXES.iter().any(|s| n.ends_with(s))
}

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

/// The CEL test of a header name that carries a credential (`is_credential_header`),
/// spelled out in the usual casings: CEL's lowerAscii would cost in proportion to the name, and
/// the operator checks every casing again before anything is sent.
fn credential_header_cel(k: &str) -> String {
    let list = CREDENTIAL_HEADERS
        .iter()
        .flat_map(|n| casings(n))
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let suffixes = CREDENTIAL_HEADER_SUFFIXES
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

/// A key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Must be omitted or equal to this resource's namespace: references to Secrets in other
    /// namespaces are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers() {
        for name in [
            "Authorization",
            "x-api-key",
            "API-KEY",
            "X-Goog-Api-Key",
            "x-auth-token",
            "Proxy-Authorization",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in ["Content-Type", "x-request-id", "Keyword", "X-Tokens-Used"] {
            assert!(!is_credential_header(name), "{name}");
        }
    }
}
