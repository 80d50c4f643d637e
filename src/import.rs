//! `import`: manifests for the endpoints a cluster already has, so that people who made them
//! with Kibana, Terraform, scripts or the console can hand them to the operator. Each endpoint
//! that is not preconfigured becomes an `InferenceEndpoint` with `adopt: true` and the settings
//! Elasticsearch returns (minus the defaults it adds), plus a Secret stub for its secret settings
//! (Elasticsearch never returns secrets). Applying the output, with the Secrets filled in, adopts
//! every endpoint: no create, no delete.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{
    catalog,
    config::ImportArgs,
    es::{EsClient, EsConfig},
    model::EndpointConfig,
};

/// What replaces a secret value in a stub.
pub const PLACEHOLDER: &str = "REPLACE-ME";

/// The secret settings a service needs (what Elasticsearch never returns), from the table of
/// services (`catalog`). A service the table does not know gets the usual `api_key`.
fn secret_keys(service: &str, settings: &Map<String, Value>) -> Vec<String> {
    let Some(row) = catalog::service(service) else {
        return vec!["api_key".into()];
    };
    match row.secrets {
        catalog::SecretRule::Parameters => settings
            .get("secret_parameters")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(|k| format!("secret_parameters.{k}")).collect())
            .unwrap_or_default(),
        // Alternatives (OpenAI and Azure OpenAI may use OAuth2 or Entra ID): the stub names the
        // first, the usual case; edit it for the others.
        rule => rule.stub_keys().iter().map(|k| (*k).to_string()).collect(),
    }
}

/// Take the credential headers Elasticsearch returned in clear out of `settings.headers` (a
/// `${…}` placeholder of the custom service stays): they become secret settings with `prefix`
/// (`headers.` or `task_settings.headers.`), never literal values in a manifest.
fn take_credential_headers(
    settings: &mut Map<String, Value>,
    prefix: &str,
    keep_placeholders: bool,
) -> Vec<String> {
    let Some(Value::Object(headers)) = settings.get_mut("headers") else {
        return Vec::new();
    };
    let names: Vec<String> = headers
        .iter()
        .filter(|(name, value)| {
            crate::crd::is_credential_header(name)
                && !(keep_placeholders && value.as_str().is_some_and(catalog::is_placeholder))
        })
        .map(|(name, _)| name.clone())
        .collect();
    for n in &names {
        headers.remove(n);
    }
    if headers.is_empty() {
        settings.remove("headers");
    }
    names.into_iter().map(|n| format!("{prefix}{n}")).collect()
}

/// Whether `chunking` is the default Elasticsearch gives new endpoints.
fn default_chunking(c: &Map<String, Value>) -> bool {
    *c == *json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
        .as_object()
        .expect("object")
}

/// A Kubernetes name for an inference id (DNS-1123: lowercase, digits, '-' and '.').
pub fn object_name(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    name.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(253)
        .collect()
}

/// Whether `id` matches a glob of `*` and `?`.
pub fn glob(pattern: &str, id: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(
        &pattern.chars().collect::<Vec<_>>(),
        &id.chars().collect::<Vec<_>>(),
    )
}

/// The manifests (Secret stub, InferenceEndpoint) of one endpoint, as YAML documents.
pub fn manifests(ep: &EndpointConfig, namespace: &str) -> Vec<Value> {
    let name = object_name(&ep.inference_id);
    let mut settings = ep.service_settings.clone();
    // Defaults Elasticsearch adds that the spec need not repeat.
    settings.remove("rate_limit");
    if let Some(Value::String(model)) = settings.get_mut("model_id")
        && let Some(base) = model.strip_suffix("_linux-x86_64")
    {
        *model = base.to_string();
    }
    let mut keys = secret_keys(&ep.service, &ep.service_settings);
    settings.remove("secret_parameters");
    keys.extend(take_credential_headers(&mut settings, "headers.", true));
    let mut task_settings = ep.task_settings.clone();
    keys.extend(take_credential_headers(
        &mut task_settings,
        "task_settings.headers.",
        false,
    ));
    let secret_name = format!("{name}-credentials");
    let mut spec = json!({
        "inferenceId": ep.inference_id,
        "taskType": ep.task_type,
        "service": ep.service,
        "adopt": true,
        "serviceSettings": settings,
    });
    if !task_settings.is_empty() {
        spec["taskSettings"] = Value::Object(task_settings);
    }
    if let Some(c) = &ep.chunking_settings
        && !default_chunking(c)
    {
        let camel: Map<String, Value> = c
            .iter()
            .filter(|(k, _)| k.as_str() != "separators" || !c.contains_key("separator_group"))
            .map(|(k, v)| {
                let key = match k.as_str() {
                    "max_chunk_size" => "maxChunkSize",
                    "sentence_overlap" => "sentenceOverlap",
                    "separator_group" => "separatorGroup",
                    other => other,
                };
                (key.to_string(), v.clone())
            })
            .collect();
        spec["chunkingSettings"] = Value::Object(camel);
    }
    let mut docs = Vec::new();
    if !keys.is_empty() {
        let refs: BTreeMap<String, Value> = keys
            .iter()
            .map(|k| {
                let key = k.replace(['.', '_'], "-");
                (
                    k.clone(),
                    json!({"secretKeyRef": {"name": secret_name, "key": key}}),
                )
            })
            .collect();
        spec["secretSettings"] = json!(refs);
        let data: BTreeMap<String, &str> = keys
            .iter()
            .map(|k| (k.replace(['.', '_'], "-"), PLACEHOLDER))
            .collect();
        docs.push(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": namespace},
            "stringData": data,
        }));
    }
    docs.push(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }));
    docs
}

fn yaml(docs: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The `import` command.
pub async fn run(args: &ImportArgs) -> Result<String, String> {
    let url = args
        .es
        .elasticsearch_url
        .clone()
        .ok_or("import needs --elasticsearch-url")?;
    let mut cfg = EsConfig::new(url, crate::run::es_auth(&args.es)?);
    cfg.ca_pem = crate::run::es_ca(&args.es)?;
    cfg.request_timeout = args.elasticsearch_timeout;
    let client = EsClient::new(&cfg, None, "import").map_err(|e| e.to_string())?;
    let info = client.info().await.map_err(|e| e.to_string())?;
    let list = client.list().await.map_err(|e| e.to_string())?;
    let mut out = format!(
        "# Imported from Elasticsearch {} (cluster {:?}). Fill in every {PLACEHOLDER}, then\n# kubectl apply: each endpoint is adopted, none is created or deleted.\n",
        info.version, info.name
    );
    let mut written = Vec::new();
    for raw in list {
        let ep = raw.parse().map_err(|e| e.to_string())?;
        if ep.inference_id.starts_with('.')
            || (!args.ids.is_empty() && !args.ids.iter().any(|g| glob(g, &ep.inference_id)))
        {
            continue;
        }
        let docs = manifests(&ep, &args.namespace);
        match &args.output {
            None => out.push_str(&yaml(&docs)?),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(format!("{}.yaml", object_name(&ep.inference_id)));
                std::fs::write(&path, yaml(&docs)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                written.push(path.display().to_string());
            }
        }
    }
    if args.output.is_some() {
        out.push_str(&format!("# wrote {} files:\n", written.len()));
        for w in written {
            out.push_str(&format!("#   {w}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(v: Value) -> EndpointConfig {
        serde_json::from_value(v).expect("endpoint")
    }

    #[test]
    fn an_endpoint_becomes_an_adopting_resource_and_a_secret_stub() {
        let docs = manifests(
            &ep(json!({
                "inference_id": "openai_embeddings", "task_type": "text_embedding", "service": "openai",
                "service_settings": {"model_id": "text-embedding-3-small", "dimensions": 128,
                    "similarity": "dot_product", "rate_limit": {"requests_per_minute": 3000}},
                "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
            })),
            "search",
        );
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["kind"], "Secret");
        assert_eq!(docs[0]["stringData"]["api-key"], PLACEHOLDER);
        let ie = &docs[1];
        assert_eq!(ie["metadata"]["name"], "openai-embeddings");
        assert_eq!(ie["spec"]["inferenceId"], "openai_embeddings");
        assert_eq!(ie["spec"]["adopt"], true);
        assert!(ie["spec"]["serviceSettings"].get("rate_limit").is_none());
        assert!(
            ie["spec"].get("chunkingSettings").is_none(),
            "the default is left out"
        );
        assert_eq!(
            ie["spec"]["secretSettings"]["api_key"]["secretKeyRef"]["name"],
            "openai-embeddings-credentials"
        );
        // The resource it makes is valid for the operator.
        let spec: crate::crd::InferenceEndpointSpec =
            serde_json::from_value(ie["spec"].clone()).expect("spec");
        assert!(crate::desired::validate(&spec).is_ok());
    }

    #[test]
    fn services_without_secrets_get_no_stub_and_platform_ids_are_undone() {
        let docs = manifests(
            &ep(json!({
                "inference_id": "my-elser", "task_type": "sparse_embedding", "service": "elasticsearch",
                "service_settings": {"model_id": ".elser_model_2_linux-x86_64", "num_threads": 1,
                    "adaptive_allocations": {"enabled": true}},
                "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 20}
            })),
            "ml",
        );
        assert_eq!(docs.len(), 1);
        let spec = &docs[0]["spec"];
        assert_eq!(spec["serviceSettings"]["model_id"], ".elser_model_2");
        assert_eq!(spec["chunkingSettings"]["maxChunkSize"], 100);
        assert!(spec.get("secretSettings").is_none());
    }

    #[test]
    fn bedrock_needs_two_keys_and_ids_filter_by_glob() {
        let docs = manifests(
            &ep(
                json!({"inference_id": "br", "task_type": "completion", "service": "amazonbedrock",
                "service_settings": {"region": "us-east-1", "model": "m", "provider": "anthropic"}}),
            ),
            "x",
        );
        assert_eq!(docs[0]["stringData"]["access-key"], PLACEHOLDER);
        assert_eq!(docs[0]["stringData"]["secret-key"], PLACEHOLDER);
        let custom = manifests(
            &ep(
                json!({"inference_id": "c", "task_type": "rerank", "service": "custom",
                "service_settings": {"url": "https://x", "headers": {"Authorization": "Bearer sk-CLEAR",
                    "X-Key": "${token}", "Content-Type": "application/json"}}}),
            ),
            "x",
        );
        let text = serde_json::to_string(&custom).expect("json");
        assert!(
            !text.contains("sk-CLEAR"),
            "a credential header never lands in a manifest"
        );
        let spec = &custom[1]["spec"];
        assert!(
            spec["secretSettings"]["headers.Authorization"].is_object(),
            "{spec}"
        );
        assert_eq!(spec["serviceSettings"]["headers"]["X-Key"], "${token}");
        assert_eq!(
            custom[0]["stringData"]["headers-Authorization"],
            PLACEHOLDER
        );
        let openai = manifests(
            &ep(
                json!({"inference_id": "o", "task_type": "completion", "service": "openai",
                "service_settings": {"model_id": "m"}, "task_settings": {"headers": {"x-api-key": "k"}}}),
            ),
            "x",
        );
        let spec = &openai[1]["spec"];
        assert!(spec.get("taskSettings").is_none(), "{spec}");
        assert!(spec["secretSettings"]["task_settings.headers.x-api-key"].is_object());
        assert!(glob("team-a-*", "team-a-emb"));
        assert!(!glob("team-a-*", "team-b-emb"));
        assert!(glob("e?b", "emb"));
        assert_eq!(object_name("Team_A.emb"), "team-a.emb");
        assert_eq!(object_name("_x_"), "x");
    }
}
