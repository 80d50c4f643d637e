//! PURE: what Elasticsearch should hold for a spec, and how an observed endpoint differs from it.
//!
//! Comparison follows CONTRACT §2.4: only what the user set is compared, as a subset of what
//! Elasticsearch returns, so server-added defaults (`rate_limit`, `dimensions`, `similarity`,
//! chunking) are never drift; secrets are never compared here (they are never returned); the
//! `num_allocations` of adaptive deployments and platform-specific model ids are not drift.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{
    crd::{ChunkingSettings, InferenceEndpointSpec, MAX_SETTINGS_PROPERTIES, SeparatorGroup},
    model::{EndpointConfig, Version},
};

/// Deepest nesting accepted inside serviceSettings or taskSettings (real services use at most
/// three levels, e.g. `adaptive_allocations.enabled`, `rate_limit.requests_per_minute`).
pub const MAX_SETTINGS_DEPTH: usize = 8;
/// Largest serviceSettings, taskSettings and chunkingSettings together, as JSON.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// Settings whose values Elasticsearch parses as enums and stores in its own spelling (e.g.
/// `similarity: COSINE` is stored as `cosine`): compared without regard to case.
pub const ENUM_SETTINGS: &[&str] = &[
    "similarity",
    "element_type",
    "embedding_type",
    "truncate",
    "input_type",
    "endpoint_type",
    "api",
];

/// Why a spec cannot be sent, found before anything is sent. Names keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    #[error(
        "{field} nests {depth} levels deep; at most {MAX_SETTINGS_DEPTH} are accepted (Elasticsearch services use a few)"
    )]
    TooDeep { field: &'static str, depth: usize },
    #[error(
        "serviceSettings, taskSettings and chunkingSettings take {bytes} bytes as JSON; at most {MAX_SETTINGS_BYTES} are accepted"
    )]
    TooLarge { bytes: usize },
    #[error("{field} has {count} keys; at most {MAX_SETTINGS_PROPERTIES} are accepted")]
    TooManyKeys { field: &'static str, count: usize },
    #[error(
        "secretSettings.{key} is also set in serviceSettings: remove it from serviceSettings (the Secret's value would replace it on every request)"
    )]
    SecretShadowsSetting { key: String },
    #[error(
        "{field} is a credential header written in clear (anyone who can read the resource sees it): store the value in a Secret and reference it with secretSettings.{key}"
    )]
    CredentialHeader { field: String, key: String },
    #[error(
        "secretSettings.secret_parameters would send one Secret value where the custom service expects a map: write one entry per parameter, secretSettings.secret_parameters.<name>"
    )]
    SecretParametersWhole,
}

/// Bounds and consistency that Elasticsearch does not check (or checks only after a paid
/// provider call): nesting depth, size, keys, and secrets that would shadow settings.
pub fn validate(spec: &InferenceEndpointSpec) -> Result<(), SpecProblem> {
    fn depth(v: &Value) -> usize {
        // Iterative, so that a hostile object cannot exhaust the stack.
        let mut max = 0;
        let mut stack = vec![(v, 1usize)];
        while let Some((v, d)) = stack.pop() {
            match v {
                Value::Object(m) => {
                    max = max.max(d);
                    stack.extend(m.values().map(|c| (c, d + 1)));
                }
                Value::Array(a) => {
                    max = max.max(d);
                    stack.extend(a.iter().map(|c| (c, d + 1)));
                }
                _ => {}
            }
        }
        max
    }
    let service = Value::Object(spec.service_settings.clone());
    let task = Value::Object(spec.task_settings.clone().unwrap_or_default());
    for (field, v) in [("serviceSettings", &service), ("taskSettings", &task)] {
        let count = v.as_object().map_or(0, Map::len);
        if count > MAX_SETTINGS_PROPERTIES as usize {
            return Err(SpecProblem::TooManyKeys { field, count });
        }
        let d = depth(v);
        if d > MAX_SETTINGS_DEPTH {
            return Err(SpecProblem::TooDeep { field, depth: d });
        }
    }
    let bytes = service.to_string().len()
        + task.to_string().len()
        + spec
            .chunking_settings
            .as_ref()
            .map_or(0, |c| Value::Object(chunking_to_es(c)).to_string().len());
    if bytes > MAX_SETTINGS_BYTES {
        return Err(SpecProblem::TooLarge { bytes });
    }
    secret_keys_fit(spec)?;
    no_literal_credential_headers(spec)
}

/// Each `secretSettings` key names one value where the request takes it: never a whole
/// `secret_parameters` map, never a setting the spec also writes.
fn secret_keys_fit(spec: &InferenceEndpointSpec) -> Result<(), SpecProblem> {
    for key in spec.secret_settings.keys() {
        if key == "secret_parameters" {
            return Err(SpecProblem::SecretParametersWhole);
        }
        let (settings, path) = match key.strip_prefix("task_settings.") {
            Some(rest) => (spec.task_settings.as_ref(), rest),
            None => (Some(&spec.service_settings), key.as_str()),
        };
        let shadowed = settings.is_some_and(|m| match path.split_once('.') {
            Some((parent, child)) => match m.get(parent) {
                Some(Value::Object(p)) => p.contains_key(child),
                Some(_) => true,
                None => false,
            },
            None => m.contains_key(path),
        });
        if shadowed {
            return Err(SpecProblem::SecretShadowsSetting { key: key.clone() });
        }
    }
    Ok(())
}

/// No credential header is written in clear (a custom service `${…}` placeholder is none).
fn no_literal_credential_headers(spec: &InferenceEndpointSpec) -> Result<(), SpecProblem> {
    let literal_headers = [
        ("serviceSettings", "", Some(&spec.service_settings)),
        (
            "taskSettings",
            "task_settings.",
            spec.task_settings.as_ref(),
        ),
    ];
    for (field, prefix, settings) in literal_headers {
        let Some(Value::Object(headers)) = settings.and_then(|m| m.get("headers")) else {
            continue;
        };
        for (name, value) in headers {
            // The custom service fills `${name}` from secret_parameters: not a credential.
            let placeholder = field == "serviceSettings"
                && value.as_str().is_some_and(crate::catalog::is_placeholder);
            if crate::crd::is_credential_header(name) && !placeholder {
                return Err(SpecProblem::CredentialHeader {
                    field: format!("{field}.headers.{name}"),
                    key: format!("{prefix}headers.{name}"),
                });
            }
        }
    }
    Ok(())
}

/// Secret values for one request, keyed by their `service_settings` path (`api_key`,
/// `secret_parameters.token`).
#[derive(Default)]
pub struct SecretValues {
    pub values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValues")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How secret values appear in a built body.
#[derive(Clone, Copy, Debug)]
pub enum SecretMode<'a> {
    /// The real values: only for a request about to be sent.
    Reveal(&'a SecretValues),
    /// `<redacted>` in place of each value (for `render`).
    Redacted,
}

pub const REDACTED: &str = "<redacted>";

/// The `timeout` for creating this endpoint: the spec's, else 5 minutes for built-in models
/// (creation waits for the model deployment), else the operator's default.
pub fn create_timeout(
    spec: &InferenceEndpointSpec,
    default: std::time::Duration,
) -> std::time::Duration {
    spec.create_timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(if is_builtin_model_service(&spec.service) {
            std::time::Duration::from_secs(300).max(default)
        } else {
            default
        })
}

/// `chunking_settings` as Elasticsearch spells them.
pub fn chunking_to_es(c: &ChunkingSettings) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("strategy".into(), json!(c.strategy.as_str()));
    if let Some(v) = c.max_chunk_size {
        m.insert("max_chunk_size".into(), json!(v));
    }
    if let Some(v) = c.sentence_overlap {
        m.insert("sentence_overlap".into(), json!(v));
    }
    if let Some(v) = c.overlap {
        m.insert("overlap".into(), json!(v));
    }
    if let Some(g) = c.separator_group {
        let g = match g {
            SeparatorGroup::Plaintext => "plaintext",
            SeparatorGroup::Markdown => "markdown",
        };
        m.insert("separator_group".into(), json!(g));
    }
    if let Some(s) = &c.separators {
        m.insert("separators".into(), json!(s));
    }
    m
}

/// Hash of everything non-secret that the spec asks Elasticsearch to hold. Stored in status as
/// `appliedConfigHash` once applied: a later difference with the same hash is drift, a
/// difference with another hash is an edit.
pub fn config_hash(spec: &InferenceEndpointSpec) -> String {
    let canonical = json!({
        "service": spec.service,
        "task_type": spec.task_type.as_str(),
        "service_settings": service_settings(spec),
        "task_settings": spec.task_settings,
        "chunking_settings": spec.chunking_settings.as_ref().map(chunking_to_es),
    });
    // serde_json maps are sorted by key, so the string is canonical.
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// Put the secrets whose keys are `service_settings` paths (`api_key`,
/// `secret_parameters.<name>`, `headers.<Name>`) into a `service_settings` map, or those under
/// `task_settings.` (`task_settings.headers.<Name>`) into a `task_settings` map.
fn merge_secrets(
    settings: &mut Map<String, Value>,
    scope: Scope,
    spec: &InferenceEndpointSpec,
    mode: SecretMode<'_>,
) {
    let placeholders = headers_as_placeholders(spec);
    for key in spec.secret_settings.keys() {
        let parameter;
        let path = match (scope, key.strip_prefix("task_settings.")) {
            (Scope::Service, None) => match key.strip_prefix("headers.") {
                Some(name) if placeholders => {
                    parameter = format!("secret_parameters.{}", header_parameter(name));
                    parameter.as_str()
                }
                _ => key.as_str(),
            },
            (Scope::Task, Some(rest)) => rest,
            _ => continue,
        };
        let value = match mode {
            SecretMode::Reveal(s) => match s.values.get(key) {
                Some(v) => Value::String(v.expose_secret().to_string()),
                None => continue,
            },
            SecretMode::Redacted => Value::String(REDACTED.into()),
        };
        match path.split_once('.') {
            Some((parent, child)) => {
                let entry = settings
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(child.to_string(), value);
                }
            }
            None => {
                settings.insert(path.to_string(), value);
            }
        }
    }
}

/// The `secret_parameters` entry that carries the header `name` of a service whose headers
/// take `${…}` placeholders (the custom service): the header is sent as `${<this>}`, the value
/// as a secret parameter, which Elasticsearch keeps with its secrets (never returned by GET,
/// replaced by `_update` on rotation). Sources: `services/custom/CustomSecretSettings.java`
/// (`secret_parameters`, re-parsed whole by `_update`) and `common/ValidatingSubstitutor.java`
/// (`${…}` filled in `headers`) of `x-pack/plugin/inference` in elastic/elasticsearch.
pub fn header_parameter(name: &str) -> String {
    format!("es_inference_header_{name}")
}

/// Whether `headers.<Name>` secrets of this spec are sent as placeholders (`header_parameter`).
fn headers_as_placeholders(spec: &InferenceEndpointSpec) -> bool {
    crate::catalog::service(&spec.service)
        .is_some_and(|s| s.headers == crate::catalog::Headers::Service)
}

/// The `service_settings` the spec asks Elasticsearch to hold, without secrets: the spec's,
/// plus the `${…}` placeholder of each header that comes from a Secret (custom service). What
/// is created, compared and hashed.
pub fn service_settings(spec: &InferenceEndpointSpec) -> std::borrow::Cow<'_, Map<String, Value>> {
    let names: Vec<&str> = spec
        .secret_settings
        .keys()
        .filter_map(|k| k.strip_prefix("headers."))
        .collect();
    if names.is_empty() || !headers_as_placeholders(spec) {
        return std::borrow::Cow::Borrowed(&spec.service_settings);
    }
    let mut settings = spec.service_settings.clone();
    let headers = settings
        .entry("headers".to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(h) = headers {
        for name in names {
            h.insert(
                name.to_string(),
                Value::String(format!("${{{}}}", header_parameter(name))),
            );
        }
    }
    std::borrow::Cow::Owned(settings)
}

/// Which settings map a secret goes into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Service,
    Task,
}

/// `task_settings` as sent: the spec's, with headers from Secrets merged in.
fn task_settings(spec: &InferenceEndpointSpec, mode: SecretMode<'_>) -> Map<String, Value> {
    let mut t = spec.task_settings.clone().unwrap_or_default();
    merge_secrets(&mut t, Scope::Task, spec, mode);
    t
}

/// The body of `PUT /_inference/{task_type}/{id}`.
pub fn create_body(spec: &InferenceEndpointSpec, mode: SecretMode<'_>) -> Value {
    let mut service_settings = service_settings(spec).into_owned();
    merge_secrets(&mut service_settings, Scope::Service, spec, mode);
    let mut body = Map::new();
    body.insert("service".into(), json!(spec.service));
    body.insert("service_settings".into(), Value::Object(service_settings));
    let task = task_settings(spec, mode);
    if !task.is_empty() {
        body.insert("task_settings".into(), Value::Object(task));
    }
    if let Some(c) = &spec.chunking_settings {
        body.insert("chunking_settings".into(), Value::Object(chunking_to_es(c)));
    }
    Value::Object(body)
}

/// The body of `_update`: every secret (versions before 9.4 re-parse secrets from
/// `service_settings` and need all of them, CONTRACT §9), the mutable service settings that
/// differ, the task settings, and chunking where the version accepts it. `None` when there is
/// nothing to send (an empty body is a 400).
pub fn update_body(
    spec: &InferenceEndpointSpec,
    mode: SecretMode<'_>,
    changed: &[FieldDiff],
    version: Version,
) -> Option<Value> {
    let mut service_settings = Map::new();
    merge_secrets(&mut service_settings, Scope::Service, spec, mode);
    for d in changed.iter().filter(|d| d.mutable) {
        if let Some(key) = d.field.strip_prefix("service_settings.")
            && let Some(v) = spec.service_settings.get(key)
        {
            service_settings.insert(key.to_string(), v.clone());
        }
    }
    let mut body = Map::new();
    if !service_settings.is_empty() {
        body.insert("service_settings".into(), Value::Object(service_settings));
    }
    let task = task_settings(spec, mode);
    if !task.is_empty() {
        body.insert("task_settings".into(), Value::Object(task));
    }
    if version.update_accepts_chunking()
        && changed.iter().any(|d| d.field == "chunking_settings")
        && let Some(c) = &spec.chunking_settings
    {
        body.insert("chunking_settings".into(), Value::Object(chunking_to_es(c)));
    }
    (!body.is_empty()).then_some(Value::Object(body))
}

/// One setting whose observed value differs from the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    /// `service`, `task_type`, `service_settings.model_id`, `task_settings.max_tokens`,
    /// `chunking_settings`.
    pub field: String,
    /// Whether `_update` can change it on this Elasticsearch version.
    pub mutable: bool,
}

fn is_builtin_model_service(service: &str) -> bool {
    matches!(service, "elasticsearch" | "elser")
}

/// How `observed` differs from `spec`, considering only what the spec sets.
pub fn diff(
    spec: &InferenceEndpointSpec,
    observed: &EndpointConfig,
    version: Version,
) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let immutable = |field: &str| FieldDiff {
        field: field.to_string(),
        mutable: false,
    };
    if observed.service != spec.service {
        out.push(immutable("service"));
    }
    if observed.task_type != spec.task_type.as_str() {
        out.push(immutable("task_type"));
    }
    out.extend(diff_service_settings(spec, observed, version));
    if let Some(task) = &spec.task_settings {
        for (key, want) in task {
            let same = observed
                .task_settings
                .get(key)
                .is_some_and(|got| same_setting(key, want, got));
            if !same {
                out.push(FieldDiff {
                    field: format!("task_settings.{key}"),
                    mutable: true,
                });
            }
        }
    }
    if let Some(c) = &spec.chunking_settings {
        let mut want = chunking_to_es(c);
        // Elasticsearch stores a separator group as the expanded separator list.
        want.remove("separator_group");
        let same = observed
            .chunking_settings
            .as_ref()
            .is_some_and(|got| subset(&Value::Object(want), &Value::Object(got.clone())));
        if !same {
            out.push(FieldDiff {
                field: "chunking_settings".into(),
                mutable: version.update_accepts_chunking(),
            });
        }
    }
    out
}

/// Whether the setting `key` as the spec writes it (`want`) is what Elasticsearch holds (`got`):
/// enum-like settings regardless of case, everything else as a subset (`subset`).
pub fn same_setting(key: &str, want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), Value::String(g)) if ENUM_SETTINGS.contains(&key) => {
            w.eq_ignore_ascii_case(g)
        }
        _ => subset(want, got),
    }
}

/// The service settings the spec writes that differ from what Elasticsearch holds.
fn diff_service_settings(
    spec: &InferenceEndpointSpec,
    observed: &EndpointConfig,
    version: Version,
) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let builtin = is_builtin_model_service(&spec.service);
    let adaptive = |m: &Map<String, Value>| {
        m.get("adaptive_allocations")
            .and_then(|a| a.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let adaptive_on =
        builtin && (adaptive(&spec.service_settings) || adaptive(&observed.service_settings));
    let wanted = service_settings(spec);
    for (key, want) in wanted.iter() {
        // A key Elasticsearch does not return cannot be observed; comparing it would be a
        // perpetual difference.
        let Some(got) = observed.service_settings.get(key) else {
            continue;
        };
        if builtin && key == "num_allocations" && adaptive_on {
            continue;
        }
        if builtin
            && key == "model_id"
            && let (Some(w), Some(g)) = (want.as_str(), got.as_str())
            && g.strip_prefix(w)
                .is_some_and(|rest| rest.starts_with("_linux-"))
        {
            continue;
        }
        // A header from a Secret that Elasticsearch does not have (added after the create):
        // absent keys are otherwise tolerated, but this one would never be sent.
        let missing_header = key == "headers"
            && want.as_object().is_some_and(|w| {
                w.iter().any(|(name, v)| {
                    v.as_str()
                        .is_some_and(|v| v == format!("${{{}}}", header_parameter(name)))
                        && got.get(name).is_none()
                })
            });
        if !same_setting(key, want, got) || missing_header {
            let mutable = builtin
                && (key == "num_allocations"
                    || (key == "adaptive_allocations"
                        && version.update_accepts_adaptive_allocations()));
            out.push(FieldDiff {
                field: format!("service_settings.{key}"),
                mutable,
            });
        }
    }
    out
}

/// `want` ⊆ `got`: objects by key (keys missing from `got` are not observable and pass),
/// numbers by value (1 == 1.0), everything else by equality.
pub fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_none_or(|gv| subset(wv, gv))),
        (Value::Number(w), Value::Number(g)) => w.as_f64() == g.as_f64(),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| subset(a, b))
        }
        (w, g) => w == g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TaskType;

    fn spec(yaml: &str) -> InferenceEndpointSpec {
        serde_saphyr::from_str(yaml).expect("valid spec yaml")
    }

    fn observed(v: Value) -> EndpointConfig {
        serde_json::from_value(v).expect("valid endpoint")
    }

    const V91: Version = Version::new(9, 1, 0);

    #[test]
    fn create_body_merges_secrets_only_when_revealed() {
        let s = spec(
            "taskType: completion\nservice: anthropic\nserviceSettings: {model_id: claude}\n\
             secretSettings: {api_key: {secretKeyRef: {name: a, key: k}}}\ntaskSettings: {max_tokens: 1024}\n",
        );
        let mut values = SecretValues::default();
        values
            .values
            .insert("api_key".into(), SecretString::from("sk-live"));
        let body = create_body(&s, SecretMode::Reveal(&values));
        assert_eq!(body["service_settings"]["api_key"], "sk-live");
        assert_eq!(body["service_settings"]["model_id"], "claude");
        assert_eq!(body["task_settings"]["max_tokens"], 1024);
        let shown = create_body(&s, SecretMode::Redacted);
        assert_eq!(shown["service_settings"]["api_key"], REDACTED);
        assert!(!shown.to_string().contains("sk-live"));
    }

    #[test]
    fn secret_parameters_paths_nest() {
        let s = spec(
            "taskType: text_embedding\nservice: custom\nserviceSettings: {url: 'https://x'}\n\
             secretSettings: {secret_parameters.token: {secretKeyRef: {name: a, key: k}}}\n",
        );
        let body = create_body(&s, SecretMode::Redacted);
        assert_eq!(
            body["service_settings"]["secret_parameters"]["token"],
            REDACTED
        );
    }

    #[test]
    fn headers_from_secrets_are_placeholders_for_custom_and_task_settings_for_openai() {
        let custom = spec(
            "taskType: rerank\nservice: custom\nserviceSettings: {url: 'https://x', headers: {Content-Type: application/json}}\n\
             secretSettings: {headers.X-Api-Key: {secretKeyRef: {name: a, key: h}}}\n",
        );
        let mut values = SecretValues::default();
        values
            .values
            .insert("headers.X-Api-Key".into(), SecretString::from("hdr-SECRET"));
        let body = create_body(&custom, SecretMode::Reveal(&values));
        let ss = &body["service_settings"];
        assert_eq!(
            ss["headers"]["X-Api-Key"],
            "${es_inference_header_X-Api-Key}"
        );
        assert_eq!(ss["headers"]["Content-Type"], "application/json");
        assert_eq!(
            ss["secret_parameters"]["es_inference_header_X-Api-Key"],
            "hdr-SECRET"
        );
        // Rotation sends the parameter again; the placeholder is part of the compared config.
        let update = update_body(
            &custom,
            SecretMode::Reveal(&values),
            &[],
            Version::new(9, 1, 0),
        )
        .expect("body");
        assert_eq!(
            update["service_settings"]["secret_parameters"]["es_inference_header_X-Api-Key"],
            "hdr-SECRET"
        );
        assert!(update["service_settings"].get("headers").is_none());
        let stored = observed(json!({
            "inference_id": "c", "task_type": "rerank", "service": "custom",
            "service_settings": {"url": "https://x", "headers": {"Content-Type": "application/json",
                "X-Api-Key": "${es_inference_header_X-Api-Key}"}}
        }));
        assert!(diff(&custom, &stored, Version::new(9, 1, 0)).is_empty());
        let without = observed(json!({
            "inference_id": "c", "task_type": "rerank", "service": "custom",
            "service_settings": {"url": "https://x", "headers": {"Content-Type": "application/json"}}
        }));
        assert!(
            !diff(&custom, &without, Version::new(9, 1, 0)).is_empty(),
            "a header added later is a change"
        );
        let openai = spec(
            "taskType: completion\nservice: openai\nserviceSettings: {model_id: m}\n\
             secretSettings: {task_settings.headers.X-Org-Token: {secretKeyRef: {name: a, key: t}}}\n",
        );
        let body = create_body(&openai, SecretMode::Redacted);
        assert_eq!(body["task_settings"]["headers"]["X-Org-Token"], REDACTED);
        assert!(body["service_settings"].get("headers").is_none());
    }

    #[test]
    fn update_body_always_carries_secrets_and_task_settings() {
        let s = spec(
            "taskType: completion\nservice: anthropic\nserviceSettings: {model_id: claude}\n\
             secretSettings: {api_key: {secretKeyRef: {name: a, key: k}}}\ntaskSettings: {max_tokens: 10}\n",
        );
        let body = update_body(&s, SecretMode::Redacted, &[], V91).expect("non-empty");
        assert_eq!(body["service_settings"], json!({"api_key": REDACTED}));
        assert_eq!(body["task_settings"], json!({"max_tokens": 10}));
        assert!(body.get("service").is_none(), "service is not updatable");
    }

    #[test]
    fn update_body_is_none_when_nothing_to_send() {
        let s = spec(
            "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2}\n",
        );
        assert_eq!(update_body(&s, SecretMode::Redacted, &[], V91), None);
    }

    #[test]
    fn server_defaults_are_not_drift() {
        // Real GET body with rate_limit, similarity, dimensions and chunking added by ES.
        let s = spec(
            "taskType: text_embedding\nservice: openai\nserviceSettings: {model_id: text-embedding-3-small, dimensions: 128}\n\
             secretSettings: {api_key: {secretKeyRef: {name: a, key: k}}}\n",
        );
        let o = observed(json!({
            "inference_id": "x", "task_type": "text_embedding", "service": "openai",
            "service_settings": {"model_id": "text-embedding-3-small", "similarity": "dot_product",
                "dimensions": 128, "rate_limit": {"requests_per_minute": 3000}},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }));
        assert!(diff(&s, &o, V91).is_empty());
    }

    #[test]
    fn immutable_and_mutable_differences_are_classified() {
        let s = spec(
            "taskType: completion\nservice: anthropic\nserviceSettings: {model_id: claude-2}\ntaskSettings: {max_tokens: 20}\n",
        );
        let o = observed(json!({
            "inference_id": "x", "task_type": "completion", "service": "anthropic",
            "service_settings": {"model_id": "claude-1", "rate_limit": {"requests_per_minute": 50}},
            "task_settings": {"max_tokens": 10}
        }));
        let d = diff(&s, &o, V91);
        assert_eq!(
            d,
            vec![
                FieldDiff {
                    field: "service_settings.model_id".into(),
                    mutable: false
                },
                FieldDiff {
                    field: "task_settings.max_tokens".into(),
                    mutable: true
                },
            ]
        );
    }

    #[test]
    fn builtin_models_tolerate_platform_ids_and_adaptive_allocations() {
        let s = spec(
            "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2, num_threads: 1, \
             num_allocations: 1, adaptive_allocations: {enabled: true, min_number_of_allocations: 1, max_number_of_allocations: 4}}\n",
        );
        let o = observed(json!({
            "inference_id": "x", "task_type": "sparse_embedding", "service": "elasticsearch",
            "service_settings": {"model_id": ".elser_model_2_linux-x86_64", "num_threads": 1, "num_allocations": 3,
                "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 1, "max_number_of_allocations": 4}},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }));
        assert!(diff(&s, &o, V91).is_empty());
    }

    #[test]
    fn num_allocations_is_mutable_for_builtin_models() {
        let s = spec(
            "taskType: text_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .multilingual-e5-small, num_allocations: 2, num_threads: 1}\n",
        );
        let o = observed(json!({
            "inference_id": "x", "task_type": "text_embedding", "service": "elasticsearch",
            "service_settings": {"model_id": ".multilingual-e5-small", "num_allocations": 1, "num_threads": 1}
        }));
        let d = diff(&s, &o, V91);
        assert_eq!(
            d,
            vec![FieldDiff {
                field: "service_settings.num_allocations".into(),
                mutable: true
            }]
        );
        let body = update_body(&s, SecretMode::Redacted, &d, V91).expect("body");
        assert_eq!(body["service_settings"], json!({"num_allocations": 2}));
    }

    #[test]
    fn chunking_compared_only_when_set_and_mutable_from_9_5() {
        let s = spec(
            "taskType: text_embedding\nservice: openai\nserviceSettings: {model_id: m}\nchunkingSettings: {strategy: word, maxChunkSize: 100, overlap: 20}\n",
        );
        let o = observed(json!({
            "inference_id": "x", "task_type": "text_embedding", "service": "openai",
            "service_settings": {"model_id": "m"},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }));
        assert_eq!(
            diff(&s, &o, V91),
            vec![FieldDiff {
                field: "chunking_settings".into(),
                mutable: false
            }]
        );
        let d = diff(&s, &o, Version::new(9, 5, 0));
        assert!(d[0].mutable);
        let body = update_body(&s, SecretMode::Redacted, &d, Version::new(9, 5, 0)).expect("body");
        assert_eq!(
            body["chunking_settings"],
            json!({"strategy": "word", "max_chunk_size": 100, "overlap": 20})
        );
    }

    #[test]
    fn config_hash_changes_with_settings_not_with_policies() {
        let a = spec("taskType: completion\nservice: anthropic\nserviceSettings: {model_id: m}\n");
        let mut b = a.clone();
        b.adopt = true;
        b.force_delete = true;
        assert_eq!(config_hash(&a), config_hash(&b));
        let mut c = a.clone();
        c.service_settings.insert("model_id".into(), json!("n"));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(a.task_type, TaskType::Completion);
    }

    #[test]
    fn subset_semantics() {
        assert!(subset(&json!({"a": 1}), &json!({"a": 1.0, "b": 2})));
        assert!(subset(
            &json!({"a": {"x": 1}}),
            &json!({"a": {"x": 1, "y": 2}})
        ));
        assert!(!subset(&json!({"a": 2}), &json!({"a": 1})));
        assert!(!subset(&json!([1, 2]), &json!([1])));
        assert!(subset(&json!({"missing": 1}), &json!({})));
    }
}
