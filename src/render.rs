//! `render`: the exact create requests the operator would send for a manifest, offline, with
//! secret values redacted, after the checks the API server and the operator make: the CRD's
//! schema (unknown fields refused, as `kubectl apply` with strict field validation does) and CEL
//! rules, the operator's bounds, and what Elasticsearch of the given version accepts
//! (`catalog`). For code review and CI. No error quotes a value from the manifests.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::Value;

use crate::{
    catalog,
    config::RenderArgs,
    crd::{GROUP, InferenceEndpoint, SECRET_SETTING_KEYS},
    desired::{SecretMode, create_body, create_timeout, validate},
    es::create_timeout_param,
    model::Version,
    secrets::check_references,
};

/// The apiVersion of InferenceEndpoint documents.
const API_VERSION: &str = "es-inference.dev/v1alpha1";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

/// A manifest file: the name errors use, and its text.
pub struct Input {
    pub name: String,
    pub text: String,
}

/// The `render` command: read the files named by `args` and render them.
pub fn run(args: &RenderArgs) -> Result<String, String> {
    let read = |p: &std::path::Path| -> Result<Input, String> {
        let text = if p.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(p)
        };
        let name = if p.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            p.display().to_string()
        };
        text.map(|text| Input {
            name: name.clone(),
            text,
        })
        .map_err(|e| format!("{name}: {e}"))
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
fn yaml_error(file: &str, e: &serde_saphyr::Error) -> RenderError {
    match e.location() {
        Some(l) => RenderError::Parse(format!(
            "{file}: not valid YAML (line {}, column {})",
            l.line(),
            l.column()
        )),
        None => RenderError::Parse(format!("{file}: not valid YAML")),
    }
}

/// A message of serde or the CEL validator without the values it quotes: `invalid type: string
/// "sk-…", expected …` keeps its shape, never the string.
fn unquoted(message: &str) -> String {
    let mut out = String::new();
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            out.push_str("<value>");
        } else {
            out.push_str(part);
        }
    }
    out
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

/// Fields of `doc` that `schema` does not declare (what the API server refuses under strict
/// field validation, or silently drops otherwise), by path. Objects that keep unknown fields
/// (settings) and objects without declared properties (metadata, checked by the API server as
/// ObjectMeta) are not looked into, except for the properties they declare.
fn unknown_fields(schema: &Value, doc: &Value, path: &str, out: &mut Vec<String>) {
    match doc {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keeps_unknown = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            for (k, v) in m {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) | (None, Some(s)) => unknown_fields(s, v, &child, out),
                    (None, None) if props.is_some() && !keeps_unknown => out.push(child),
                    (None, None) => {}
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, v) in a.iter().enumerate() {
                    unknown_fields(items, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Render every InferenceEndpoint in `manifests` (multi-document YAML). `secrets` holds Secret
/// manifests used only to check that referenced keys exist. `default_create_timeout` is the
/// operator's `--create-timeout`. Every problem of every object is reported, each naming its
/// file and object; an object the operator would not send is an error, never a silent skip.
pub fn render(
    manifests: &Input,
    secrets: &[Input],
    version: Version,
    default_create_timeout: Duration,
) -> Result<String, RenderError> {
    let file = manifests.name.as_str();
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&manifests.text).map_err(|e| yaml_error(file, &e))?;
    let known = known_secrets(secrets)?;
    let schema = schema();
    let mut out = String::new();
    let mut problems = Vec::new();
    let mut found = 0;
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.get("kind").and_then(Value::as_str) != Some("InferenceEndpoint") {
            continue;
        }
        found += 1;
        let ns = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("<document {}>", index + 1), str::to_string);
        let at = format!("{file}: InferenceEndpoint {ns}/{name}");
        match render_one(
            &doc,
            &schema,
            version,
            default_create_timeout,
            &known,
            !secrets.is_empty(),
        ) {
            Ok(text) => out.push_str(&format!("# {ns}/{name}\n{text}")),
            Err(list) => problems.extend(list.into_iter().map(|p| format!("{at}: {p}"))),
        }
    }
    if found == 0 && problems.is_empty() {
        problems.push(format!(
            "{file}: no InferenceEndpoint (kind: InferenceEndpoint, apiVersion: {API_VERSION}) in it"
        ));
    }
    if !problems.is_empty() {
        return Err(RenderError::Invalid(problems.join("\n")));
    }
    Ok(out)
}

/// One InferenceEndpoint document: its request, or its problems (naming fields, never values).
fn render_one(
    doc: &Value,
    schema: &Value,
    version: Version,
    default_create_timeout: Duration,
    known: &BTreeMap<(String, String), Secret>,
    have_secrets: bool,
) -> Result<String, Vec<String>> {
    let api_version = doc.get("apiVersion").and_then(Value::as_str);
    if api_version != Some(API_VERSION) {
        return Err(vec![format!(
            "apiVersion must be {API_VERSION} (the only version of the {GROUP} InferenceEndpoint){}",
            if api_version.is_none() {
                "; it is missing"
            } else {
                ""
            }
        )]);
    }
    let mut unknown = Vec::new();
    if let Value::Object(top) = doc {
        // apiVersion, kind and metadata are the API server's own (metadata: ObjectMeta).
        let rest: serde_json::Map<String, Value> = top
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        unknown_fields(schema, &Value::Object(rest), "", &mut unknown);
    }
    if !unknown.is_empty() {
        return Err(unknown
            .into_iter()
            .map(|f| format!("unknown field {f} (the API server refuses it, or drops it without strict field validation)"))
            .collect());
    }
    // The API server's checks: the schema's CEL rules, as `kubectl apply` would.
    if let Err(e) = Validator::new().validate(schema, doc, None) {
        return Err(vec![unquoted(&e.to_string())]);
    }
    let ie: InferenceEndpoint = serde_path_to_error::deserialize(doc).map_err(|e| {
        vec![format!(
            "{}: {}",
            e.path(),
            unquoted(&e.inner().to_string())
        )]
    })?;
    let ns = ie.metadata.namespace.as_deref().unwrap_or("default");
    let problems = check(&ie, ns, known, have_secrets, version);
    if !problems.is_empty() {
        return Err(problems);
    }
    let timeout = create_timeout(&ie.spec, default_create_timeout);
    let query = if version.put_accepts_timeout() {
        format!("?timeout={}", create_timeout_param(timeout))
    } else {
        String::new()
    };
    let mut text = String::new();
    if let Ok(unknown) = catalog::check_version(&ie.spec, version) {
        for u in unknown {
            text.push_str(&format!("# warning: {u}\n"));
        }
    }
    let body = create_body(&ie.spec, SecretMode::Redacted);
    let pretty = serde_json::to_string_pretty(&body).map_err(|e| vec![e.to_string()])?;
    text.push_str(&format!(
        "PUT /_inference/{}/{}{query}\n{pretty}\n\n",
        ie.spec.task_type,
        ie.inference_id(),
    ));
    Ok(text)
}

/// The Secrets in the `--secret` files, by (namespace, name).
fn known_secrets(secrets: &[Input]) -> Result<BTreeMap<(String, String), Secret>, RenderError> {
    let mut known = BTreeMap::new();
    for input in secrets {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&input.text).map_err(|e| yaml_error(&input.name, &e))?;
        for d in docs
            .into_iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some("Secret"))
        {
            let s: Secret = serde_json::from_value(d).map_err(|_| {
                RenderError::Parse(format!("{}: a document is not a valid Secret", input.name))
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
    known: &BTreeMap<(String, String), Secret>,
    have_secrets: bool,
    version: Version,
) -> Vec<String> {
    let mut problems = Vec::new();
    for k in SECRET_SETTING_KEYS {
        if ie.spec.service_settings.contains_key(*k) {
            let reference = if *k == "secret_parameters" {
                "secretSettings.secret_parameters.<name>, one entry per parameter".to_string()
            } else {
                format!("secretSettings.{k}")
            };
            problems.push(format!(
                "serviceSettings.{k} is a credential: move it to a Secret and reference it from {reference}"
            ));
        }
    }
    if let Err(p) = validate(&ie.spec) {
        problems.push(p.to_string());
    }
    if let Err(p) = catalog::check_secrets(&ie.spec) {
        problems.push(p.to_string());
    }
    if let Err(u) = catalog::check_version(&ie.spec, version) {
        problems.push(format!("{} (reason UnsupportedByCluster)", u));
    }
    if let Err(p) = check_references(&ie.spec, ns) {
        problems.push(p.to_string());
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
                    "secretSettings.{setting}: Secret {:?} with key {:?} not found in the --secret files",
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

    fn input(text: &str) -> Input {
        Input {
            name: "ie.yaml".into(),
            text: text.into(),
        }
    }

    fn r(manifest: &str, secrets: &[String], v: Version) -> Result<String, RenderError> {
        let secrets: Vec<Input> = secrets.iter().map(|s| input(s)).collect();
        render(&input(manifest), &secrets, v, Duration::from_secs(60))
    }

    fn refused(manifest: &str, v: Version) -> String {
        r(manifest, &[], v).expect_err("refused").to_string()
    }

    fn ie(service: &str, task: &str, rest: &str) -> String {
        format!(
            "apiVersion: es-inference.dev/v1alpha1\nkind: InferenceEndpoint\nmetadata: {{name: e, namespace: s}}\nspec:\n  taskType: {task}\n  service: {service}\n{rest}"
        )
    }

    const V9_1: Version = Version::new(9, 1, 0);

    #[test]
    fn refuses_what_the_cluster_version_cannot_accept() {
        let chat = ie(
            "openai",
            "chat_completion",
            "  serviceSettings: {model_id: gpt-4o}\n  secretSettings: {api_key: {secretKeyRef: {name: o, key: k}}}\n",
        );
        let e = refused(&chat, Version::new(8, 17, 0));
        assert!(
            e.contains("task type chat_completion needs Elasticsearch 8.18"),
            "{e}"
        );
        assert!(e.contains("UnsupportedByCluster"), "{e}");
        assert!(e.contains("ie.yaml: InferenceEndpoint s/e"), "{e}");
        assert!(r(&chat, &[], Version::new(8, 18, 0)).is_ok());
        let embedding = chat.replace("chat_completion", "embedding");
        let e = refused(&embedding, V9_1);
        assert!(
            e.contains("task type embedding needs Elasticsearch 9.4"),
            "{e}"
        );
        let recursive = ie(
            "elasticsearch",
            "text_embedding",
            "  serviceSettings: {model_id: .multilingual-e5-small, num_allocations: 1, num_threads: 1}\n  chunkingSettings: {strategy: recursive, maxChunkSize: 200, separatorGroup: markdown}\n",
        );
        let e = refused(&recursive, Version::new(9, 0, 0));
        assert!(
            e.contains("chunking strategy recursive needs Elasticsearch"),
            "{e}"
        );
        assert!(r(&recursive, &[], V9_1).is_ok());
        let groq = ie(
            "groq",
            "chat_completion",
            "  serviceSettings: {model_id: m}\n  secretSettings: {api_key: {secretKeyRef: {name: g, key: k}}}\n",
        );
        let e = refused(&groq, Version::new(9, 2, 0));
        assert!(e.contains("service groq needs Elasticsearch 9.3"), "{e}");
    }

    #[test]
    fn refuses_secret_settings_the_service_cannot_take() {
        let bedrock = ie(
            "amazonbedrock",
            "text_embedding",
            "  serviceSettings: {region: us-east-1, model: amazon.titan-embed-text-v2:0, provider: amazontitan}\n  secretSettings:\n    access_key: {secretKeyRef: {name: aws, key: id}}\n",
        );
        let e = refused(&bedrock, V9_1);
        assert!(e.contains("secret_key"), "{e}");
        let azure = ie(
            "azureopenai",
            "completion",
            "  serviceSettings: {resource_name: r, deployment_id: d, api_version: '2024-02-01'}\n  secretSettings:\n    api_key: {secretKeyRef: {name: az, key: k}}\n    entra_id: {secretKeyRef: {name: az, key: e}}\n",
        );
        let e = refused(&azure, V9_1);
        assert!(e.contains("exactly one of"), "{e}");
        let whole = ie(
            "custom",
            "rerank",
            "  serviceSettings: {url: 'https://x', request: {content: '{}'}, response: {json_parser: {}}}\n  secretSettings:\n    secret_parameters: {secretKeyRef: {name: c, key: k}}\n",
        );
        let e = refused(&whole, V9_1);
        assert!(e.contains("secret_parameters.<name>"), "{e}");
        let inline = whole
            .replace(
                "  secretSettings:\n    secret_parameters: {secretKeyRef: {name: c, key: k}}\n",
                "",
            )
            .replace(
                "response: {json_parser: {}}",
                "response: {json_parser: {}}, secret_parameters: {token: sk-INLINE}",
            );
        let e = refused(&inline, V9_1);
        assert!(e.contains("secret_parameters.<name>"), "{e}");
        assert!(!e.contains("sk-INLINE"), "{e}");
    }

    #[test]
    fn credential_headers_come_from_secrets() {
        let literal = ie(
            "custom",
            "rerank",
            "  serviceSettings: {url: 'https://x', request: {content: '{}'}, response: {json_parser: {}}, headers: {Authorization: Bearer sk-HEADER}}\n",
        );
        let e = refused(&literal, V9_1);
        assert!(
            e.contains("serviceSettings.headers must not hold credentials"),
            "{e}"
        );
        assert!(!e.contains("sk-HEADER"), "{e}");
        let placeholder = literal.replace("Bearer sk-HEADER", "'${token}'")
            + "  secretSettings:\n    secret_parameters.token: {secretKeyRef: {name: c, key: t}}\n";
        let out = r(&placeholder, &[], V9_1).expect("a placeholder is no credential");
        assert!(out.contains("${token}"), "{out}");
        let task = ie(
            "openai",
            "completion",
            "  serviceSettings: {model_id: m}\n  secretSettings:\n    api_key: {secretKeyRef: {name: o, key: k}}\n    task_settings.headers.X-Org-Token: {secretKeyRef: {name: o, key: t}}\n  taskSettings: {headers: {Content-Type: application/json}}\n",
        );
        let out = r(&task, &[], V9_1).expect("renders");
        let body: Value =
            serde_json::from_str(out[out.find('{').expect("body")..].trim()).expect("json");
        assert_eq!(
            body["task_settings"]["headers"]["X-Org-Token"], "<redacted>",
            "{out}"
        );
        assert_eq!(
            body["task_settings"]["headers"]["Content-Type"],
            "application/json"
        );
        let literal_task = task.replace("Content-Type: application/json", "x-api-key: sk-TASK");
        let e = refused(&literal_task, V9_1);
        assert!(
            e.contains("taskSettings.headers must not hold credentials"),
            "{e}"
        );
        assert!(!e.contains("sk-TASK"), "{e}");
        let wrong_place = task.replace("service: openai", "service: anthropic");
        let e = refused(&wrong_place, V9_1);
        assert!(e.contains("has no task_settings.headers"), "{e}");
    }

    #[test]
    fn strict_like_the_api_server() {
        let typo = IE.replace("serviceSettings:", "serviceSetings:");
        let e = refused(&typo, V9_1);
        assert!(e.contains("unknown field spec.serviceSetings"), "{e}");
        let wrong_group = IE.replace("es-inference.dev/v1alpha1", "es-inference.dev/v1");
        let e = refused(&wrong_group, V9_1);
        assert!(
            e.contains("apiVersion must be es-inference.dev/v1alpha1"),
            "{e}"
        );
        let none = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        let e = refused(none, V9_1);
        assert!(e.contains("ie.yaml: no InferenceEndpoint"), "{e}");
        // A key pasted where a reference belongs: named, never quoted.
        let pasted = IE.replace(
            "api_key: {secretKeyRef: {name: anthropic, key: api-key}}",
            "api_key: sk-ant-PASTED",
        );
        let e = refused(&pasted, V9_1);
        assert!(e.contains("secretSettings.api_key"), "{e}");
        assert!(!e.contains("sk-ant-PASTED"), "{e}");
    }

    #[test]
    fn unknown_services_render_with_a_warning() {
        let new = ie(
            "mixedbread",
            "rerank",
            "  serviceSettings: {model_id: m}\n  secretSettings: {api_key: {secretKeyRef: {name: m, key: k}}}\n",
        );
        let out = r(&new, &[], V9_1).expect("an unknown service is not refused");
        assert!(
            out.contains("# warning: service \"mixedbread\" is not in this operator's table"),
            "{out}"
        );
        assert!(out.contains("PUT /_inference/rerank/e"), "{out}");
        let new_task = ie(
            "anthropic",
            "text_embedding",
            "  serviceSettings: {model_id: m}\n  secretSettings: {api_key: {secretKeyRef: {name: a, key: k}}}\n",
        );
        let out = r(&new_task, &[], V9_1).expect("an unknown pair is not refused");
        assert!(
            out.contains("# warning: task type text_embedding of service anthropic"),
            "{out}"
        );
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
