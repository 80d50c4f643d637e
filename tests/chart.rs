//! The Helm chart (charts/es-inference-operator), the plain manifests in deploy/ rendered from
//! it, the Dockerfile's agreement with both, and the GitOps examples' values.
//!
//! Most tests run the real `helm` ($HELM, or `helm` on PATH; `.ci/install-tools.sh` installs it
//! into .ci/bin) and parse what it renders. The rendered manifests are validated against the
//! Kubernetes OpenAPI schemas, offline, by `kubernetes-validate` ($KUBERNETES_VALIDATE, or on
//! PATH). Without those tools the tests that need them print SKIPPED and are reported as
//! ignored. This target has its own small runner (`harness = false` in Cargo.toml) so that the
//! SKIPPED line reaches the terminal instead of being captured.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

const RELEASE: &str = "es-inference-operator";
const NAMESPACE: &str = "es-inference-system";
const URL: &str = "https://elasticsearch.example:9200";
/// Kubernetes versions whose OpenAPI schemas the rendered manifests must satisfy: the API level
/// the operator is built against (k8s-openapi feature v1_33) and a current one.
const KUBERNETES_VERSIONS: &[&str] = &["1.33", "1.36"];
/// Kinds of the Prometheus Operator's CRDs, which kubernetes-validate has no schema for.
const PROMETHEUS_OPERATOR_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];

#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    Helm,
    HelmAndValidator,
}

struct Tools {
    helm: Option<PathBuf>,
    validator: Option<PathBuf>,
}

type TestFn = fn(&Tools);

fn main() {
    let tests: &[(&str, Needs, TestFn)] = &[
        (
            "dockerfile_agrees_with_chart_and_binary",
            Needs::Nothing,
            dockerfile_agrees_with_chart_and_binary,
        ),
        ("chart_metadata", Needs::Nothing, chart_metadata),
        (
            "values_schema_is_strict_and_covers_values_yaml",
            Needs::Nothing,
            values_schema_is_strict_and_covers_values_yaml,
        ),
        ("helm_lint", Needs::Helm, helm_lint),
        (
            "template_matrix_renders",
            Needs::Helm,
            template_matrix_renders,
        ),
        (
            "schema_rejects_typos_and_bad_values",
            Needs::Helm,
            schema_rejects_typos_and_bad_values,
        ),
        (
            "url_is_optional_but_needed_by_default_cluster_settings",
            Needs::Helm,
            url_is_optional_but_needed_by_default_cluster_settings,
        ),
        (
            "template_checks_refuse_unsafe_combinations",
            Needs::Helm,
            template_checks_refuse_unsafe_combinations,
        ),
        (
            "security_contexts_are_restricted",
            Needs::Helm,
            security_contexts_are_restricted,
        ),
        (
            "rbac_is_cluster_wide_by_default",
            Needs::Helm,
            rbac_is_cluster_wide_by_default,
        ),
        (
            "rbac_is_per_namespace_with_watch_namespaces",
            Needs::Helm,
            rbac_is_per_namespace_with_watch_namespaces,
        ),
        (
            "lease_role_only_with_leader_election",
            Needs::Helm,
            lease_role_only_with_leader_election,
        ),
        (
            "no_secret_write_verbs_anywhere",
            Needs::Helm,
            no_secret_write_verbs_anywhere,
        ),
        ("aggregated_user_roles", Needs::Helm, aggregated_user_roles),
        (
            "api_key_is_a_mounted_file",
            Needs::Helm,
            api_key_is_a_mounted_file,
        ),
        (
            "basic_auth_password_is_a_mounted_file",
            Needs::Helm,
            basic_auth_password_is_a_mounted_file,
        ),
        (
            "ca_from_secret_or_configmap_is_mounted",
            Needs::Helm,
            ca_from_secret_or_configmap_is_mounted,
        ),
        (
            "operator_settings_reach_the_environment",
            Needs::Helm,
            operator_settings_reach_the_environment,
        ),
        (
            "probes_ports_and_downward_api",
            Needs::Helm,
            probes_ports_and_downward_api,
        ),
        ("optional_objects", Needs::Helm, optional_objects),
        (
            "every_configuration_is_one_the_binary_accepts",
            Needs::Helm,
            every_configuration_is_one_the_binary_accepts,
        ),
        ("network_policy", Needs::Helm, network_policy),
        (
            "metric_names_are_what_the_binary_exports",
            Needs::Nothing,
            metric_names_are_what_the_binary_exports,
        ),
        (
            "promql_metric_names_parser",
            Needs::Nothing,
            promql_metric_names_parser,
        ),
        (
            "grafana_dashboard_queries_exported_metrics",
            Needs::Nothing,
            grafana_dashboard_queries_exported_metrics,
        ),
        (
            "observability_objects_only_when_enabled",
            Needs::Helm,
            observability_objects_only_when_enabled,
        ),
        (
            "prometheus_rules_are_well_formed",
            Needs::Helm,
            prometheus_rules_are_well_formed,
        ),
        (
            "alerts_link_their_runbooks",
            Needs::Helm,
            alerts_link_their_runbooks,
        ),
        ("crd_toggles", Needs::Helm, crd_toggles),
        (
            "notes_tell_the_next_commands",
            Needs::Helm,
            notes_tell_the_next_commands,
        ),
        (
            "notes_without_a_default_cluster",
            Needs::Helm,
            notes_without_a_default_cluster,
        ),
        (
            "deploy_manifests_are_up_to_date",
            Needs::Helm,
            deploy_manifests_are_up_to_date,
        ),
        (
            "gitops_example_values_render",
            Needs::Helm,
            gitops_example_values_render,
        ),
        (
            "kubernetes_validate_catches_errors",
            Needs::HelmAndValidator,
            kubernetes_validate_catches_errors,
        ),
        (
            "rendered_manifests_match_kubernetes_schemas",
            Needs::HelmAndValidator,
            rendered_manifests_match_kubernetes_schemas,
        ),
        (
            "docs_examples_match_kubernetes_schemas",
            Needs::HelmAndValidator,
            docs_examples_match_kubernetes_schemas,
        ),
    ];
    let tools = Tools {
        helm: find_tool("HELM", "helm", &["version", "--short"]),
        validator: find_tool("KUBERNETES_VALIDATE", "kubernetes-validate", &["--version"]),
    };
    if tools.helm.is_none() {
        println!(
            "SKIPPED: chart tests need helm: set HELM or put helm on PATH (bash .ci/install-tools.sh installs it into .ci/bin)"
        );
    } else if tools.validator.is_none() {
        println!(
            "SKIPPED: schema validation needs kubernetes-validate: set KUBERNETES_VALIDATE or put it on PATH (bash .ci/install-tools.sh)"
        );
    }

    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = tests
        .iter()
        .filter(|(n, _, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    let filtered_out = tests.len() - selected.len();
    println!(
        "\nrunning {} test{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut failures = Vec::new();
    for (name, needs, test) in selected {
        let runnable = match needs {
            Needs::Nothing => true,
            Needs::Helm => tools.helm.is_some(),
            Needs::HelmAndValidator => tools.helm.is_some() && tools.validator.is_some(),
        };
        if !runnable {
            ignored += 1;
            println!("test {name} ... ignored, tool missing (see SKIPPED above)");
            continue;
        }
        let result = std::panic::catch_unwind(|| test(&tools));
        if result.is_ok() {
            passed += 1;
            println!("test {name} ... ok");
        } else {
            failed += 1;
            failures.push(*name);
            println!("test {name} ... FAILED");
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:\n    {}", failures.join("\n    "));
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered_out} filtered out\n"
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

/// The tool named by `env` (which must then work), else `name` on PATH if it runs.
fn find_tool(env: &str, name: &str, probe: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let ok = Command::new(&path)
            .args(probe)
            .output()
            .is_ok_and(|o| o.status.success());
        // Asked for explicitly: a broken tool is a failure, not a skip.
        assert!(ok, "{env}={} does not run", path.display());
        return Some(path);
    }
    Command::new(name)
        .args(probe)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from(name))
}

// ---------------------------------------------------------------------------------------------
// helpers

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/es-inference-operator")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn helm(tools: &Tools) -> &Path {
    tools.helm.as_deref().expect("helm")
}

/// `helm template` with `values` (JSON is YAML) and extra arguments: Ok(stdout) or Err(stderr).
fn render_with(tools: &Tools, values: &Value, extra: &[&str]) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(values).expect("json")).expect("write");
    let out = Command::new(helm(tools))
        .arg("template")
        .arg(RELEASE)
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--values"])
        .arg(&file)
        .args(extra)
        .output()
        .expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("utf-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn try_render(tools: &Tools, values: &Value) -> Result<String, String> {
    render_with(tools, values, &[])
}

/// Renders and parses every document; panics with helm's error if rendering fails.
fn render(tools: &Tools, values: &Value) -> Vec<Value> {
    let text = try_render(tools, values)
        .unwrap_or_else(|e| panic!("helm template failed for {values}:\n{e}"));
    parse_docs(&text)
}

fn parse_docs(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("rendered YAML parses");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// `base` values (the URL set) deep-merged with `overrides`.
fn values(overrides: Value) -> Value {
    let mut v = json!({ "elasticsearch": { "url": URL } });
    merge(&mut v, overrides);
    v
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn api_key() -> Value {
    json!({ "elasticsearch": { "auth": { "apiKey": { "existingSecret": "es-api-key" } } } })
}

/// Every scenario of the matrix, named.
fn matrix() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults with a url", values(json!({}))),
        ("api key", values(api_key())),
        (
            "watchNamespaces [a, b]",
            values(json!({ "watchNamespaces": ["a", "b"] })),
        ),
        ("replicaCount 2", values(json!({ "replicaCount": 2 }))),
        (
            "replicaCount 2 with a PodDisruptionBudget",
            values(json!({ "replicaCount": 2, "podDisruptionBudget": { "enabled": true } })),
        ),
        (
            "serviceMonitor on",
            values(json!({ "serviceMonitor": { "enabled": true } })),
        ),
        (
            "CA from a Secret",
            values(json!({ "elasticsearch": { "tls": { "ca": { "existingSecret": "es-ca" } } } })),
        ),
        (
            "CA from a ConfigMap",
            values(
                json!({ "elasticsearch": { "tls": { "ca": { "existingConfigMap": "es-ca", "key": "bundle.pem" } } } }),
            ),
        ),
        (
            "basic auth",
            values(json!({ "elasticsearch": { "auth": { "basic": {
                "username": "operator", "existingSecret": "es-password" } } } })),
        ),
        (
            "networkPolicy on",
            values(json!({ "networkPolicy": { "enabled": true } })),
        ),
        (
            "everything optional",
            values(json!({
                "replicaCount": 3,
                "watchNamespaces": ["search", "ml"],
                "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } },
                "podDisruptionBudget": { "enabled": true },
                "networkPolicy": { "enabled": true,
                    "apiServer": { "cidrs": ["10.0.0.1/32"] },
                    "elasticsearch": { "to": [{ "namespaceSelector": { "matchLabels": {
                        "kubernetes.io/metadata.name": "elastic" } } }] },
                    "metrics": { "from": [{ "namespaceSelector": { "matchLabels": {
                        "kubernetes.io/metadata.name": "monitoring" } } }] } },
                "elasticsearch": { "auth": { "apiKey": { "existingSecret": "k", "key": "encoded" } },
                                   "tls": { "ca": { "existingSecret": "ca" } } },
                "serviceAccount": { "annotations": { "example.com/role": "operator" } },
                "podAnnotations": { "example.com/a": "b" },
                "podLabels": { "team": "search" },
                "commonLabels": { "cost-center": "42" },
                "priorityClassName": "system-cluster-critical",
                "nodeSelector": { "kubernetes.io/os": "linux" },
                "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule" }],
                "affinity": { "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100, "podAffinityTerm": { "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": { "matchLabels": { "app.kubernetes.io/name": "es-inference-operator" } } } }] } },
                "topologySpreadConstraints": [{ "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": { "matchLabels": { "app.kubernetes.io/name": "es-inference-operator" } } }],
                "extraEnv": [{ "name": "EXTRA", "value": "1" }],
                "extraVolumes": [{ "name": "tmp", "emptyDir": {} }],
                "extraVolumeMounts": [{ "name": "tmp", "mountPath": "/tmp", "readOnly": false }],
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi", "ephemeral-storage": "100Mi" },
                    "limits": { "memory": "256Mi" } },
                "imagePullSecrets": [{ "name": "regcred" }],
                "metrics": {
                    "grafanaDashboard": { "enabled": true },
                    "prometheusRule": { "enabled": true, "additionalLabels": { "release": "prometheus" } },
                },
                "image": { "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
            })),
        ),
    ]
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = kind(docs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, found {}",
        found.len()
    );
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    let deployment = one(docs, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn pod_spec(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]
}

/// The container's env as name → entry.
fn env(docs: &[Value]) -> Vec<(String, Value)> {
    container(docs)["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_string(), e.clone()))
        .collect()
}

fn env_value(docs: &[Value], name: &str) -> Option<String> {
    env(docs)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| e["value"].as_str().expect("plain value").to_string())
}

/// (apiGroup, resource) → verbs of a Role/ClusterRole, asserting one group and one resource per
/// rule.
fn rules(role: &Value) -> Vec<(String, String, Vec<String>)> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let groups = r["apiGroups"].as_array().expect("apiGroups");
            let resources = r["resources"].as_array().expect("resources");
            assert_eq!(groups.len(), 1, "one apiGroup per rule: {r}");
            assert_eq!(resources.len(), 1, "one resource per rule: {r}");
            let verbs = r["verbs"]
                .as_array()
                .expect("verbs")
                .iter()
                .map(|v| v.as_str().expect("verb").to_string())
                .collect();
            (
                groups[0].as_str().expect("group").to_string(),
                resources[0].as_str().expect("resource").to_string(),
                verbs,
            )
        })
        .collect()
}

/// The rules of `src/rbac.rs` for `scope`, in its order: the chart renders exactly these.
fn rules_of(scope: es_inference_operator::rbac::Scope) -> Vec<(String, String, Vec<String>)> {
    es_inference_operator::rbac::RULES
        .iter()
        .filter(|r| r.scope == scope)
        .map(|r| {
            (
                r.api_group.to_string(),
                r.resource.to_string(),
                r.verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

/// The rules the operator needs where it watches.
fn watched_rules() -> Vec<(String, String, Vec<String>)> {
    rules_of(es_inference_operator::rbac::Scope::Watched)
}

fn lease_rules() -> Vec<(String, String, Vec<String>)> {
    rules_of(es_inference_operator::rbac::Scope::OwnNamespace)
}

fn cluster_rules() -> Vec<(String, String, Vec<String>)> {
    rules_of(es_inference_operator::rbac::Scope::Cluster)
}

/// Which rules of a role are limited to named objects (`resourceNames`), in order: exactly
/// those `src/rbac.rs` marks as the operator's own object.
fn named_rules(role: &Value) -> Vec<bool> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r.get("resourceNames").is_some())
        .collect()
}

/// The ClusterRole that grants namespace metadata, in every mode.
fn assert_namespace_reader(docs: &[Value]) {
    let name = format!("{}-namespaces", fullname());
    let cr = kind(docs, "ClusterRole")
        .into_iter()
        .find(|c| c["metadata"]["name"] == name.as_str())
        .expect("namespaces ClusterRole");
    assert_eq!(rules(cr), cluster_rules());
    let binding = kind(docs, "ClusterRoleBinding")
        .into_iter()
        .find(|c| c["metadata"]["name"] == name.as_str())
        .expect("namespaces ClusterRoleBinding");
    assert_binds_operator(binding, "ClusterRole", &name);
}

fn fullname() -> &'static str {
    // The release name contains the chart name, so the full name is the release name.
    RELEASE
}

fn assert_binds_operator(binding: &Value, role_kind: &str, role_name: &str) {
    assert_eq!(binding["roleRef"]["kind"], role_kind);
    assert_eq!(binding["roleRef"]["name"], role_name);
    assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(
        subjects,
        &vec![json!({ "kind": "ServiceAccount", "name": fullname(), "namespace": NAMESPACE })]
    );
}

// ---------------------------------------------------------------------------------------------
// tests without helm

fn dockerfile_agrees_with_chart_and_binary(_: &Tools) {
    let dockerfile = read(&root().join("Dockerfile"));
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let has = |l: &str| lines.contains(&l);
    let cargo = read(&root().join("Cargo.toml"));
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-version in Cargo.toml");

    // Every base image is pinned by digest (image:tag@sha256:<64 hex digits>).
    let from: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    for image in &from {
        let image = image.split_whitespace().next().expect("FROM image");
        let digest = image
            .split_once("@sha256:")
            .map(|(_, d)| d)
            .unwrap_or_default();
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{image} is pinned by digest"
        );
    }
    assert!(
        from[0].starts_with(&format!("docker.io/library/rust:{rust_version}-"))
            && from[0].ends_with(" AS builder"),
        "the builder uses the Rust version of Cargo.toml ({rust_version}): {}",
        from[0]
    );
    assert!(
        from[1].starts_with("gcr.io/distroless/static-debian12:nonroot@sha256:"),
        "the runtime is distroless static, nonroot: {}",
        from[1]
    );

    // Both architectures, each to its static musl target, from the platform BuildKit builds for.
    assert!(has("ARG TARGETARCH"));
    for (arch, target) in [
        ("amd64", "x86_64-unknown-linux-musl"),
        ("arm64", "aarch64-unknown-linux-musl"),
    ] {
        assert!(
            has(&format!("{arch}) target={target} ;; \\")),
            "TARGETARCH {arch} builds {target}"
        );
    }
    assert!(dockerfile.contains("rustup target add \"$target\""));
    // Cargo refuses a manifest whose declared targets are missing: each one's top directory is
    // copied into the build, and so is the build configuration (.cargo/, jemalloc's settings).
    let copied: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for path in cargo
        .lines()
        .filter_map(|l| l.strip_prefix("path = \""))
        .filter_map(|l| l.split('/').next())
        .chain(["src", "benches", ".cargo"])
    {
        assert!(
            copied.contains(&path),
            "the Dockerfile copies {path}/: {copied:?}"
        );
    }
    // Built with cargo-auditable (a pinned version), so the image's SBOM lists the crates.
    assert!(dockerfile.contains("cargo auditable build --locked --release --target \"$TARGET\""));
    assert!(
        !dockerfile.contains("cargo build "),
        "every build is auditable"
    );
    let pinned = dockerfile
        .split("cargo install --locked cargo-auditable@")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("cargo-auditable installed with --locked at a version");
    assert!(
        pinned.split('.').count() == 3
            && pinned
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "cargo-auditable pinned to an exact version: {pinned}"
    );
    // jemalloc built for 64 KiB pages on arm64 (it aborts on pages larger than built for).
    assert!(
        dockerfile.contains(
            "if [ \"$TARGETARCH\" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi"
        )
    );
    // ring's C code is compiled with musl-gcc on both (cc would look for aarch64-linux-musl-gcc).
    for target in ["x86_64_unknown_linux_musl", "aarch64_unknown_linux_musl"] {
        assert!(
            dockerfile.contains(&format!("CC_{target}=musl-gcc")),
            "CC_{target}"
        );
    }

    // Numeric user, and the same one the chart runs as.
    let values: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("values.yaml"))).expect("yaml");
    let uid = &values["podSecurityContext"]["runAsUser"];
    let gid = &values["podSecurityContext"]["runAsGroup"];
    assert!(
        has(&format!("USER {uid}:{gid}")),
        "USER {uid}:{gid} in the Dockerfile"
    );
    assert_eq!(uid, 65532);

    // The binary's name and the chart's container args.
    assert!(cargo.contains("name = \"es-inference-operator\"\npath = \"src/main.rs\""));
    assert!(has("ENTRYPOINT [\"/es-inference-operator\"]"));
    assert!(has("CMD [\"run\"]"));
    let deployment = read(&chart_dir().join("templates/deployment.yaml"));
    assert!(deployment.contains("args:\n            - run\n"));

    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("version");
    for label in [
        "org.opencontainers.image.source=",
        "org.opencontainers.image.licenses=\"Apache-2.0\"",
        "org.opencontainers.image.title=",
        "org.opencontainers.image.description=",
    ] {
        assert!(dockerfile.contains(label), "OCI label {label}");
    }
    assert!(has(&format!("ARG VERSION={version}")));

    let dockerignore = read(&root().join(".dockerignore"));
    for pattern in ["target/", ".git/", ".ci/bin/"] {
        assert!(
            dockerignore.lines().any(|l| l.trim() == pattern),
            ".dockerignore: {pattern}"
        );
    }
}

fn chart_metadata(_: &Tools) {
    let chart: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "es-inference-operator");
    assert_eq!(chart["version"], "0.1.0");
    let cargo = read(&root().join("Cargo.toml"));
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("version");
    assert_eq!(
        chart["appVersion"], version,
        "appVersion follows Cargo.toml's version"
    );

    // kubeVersion: the Kubernetes API the operator is built against (k8s-openapi's feature).
    let minor = cargo
        .split("features = [\"v1_")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("k8s-openapi's v1_NN feature in Cargo.toml");
    assert_eq!(chart["kubeVersion"], format!(">=1.{minor}.0-0"));

    // The icon is a file of this repository, on its main branch.
    let icon = chart["icon"].as_str().expect("icon");
    let path = icon
        .strip_prefix(
            "https://raw.githubusercontent.com/es-inference-operator/es-inference-operator/main/",
        )
        .expect("the icon is served from this repository");
    assert!(root().join(path).is_file(), "{path} does not exist");

    // Artifact Hub: both CRDs, and an example of each that the operator's own types read.
    use es_inference_operator::crd::{ElasticsearchConnection, InferenceEndpoint};
    use kube::CustomResourceExt;
    let annotations = &chart["annotations"];
    let crds: Vec<Value> = serde_saphyr::from_str(
        annotations["artifacthub.io/crds"]
            .as_str()
            .expect("artifacthub.io/crds"),
    )
    .expect("artifacthub.io/crds is a YAML list");
    let mut names: Vec<&str> = crds.iter().filter_map(|c| c["name"].as_str()).collect();
    names.sort();
    let mut want = [
        InferenceEndpoint::crd_name(),
        ElasticsearchConnection::crd_name(),
    ];
    want.sort();
    assert_eq!(names, want, "artifacthub.io/crds lists both CRDs");
    for c in &crds {
        let kind = c["kind"].as_str().expect("kind");
        assert!(
            c["version"] == "v1alpha1" && !c["description"].as_str().unwrap_or("").is_empty(),
            "{kind}"
        );
    }
    let examples: Vec<Value> = serde_saphyr::from_str(
        annotations["artifacthub.io/crdsExamples"]
            .as_str()
            .expect("artifacthub.io/crdsExamples"),
    )
    .expect("artifacthub.io/crdsExamples is a YAML list");
    let mut kinds: Vec<&str> = examples.iter().filter_map(|e| e["kind"].as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ElasticsearchConnection", "InferenceEndpoint"]);
    for e in &examples {
        match e["kind"].as_str() {
            Some("InferenceEndpoint") => {
                serde_json::from_value::<InferenceEndpoint>(e.clone())
                    .expect("the InferenceEndpoint example");
            }
            _ => {
                serde_json::from_value::<ElasticsearchConnection>(e.clone())
                    .expect("the ElasticsearchConnection example");
            }
        }
    }
}

/// Every object of the schema that has properties forbids others, except the Kubernetes
/// objects passed through as-is; and every key of values.yaml is described by the schema.
fn values_schema_is_strict_and_covers_values_yaml(_: &Tools) {
    let schema: Value =
        serde_json::from_str(&read(&chart_dir().join("values.schema.json"))).expect("schema JSON");
    let values: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("values.yaml"))).expect("yaml");

    fn strict(schema: &Value, path: &str, loose: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            if schema.get("additionalProperties") != Some(&Value::Bool(false))
                && !schema
                    .get("additionalProperties")
                    .is_some_and(Value::is_object)
            {
                loose.push(path.to_string());
            }
            for (k, v) in props {
                strict(v, &format!("{path}.{k}"), loose);
            }
        }
    }
    let mut loose = Vec::new();
    strict(&schema, "", &mut loose);
    // Objects that list properties for their sub-checks only (the if/then rules are on them).
    assert_eq!(
        loose,
        Vec::<String>::new(),
        "objects with properties but without additionalProperties: false"
    );

    fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/definitions/").expect("local ref");
                &root["definitions"][name]
            }
            None => s,
        }
    }
    fn covered(root: &Value, schema: &Value, value: &Value, path: &str, missing: &mut Vec<String>) {
        let schema = resolve(root, schema);
        if let (Some(obj), Some(props)) = (
            value.as_object(),
            schema.get("properties").and_then(Value::as_object),
        ) {
            for (k, v) in obj {
                match props.get(k) {
                    Some(s) => covered(root, s, v, &format!("{path}.{k}"), missing),
                    None => missing.push(format!("{path}.{k}")),
                }
            }
        }
    }
    let mut missing = Vec::new();
    covered(&schema, &schema, &values, "", &mut missing);
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "values.yaml keys the schema does not describe"
    );
    assert_eq!(values["replicaCount"], 1);
    assert_eq!(values["crds"], json!({ "enabled": true, "keep": true }));
    assert_eq!(values["logFormat"], "json");
    assert_eq!(values["logLevel"], "info");
    assert_eq!(values["serviceMonitor"]["enabled"], false);
    assert_eq!(values["networkPolicy"]["enabled"], false);
    assert_eq!(values["podDisruptionBudget"]["enabled"], false);
}

// ---------------------------------------------------------------------------------------------
// helm

fn helm_lint(tools: &Tools) {
    for strict in [false, true] {
        let mut cmd = Command::new(helm(tools));
        cmd.arg("lint").arg(chart_dir());
        if strict {
            cmd.arg("--strict");
        }
        cmd.args([
            "--namespace",
            NAMESPACE,
            "--set",
            &format!("elasticsearch.url={URL}"),
        ]);
        let out = cmd.output().expect("helm lint");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "helm lint (strict: {strict}) failed:\n{text}"
        );
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
        assert!(
            !text.contains("[WARNING]") && !text.contains("[ERROR]"),
            "{text}"
        );
    }
}

fn template_matrix_renders(tools: &Tools) {
    for (name, v) in matrix() {
        let docs = render(tools, &v);
        let d = one(&docs, "Deployment");
        assert_eq!(d["metadata"]["namespace"], NAMESPACE, "{name}");
        assert_eq!(d["metadata"]["name"], fullname(), "{name}");
        for doc in &docs {
            let labels = &doc["metadata"]["labels"];
            for l in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ] {
                assert!(
                    labels.get(l).is_some(),
                    "{name}: {} {} lacks label {l}",
                    doc["kind"],
                    doc["metadata"]["name"]
                );
            }
            // Namespaced objects go to the release namespace, or (Roles) to watched namespaces.
            let ns = doc["metadata"]["namespace"].as_str();
            match doc["kind"].as_str().expect("kind") {
                "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition" => {
                    assert!(
                        ns.is_none(),
                        "{name}: cluster-scoped {} has a namespace",
                        doc["kind"]
                    )
                }
                "Role" | "RoleBinding" => assert!(ns.is_some(), "{name}"),
                _ => assert_eq!(ns, Some(NAMESPACE), "{name}: {}", doc["kind"]),
            }
        }
        // The Deployment's selector selects its Pods, and the Service selects the same Pods.
        let selector = d["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("selector");
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(&pod_labels[k], v, "{name}: pod label {k}");
        }
        assert_eq!(
            &one(&docs, "Service")["spec"]["selector"],
            &d["spec"]["selector"]["matchLabels"]
        );
    }
    // Values that are set reach the objects.
    let all = matrix().pop().expect("everything optional").1;
    let docs = render(tools, &all);
    let pod = pod_spec(&docs);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"], json!({ "kubernetes.io/os": "linux" }));
    assert_eq!(pod["tolerations"], all["tolerations"]);
    assert_eq!(pod["affinity"], all["affinity"]);
    assert_eq!(
        pod["topologySpreadConstraints"],
        all["topologySpreadConstraints"]
    );
    assert_eq!(pod["imagePullSecrets"], json!([{ "name": "regcred" }]));
    let d = one(&docs, "Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"],
        json!({ "example.com/a": "b" })
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["team"],
        "search"
    );
    assert_eq!(d["metadata"]["labels"]["cost-center"], "42");
    assert_eq!(
        container(&docs)["image"],
        "ghcr.io/es-inference-operator/es-inference-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(env_value(&docs, "EXTRA").as_deref(), Some("1"));
    assert!(
        container(&docs)["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/tmp")
    );
    assert!(
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["name"] == "tmp")
    );
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["annotations"],
        json!({ "example.com/role": "operator" })
    );
    // Default image: the chart's appVersion.
    let docs = render(tools, &values(json!({})));
    assert_eq!(
        container(&docs)["image"],
        "ghcr.io/es-inference-operator/es-inference-operator:0.1.0"
    );
    assert_eq!(container(&docs)["imagePullPolicy"], "IfNotPresent");
    let docs = render(tools, &values(json!({ "image": { "tag": "0.2.0-rc.1" } })));
    assert_eq!(
        container(&docs)["image"],
        "ghcr.io/es-inference-operator/es-inference-operator:0.2.0-rc.1"
    );
}

fn schema_rejects_typos_and_bad_values(tools: &Tools) {
    // Each of these must fail, and the error must name the offending key or value.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "misspelled top-level key",
            values(json!({ "replicaCont": 2 })),
            "replicaCont",
        ),
        (
            "misspelled nested key",
            values(json!({ "elasticsearch": { "auth": { "apiKey": { "existingSecrt": "x" } } } })),
            "existingSecrt",
        ),
        (
            "misspelled key under serviceMonitor",
            values(json!({ "serviceMonitor": { "enable": true } })),
            "enable",
        ),
        (
            "misspelled securityContext field",
            values(json!({ "securityContext": { "runAsNonRot": true } })),
            "runAsNonRot",
        ),
        (
            "wrong type",
            values(json!({ "replicaCount": "two" })),
            "replicaCount",
        ),
        (
            "logFormat outside the enum",
            values(json!({ "logFormat": "yaml" })),
            "logFormat",
        ),
        (
            "duration the operator cannot parse",
            values(json!({ "resyncInterval": "ten minutes" })),
            "resyncInterval",
        ),
        (
            "url without a scheme",
            values(json!({ "elasticsearch": { "url": "elasticsearch:9200" } })),
            "url",
        ),
        (
            "invalid namespace",
            values(json!({ "watchNamespaces": ["Not_A_Namespace"] })),
            "watchNamespaces",
        ),
        (
            "both apiKey and basic auth",
            values(json!({ "elasticsearch": { "auth": {
                "apiKey": { "existingSecret": "k" },
                "basic": { "username": "u", "existingSecret": "p" } } } })),
            "basic",
        ),
        (
            "basic auth without the password Secret",
            values(json!({ "elasticsearch": { "auth": { "basic": { "username": "u" } } } })),
            "existingSecret",
        ),
        (
            "CA from both a Secret and a ConfigMap",
            values(
                json!({ "elasticsearch": { "tls": { "ca": { "existingSecret": "a", "existingConfigMap": "b" } } } }),
            ),
            "existingConfigMap",
        ),
        (
            "leaderElection.enabled not a boolean",
            values(json!({ "leaderElection": { "enabled": "yes" } })),
            "enabled",
        ),
        // The free-form blocks of Kubernetes types, checked by the schema of their type.
        (
            "misspelled resource name",
            values(json!({ "resources": { "limits": { "cpuu": "1" } } })),
            "cpuu",
        ),
        (
            "quantity that is not one",
            values(json!({ "resources": { "requests": { "memory": "lots" } } })),
            "memory",
        ),
        (
            "misspelled resources key",
            values(json!({ "resources": { "limit": { "cpu": "1" } } })),
            "limit",
        ),
        (
            "misspelled toleration field",
            values(json!({ "tolerations": [{ "key": "a", "operatr": "Exists" }] })),
            "operatr",
        ),
        (
            "toleration effect outside the enum",
            values(
                json!({ "tolerations": [{ "key": "a", "operator": "Exists", "effect": "NoScheduel" }] }),
            ),
            "effect",
        ),
        (
            "misspelled affinity kind",
            values(json!({ "affinity": { "nodeAfinity": {} } })),
            "nodeAfinity",
        ),
        (
            "pod affinity term without topologyKey",
            values(json!({ "affinity": { "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{ "labelSelector": {} }] } } })),
            "topologyKey",
        ),
        (
            "topology spread with a bad whenUnsatisfiable",
            values(json!({ "topologySpreadConstraints": [{ "maxSkew": 1,
                "topologyKey": "zone", "whenUnsatisfiable": "Never" }] })),
            "whenUnsatisfiable",
        ),
        (
            "misspelled EnvVar field",
            values(json!({ "extraEnv": [{ "name": "A", "valu": "1" }] })),
            "valu",
        ),
        (
            "misspelled VolumeMount field",
            values(
                json!({ "extraVolumeMounts": [{ "name": "tmp", "mountPath": "/tmp", "readonly": true }] }),
            ),
            "readonly",
        ),
        (
            "misspelled seLinuxOptions field",
            values(json!({ "podSecurityContext": { "seLinuxOptions": { "levl": "s0" } } })),
            "levl",
        ),
    ];
    for (what, v, needle) in cases {
        match try_render(tools, &v) {
            Ok(_) => panic!("{what}: helm accepted {v}"),
            Err(e) => {
                assert!(
                    e.contains("values don't meet the specifications of the schema"),
                    "{what}: not a schema error:\n{e}"
                );
                assert!(
                    e.contains(needle),
                    "{what}: error does not mention {needle}:\n{e}"
                );
            }
        }
    }
    // And --set typos too, as people type them.
    let err = render_with(
        tools,
        &values(json!({})),
        &["--set", "serviceAccount.nmae=x"],
    )
    .expect_err("typo accepted");
    assert!(err.contains("nmae"), "{err}");
    let err = render_with(
        tools,
        &values(json!({})),
        &["--set", "resources.limits.cpuu=1"],
    )
    .expect_err("resources.limits.cpuu accepted");
    assert!(err.contains("cpuu"), "{err}");
    // Every kind of resource name Kubernetes accepts, and quantities as people write them.
    render(
        tools,
        &values(json!({ "resources": {
            "requests": { "cpu": "0.5", "memory": "64Mi", "ephemeral-storage": "1G", "hugepages-2Mi": "0" },
            "limits": { "cpu": 2, "memory": "1.5Gi", "example.com/device": "1", "nvidia.com/gpu": 1 },
            "claims": [{ "name": "gpu", "request": "one" }] },
            "extraEnv": [{ "name": "NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }] })),
    );
}

fn url_is_optional_but_needed_by_default_cluster_settings(tools: &Tools) {
    // Without a default cluster every resource names its own: no ELASTICSEARCH_URL at all.
    for v in [json!({}), json!({ "elasticsearch": { "url": "" } })] {
        let docs =
            parse_docs(&render_with(tools, &v, &[]).expect("renders without elasticsearch.url"));
        assert_eq!(env_value(&docs, "ELASTICSEARCH_URL"), None);
    }
    // Credentials or a CA for the default cluster without its URL are a mistake.
    let v = json!({ "elasticsearch": { "auth": { "apiKey": { "existingSecret": "k" } } } });
    let err = render_with(tools, &v, &[]).expect_err("auth without url");
    assert!(err.contains("needs elasticsearch.url"), "{err}");
    assert!(err.contains("spec.elasticsearchRef"), "{err}");
}

fn template_checks_refuse_unsafe_combinations(tools: &Tools) {
    let err = try_render(
        tools,
        &values(json!({ "replicaCount": 2, "leaderElection": { "enabled": false } })),
    )
    .expect_err("two replicas without leader election");
    assert!(err.contains("leaderElection.enabled is false"), "{err}");
    let err = try_render(
        tools,
        &values(json!({ "podDisruptionBudget": { "enabled": true } })),
    )
    .expect_err("PDB with one replica");
    assert!(
        err.contains("podDisruptionBudget.enabled needs replicaCount >= 2"),
        "{err}"
    );
    // An http:// default cluster only with plaintext allowed (the binary refuses it otherwise).
    let plain = json!({ "elasticsearch": { "url": "http://es.example:9200" } });
    let err = try_render(tools, &values(plain.clone())).expect_err("http:// refused");
    assert!(
        err.contains("security.allowPlaintextElasticsearch=true"),
        "{err}"
    );
    let mut allowed = values(plain);
    merge(
        &mut allowed,
        json!({ "security": { "allowPlaintextElasticsearch": true } }),
    );
    let docs = render(tools, &allowed);
    assert_eq!(
        env_value(&docs, "ALLOW_PLAINTEXT_ELASTICSEARCH").as_deref(),
        Some("true")
    );
    // Even with the schema skipped, the templates refuse both kinds of credentials.
    let both = values(json!({ "elasticsearch": { "auth": {
        "apiKey": { "existingSecret": "k" }, "basic": { "username": "u", "existingSecret": "p" } } } }));
    let err =
        render_with(tools, &both, &["--skip-schema-validation"]).expect_err("both credentials");
    assert!(
        err.contains("set either apiKey or basic, not both"),
        "{err}"
    );
}

fn security_contexts_are_restricted(tools: &Tools) {
    for (name, v) in matrix() {
        let docs = render(tools, &v);
        let pod = pod_spec(&docs);
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}");
        assert_eq!(psc["runAsUser"], 65532, "{name}");
        assert_eq!(psc["runAsGroup"], 65532, "{name}");
        assert_eq!(psc["fsGroup"], 65532, "{name}");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let sc = &container(&docs)["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["runAsNonRoot"], true, "{name}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
        assert!(sc["capabilities"].get("add").is_none(), "{name}");
        assert!(sc.get("privileged").is_none_or(|p| p == false), "{name}");
        assert_eq!(pod["automountServiceAccountToken"], true, "{name}");
        assert!(
            pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none(),
            "{name}"
        );
        // Resources: requests and limits.
        let res = &container(&docs)["resources"];
        for k in ["requests", "limits"] {
            assert!(
                res[k]["cpu"].is_string() && res[k]["memory"].is_string(),
                "{name}: resources.{k}"
            );
        }
        // Every volume is a Secret, ConfigMap or emptyDir, never a hostPath.
        for vol in pod["volumes"].as_array().into_iter().flatten() {
            assert!(vol.get("hostPath").is_none(), "{name}");
        }
    }
}

/// Whether `role` is one of the ClusterRoles for people (rbac.aggregateToDefaultRoles): aggregated
/// into the default view/edit/admin roles and bound to nobody by the chart.
fn is_aggregated(role: &Value) -> bool {
    role["metadata"]["labels"].as_object().is_some_and(|l| {
        l.keys()
            .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
    })
}

/// The ClusterRoles granted to the operator, not to people.
fn operator_cluster_roles(docs: &[Value]) -> Vec<&Value> {
    kind(docs, "ClusterRole")
        .into_iter()
        .filter(|r| !is_aggregated(r))
        .collect()
}

fn rbac_is_cluster_wide_by_default(tools: &Tools) {
    let docs = render(tools, &values(api_key()));
    let operator = operator_cluster_roles(&docs);
    assert_eq!(
        operator.len(),
        2,
        "the operator's ClusterRole and the namespace reader"
    );
    let cr = operator
        .into_iter()
        .find(|c| c["metadata"]["name"] == fullname())
        .expect("ClusterRole");
    assert_eq!(rules(cr), watched_rules());
    let binding = kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .find(|c| c["metadata"]["name"] == fullname())
        .expect("ClusterRoleBinding");
    assert_binds_operator(binding, "ClusterRole", fullname());
    assert_namespace_reader(&docs);
    assert!(kind(&docs, "Role").is_empty() && kind(&docs, "RoleBinding").is_empty());
    assert_eq!(env_value(&docs, "WATCH_NAMESPACE"), None);
    // rbac.create=false: none at all.
    let docs = render(
        tools,
        &values(json!({ "rbac": { "create": false }, "replicaCount": 2 })),
    );
    for k in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            kind(&docs, k).is_empty(),
            "rbac.create=false still renders a {k}"
        );
    }
}

fn rbac_is_per_namespace_with_watch_namespaces(tools: &Tools) {
    let docs = render(tools, &values(json!({ "watchNamespaces": ["a", "b"] })));
    // Nothing cluster-wide but the namespace metadata (cluster-scoped by nature).
    assert_eq!(
        operator_cluster_roles(&docs).len(),
        1,
        "no other cluster-wide grant"
    );
    assert_eq!(kind(&docs, "ClusterRoleBinding").len(), 1);
    assert_namespace_reader(&docs);
    let roles = kind(&docs, "Role");
    let namespaces: BTreeSet<&str> = roles
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().expect("ns"))
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["a", "b"]));
    assert_eq!(
        roles.len(),
        2,
        "one Role per namespace, no lease Role with one replica"
    );
    for role in &roles {
        assert_eq!(rules(role), watched_rules());
        assert_eq!(role["metadata"]["name"], fullname());
    }
    let bindings = kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 2);
    for b in bindings {
        assert!(["a", "b"].contains(&b["metadata"]["namespace"].as_str().expect("ns")));
        assert_binds_operator(b, "Role", fullname());
    }
    assert_eq!(env_value(&docs, "WATCH_NAMESPACE").as_deref(), Some("a,b"));
}

fn lease_role_only_with_leader_election(tools: &Tools) {
    let lease_role = format!("{}-leader-election", fullname());
    let cases = [
        (json!({}), false),
        (json!({ "replicaCount": 2 }), true),
        (json!({ "leaderElection": { "enabled": true } }), true),
        (
            json!({ "replicaCount": 2, "leaderElection": { "enabled": true } }),
            true,
        ),
        (json!({ "replicaCount": 2, "watchNamespaces": ["a"] }), true),
    ];
    for (overrides, on) in cases {
        let docs = render(tools, &values(overrides.clone()));
        let lease_roles: Vec<_> = kind(&docs, "Role")
            .into_iter()
            .filter(|r| r["metadata"]["name"] == lease_role.as_str())
            .collect();
        assert_eq!(
            env_value(&docs, "LEADER_ELECTION").as_deref(),
            Some(if on { "true" } else { "false" }),
            "{overrides}"
        );
        let strategy = &one(&docs, "Deployment")["spec"]["strategy"]["type"];
        if on {
            assert_eq!(lease_roles.len(), 1, "{overrides}");
            let role = lease_roles[0];
            assert_eq!(
                role["metadata"]["namespace"], NAMESPACE,
                "the Lease is in the release namespace"
            );
            assert_eq!(rules(role), lease_rules());
            let own: Vec<bool> = es_inference_operator::rbac::RULES
                .iter()
                .filter(|r| r.scope == es_inference_operator::rbac::Scope::OwnNamespace)
                .map(|r| r.own_object_only)
                .collect();
            assert_eq!(named_rules(role), own, "resourceNames where rbac.rs says");
            for rule in role["rules"].as_array().expect("rules") {
                if let Some(names) = rule.get("resourceNames") {
                    assert_eq!(names, &json!(["es-inference-operator"]), "the Lease's name");
                }
            }
            let binding = kind(&docs, "RoleBinding")
                .into_iter()
                .find(|b| b["metadata"]["name"] == lease_role.as_str())
                .expect("lease RoleBinding");
            assert_eq!(binding["metadata"]["namespace"], NAMESPACE);
            assert_binds_operator(binding, "Role", &lease_role);
            assert_eq!(
                env_value(&docs, "LEADER_ELECTION_NAMESPACE").as_deref(),
                Some(NAMESPACE)
            );
            assert_eq!(
                env_value(&docs, "LEADER_ELECTION_LEASE_NAME").as_deref(),
                Some("es-inference-operator")
            );
            assert_eq!(
                env_value(&docs, "LEADER_ELECTION_LEASE_DURATION").as_deref(),
                Some("15s")
            );
            assert_eq!(strategy, "RollingUpdate", "{overrides}");
        } else {
            assert!(lease_roles.is_empty(), "{overrides}");
            assert!(
                !docs
                    .iter()
                    .any(|d| d.to_string().contains("coordination.k8s.io")),
                "no lease permission without leader election"
            );
            assert_eq!(
                strategy, "Recreate",
                "without leader election two operators must never overlap"
            );
        }
    }
    // No rule anywhere grants leases cluster-wide.
    for (name, v) in matrix() {
        let docs = render(tools, &v);
        for cr in kind(&docs, "ClusterRole") {
            assert!(
                rules(cr).iter().all(|(g, _, _)| g != "coordination.k8s.io"),
                "{name}"
            );
        }
    }
}

fn no_secret_write_verbs_anywhere(tools: &Tools) {
    for (name, v) in matrix() {
        let docs = render(tools, &v);
        for role in kind(&docs, "Role")
            .into_iter()
            .chain(kind(&docs, "ClusterRole"))
        {
            for (group, resource, verbs) in rules(role) {
                assert!(!verbs.iter().any(|v| v == "*"), "{name}: wildcard verb");
                assert_ne!(resource, "*", "{name}: wildcard resource");
                assert_ne!(group, "*", "{name}: wildcard group");
                if group.is_empty() && resource == "secrets" {
                    assert_eq!(
                        verbs,
                        ["get", "list", "watch"],
                        "{name}: Secrets are only read"
                    );
                }
                // Every rule of the operator's roles is one the operator needs (the roles for
                // people are checked by aggregated_user_roles).
                assert!(
                    is_aggregated(role)
                        || watched_rules().contains(&(
                            group.clone(),
                            resource.clone(),
                            verbs.clone()
                        ))
                        || lease_rules().contains(&(
                            group.clone(),
                            resource.clone(),
                            verbs.clone()
                        ))
                        || cluster_rules().contains(&(
                            group.clone(),
                            resource.clone(),
                            verbs.clone()
                        )),
                    "{name}: unexpected rule {group}/{resource} {verbs:?}"
                );
            }
        }
    }
}

/// The ClusterRoles for people: `view` reads the operator's resources and their status; `edit` and
/// `admin` also write the resources, never their status; nobody gets anything on Secrets. They
/// are bound to nobody (Kubernetes aggregates them into its default roles).
fn aggregated_user_roles(tools: &Tools) {
    const LABEL: &str = "rbac.authorization.k8s.io/aggregate-to-";
    let read = ["get", "list", "watch"];
    let write = ["create", "update", "patch", "delete", "deletecollection"];
    let resources = ["inferenceendpoints", "elasticsearchconnections"];
    let statuses = [
        "inferenceendpoints/status",
        "elasticsearchconnections/status",
    ];
    for (overrides, wanted) in [
        (json!({}), true),
        (json!({ "watchNamespaces": ["a", "b"] }), true),
        (
            json!({ "rbac": { "aggregateToDefaultRoles": false } }),
            false,
        ),
        (json!({ "rbac": { "create": false } }), false),
    ] {
        let docs = render(tools, &values(overrides.clone()));
        let roles: Vec<&Value> = kind(&docs, "ClusterRole")
            .into_iter()
            .filter(|r| is_aggregated(r))
            .collect();
        if !wanted {
            assert!(roles.is_empty(), "{overrides}: {roles:?}");
            continue;
        }
        assert_eq!(roles.len(), 2, "{overrides}");
        let by_name = |suffix: &str| {
            let name = format!("{}-{suffix}", fullname());
            *roles
                .iter()
                .find(|r| r["metadata"]["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{overrides}: no ClusterRole {name}"))
        };
        let aggregate_labels = |role: &Value| -> BTreeSet<String> {
            role["metadata"]["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .filter(|(k, _)| k.starts_with(LABEL))
                .map(|(k, v)| {
                    assert_eq!(v, "true", "{k}");
                    k.trim_start_matches(LABEL).to_string()
                })
                .collect()
        };
        let grants = |role: &Value| -> Vec<(String, String, BTreeSet<String>)> {
            rules(role)
                .into_iter()
                .map(|(g, r, v)| (g, r, v.into_iter().collect()))
                .collect()
        };
        let set =
            |verbs: &[&str]| -> BTreeSet<String> { verbs.iter().map(|v| v.to_string()).collect() };

        let view = by_name("view");
        assert_eq!(aggregate_labels(view), BTreeSet::from(["view".to_string()]));
        let want: Vec<_> = resources
            .iter()
            .chain(&statuses)
            .map(|r| ("es-inference.dev".to_string(), r.to_string(), set(&read)))
            .collect();
        assert_eq!(grants(view), want, "{overrides}: view");

        let edit = by_name("edit");
        assert_eq!(
            aggregate_labels(edit),
            BTreeSet::from(["edit".to_string(), "admin".to_string()])
        );
        let all: Vec<&str> = read.iter().chain(&write).copied().collect();
        let want: Vec<_> = resources
            .iter()
            .map(|r| ("es-inference.dev".to_string(), r.to_string(), set(&all)))
            .chain(
                statuses
                    .iter()
                    .map(|r| ("es-inference.dev".to_string(), r.to_string(), set(&read))),
            )
            .collect();
        assert_eq!(grants(edit), want, "{overrides}: edit");

        for role in [view, edit] {
            for (group, resource, verbs) in grants(role) {
                assert_eq!(
                    group, "es-inference.dev",
                    "only the operator's own API group"
                );
                assert_ne!(resource, "secrets");
                if resource.ends_with("/status") {
                    assert_eq!(verbs, set(&read), "{resource}: people never write status");
                }
            }
            let name = role["metadata"]["name"].as_str().expect("name");
            for binding in kind(&docs, "ClusterRoleBinding")
                .into_iter()
                .chain(kind(&docs, "RoleBinding"))
            {
                assert_ne!(
                    binding["roleRef"]["name"], name,
                    "{name} is bound by the chart"
                );
            }
        }
    }
}

/// No credential in the environment: no *_API_KEY / *_PASSWORD variables, no Secret references
/// in env; credentials are files.
fn assert_no_credentials_in_env(docs: &[Value]) {
    for (name, e) in env(docs) {
        assert!(
            name != "ELASTICSEARCH_API_KEY" && name != "ELASTICSEARCH_PASSWORD",
            "{name} would put a credential into the environment"
        );
        assert!(
            e["valueFrom"].get("secretKeyRef").is_none(),
            "{name} reads a Secret into env"
        );
    }
}

fn volume<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    pod_spec(docs)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("volume {name}"))
}

/// The mount of `volume` and the path of the file `item` inside it.
fn mounted_file(docs: &[Value], volume_name: &str, item_path: &str) -> String {
    let mount = container(docs)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume_name)
        .unwrap_or_else(|| panic!("mount of {volume_name}"))
        .clone();
    assert_eq!(
        mount["readOnly"], true,
        "{volume_name} is mounted read-only"
    );
    assert!(
        mount.get("subPath").is_none(),
        "no subPath, so the kubelet refreshes rotated Secrets"
    );
    format!(
        "{}/{item_path}",
        mount["mountPath"].as_str().expect("mountPath")
    )
}

fn api_key_is_a_mounted_file(tools: &Tools) {
    let docs = render(
        tools,
        &values(json!({ "elasticsearch": { "auth": { "apiKey": {
        "existingSecret": "es-api-key", "key": "encoded" } } } })),
    );
    let vol = volume(&docs, "elasticsearch-api-key");
    assert_eq!(vol["secret"]["secretName"], "es-api-key");
    assert_eq!(
        vol["secret"]["items"],
        json!([{ "key": "encoded", "path": "api-key" }])
    );
    assert_eq!(vol["secret"]["defaultMode"], 0o440);
    let file = mounted_file(&docs, "elasticsearch-api-key", "api-key");
    assert_eq!(env_value(&docs, "ELASTICSEARCH_API_KEY_FILE"), Some(file));
    assert_eq!(env_value(&docs, "ELASTICSEARCH_USERNAME"), None);
    assert_eq!(env_value(&docs, "ELASTICSEARCH_PASSWORD_FILE"), None);
    assert_eq!(env_value(&docs, "ELASTICSEARCH_URL").as_deref(), Some(URL));
    assert_no_credentials_in_env(&docs);
    // The default key name.
    let docs = render(tools, &values(api_key()));
    assert_eq!(
        volume(&docs, "elasticsearch-api-key")["secret"]["items"][0]["key"],
        "api-key"
    );
    // Without credentials: no file variables, no volumes.
    let docs = render(tools, &values(json!({})));
    assert_eq!(env_value(&docs, "ELASTICSEARCH_API_KEY_FILE"), None);
    assert!(pod_spec(&docs).get("volumes").is_none());
    assert_no_credentials_in_env(&docs);
}

fn basic_auth_password_is_a_mounted_file(tools: &Tools) {
    let docs = render(
        tools,
        &values(json!({ "elasticsearch": { "auth": { "basic": {
        "username": "operator", "existingSecret": "es-password", "passwordKey": "pw" } } } })),
    );
    let vol = volume(&docs, "elasticsearch-password");
    assert_eq!(vol["secret"]["secretName"], "es-password");
    assert_eq!(
        vol["secret"]["items"],
        json!([{ "key": "pw", "path": "password" }])
    );
    let file = mounted_file(&docs, "elasticsearch-password", "password");
    assert_eq!(env_value(&docs, "ELASTICSEARCH_PASSWORD_FILE"), Some(file));
    assert_eq!(
        env_value(&docs, "ELASTICSEARCH_USERNAME").as_deref(),
        Some("operator")
    );
    assert_eq!(env_value(&docs, "ELASTICSEARCH_API_KEY_FILE"), None);
    assert_no_credentials_in_env(&docs);
}

fn ca_from_secret_or_configmap_is_mounted(tools: &Tools) {
    let docs = render(
        tools,
        &values(json!({ "elasticsearch": { "tls": { "ca": { "existingSecret": "es-ca" } } } })),
    );
    let vol = volume(&docs, "elasticsearch-ca");
    assert_eq!(vol["secret"]["secretName"], "es-ca");
    assert_eq!(
        vol["secret"]["items"],
        json!([{ "key": "ca.crt", "path": "ca.crt" }])
    );
    let file = mounted_file(&docs, "elasticsearch-ca", "ca.crt");
    assert_eq!(
        env_value(&docs, "ELASTICSEARCH_CA_FILE"),
        Some(file.clone())
    );

    let docs = render(
        tools,
        &values(json!({ "elasticsearch": { "tls": { "ca": {
        "existingConfigMap": "es-ca-bundle", "key": "bundle.pem" } } } })),
    );
    let vol = volume(&docs, "elasticsearch-ca");
    assert!(vol.get("secret").is_none());
    assert_eq!(vol["configMap"]["name"], "es-ca-bundle");
    assert_eq!(
        vol["configMap"]["items"],
        json!([{ "key": "bundle.pem", "path": "ca.crt" }])
    );
    assert_eq!(
        env_value(&docs, "ELASTICSEARCH_CA_FILE"),
        Some(mounted_file(&docs, "elasticsearch-ca", "ca.crt"))
    );

    // Together with an API key: two volumes, two files.
    let mut v = values(api_key());
    merge(
        &mut v,
        json!({ "elasticsearch": { "tls": { "ca": { "existingSecret": "es-ca" } } } }),
    );
    let docs = render(tools, &v);
    assert_eq!(
        pod_spec(&docs)["volumes"]
            .as_array()
            .expect("volumes")
            .len(),
        2
    );
    assert!(env_value(&docs, "ELASTICSEARCH_CA_FILE").is_some());
    assert!(env_value(&docs, "ELASTICSEARCH_API_KEY_FILE").is_some());
    // No CA configured: the operator uses its built-in roots.
    assert_eq!(
        env_value(&render(tools, &values(json!({}))), "ELASTICSEARCH_CA_FILE"),
        None
    );
}

fn operator_settings_reach_the_environment(tools: &Tools) {
    let docs = render(tools, &values(json!({})));
    let expected = [
        ("ELASTICSEARCH_URL", URL),
        ("ELASTICSEARCH_TIMEOUT", "30s"),
        ("ELASTICSEARCH_MAX_CONCURRENCY", "8"),
        ("CREATE_TIMEOUT", "60s"),
        ("RESYNC_INTERVAL", "10m"),
        ("MAX_CONCURRENT_RECONCILES", "8"),
        ("METRICS_ADDR", "0.0.0.0:8080"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("SHUTDOWN_TIMEOUT", "10s"),
        ("LEADER_ELECTION", "false"),
        // Secure by default: nothing insecure allowed, endpoints deleted with their resource.
        ("ALLOW_CROSS_NAMESPACE_REFS", "false"),
        ("ALLOW_CROSS_NAMESPACE_ELASTIC_USER", "false"),
        ("ALLOW_PLAINTEXT_ELASTICSEARCH", "false"),
        ("ALLOW_INSECURE_SKIP_VERIFY", "false"),
        ("DEFAULT_DELETION_POLICY", "Delete"),
    ];
    for (k, want) in expected {
        assert_eq!(env_value(&docs, k).as_deref(), Some(want), "{k}");
    }
    // Every variable is one the binary reads.
    // The variables `run` reads (from its clap definition), plus the ones read directly.
    let run = <es_inference_operator::config::Cli as clap::CommandFactory>::command();
    let run = run.find_subcommand("run").expect("run subcommand");
    let mut known: Vec<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    known.extend(["POD_NAME", "POD_NAMESPACE", "RUST_LOG"].map(String::from));
    for (name, v) in matrix() {
        let docs = render(tools, &v);
        let names: Vec<String> = env(&docs).into_iter().map(|(n, _)| n).collect();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "{name}: duplicate env names {names:?}"
        );
        for n in &names {
            assert!(
                known.contains(n) || n == "EXTRA",
                "{name}: {n} is not read by the operator"
            );
        }
    }
    // Changed values reach the environment.
    let docs = render(
        tools,
        &values(json!({
            "elasticsearch": { "timeout": "5s", "maxConcurrency": 2 },
            "createTimeout": "90s", "resyncInterval": "1h", "maxConcurrentReconciles": 3,
            "shutdownTimeout": "10s", "logFormat": "text", "logLevel": "debug,kube=info",
            "leaderElection": { "enabled": true, "leaseName": "custom", "leaseDuration": "30s" },
            "security": { "allowCrossNamespaceRefs": true, "allowCrossNamespaceElasticUser": true,
                "allowPlaintextElasticsearch": true, "allowInsecureSkipVerify": true },
            "defaultDeletionPolicy": "Retain",
            "tenancy": { "inferenceIdPrefix": "{namespace}-", "adoptNamespaceSelector": "platform=true",
                "forceDeleteNamespaceSelector": "platform=true", "recreateNamespaceSelector": "tier=dev" },
        })),
    );
    for (k, want) in [
        ("ELASTICSEARCH_TIMEOUT", "5s"),
        ("ELASTICSEARCH_MAX_CONCURRENCY", "2"),
        ("ALLOW_CROSS_NAMESPACE_REFS", "true"),
        ("ALLOW_CROSS_NAMESPACE_ELASTIC_USER", "true"),
        ("ALLOW_PLAINTEXT_ELASTICSEARCH", "true"),
        ("ALLOW_INSECURE_SKIP_VERIFY", "true"),
        ("DEFAULT_DELETION_POLICY", "Retain"),
        ("INFERENCE_ID_PREFIX", "{namespace}-"),
        ("ADOPT_NAMESPACE_SELECTOR", "platform=true"),
        ("FORCE_DELETE_NAMESPACE_SELECTOR", "platform=true"),
        ("RECREATE_NAMESPACE_SELECTOR", "tier=dev"),
        ("CREATE_TIMEOUT", "90s"),
        ("RESYNC_INTERVAL", "1h"),
        ("MAX_CONCURRENT_RECONCILES", "3"),
        ("SHUTDOWN_TIMEOUT", "10s"),
        ("LOG_FORMAT", "text"),
        ("RUST_LOG", "debug,kube=info"),
        ("LEADER_ELECTION", "true"),
        ("LEADER_ELECTION_LEASE_NAME", "custom"),
        ("LEADER_ELECTION_LEASE_DURATION", "30s"),
    ] {
        assert_eq!(env_value(&docs, k).as_deref(), Some(want), "{k}");
    }
    assert_eq!(container(&docs)["args"], json!(["run"]));
}

fn probes_ports_and_downward_api(tools: &Tools) {
    let docs = render(tools, &values(json!({})));
    let c = container(&docs);
    assert_eq!(
        c["ports"],
        json!([{ "name": "metrics", "containerPort": 8080, "protocol": "TCP" }])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({ "path": "/healthz", "port": "metrics" })
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({ "path": "/readyz", "port": "metrics" })
    );
    assert_eq!(c["livenessProbe"]["periodSeconds"], 20);
    let env = env(&docs);
    let field = |n: &str| {
        env.iter()
            .find(|(k, _)| k == n)
            .map(|(_, e)| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(field("POD_NAME"), Some(json!("metadata.name")));
    assert_eq!(field("POD_NAMESPACE"), Some(json!("metadata.namespace")));
    // Grace period longer than SHUTDOWN_TIMEOUT (20s).
    assert_eq!(pod_spec(&docs)["terminationGracePeriodSeconds"], 30);
    let svc = one(&docs, "Service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{ "name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP" }])
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    // Timings come from values.
    let docs = render(
        tools,
        &values(json!({ "readinessProbe": { "periodSeconds": 3 } })),
    );
    assert_eq!(container(&docs)["readinessProbe"]["periodSeconds"], 3);
    assert_eq!(
        container(&docs)["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );
}

fn optional_objects(tools: &Tools) {
    let docs = render(tools, &values(json!({})));
    for k in ["ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"] {
        assert!(kind(&docs, k).is_empty(), "{k} is off by default");
    }
    assert_eq!(one(&docs, "ServiceAccount")["metadata"]["name"], fullname());

    let docs = render(
        tools,
        &values(json!({ "serviceMonitor": { "enabled": true,
        "interval": "1m", "scrapeTimeout": "20s", "labels": { "release": "kube-prometheus" } } })),
    );
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        one(&docs, "Service")["spec"]["selector"]
    );
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(
        (ep["port"].as_str(), ep["path"].as_str()),
        (Some("metrics"), Some("/metrics"))
    );
    assert_eq!(
        (ep["interval"].as_str(), ep["scrapeTimeout"].as_str()),
        (Some("1m"), Some("20s"))
    );
    // The Service's labels include what the ServiceMonitor selects.
    let svc_labels = &one(&docs, "Service")["metadata"]["labels"];
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("labels")
    {
        assert_eq!(&svc_labels[k], v);
    }

    let docs = render(
        tools,
        &values(json!({ "replicaCount": 2, "podDisruptionBudget": { "enabled": true } })),
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        one(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );

    let docs = render(
        tools,
        &values(json!({ "serviceAccount": { "create": false, "name": "existing" } })),
    );
    assert!(kind(&docs, "ServiceAccount").is_empty());
    assert_eq!(pod_spec(&docs)["serviceAccountName"], "existing");
    for binding in kind(&docs, "ClusterRoleBinding") {
        assert_eq!(binding["subjects"][0]["name"], "existing");
    }
}

fn network_policy(tools: &Tools) {
    let np_of = |v: Value| {
        let docs = render(tools, &values(json!({ "networkPolicy": v })));
        one(&docs, "NetworkPolicy").clone()
    };
    let ports = |rule: &Value| -> Vec<(Value, String)> {
        rule["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["port"].clone(),
                    p["protocol"].as_str().expect("protocol").to_string(),
                )
            })
            .collect()
    };
    let np = np_of(json!({ "enabled": true }));
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "es-inference-operator"
    );
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(ports(&ingress[0]), vec![(json!("metrics"), "TCP".into())]);
    let egress = np["spec"]["egress"].as_array().expect("egress");
    assert_eq!(
        egress.len(),
        3,
        "DNS, API server, Elasticsearch: {egress:?}"
    );
    assert_eq!(
        ports(&egress[0]),
        vec![(json!(53), "UDP".into()), (json!(53), "TCP".into())]
    );
    assert_eq!(
        ports(&egress[1]),
        vec![(json!(443), "TCP".into()), (json!(6443), "TCP".into())]
    );
    // Elasticsearch's port comes from the URL.
    assert_eq!(ports(&egress[2]), vec![(json!(9200), "TCP".into())]);
    for rule in egress {
        assert!(
            rule.get("to").is_none(),
            "no peers configured: any destination on these ports"
        );
    }

    let docs = render(
        tools,
        &json!({ "elasticsearch": { "url": "https://my-cluster.es.example.com" },
        "networkPolicy": { "enabled": true } }),
    );
    let egress = one(&docs, "NetworkPolicy")["spec"]["egress"].clone();
    assert_eq!(
        ports(&egress[2]),
        vec![(json!(443), "TCP".into())],
        "https without a port is 443"
    );
    let docs = render(
        tools,
        &json!({ "elasticsearch": { "url": "http://es:80" }, "networkPolicy": { "enabled": true },
                 "security": { "allowPlaintextElasticsearch": true } }),
    );
    assert_eq!(
        ports(&one(&docs, "NetworkPolicy")["spec"]["egress"][2]),
        vec![(json!(80), "TCP".into())]
    );

    let peer = json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "elastic" } } });
    let np = np_of(json!({ "enabled": true,
        "apiServer": { "cidrs": ["10.0.0.1/32", "10.0.0.2/32"], "ports": [6443] },
        "elasticsearch": { "to": [peer.clone()], "ports": [9200, 9300] },
        "dns": { "to": [{ "namespaceSelector": {} }] },
        "metrics": { "from": [{ "podSelector": { "matchLabels": { "app": "prometheus" } } }] },
        "extraEgress": [{ "ports": [{ "port": 4317, "protocol": "TCP" }] }] }));
    let egress = np["spec"]["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 4);
    assert_eq!(egress[0]["to"], json!([{ "namespaceSelector": {} }]));
    assert_eq!(
        egress[1]["to"],
        json!([{ "ipBlock": { "cidr": "10.0.0.1/32" } }, { "ipBlock": { "cidr": "10.0.0.2/32" } }])
    );
    assert_eq!(ports(&egress[1]), vec![(json!(6443), "TCP".into())]);
    assert_eq!(egress[2]["to"], json!([peer]));
    assert_eq!(
        ports(&egress[2]),
        vec![(json!(9200), "TCP".into()), (json!(9300), "TCP".into())]
    );
    assert_eq!(ports(&egress[3]), vec![(json!(4317), "TCP".into())]);
    assert_eq!(
        np["spec"]["ingress"][0]["from"],
        json!([{ "podSelector": { "matchLabels": { "app": "prometheus" } } }])
    );
}

// ---------------------------------------------------------------------------------------------
// observability: the Grafana dashboard and the PrometheusRule

/// Every sample name the operator exports (OpenMetrics: counters end in `_total`).
const METRICS: &[&str] = &[
    "es_inference_operator_build_info",
    "es_inference_operator_leader",
    "es_inference_operator_reconciles_total",
    "es_inference_operator_reconcile_errors_total",
    "es_inference_operator_reconcile_duration_seconds",
    "es_inference_operator_reconciles_in_flight",
    "es_inference_operator_elasticsearch_requests_total",
    "es_inference_operator_elasticsearch_request_duration_seconds",
    "es_inference_operator_elasticsearch_connection_up",
    "es_inference_operator_endpoints",
    "es_inference_operator_endpoint_ready",
    "es_inference_operator_drift_corrections_total",
    "es_inference_operator_secret_rotations_total",
    "es_inference_operator_secret_reads_total",
];
/// The histograms among them, queried through `_bucket`, `_sum` and `_count`.
const HISTOGRAMS: &[&str] = &[
    "es_inference_operator_reconcile_duration_seconds",
    "es_inference_operator_elasticsearch_request_duration_seconds",
];

/// The series names a query may select: the operator's, and Prometheus's own `up` (rules only).
fn queryable(name: &str) -> bool {
    let histogram_series = HISTOGRAMS.iter().any(|h| {
        name.strip_prefix(h)
            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
    });
    (METRICS.contains(&name) && !HISTOGRAMS.contains(&name)) || histogram_series
}

fn dashboard() -> Value {
    serde_json::from_str(&read(
        &chart_dir().join("dashboards/es-inference-operator.json"),
    ))
    .expect("the dashboard is JSON")
}

/// The metric names a PromQL expression selects: identifiers outside strings, label matchers
/// `{...}`, ranges `[...]`, Grafana variables (`$x`) and the label lists of by, without, on,
/// ignoring, group_left and group_right, that are neither calls (followed by `(`) nor keywords.
fn promql_metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan", // operators and literals
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio", // aggregations (`sum by (x) (...)`)
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    fn ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    }
    /// The index after the string that starts at `i`.
    fn skip_string(chars: &[char], i: usize) -> usize {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() {
            if chars[j] == '\\' && quote != '`' {
                j += 2;
                continue;
            }
            if chars[j] == quote {
                return j + 1;
            }
            j += 1;
        }
        panic!("unterminated string in {}", String::from_iter(chars));
    }
    /// The index after the group (`{`, `[` or `(`) that opens at `i`.
    fn skip_group(chars: &[char], mut i: usize) -> usize {
        let open = chars[i];
        let close = match open {
            '{' => '}',
            '[' => ']',
            _ => ')',
        };
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(chars, i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        panic!("unbalanced {open} in {}", String::from_iter(chars));
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' | '[' => i = skip_group(&chars, i),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' | '0'..='9' | '.' => {
                // A variable, a number or a duration.
                i += 1;
                while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if ident(c) => {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let call = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) {
                    if call {
                        i = skip_group(&chars, next);
                    }
                } else if !call && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The constant above is what the operator really exports: every family of its registry (each
/// given a sample, as labelled families without one are not rendered), with OpenMetrics' sample
/// suffixes.
fn metric_names_are_what_the_binary_exports(_: &Tools) {
    use es_inference_operator::metrics::{KIND_ENDPOINT, Metrics};
    let m = Metrics::new();
    m.reconcile_started(KIND_ENDPOINT).finish(false);
    m.reconcile_error(KIND_ENDPOINT, "timeout");
    m.observe_es_request(
        "default",
        "create",
        "PUT",
        "2xx",
        std::time::Duration::from_millis(5),
    );
    m.set_connection_up("default", true);
    m.set_endpoint_reason("ns", "a", Some(("InSync", true)));
    let text = m.render();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name type");
            match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                "gauge" | "histogram" => name.to_string(),
                other => panic!("unexpected metric type {other} of {name}"),
            }
        })
        .collect();
    let listed: BTreeSet<String> = METRICS.iter().map(|m| m.to_string()).collect();
    assert_eq!(exported, listed, "the operator's metrics changed");
    for h in HISTOGRAMS {
        assert!(
            text.contains(&format!("# TYPE {h} histogram")),
            "{h} is a histogram"
        );
    }
}

fn promql_metric_names_parser(_: &Tools) {
    let expr = r#"sum by (kind, le) (rate(a_total{x="}", y=~"b|c"}[5m]))
        / on (kind) group_left (le) b_bucket offset 5m
        or vector(0) and bool c:recorded # d_comment
        > 0.99 unless absent(up{job="$job"} == 1 and ignoring (version) e_info)
        + histogram_quantile(0.5, f_bucket[$__rate_interval]) * 1e3"#;
    assert_eq!(
        promql_metric_names(expr),
        [
            "a_total",
            "b_bucket",
            "c:recorded",
            "up",
            "e_info",
            "f_bucket"
        ]
    );
    assert!(queryable("es_inference_operator_endpoints"));
    assert!(queryable(
        "es_inference_operator_reconcile_duration_seconds_bucket"
    ));
    assert!(!queryable(
        "es_inference_operator_reconcile_duration_seconds"
    ));
    assert!(!queryable("es_inference_operator_reconciles"));
    assert!(!queryable("es_inference_operator_leader_bucket"));
}

/// Every `expr` of the dashboard's panels, and every variable query (the selector inside
/// `label_values(...)`).
fn dashboard_queries(d: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    for var in d["templating"]["list"].as_array().expect("templating") {
        if var["type"] != "query" {
            continue;
        }
        let q = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _label)| selector)
            .unwrap_or_else(|| {
                panic!(
                    "variable {}: not label_values(selector, label)",
                    var["name"]
                )
            });
        out.push(inner.to_string());
    }
    out
}

/// The dashboard parses, each panel has queries, and every query names only the operator's
/// metrics; together they show every metric.
fn grafana_dashboard_queries_exported_metrics(_: &Tools) {
    let d = dashboard();
    assert_eq!(d["uid"], "es-inference-operator");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = d["panels"].as_array().expect("panels");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                expr.contains(r#"job="$job""#),
                "{}: {expr} does not select the job",
                p["title"]
            );
        }
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "Endpoints by Ready reason",
        "Not ready endpoints",
        "Reconciles by kind and result",
        "Reconcile errors by kind and error",
        "Reconcile duration p50 / p99",
        "Requests by cluster, route and status",
        "Request latency p99 by cluster and route",
        "Connection up",
        "Leader",
        "Drift corrections and secret rotations",
    ] {
        assert!(titles.contains(&want), "no panel {want:?}: {titles:?}");
    }
    let ids: Vec<&Value> = panels.iter().map(|p| &p["id"]).collect();
    let unique: BTreeSet<String> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(unique.len(), ids.len(), "panel ids are unique");

    let mut used = BTreeSet::new();
    for q in dashboard_queries(&d) {
        let names = promql_metric_names(&q);
        assert!(!names.is_empty(), "{q} names no metric");
        for n in names {
            assert!(
                queryable(&n),
                "the dashboard queries {n}, which the operator does not export: {q}"
            );
            used.insert(n);
        }
    }
    for m in METRICS {
        assert!(
            used.iter().any(|u| u.starts_with(m)),
            "the dashboard does not show {m}"
        );
    }
}

fn observability_objects_only_when_enabled(tools: &Tools) {
    let dashboards = |docs: &[Value]| -> Vec<Value> {
        kind(docs, "ConfigMap")
            .into_iter()
            .filter(|c| c["metadata"]["labels"].get("grafana_dashboard").is_some())
            .cloned()
            .collect()
    };
    for v in [
        values(json!({})),
        values(json!({ "serviceMonitor": { "enabled": true } })),
    ] {
        let docs = render(tools, &v);
        assert!(dashboards(&docs).is_empty(), "no dashboard by default");
        assert!(kind(&docs, "ConfigMap").is_empty());
        assert!(
            kind(&docs, "PrometheusRule").is_empty(),
            "no rules by default"
        );
    }
    let defaults: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("values.yaml"))).expect("yaml");
    assert_eq!(defaults["metrics"]["grafanaDashboard"]["enabled"], false);
    assert_eq!(defaults["metrics"]["prometheusRule"]["enabled"], false);

    // The dashboard: the file, verbatim, with the sidecar's label.
    let docs = render(
        tools,
        &values(json!({ "metrics": { "grafanaDashboard": { "enabled": true } } })),
    );
    let cms = dashboards(&docs);
    assert_eq!(cms.len(), 1);
    let cm = &cms[0];
    assert_eq!(cm["metadata"]["name"], format!("{}-dashboard", fullname()));
    assert_eq!(cm["metadata"]["namespace"], NAMESPACE);
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(cm["metadata"].get("annotations").is_none());
    let data = cm["data"].as_object().expect("data");
    assert_eq!(data.len(), 1);
    let json_text = data["es-inference-operator.json"].as_str().expect("json");
    assert_eq!(
        serde_json::from_str::<Value>(json_text).expect("the ConfigMap's dashboard parses"),
        dashboard()
    );
    assert!(kind(&docs, "PrometheusRule").is_empty());

    // Its overrides.
    let docs = render(
        tools,
        &values(json!({ "metrics": { "grafanaDashboard": { "enabled": true,
            "namespace": "monitoring",
            "labels": { "grafana_dashboard": "operators", "team": "search" },
            "annotations": { "grafana_folder": "Operators" } } } })),
    );
    let cm = &dashboards(&docs)[0];
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "operators");
    assert_eq!(cm["metadata"]["labels"]["team"], "search");
    assert_eq!(
        cm["metadata"]["annotations"],
        json!({ "grafana_folder": "Operators" })
    );

    // The rules.
    let docs = render(
        tools,
        &values(json!({ "metrics": { "prometheusRule": { "enabled": true,
            "additionalLabels": { "release": "kube-prometheus" } } } })),
    );
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["name"], fullname());
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus");
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/instance"],
        RELEASE
    );
    assert!(dashboards(&docs).is_empty());
    let docs = render(
        tools,
        &values(
            json!({ "metrics": { "prometheusRule": { "enabled": true, "namespace": "monitoring" } } }),
        ),
    );
    assert_eq!(
        one(&docs, "PrometheusRule")["metadata"]["namespace"],
        "monitoring"
    );
}

/// The rendered rules: groups of alerts with expr, for, a severity and a summary; each expression
/// selects the operator's series and names only metrics it exports (and Prometheus's `up`).
/// The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as dashes.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every alert links its own section of docs/runbooks.md (by default on GitHub at the tag of the
/// chart's appVersion), every section is an alert's, and a base URL of one's own replaces GitHub.
fn alerts_link_their_runbooks(tools: &Tools) {
    let alerts = |prometheus_rule: Value| -> Vec<(String, String)> {
        let docs = render(
            tools,
            &values(json!({ "metrics": { "prometheusRule": prometheus_rule } })),
        );
        let rule = one(&docs, "PrometheusRule");
        rule["spec"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").clone())
            .filter_map(|r| {
                let name = r["alert"].as_str()?.to_string();
                let url = r["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} has no runbook_url"))
                    .to_string();
                Some((name, url))
            })
            .collect()
    };
    let runbooks = read(&root().join("docs/runbooks.md"));
    let sections: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(github_anchor)
        .collect();
    let chart: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml");
    let base = format!(
        "https://github.com/es-inference-operator/es-inference-operator/blob/v{}/docs/runbooks.md#",
        chart["appVersion"].as_str().expect("appVersion")
    );
    let linked = alerts(json!({ "enabled": true }));
    assert!(linked.len() >= 5, "{linked:?}");
    let mut anchors = BTreeSet::new();
    for (name, url) in &linked {
        let anchor = url
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("{name}: {url} is not under {base}"));
        assert_eq!(anchor, github_anchor(name), "{name} links its own section");
        assert!(
            sections.contains(anchor),
            "{name}: docs/runbooks.md has no section #{anchor}"
        );
        anchors.insert(anchor.to_string());
    }
    assert_eq!(
        anchors, sections,
        "one section per alert in docs/runbooks.md"
    );

    let own = alerts(
        json!({ "enabled": true, "runbookBaseUrl": "https://wiki.example.com/es-inference" }),
    );
    for (name, url) in own {
        assert_eq!(
            url,
            format!(
                "https://wiki.example.com/es-inference#{}",
                github_anchor(&name)
            )
        );
    }
}

fn prometheus_rules_are_well_formed(tools: &Tools) {
    let rules_of = |v: Value| -> Vec<Value> {
        let docs = render(tools, &values(v));
        let spec = &one(&docs, "PrometheusRule")["spec"];
        let groups = spec["groups"].as_array().expect("groups");
        assert!(!groups.is_empty());
        let mut all = Vec::new();
        for g in groups {
            assert!(
                g["name"].as_str().is_some_and(|n| !n.is_empty()),
                "group name"
            );
            let rules = g["rules"].as_array().expect("rules");
            assert!(!rules.is_empty(), "group {} has no rules", g["name"]);
            all.extend(rules.iter().cloned());
        }
        all
    };
    let is_duration = |d: &str| {
        !d.is_empty()
            && d.split_inclusive(|c: char| c.is_ascii_alphabetic())
                .all(|part| {
                    let unit_at = part
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(part.len());
                    unit_at > 0 && ["s", "m", "h", "d"].contains(&&part[unit_at..])
                })
    };
    let rules = rules_of(json!({ "metrics": { "prometheusRule": { "enabled": true } } }));
    let selector = format!(r#"job="{RELEASE}", namespace="{NAMESPACE}""#);
    let mut alerts = BTreeSet::new();
    for r in &rules {
        let alert = r["alert"].as_str().expect("every rule is an alert");
        assert!(alerts.insert(alert.to_string()), "duplicate alert {alert}");
        let expr = r["expr"].as_str().expect("expr");
        let names = promql_metric_names(expr);
        assert!(!names.is_empty(), "{alert}: no metric");
        for n in &names {
            assert!(
                queryable(n) || n == "up",
                "{alert} queries {n}, which the operator does not export: {expr}"
            );
        }
        assert_eq!(
            expr.matches(&selector).count(),
            names.len(),
            "{alert}: every selector picks the operator's series: {expr}"
        );
        let for_ = r["for"].as_str().expect("for");
        assert!(is_duration(for_), "{alert}: for {for_}");
        let severity = r["labels"]["severity"].as_str().expect("labels.severity");
        assert!(
            ["warning", "critical"].contains(&severity),
            "{alert}: {severity}"
        );
        let summary = r["annotations"]["summary"]
            .as_str()
            .expect("annotations.summary");
        assert!(!summary.trim().is_empty(), "{alert}");
        assert!(
            !summary.contains("<no value>") && !summary.contains("{{`"),
            "{alert}: {summary}"
        );
    }
    let expected = [
        (
            "EsInferenceEndpointNotReady",
            "15m",
            "es_inference_operator_endpoint_ready",
        ),
        (
            "EsInferenceElasticsearchConnectionDown",
            "5m",
            "es_inference_operator_elasticsearch_connection_up",
        ),
        (
            "EsInferenceReconcileErrorsHigh",
            "15m",
            "es_inference_operator_reconciles_total",
        ),
        (
            "EsInferenceOperatorNoLeader",
            "5m",
            "es_inference_operator_leader",
        ),
        (
            "EsInferenceOperatorDown",
            "5m",
            "es_inference_operator_build_info",
        ),
    ];
    let want: BTreeSet<String> = expected.iter().map(|(a, _, _)| a.to_string()).collect();
    assert_eq!(alerts, want);
    for (alert, for_, metric) in expected {
        let r = rules.iter().find(|r| r["alert"] == alert).expect("alert");
        assert_eq!(r["for"], for_, "{alert}");
        assert!(
            promql_metric_names(r["expr"].as_str().expect("expr")).contains(&metric.to_string()),
            "{alert} uses {metric}"
        );
    }
    // Prometheus's own templates reach the annotations untouched by Helm.
    let not_ready = rules
        .iter()
        .find(|r| r["alert"] == "EsInferenceEndpointNotReady")
        .expect("alert");
    assert!(
        not_ready["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("{{ $labels.namespace }}/{{ $labels.name }}")),
        "{not_ready}"
    );
    let down = rules
        .iter()
        .find(|r| r["alert"] == "EsInferenceOperatorDown")
        .expect("alert");
    assert!(
        down["expr"]
            .as_str()
            .is_some_and(|e| e.starts_with("absent("))
    );

    // Another scrape setup: its own selector everywhere.
    let rules = rules_of(json!({ "metrics": { "prometheusRule": { "enabled": true,
        "selector": r#"job="custom""# } } }));
    for r in &rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(!expr.contains(NAMESPACE), "{expr}");
        assert_eq!(
            expr.matches(r#"job="custom""#).count(),
            promql_metric_names(expr).len(),
            "{expr}"
        );
    }
}

/// The chart renders every CRD of crds/ (same name and spec), labelled, with the keep policy;
/// crds.keep=false drops the policy and crds.enabled=false drops the CRDs.
fn crd_toggles(tools: &Tools) {
    let mut plain: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(root().join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            plain.push(serde_saphyr::from_str(&read(&path)).expect("crd"));
        }
    }
    assert!(
        plain
            .iter()
            .any(|c| c["metadata"]["name"] == "inferenceendpoints.es-inference.dev")
    );
    let docs = render(tools, &values(json!({})));
    let crds = kind(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), plain.len(), "the chart has every CRD of crds/");
    for want in &plain {
        let name = &want["metadata"]["name"];
        let crd = crds
            .iter()
            .find(|c| &c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the chart lacks CRD {name}"));
        assert_eq!(
            crd["spec"], want["spec"],
            "chart CRD {name} differs from crds/: regenerate both with the crd command"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/instance"],
            RELEASE
        );
    }
    let docs = render(tools, &values(json!({ "crds": { "keep": false } })));
    let crds = kind(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), plain.len());
    assert!(
        crds.iter()
            .all(|c| c["metadata"].get("annotations").is_none())
    );
    let docs = render(tools, &values(json!({ "crds": { "enabled": false } })));
    assert!(kind(&docs, "CustomResourceDefinition").is_empty());
}

/// NOTES.txt for `v`, rendered by `helm install --dry-run=client`, which needs no cluster.
fn install_notes(tools: &Tools, v: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, v.to_string()).expect("write");
    let out = Command::new(helm(tools))
        .args(["install", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--dry-run=client", "--values"])
        .arg(&file)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .output()
        .expect("helm install --dry-run=client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_once("\nNOTES:\n").expect("NOTES").1.to_string()
}

fn notes_tell_the_next_commands(tools: &Tools) {
    let notes = |v: Value| install_notes(tools, &v);
    let text = notes(values(json!({ "elasticsearch": { "auth": { "apiKey": {
        "existingSecret": "es-key", "key": "encoded" } } } })));
    assert!(text.contains(&format!(
        "kubectl -n {NAMESPACE} create secret generic es-key --from-literal=encoded=<encoded API key>"
    )), "{text}");
    assert!(
        text.contains(&format!(
            "kubectl -n {NAMESPACE} rollout status deployment/{RELEASE}"
        )),
        "{text}"
    );
    assert!(
        text.contains("kubectl -n search create secret generic anthropic"),
        "{text}"
    );
    assert!(text.contains("kind: InferenceEndpoint"), "{text}");
    assert!(text.contains("kubectl get ie -A"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    // Until a release is published, how to get an image at all.
    assert!(
        text.contains("ghcr.io/es-inference-operator/es-inference-operator:0.1.0")
            && text.contains("Building the image yourself"),
        "{text}"
    );
    // No credentials configured: a warning; watched namespaces: the example goes into one.
    let text = notes(values(
        json!({ "watchNamespaces": ["ml", "nlp"], "crds": { "enabled": false } }),
    ));
    assert!(text.contains("WARNING: none are configured"), "{text}");
    assert!(text.contains("namespaces: ml, nlp"), "{text}");
    assert!(
        text.contains("kubectl -n ml create secret generic anthropic"),
        "{text}"
    );
    assert!(
        text.contains("kubectl apply --server-side -f crds/"),
        "{text}"
    );
}

/// Without elasticsearch.url (no default cluster) the NOTES say so, skip the default cluster's
/// credentials, and show an ElasticsearchConnection that the example endpoint names.
fn notes_without_a_default_cluster(tools: &Tools) {
    let text = install_notes(tools, &json!({}));
    assert!(
        text.contains("No default Elasticsearch cluster is set (elasticsearch.url)"),
        "{text}"
    );
    assert!(
        !text.contains("credentials for the default cluster"),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");
    assert!(
        !text.contains("<no value>") && !text.contains(" at \n"),
        "nothing renders empty: {text}"
    );
    assert!(
        text.contains("kubectl -n search create secret generic elasticsearch-api-key"),
        "{text}"
    );
    assert!(text.contains("kind: ElasticsearchConnection"), "{text}");
    assert!(
        text.contains("kubectl -n search get esconn elasticsearch"),
        "{text}"
    );
    assert!(
        text.contains("elasticsearchRef: { name: elasticsearch }"),
        "{text}"
    );
    assert!(text.contains("kubectl get ie -A"), "{text}");
    // The steps are numbered without gaps.
    let steps: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split_once(". ").and_then(|(n, _)| n.parse().ok()))
        .collect();
    assert_eq!(steps, (1..=5).collect::<Vec<_>>(), "{text}");
    // The connection's manifest in the NOTES is valid YAML for the CRD's required fields.
    let manifest: String = text
        .split("<<'YAML'\n")
        .nth(1)
        .and_then(|t| t.split("   YAML\n").next())
        .expect("the ElasticsearchConnection manifest")
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
        .collect();
    let conn: Value = serde_saphyr::from_str(&manifest).expect("manifest parses");
    assert_eq!(conn["kind"], "ElasticsearchConnection");
    assert_eq!(conn["apiVersion"], "es-inference.dev/v1alpha1");
    assert!(
        conn["spec"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert_eq!(
        conn["spec"]["auth"]["apiKeySecretRef"],
        json!({ "name": "elasticsearch-api-key", "key": "api-key" })
    );

    // With watched namespaces the example goes into the first, which already exists.
    let text = install_notes(tools, &json!({ "watchNamespaces": ["ml"] }));
    assert!(text.contains("kubectl -n ml get esconn"), "{text}");
    assert!(!text.contains("create namespace"), "{text}");

    // With a default cluster: its URL, and an endpoint without elasticsearchRef.
    let text = install_notes(tools, &values(api_key()));
    assert!(
        text.contains(&format!("Default Elasticsearch cluster (for InferenceEndpoints without spec.elasticsearchRef): {URL}")),
        "{text}"
    );
    assert!(!text.contains("elasticsearchRef: {"), "{text}");
    assert!(!text.contains("kind: ElasticsearchConnection"), "{text}");
    assert!(text.contains("kubectl create namespace search"), "{text}");
}

fn deploy_manifests_are_up_to_date(tools: &Tools) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("bash")
        .arg(root().join(".ci/render-deploy.sh"))
        .arg(dir.path())
        .env("HELM", helm(tools))
        .output()
        .expect("run .ci/render-deploy.sh");
    assert!(
        out.status.success(),
        "render-deploy.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stale = Vec::new();
    for file in [
        "es-inference-operator.yaml",
        "namespace.yaml",
        "kustomization.yaml",
    ] {
        let want = read(&dir.path().join(file));
        let have = std::fs::read_to_string(root().join("deploy").join(file)).unwrap_or_default();
        if want != have {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/ is stale ({stale:?}): run `bash .ci/render-deploy.sh` and commit deploy/"
    );

    // What deploy/ installs: no CRD (crds/ has it), the placeholder URL, the API key file.
    let docs = parse_docs(&read(&root().join("deploy/es-inference-operator.yaml")));
    assert!(kind(&docs, "CustomResourceDefinition").is_empty());
    assert!(docs.iter().all(|d| {
        d["metadata"]["namespace"]
            .as_str()
            .is_none_or(|n| n == NAMESPACE)
    }));
    assert_eq!(
        env_value(&docs, "ELASTICSEARCH_URL").as_deref(),
        Some("https://elasticsearch.example:9200")
    );
    assert_eq!(
        volume(&docs, "elasticsearch-api-key")["secret"]["secretName"],
        "es-inference-operator-elasticsearch"
    );
    let ns: Value =
        serde_saphyr::from_str(&read(&root().join("deploy/namespace.yaml"))).expect("ns");
    assert_eq!(ns["metadata"]["name"], NAMESPACE);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let k: Value = serde_saphyr::from_str(&read(&root().join("deploy/kustomization.yaml")))
        .expect("kustomization");
    assert_eq!(
        k["resources"],
        json!(["namespace.yaml", "es-inference-operator.yaml"])
    );
}

/// The values in the Argo CD Application and the Flux HelmRelease render.
fn gitops_example_values_render(tools: &Tools) {
    // Both install the released chart (oci://ghcr.io/<owner>/charts, see release.yml) at the
    // version of this chart, never a branch.
    let chart: Value =
        serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml");
    let version = chart["version"].as_str().expect("version");
    let apps: Vec<Value> = parse_docs(&read(&root().join("gitops/argocd/application.yaml")));
    let app = apps
        .iter()
        .find(|a| a["spec"]["source"]["chart"] == "es-inference-operator")
        .expect("operator Application");
    assert_eq!(
        app["spec"]["source"]["repoURL"],
        "ghcr.io/es-inference-operator/charts"
    );
    assert_eq!(app["spec"]["source"]["targetRevision"], version);
    let repo = apps
        .iter()
        .find(|d| d["kind"] == "Secret")
        .expect("the registry as a repository");
    assert_eq!(
        repo["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
        "repository"
    );
    assert_eq!(repo["stringData"]["url"], app["spec"]["source"]["repoURL"]);
    assert_eq!(repo["stringData"]["enableOCI"], "true");
    assert!(chart_dir().is_dir());
    let docs = render(tools, &app["spec"]["source"]["helm"]["valuesObject"]);
    assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 2);
    assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1);

    let flux = parse_docs(&read(
        &root().join("gitops/flux/es-inference-operator.yaml"),
    ));
    let hr = flux
        .iter()
        .find(|d| d["kind"] == "HelmRelease")
        .expect("HelmRelease");
    assert_eq!(hr["spec"]["chartRef"]["kind"], "OCIRepository");
    let oci = flux
        .iter()
        .find(|d| {
            d["kind"] == "OCIRepository" && d["metadata"]["name"] == hr["spec"]["chartRef"]["name"]
        })
        .expect("the HelmRelease's OCIRepository");
    assert_eq!(
        oci["spec"]["url"],
        "oci://ghcr.io/es-inference-operator/charts/es-inference-operator"
    );
    assert_eq!(oci["spec"]["ref"]["tag"], version);
    assert!(
        !flux.iter().any(|d| d["kind"] == "GitRepository"),
        "the operator does not track Git"
    );
    let docs = render(tools, &hr["spec"]["values"]);
    assert_eq!(env_value(&docs, "LEADER_ELECTION").as_deref(), Some("true"));
    let ks = parse_docs(&read(&root().join("gitops/flux/kustomizations.yaml")));
    assert!(
        ks.iter().all(|k| k["spec"]["wait"] == true),
        "Flux Kustomizations wait for health"
    );
}

// ---------------------------------------------------------------------------------------------
// schema validation (kubernetes-validate: the Kubernetes OpenAPI schemas, bundled, offline)

/// Runs kubernetes-validate --strict on `text` for `version`; Ok(output) when valid.
fn validate(tools: &Tools, text: &str, version: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(tools.validator.as_deref().expect("validator"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && !text.contains("ERROR") {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A negative control: the validator rejects an unknown field, a wrong type and a missing
/// required field, so a pass below means something.
fn kubernetes_validate_catches_errors(tools: &Tools) {
    let good = render_with(
        tools,
        &values(json!({})),
        &["--show-only", "templates/deployment.yaml"],
    )
    .expect("render");
    validate(tools, &good, "1.33").expect("the Deployment is valid");
    for (what, bad) in [
        (
            "unknown field",
            good.replace(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: true\n            readOnlyRootFilesytem: true",
            ),
        ),
        (
            "wrong type",
            good.replace("containerPort: 8080", "containerPort: eighty"),
        ),
        (
            "missing required field",
            good.replace("- name: operator\n", "- \n"),
        ),
    ] {
        assert_ne!(bad, good, "{what}: the edit applied");
        let err = validate(tools, &bad, "1.33").expect_err(what);
        assert!(err.contains("did not validate"), "{what}: {err}");
    }
}

/// The Kubernetes manifests under docs/examples/ (e.g. the ValidatingAdmissionPolicy of
/// docs/install.md, "Multi-tenant clusters") are valid for every Kubernetes version tested.
fn docs_examples_match_kubernetes_schemas(tools: &Tools) {
    let dir = root().join("docs/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for version in KUBERNETES_VERSIONS {
            validate(tools, &text, version)
                .unwrap_or_else(|e| panic!("{} on Kubernetes {version}: {e}", path.display()));
        }
        n += 1;
    }
    assert!(n >= 1, "no example found in {}", dir.display());
}

fn rendered_manifests_match_kubernetes_schemas(tools: &Tools) {
    let mut inputs: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(name, v)| (name.to_string(), try_render(tools, &v).expect("render")))
        .collect();
    inputs.push((
        "deploy/".into(),
        read(&root().join("deploy/es-inference-operator.yaml"))
            + "---\n"
            + &read(&root().join("deploy/namespace.yaml")),
    ));
    for (name, text) in inputs {
        let kinds: BTreeSet<String> = parse_docs(&text)
            .iter()
            .map(|d| d["kind"].as_str().expect("kind").to_string())
            .collect();
        for version in KUBERNETES_VERSIONS {
            let out = validate(tools, &text, version)
                .unwrap_or_else(|e| panic!("{name}: invalid for Kubernetes {version}:\n{e}"));
            // Every object was checked against a schema, except the Prometheus Operator's
            // ServiceMonitor and PrometheusRule, whose schemas are not part of Kubernetes
            // (checked by optional_objects and prometheus_rules_are_well_formed).
            for line in out.lines().filter(|l| l.starts_with("WARN")) {
                assert!(
                    PROMETHEUS_OPERATOR_KINDS
                        .iter()
                        .any(|k| line.contains(&format!("kind {k}"))),
                    "{name}: {line}"
                );
            }
            let passed = out
                .lines()
                .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
                .count();
            let expected = parse_docs(&text)
                .iter()
                .filter(|d| {
                    !PROMETHEUS_OPERATOR_KINDS.contains(&d["kind"].as_str().unwrap_or_default())
                })
                .count();
            assert_eq!(passed, expected, "{name} ({kinds:?}) on {version}: {out}");
        }
    }
}

/// Each rendered configuration, turned into the flags its environment stands for, parses and
/// passes the binary's own checks (e.g. the drain after SIGTERM fits inside the lease): no
/// values combination makes a Pod that refuses to start.
fn every_configuration_is_one_the_binary_accepts(tools: &Tools) {
    use clap::{CommandFactory, Parser};
    use es_inference_operator::config::{Cli, Command};
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").expect("run");
    for (name, v) in matrix().into_iter().chain([(
        "two replicas, defaults",
        values(json!({ "replicaCount": 2 })),
    )]) {
        let docs = render(tools, &v);
        let mut argv = vec!["es-inference-operator".to_string(), "run".to_string()];
        for (env_name, e) in env(&docs) {
            let Some(value) = e["value"].as_str() else {
                continue; // downward API (POD_NAME, POD_NAMESPACE)
            };
            if let Some(arg) = run
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|x| x == env_name.as_str()))
            {
                let long = arg.get_long().expect("every env flag has a long name");
                argv.push(format!("--{long}={value}"));
            }
        }
        let cli = Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{name}: the binary refuses {argv:?}: {e}"));
        let Command::Run(args) = cli.command else {
            unreachable!("run")
        };
        if let Err(e) = es_inference_operator::run::check_args(&args) {
            panic!("{name}: the operator would refuse to start: {e}");
        }
    }
}
