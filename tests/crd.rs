//! The committed CRD is generated from the Rust types, and its schema rules behave as intended.
//! CEL rules are evaluated client-side with kube's CEL validator; the real API server check is
//! part of the e2e suite (tests/e2e/scenarios.rs, `crd_rules_on_a_real_api_server`).

use es_inference_operator::crd::InferenceEndpoint;
use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::{Value, json};

#[test]
fn generated_files_are_up_to_date() {
    let generated = es_inference_operator::crd::generated_files();
    assert_eq!(generated.len(), 4);
    for (path, want) in generated {
        let committed = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_default();
        assert!(
            committed == want,
            "{path} is stale: run `cargo run -- crd --write`"
        );
        if path.starts_with("charts/") {
            // Helm would try to interpret any other template action inside the CRD.
            assert_eq!(
                want.matches("{{").count(),
                5,
                "{path}: unexpected template actions"
            );
        }
    }
}

fn schema() -> Value {
    let crd = InferenceEndpoint::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "es-inference.dev/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": spec,
    })
}

fn check(spec: Value, old: Option<Value>) -> Result<(), String> {
    let old = old.map(object);
    Validator::new()
        .validate(&schema(), &object(spec), old.as_ref())
        .map_err(|e| e.to_string())
}

fn valid() -> Value {
    json!({
        "taskType": "text_embedding",
        "service": "openai",
        "serviceSettings": {"model_id": "text-embedding-3-small"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "openai", "key": "api-key"}}},
        "chunkingSettings": {"strategy": "sentence", "maxChunkSize": 250, "sentenceOverlap": 1}
    })
}

#[test]
fn a_valid_spec_passes() {
    check(valid(), None).expect("valid");
    check(valid(), Some(valid())).expect("unchanged update");
}

/// kube-cel 0.8 escapes every `_` in a field name (`api_key` becomes `api__key`), while the Go
/// API server escapes only `__`; so these rules cannot be evaluated client-side. Their presence
/// is checked here and their behaviour on a real API server by `tests/e2e/scenarios.rs`
/// (`crd_rules_on_a_real_api_server`).
#[test]
fn inline_credentials_are_refused_with_guidance() {
    let schema = schema();
    let settings = &schema["properties"]["spec"]["properties"]["serviceSettings"];
    let rules = settings["x-kubernetes-validations"]
        .as_array()
        .expect("rules");
    for key in [
        "api_key",
        "access_key",
        "secret_key",
        "service_account_json",
        "client_secret",
        "entra_id",
        "secret_parameters",
    ] {
        assert!(
            settings["properties"][key].is_object(),
            "{key} declared so CEL can see it"
        );
        let rule = rules
            .iter()
            .find(|r| r["rule"] == format!("!has(self.{key})"))
            .unwrap_or_else(|| panic!("no rule for {key}"));
        let msg = rule["message"].as_str().expect("message");
        let reference = if key == "secret_parameters" {
            // A map: one Secret value per parameter, never the whole map.
            "secretSettings.secret_parameters.<name>.secretKeyRef".to_string()
        } else {
            format!("secretSettings.{key}.secretKeyRef")
        };
        assert!(msg.contains(&reference), "{msg}");
    }
}

#[test]
fn identity_fields_are_immutable() {
    let mut s = valid();
    s["service"] = json!("cohere");
    assert!(
        check(s, Some(valid()))
            .expect_err("service")
            .contains("service is immutable")
    );
    let mut s = valid();
    s["taskType"] = json!("sparse_embedding");
    assert!(
        check(s, Some(valid()))
            .expect_err("taskType")
            .contains("taskType is immutable")
    );
    let mut s = valid();
    s["inferenceId"] = json!("new-id");
    assert!(
        check(s.clone(), Some(valid()))
            .expect_err("added id")
            .contains("inferenceId is immutable")
    );
    let mut changed = s.clone();
    changed["inferenceId"] = json!("other-id");
    assert!(
        check(changed, Some(s.clone()))
            .expect_err("changed id")
            .contains("inferenceId is immutable")
    );
    check(s.clone(), Some(s)).expect("same id");
}

#[test]
fn chunking_rules_follow_the_contract() {
    let with = |c: Value| {
        let mut s = valid();
        s["chunkingSettings"] = c;
        check(s, None)
    };
    with(json!({"strategy": "sentence", "maxChunkSize": 20, "sentenceOverlap": 0}))
        .expect("sentence ok");
    assert!(
        with(json!({"strategy": "sentence", "maxChunkSize": 19}))
            .expect_err("small")
            .contains("at least 20")
    );
    assert!(
        with(json!({"strategy": "sentence", "maxChunkSize": 100, "overlap": 5}))
            .expect_err("extra")
            .contains("accepts only")
    );
    with(json!({"strategy": "word", "maxChunkSize": 100, "overlap": 50})).expect("word ok");
    assert!(
        with(json!({"strategy": "word", "maxChunkSize": 100, "overlap": 51}))
            .expect_err("overlap")
            .contains("at most half")
    );
    assert!(
        with(json!({"strategy": "word", "maxChunkSize": 100})).is_err(),
        "word needs overlap"
    );
    with(json!({"strategy": "recursive", "maxChunkSize": 200, "separatorGroup": "markdown"}))
        .expect("recursive ok");
    assert!(with(json!({"strategy": "recursive", "maxChunkSize": 200, "separatorGroup": "markdown", "separators": ["\n"]})).expect_err("both").contains("not both"));
    with(json!({"strategy": "none"})).expect("none ok");
    assert!(with(json!({"strategy": "none", "maxChunkSize": 10})).is_err());
    let mut s = valid();
    s["taskType"] = json!("completion");
    assert!(
        check(s, None)
            .expect_err("completion")
            .contains("embedding task types")
    );
}

#[test]
fn secret_settings_keys_are_checked() {
    let mut s = valid();
    s["service"] = json!("custom");
    s["secretSettings"] =
        json!({"secret_parameters.token": {"secretKeyRef": {"name": "c", "key": "t"}}});
    check(s.clone(), None).expect("custom service secret parameter");
    s["secretSettings"] = json!({"API KEY": {"secretKeyRef": {"name": "c", "key": "t"}}});
    assert!(
        check(s, None)
            .expect_err("bad key")
            .contains("secretSettings keys")
    );
}

#[test]
fn examples_are_valid_and_render() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let ie: InferenceEndpoint =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let obj = serde_json::to_value(&ie).expect("json");
        Validator::new()
            .validate(&schema(), &obj, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let input = es_inference_operator::render::Input {
            name: path.display().to_string(),
            text: text.clone(),
        };
        // The newest version the table knows: every example is for some supported version.
        es_inference_operator::render::render(
            &input,
            &[],
            es_inference_operator::catalog::CHECKED_UP_TO,
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 7, "examples found: {n}");
}

/// docs/examples/inference-id-prefix-policy.yaml (docs/install.md, "Multi-tenant clusters"): a
/// ValidatingAdmissionPolicy and its binding that name each other and match this CRD, and an
/// expression that compiles and admits exactly the inference ids that start with the namespace
/// and '-' (evaluated with kube's client-side ValidatingAdmissionPolicy evaluator; the API server
/// itself is not involved here).
#[test]
fn the_inference_id_prefix_policy_example_admits_only_prefixed_ids() {
    use kube::core::cel::{AdmissionRequest, VapEvaluator, VapExpression};

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/inference-id-prefix-policy.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the example");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert_eq!(docs.len(), 2, "a policy and its binding");
    let (policy, binding) = (&docs[0], &docs[1]);
    for (doc, kind) in [
        (policy, "ValidatingAdmissionPolicy"),
        (binding, "ValidatingAdmissionPolicyBinding"),
    ] {
        assert_eq!(doc["apiVersion"], "admissionregistration.k8s.io/v1");
        assert_eq!(doc["kind"], kind);
    }
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));

    // It matches this CRD, on CREATE only (the operator's own updates must pass).
    let crd = InferenceEndpoint::crd();
    let rules = policy["spec"]["matchConstraints"]["resourceRules"]
        .as_array()
        .expect("resourceRules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["apiGroups"], json!([crd.spec.group]));
    assert_eq!(rules[0]["resources"], json!([crd.spec.names.plural]));
    assert_eq!(rules[0]["operations"], json!(["CREATE"]));
    // The field it reads is the CRD's.
    assert!(schema()["properties"]["spec"]["properties"]["inferenceId"].is_object());

    let validations: Vec<VapExpression> = policy["spec"]["validations"]
        .as_array()
        .expect("validations")
        .iter()
        .map(|v| serde_json::from_value(v.clone()).expect("a validation"))
        .collect();
    assert_eq!(validations.len(), 1);
    assert!(validations[0].expression.contains("namespace"));

    // (admitted, message) for an InferenceEndpoint created in `ns`.
    let admit = |ns: &str, name: &str, spec: Value| -> (bool, Option<String>) {
        let evaluator = VapEvaluator::builder()
            .object(json!({
                "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": name, "namespace": ns}, "spec": spec,
            }))
            .request(AdmissionRequest {
                operation: "CREATE".into(),
                name: name.into(),
                namespace: ns.into(),
                ..Default::default()
            })
            .build();
        let compiled = evaluator.compile_expressions(&validations);
        for c in &compiled {
            if let Err(e) = c {
                panic!("{e}");
            }
        }
        let results = evaluator.evaluate_compiled(&compiled);
        (
            results.iter().all(|r| r.passed),
            results.iter().find_map(|r| r.message.clone()),
        )
    };
    let with_id = |id: &str| {
        let mut s = valid();
        s["inferenceId"] = json!(id);
        s
    };
    assert_eq!(
        admit("team-a", "emb", with_id("team-a-embeddings")),
        (true, None)
    );
    assert_eq!(admit("team-a", "team-a-embeddings", valid()), (true, None));
    let (admitted, message) = admit("team-a", "emb", with_id("team-b-embeddings"));
    assert!(!admitted);
    let message = message.expect("message");
    assert!(message.contains("\"team-a-\""), "{message}");
    assert!(
        !admit("team-a", "embeddings", valid()).0,
        "name without prefix"
    );
    assert!(
        !admit("team-a", "team-a-x", with_id("embeddings")).0,
        "spec.inferenceId wins over the name"
    );
    assert!(
        !admit("team-a", "x", with_id("team-ab")).0,
        "the '-' counts"
    );
}

#[test]
fn the_inference_id_is_the_spec_field_or_else_the_name() {
    // The scans that find resources sharing an id compare `inference_id_str`; it must agree
    // with `inference_id` in both cases.
    let decode = |spec: Value| -> InferenceEndpoint {
        serde_json::from_value(json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "from-name", "namespace": "ns"}, "spec": spec,
        }))
        .expect("decodes")
    };
    let named = decode(
        json!({"inferenceId": "from-spec", "taskType": "completion", "service": "anthropic"}),
    );
    assert_eq!(named.inference_id_str(), "from-spec");
    assert_eq!(named.inference_id(), "from-spec");
    let unnamed = decode(json!({"taskType": "completion", "service": "anthropic"}));
    assert_eq!(unnamed.inference_id_str(), "from-name");
    assert_eq!(unnamed.inference_id(), "from-name");
}

/// Every property of a schema, with its path (`spec.serviceSettings`, `status.conditions[].type`),
/// through nested objects, array items, maps and `anyOf`/`oneOf`/`allOf` branches.
fn properties(schema: &Value, path: &str, into: &mut Vec<(String, Value)>) {
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            into.push((p.clone(), prop.clone()));
            properties(prop, &p, into);
        }
    }
    if schema["items"].is_object() {
        properties(&schema["items"], &format!("{path}[]"), into);
    }
    if schema["additionalProperties"].is_object() {
        properties(
            &schema["additionalProperties"],
            &format!("{path}{{}}"),
            into,
        );
    }
    for branch in ["anyOf", "oneOf", "allOf"] {
        for s in schema[branch].as_array().into_iter().flatten() {
            properties(s, path, into);
        }
    }
}

/// `kubectl explain` shows a description for every field of both CRDs: no property of either
/// generated schema (crds/ and the chart's copies are generated from the same types) lacks one.
#[test]
fn every_crd_field_has_a_description() {
    use es_inference_operator::crd::ElasticsearchConnection;
    let mut missing = Vec::new();
    for crd in [InferenceEndpoint::crd(), ElasticsearchConnection::crd()] {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .expect("json");
        let mut all = Vec::new();
        properties(&schema, "", &mut all);
        assert!(
            all.len() > 20,
            "{}: too few properties",
            crd.spec.names.kind
        );
        for (path, prop) in all {
            let described = prop["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                missing.push(format!("{}: {path}", crd.spec.names.kind));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields without a description ({}):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// The secret rules of `catalog::SERVICES` that CEL can express, at `kubectl apply`.
#[test]
fn per_service_secret_rules_at_admission() {
    let key = |k: &str| json!({"secretKeyRef": {"name": "s", "key": k}});
    let bedrock = |secrets: Value| {
        json!({
            "taskType": "completion",
            "service": "amazonbedrock",
            "serviceSettings": {"region": "us-east-1", "model": "m", "provider": "anthropic"},
            "secretSettings": secrets,
        })
    };
    let e = check(bedrock(json!({"access_key": key("a")})), None).expect_err("one key");
    assert!(
        e.contains("need secretSettings.access_key and secretSettings.secret_key together"),
        "{e}"
    );
    check(
        bedrock(json!({"access_key": key("a"), "secret_key": key("s")})),
        None,
    )
    .expect("both");
    let mut observe = bedrock(json!({}));
    observe["managementPolicy"] = json!("Observe");
    check(observe, None).expect("Observe needs no Secret");
    let azure = |secrets: Value| {
        json!({
            "taskType": "completion",
            "service": "azureopenai",
            "serviceSettings": {"resource_name": "r", "deployment_id": "d", "api_version": "v"},
            "secretSettings": secrets,
        })
    };
    check(azure(json!({"entra_id": key("e")})), None).expect("one");
    let e = check(
        azure(json!({"api_key": key("a"), "entra_id": key("e")})),
        None,
    )
    .expect_err("two");
    assert!(e.contains("exactly one of"), "{e}");
    let e = check(azure(json!({})), None).expect_err("none");
    assert!(e.contains("exactly one of"), "{e}");
}

#[test]
fn secret_settings_keys_and_headers() {
    let key = json!({"secretKeyRef": {"name": "s", "key": "k"}});
    let mut s = valid();
    s["secretSettings"] = json!({"api_key": key, "task_settings.headers.X-Org-Token": key});
    check(s, None).expect("a task header from a Secret");
    let mut s = valid();
    s["service"] = json!("custom");
    s["secretSettings"] = json!({"headers.X-Api-Key": key, "secret_parameters.token": key});
    check(s.clone(), None).expect("service headers and parameters from Secrets");
    s["secretSettings"] = json!({"secret_parameters": key});
    let e = check(s, None).expect_err("a whole map from one value");
    assert!(
        e.contains("secret_parameters.<name> (one per parameter)"),
        "{e}"
    );
    for (scope, field) in [
        ("serviceSettings", "serviceSettings"),
        ("taskSettings", "taskSettings"),
    ] {
        for name in [
            "Authorization",
            "x-api-key",
            "X-Goog-Api-Key",
            "x-auth-token",
        ] {
            let mut s = valid();
            s[field] = json!({"model_id": "m", "headers": {name: "Bearer sk-LITERAL"}});
            let e = check(s, None).expect_err(name);
            assert!(
                e.contains(&format!("{scope}.headers must not hold credentials")),
                "{e}"
            );
            assert!(!e.contains("sk-LITERAL"), "{e}");
        }
        let mut s = valid();
        s[field] = json!({"model_id": "m", "headers": {"Content-Type": "application/json"}});
        check(s, None).expect("an ordinary header");
    }
    let mut s = valid();
    s["serviceSettings"] = json!({"url": "u", "headers": {"Authorization": "${token}"}});
    check(s, None).expect("a placeholder of the custom service");
}

/// The README's table of services is the one `catalog::markdown_table` generates.
#[test]
fn the_readme_lists_the_services_of_the_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let (begin, end) = ("<!-- services:begin -->\n", "<!-- services:end -->");
    let start = readme.find(begin).expect("services table marker") + begin.len();
    let stop = readme[start..].find(end).expect("end marker") + start;
    let want = es_inference_operator::catalog::markdown_table();
    assert!(
        readme[start..stop] == want,
        "README's table of services is stale; it should be:\n{want}"
    );
}

/// The CEL secret rules at admission say what `catalog::SERVICES` says: every service (and
/// alias) whose secrets are a pair or a choice has a rule naming it and each of its keys, and no
/// rule names a service the table gives another rule.
#[test]
fn admission_secret_rules_follow_the_table_of_services() {
    use es_inference_operator::catalog::{SERVICES, SecretRule};
    let schema = schema();
    let rules: Vec<String> = schema["properties"]["spec"]["x-kubernetes-validations"]
        .as_array()
        .expect("spec rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .filter(|r| r.contains("self.service") && r.contains("secretSettings"))
        .map(str::to_string)
        .collect();
    assert!(!rules.is_empty());
    for s in SERVICES {
        let keys = match s.secrets {
            SecretRule::All(k) if k.len() > 1 => k,
            SecretRule::ExactlyOne(k) => k,
            _ => {
                for r in &rules {
                    assert!(!r.contains(&format!("'{}'", s.name)), "{} in {r}", s.name);
                }
                continue;
            }
        };
        for name in std::iter::once(s.name).chain(s.aliases.iter().copied()) {
            let rule = rules
                .iter()
                .find(|r| r.contains(&format!("'{name}'")))
                .unwrap_or_else(|| panic!("no admission rule names {name}"));
            for k in keys {
                assert!(
                    rule.contains(&format!("'{k}'")),
                    "{name}: {k} missing in {rule}"
                );
            }
        }
    }
}
