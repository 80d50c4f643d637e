//! `render`: the exact requests the operator would send for a manifest, offline, with secret
//! values redacted. For code review and CI.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::{
    crd::{InferenceEndpoint, SECRET_SETTING_KEYS},
    desired::{SecretMode, create_body},
    es::Version,
    secrets::check_references,
};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

/// Render every InferenceEndpoint in `manifests` (multi-document YAML). `secrets` holds Secret
/// manifests used only to check that referenced keys exist.
pub fn render(
    manifests: &str,
    secrets: &[String],
    version: Version,
    create_timeout: std::time::Duration,
) -> Result<String, RenderError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifests)
        .map_err(|e| RenderError::Parse(format!("cannot parse the manifest: {e}")))?;
    let mut known: BTreeMap<(String, String), Secret> = BTreeMap::new();
    for text in secrets {
        // The error text of a parser can quote the document: never show it for Secrets.
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|_| RenderError::Parse("a --secret file is not valid YAML".into()))?;
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
    let mut out = String::new();
    let mut problems = Vec::new();
    for doc in docs {
        if doc.get("kind").and_then(Value::as_str) != Some("InferenceEndpoint") {
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
        let id = ie.inference_id();
        for k in SECRET_SETTING_KEYS {
            if ie.spec.service_settings.contains_key(*k) {
                problems.push(format!(
                    "{ns}/{name}: serviceSettings.{k} is a credential: move it to a Secret and reference it from secretSettings.{k}"
                ));
            }
        }
        if let Err(p) = check_references(&ie.spec, &ns) {
            problems.push(format!("{ns}/{name}: {p}"));
        }
        if !secrets.is_empty() {
            for (setting, src) in &ie.spec.secret_settings {
                let r = &src.secret_key_ref;
                let has_key = known.get(&(ns.clone(), r.name.clone())).is_some_and(|s| {
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
        let query = if version.put_accepts_timeout() {
            format!("?timeout={}s", create_timeout.as_secs())
        } else {
            String::new()
        };
        let body = create_body(&ie.spec, SecretMode::Redacted);
        out.push_str(&format!(
            "# {ns}/{name}\nPUT /_inference/{}/{id}{query}\n{}\n\n",
            ie.spec.task_type,
            serde_json::to_string_pretty(&body).map_err(|e| RenderError::Parse(e.to_string()))?
        ));
    }
    if !problems.is_empty() {
        return Err(RenderError::Invalid(problems.join("\n")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[test]
    fn renders_create_request_with_redacted_secret() {
        let out = render(
            IE,
            &[SECRET.to_string()],
            Version::new(9, 1, 0),
            Duration::from_secs(60),
        )
        .expect("renders");
        assert!(
            out.contains("PUT /_inference/completion/claude-completion?timeout=60s"),
            "{out}"
        );
        assert!(out.contains(r#""api_key": "<redacted>""#), "{out}");
        assert!(!out.contains("sk-ant-REAL-VALUE"));
        assert!(out.contains(r#""max_tokens": 1024"#));
        let old = render(IE, &[], Version::new(9, 0, 0), Duration::from_secs(60)).expect("renders");
        assert!(
            old.contains("PUT /_inference/completion/claude-completion\n"),
            "9.0 rejects timeout: {old}"
        );
    }

    #[test]
    fn reports_missing_secret_keys_and_inline_credentials() {
        let wrong = SECRET.replace("api-key", "other");
        let e = render(IE, &[wrong], Version::new(9, 1, 0), Duration::from_secs(60))
            .expect_err("missing key");
        assert!(e.to_string().contains("\"api-key\""), "{e}");
        assert!(!e.to_string().contains("sk-ant-REAL-VALUE"));
        let inline = IE.replace(
            "{model_id: claude-sonnet-4-5}",
            "{model_id: m, api_key: sk-inline}",
        );
        let e = render(&inline, &[], Version::new(9, 1, 0), Duration::from_secs(60))
            .expect_err("inline key");
        assert!(
            e.to_string()
                .contains("serviceSettings.api_key is a credential"),
            "{e}"
        );
    }

    #[test]
    fn broken_secret_file_error_does_not_quote_it() {
        let broken = "kind: Secret\nstringData: {api-key: sk-LEAK\n";
        let e = render(
            IE,
            &[broken.to_string()],
            Version::new(9, 1, 0),
            Duration::from_secs(60),
        )
        .expect_err("invalid");
        assert!(!e.to_string().contains("sk-LEAK"), "{e}");
    }
}
