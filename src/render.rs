//! `render`: the exact create requests the operator would send for a manifest, offline, with
//! secret values redacted, after the checks the API server and the operator make (the CRD's
//! schema rules, the operator's bounds). For code review and CI.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::Value;

use crate::{
    config::RenderArgs,
    crd::{InferenceEndpoint, SECRET_SETTING_KEYS},
    desired::{SecretMode, create_body, create_timeout, validate},
    es::create_timeout_param,
    model::Version,
    secrets::check_references,
};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

/// The `render` command: read the files named by `args` and render them.
pub fn run(args: &RenderArgs) -> Result<String, String> {
    let read = |p: &std::path::Path| -> Result<String, String> {
        let text = if p.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(p)
        };
        text.map_err(|e| format!("{}: {e}", p.display()))
    };
    let manifests = read(&args.file)?;
    let secrets = args
        .secret
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let version = Version::parse(&args.elasticsearch_version).ok_or_else(|| {
        format!(
            "invalid --elasticsearch-version {:?}",
            args.elasticsearch_version
        )
    })?;
    render(&manifests, &secrets, version, args.create_timeout).map_err(|e| e.to_string())
}

/// A YAML error without the parser's message, which can quote the document (and so a secret
/// value): only where it is.
fn yaml_error(what: &str, e: &serde_saphyr::Error) -> RenderError {
    match e.location() {
        Some(l) => RenderError::Parse(format!(
            "{what} is not valid YAML (line {}, column {})",
            l.line(),
            l.column()
        )),
        None => RenderError::Parse(format!("{what} is not valid YAML")),
    }
}

fn schema() -> Value {
    let crd = InferenceEndpoint::crd();
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default()
}

/// Render every InferenceEndpoint in `manifests` (multi-document YAML). `secrets` holds Secret
/// manifests used only to check that referenced keys exist. `default_create_timeout` is the
/// operator's `--create-timeout`.
pub fn render(
    manifests: &str,
    secrets: &[String],
    version: Version,
    default_create_timeout: Duration,
) -> Result<String, RenderError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(manifests).map_err(|e| yaml_error("the manifest", &e))?;
    let known = known_secrets(secrets)?;
    let schema = schema();
    let mut out = String::new();
    let mut problems = Vec::new();
    for doc in docs {
        if doc.get("kind").and_then(Value::as_str) != Some("InferenceEndpoint") {
            continue;
        }
        // The API server's checks first: the schema's CEL rules, as `kubectl apply` would.
        if let Err(e) = Validator::new().validate(&schema, &doc, None) {
            let name = doc.pointer("/metadata/name").and_then(Value::as_str);
            problems.push(format!("{}: {e}", name.unwrap_or("<unnamed>")));
            continue;
        }
        let ie: InferenceEndpoint = serde_json::from_value(doc)
            .map_err(|e| RenderError::Parse(format!("invalid InferenceEndpoint: {e}")))?;
        let ns = ie
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = ie.metadata.name.clone().unwrap_or_default();
        problems.extend(check(&ie, &ns, &name, &known, !secrets.is_empty()));
        let timeout = create_timeout(&ie.spec, default_create_timeout);
        let query = if version.put_accepts_timeout() {
            format!("?timeout={}", create_timeout_param(timeout))
        } else {
            String::new()
        };
        let body = create_body(&ie.spec, SecretMode::Redacted);
        out.push_str(&format!(
            "# {ns}/{name}\nPUT /_inference/{}/{}{query}\n{}\n\n",
            ie.spec.task_type,
            ie.inference_id(),
            serde_json::to_string_pretty(&body).map_err(|e| RenderError::Parse(e.to_string()))?
        ));
    }
    if !problems.is_empty() {
        return Err(RenderError::Invalid(problems.join("\n")));
    }
    Ok(out)
}

/// The Secrets in the `--secret` files, by (namespace, name).
fn known_secrets(secrets: &[String]) -> Result<BTreeMap<(String, String), Secret>, RenderError> {
    let mut known = BTreeMap::new();
    for text in secrets {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| yaml_error("a --secret file", &e))?;
        for d in docs
            .into_iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some("Secret"))
        {
            let s: Secret = serde_json::from_value(d).map_err(|_| {
                RenderError::Parse("a --secret document is not a valid Secret".into())
            })?;
            let ns = s
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            known.insert((ns, s.metadata.name.clone().unwrap_or_default()), s);
        }
    }
    Ok(known)
}

/// The operator's own checks of one resource (names keys, never values).
fn check(
    ie: &InferenceEndpoint,
    ns: &str,
    name: &str,
    known: &BTreeMap<(String, String), Secret>,
    have_secrets: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for k in SECRET_SETTING_KEYS {
        if ie.spec.service_settings.contains_key(*k) {
            problems.push(format!(
                "{ns}/{name}: serviceSettings.{k} is a credential: move it to a Secret and reference it from secretSettings.{k}"
            ));
        }
    }
    if let Err(p) = validate(&ie.spec) {
        problems.push(format!("{ns}/{name}: {p}"));
    }
    if let Err(p) = check_references(&ie.spec, ns) {
        problems.push(format!("{ns}/{name}: {p}"));
    }
    if have_secrets {
        for (setting, src) in &ie.spec.secret_settings {
            let r = &src.secret_key_ref;
            let has_key = known
                .get(&(ns.to_string(), r.name.clone()))
                .is_some_and(|s| {
                    s.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
                        || s.string_data
                            .as_ref()
                            .is_some_and(|d| d.contains_key(&r.key))
                });
            if !has_key {
                problems.push(format!(
                    "{ns}/{name}: secretSettings.{setting}: Secret {:?} with key {:?} not found in the --secret files",
                    r.name, r.key
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const IE: &str = r#"
apiVersion: es-inference.dev/v1alpha1
kind: InferenceEndpoint
metadata: {name: claude, namespace: search}
spec:
  inferenceId: claude-completion
  taskType: completion
  service: anthropic
  serviceSettings: {model_id: claude-sonnet-4-5}
  secretSettings:
    api_key: {secretKeyRef: {name: anthropic, key: api-key}}
  taskSettings: {max_tokens: 1024}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"#;

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: anthropic, namespace: search}\nstringData: {api-key: sk-ant-REAL-VALUE}\n";

    fn r(manifest: &str, secrets: &[String], v: Version) -> Result<String, RenderError> {
        render(manifest, secrets, v, Duration::from_secs(60))
    }

    #[test]
    fn renders_create_request_with_redacted_secret() {
        let out = r(IE, &[SECRET.to_string()], Version::new(9, 1, 0)).expect("renders");
        assert!(
            out.contains("PUT /_inference/completion/claude-completion?timeout=60s"),
            "{out}"
        );
        assert!(out.contains(r#""api_key": "<redacted>""#), "{out}");
        assert!(!out.contains("sk-ant-REAL-VALUE"));
        assert!(out.contains(r#""max_tokens": 1024"#));
        let old = r(IE, &[], Version::new(9, 0, 0)).expect("renders");
        assert!(
            old.contains("PUT /_inference/completion/claude-completion\n"),
            "9.0 rejects timeout: {old}"
        );
    }

    #[test]
    fn uses_the_timeouts_the_operator_sends() {
        let own = IE.replace(
            "  taskType: completion",
            "  taskType: completion\n  createTimeout: 2m",
        );
        let out = r(&own, &[], Version::new(9, 1, 0)).expect("renders");
        assert!(out.contains("?timeout=120s"), "{out}");
        let elser = "apiVersion: es-inference.dev/v1alpha1\nkind: InferenceEndpoint\nmetadata: {name: elser, namespace: s}\nspec:\n  taskType: sparse_embedding\n  service: elasticsearch\n  serviceSettings: {model_id: .elser_model_2, num_allocations: 1, num_threads: 1}\n";
        let out = r(elser, &[], Version::new(9, 1, 0)).expect("renders");
        assert!(
            out.contains("?timeout=300s"),
            "built-in models wait 5m: {out}"
        );
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        // chunkingSettings on a completion endpoint: a CEL rule of the CRD.
        let bad = IE.replace(
            "  taskSettings: {max_tokens: 1024}",
            "  taskSettings: {max_tokens: 1024}\n  chunkingSettings: {strategy: none}",
        );
        let e = r(&bad, &[], Version::new(9, 1, 0)).expect_err("refused");
        assert!(e.to_string().contains("chunkingSettings apply only"), "{e}");
    }

    #[test]
    fn reports_missing_secret_keys_and_inline_credentials() {
        let wrong = SECRET.replace("api-key", "other");
        let e = r(IE, &[wrong], Version::new(9, 1, 0)).expect_err("missing key");
        assert!(e.to_string().contains("\"api-key\""), "{e}");
        assert!(!e.to_string().contains("sk-ant-REAL-VALUE"));
        let inline = IE.replace(
            "{model_id: claude-sonnet-4-5}",
            "{model_id: m, api_key: sk-inline}",
        );
        let e = r(&inline, &[], Version::new(9, 1, 0)).expect_err("inline key");
        assert!(
            e.to_string()
                .contains("serviceSettings.api_key is a credential"),
            "{e}"
        );
        assert!(!e.to_string().contains("sk-inline"), "{e}");
    }

    #[test]
    fn yaml_errors_never_quote_the_input() {
        let broken_secret = "kind: Secret\nstringData: {api-key: sk-LEAK\n";
        let e = r(IE, &[broken_secret.to_string()], Version::new(9, 1, 0)).expect_err("invalid");
        assert!(!e.to_string().contains("sk-LEAK"), "{e}");
        let broken_manifest = format!("{IE}\n---\nkind: Secret\nstringData: {{api-key: sk-LEAK2\n");
        let e = r(&broken_manifest, &[], Version::new(9, 1, 0)).expect_err("invalid");
        assert!(!e.to_string().contains("sk-LEAK2"), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
    }
}
