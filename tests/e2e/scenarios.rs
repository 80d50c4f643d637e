//! The scenarios of the first releases: CRD rules, the lifecycle, leader election, least
//! privilege, built-in models, connections and conflicts.

use crate::common::*;
use std::{process::Command, time::Duration};

use crate::support::es_standin::{EsStandin, StandinConfig};
use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

pub(crate) async fn crd_rules_on_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-crd").await;
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let raw: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<InferenceEndpoint>(&()),
    );
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };

    // Inline credentials are refused with a message that says what to do.
    for key in [
        "api_key",
        "secret_key",
        "service_account_json",
        "client_secret",
        "entra_id",
    ] {
        let mut spec = completion_spec("x");
        spec["serviceSettings"][key] = json!("inline-value");
        let (code, msg) = api_error(
            raw.create(&dry, &raw_ie("bad", &ns.name, spec))
                .await
                .expect_err(key),
        );
        assert_eq!(code, 422, "{msg}");
        assert!(
            msg.contains(&format!("serviceSettings.{key} is a credential")),
            "{key}: {msg}"
        );
    }
    // Enums, the id pattern and chunking rules.
    let mut spec = completion_spec("Not_Valid!");
    let (code, _) = api_error(
        raw.create(&dry, &raw_ie("bad", &ns.name, spec.clone()))
            .await
            .expect_err("id pattern"),
    );
    assert_eq!(code, 422);
    spec["inferenceId"] = json!("ok-id");
    spec["taskType"] = json!("translation");
    assert_eq!(
        api_error(
            raw.create(&dry, &raw_ie("bad", &ns.name, spec))
                .await
                .expect_err("enum")
        )
        .0,
        422
    );
    let mut spec = completion_spec("emb");
    spec["taskType"] = json!("text_embedding");
    spec["chunkingSettings"] = json!({"strategy": "word", "maxChunkSize": 100, "overlap": 80});
    let (_, msg) = api_error(
        raw.create(&dry, &raw_ie("bad", &ns.name, spec.clone()))
            .await
            .expect_err("word overlap"),
    );
    assert!(msg.contains("at most half of maxChunkSize"), "{msg}");
    spec["chunkingSettings"] =
        json!({"strategy": "sentence", "maxChunkSize": 250, "sentenceOverlap": 1});
    raw.create(&dry, &raw_ie("ok", &ns.name, spec))
        .await
        .expect("valid chunking accepted");
    let mut spec = completion_spec("cmp");
    spec["chunkingSettings"] = json!({"strategy": "none"});
    let (_, msg) = api_error(
        raw.create(&dry, &raw_ie("bad", &ns.name, spec))
            .await
            .expect_err("chunking on completion"),
    );
    assert!(msg.contains("embedding task types"), "{msg}");
    let mut spec = completion_spec("sp");
    spec["service"] = json!("custom");
    spec["secretSettings"] =
        json!({"secret_parameters.token": {"secretKeyRef": {"name": "s", "key": "k"}}});
    raw.create(&dry, &raw_ie("ok", &ns.name, spec))
        .await
        .expect("secret_parameters.<name> accepted");
    // Per-service secret rules and credential headers, as Go's CEL evaluates them.
    let refused = |spec: Value, what: &'static str| {
        let raw = raw.clone();
        let ns = ns.name.clone();
        async move {
            let (code, msg) = api_error(
                raw.create(&dry_run(), &raw_ie("bad", &ns, spec))
                    .await
                    .expect_err(what),
            );
            assert_eq!(code, 422, "{what}: {msg}");
            msg
        }
    };
    let key = |k: &str| json!({"secretKeyRef": {"name": "s", "key": k}});
    let bedrock = json!({"taskType": "completion", "service": "amazonbedrock",
        "serviceSettings": {"region": "us-east-1", "model": "m", "provider": "anthropic"},
        "secretSettings": {"access_key": key("a")}});
    let msg = refused(bedrock.clone(), "one Bedrock key").await;
    assert!(msg.contains("secret_key together"), "{msg}");
    let mut both = bedrock;
    both["secretSettings"]["secret_key"] = key("s");
    raw.create(&dry, &raw_ie("ok", &ns.name, both))
        .await
        .expect("both Bedrock keys accepted");
    let azure = json!({"taskType": "completion", "service": "azureopenai",
        "serviceSettings": {"resource_name": "r", "deployment_id": "d", "api_version": "v"},
        "secretSettings": {"api_key": key("a"), "entra_id": key("e")}});
    let msg = refused(azure, "two Azure credentials").await;
    assert!(msg.contains("exactly one of"), "{msg}");
    let openai = json!({"taskType": "completion", "service": "openai",
        "serviceSettings": {"model_id": "m"}});
    let msg = refused(openai, "an OpenAI endpoint without a credential").await;
    assert!(msg.contains("openai takes exactly one of"), "{msg}");
    let mut header = completion_spec("hdr");
    header["taskSettings"] = json!({"max_tokens": 5, "headers": {"X-Api-Key": "sk-e2e-LITERAL"}});
    let msg = refused(header, "a literal credential header").await;
    assert!(
        msg.contains("taskSettings.headers must not hold credentials"),
        "{msg}"
    );
    let mut whole = completion_spec("whole");
    whole["secretSettings"] = json!({"secret_parameters": key("k")});
    refused(whole, "a whole secret_parameters map").await;
    let mut custom = completion_spec("custom-hdr");
    custom["service"] = json!("custom");
    custom["serviceSettings"] = json!({"url": "https://x", "headers": {"Authorization": "${token}", "Content-Type": "application/json"}});
    custom["secretSettings"] =
        json!({"secret_parameters.token": key("t"), "headers.X-Other-Key": key("h")});
    raw.create(&dry, &raw_ie("ok", &ns.name, custom))
        .await
        .expect("a placeholder and headers from Secrets accepted");

    // Immutability: service, taskType, inferenceId (including adding one later).
    let obj = api
        .create(
            &PostParams::default(),
            &ie("imm", &ns.name, {
                let mut s = completion_spec("imm");
                s.as_object_mut().expect("obj").remove("inferenceId");
                s
            }),
        )
        .await
        .expect("create");
    for (patch, want) in [
        (
            json!({"spec": {"service": "openai"}}),
            "service is immutable",
        ),
        (
            json!({"spec": {"taskType": "chat_completion"}}),
            "taskType is immutable",
        ),
        (
            json!({"spec": {"inferenceId": "added-later"}}),
            "inferenceId is immutable",
        ),
    ] {
        let (code, msg) = api_error(
            api.patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect_err(want),
        );
        assert_eq!(code, 422, "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"taskSettings": {"max_tokens": 5}}})),
    )
    .await
    .expect("mutable fields can change");
    // kubectl explain has documentation.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get("inferenceendpoints.es-inference.dev")
        .await
        .expect("crd");
    let text = serde_json::to_string(&crd.spec.versions[0].schema).expect("json");
    assert!(text.contains("The Elasticsearch inference id"));
    api.delete(&obj.name_any(), &DeleteParams::default())
        .await
        .expect("delete");
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

const LIFECYCLE_ID: &str = "e2e-claude";

pub(crate) async fn lifecycle_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the lifecycle test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    lifecycle(&env, &es, &env.kubeconfig, "e2e").await;
}

/// Create → Ready, rotate, edit, blocked delete, delete, Retain; the operator runs with
/// `operator_kubeconfig`.
async fn lifecycle(env: &Env, es: &Es, operator_kubeconfig: &str, prefix: &str) {
    let key = std::env::var("E2E_PROVIDER_API_KEY")
        .unwrap_or_else(|_| "sk-ant-e2e-FIRST-KEY-0001".into());
    let rotated = std::env::var("E2E_PROVIDER_API_KEY_ROTATED")
        .unwrap_or_else(|_| "sk-ant-e2e-ROTATED-KEY-0002".into());
    let client = client(env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, prefix).await;
    let started = tokio::time::Instant::now();
    let operator = Operator::start_with(operator_kubeconfig, es, &ns.name, "single", &[]);
    // Ready once its watches have listed: within seconds, before any object exists.
    let end = started + Duration::from_secs(30);
    while operator.readyz().await != Some(200) {
        assert!(
            tokio::time::Instant::now() < end,
            "/readyz never answered 200: {}",
            operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "    /readyz answered 200 {:?} after start",
        started.elapsed()
    );
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret = |v: &str| {
        serde_json::from_value::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anthropic"}, "stringData": {"api-key": v}
    })).expect("secret")
    };

    // Create → Ready.
    secrets
        .create(&PostParams::default(), &secret(&key))
        .await
        .expect("secret");
    api.create(
        &PostParams::default(),
        &ie("claude", &ns.name, completion_spec(LIFECYCLE_ID)),
    )
    .await
    .expect("create");
    wait(&api, "claude", "Ready=True", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    assert!(
        es.endpoint(LIFECYCLE_ID).await.is_some(),
        "endpoint exists in Elasticsearch"
    );
    let first_fp = api
        .get("claude")
        .await
        .expect("get")
        .status
        .and_then(|s| s.secret_versions);

    // Rotate the Secret → _update with the new value.
    secrets
        .replace("anthropic", &PostParams::default(), &{
            let mut s = secret(&rotated);
            s.metadata.resource_version = secrets
                .get("anthropic")
                .await
                .expect("get")
                .metadata
                .resource_version;
            s
        })
        .await
        .expect("rotate");
    let fp = first_fp.clone();
    wait(&api, "claude", "a new secret fingerprint", move |o| {
        o.and_then(|o| o.status.as_ref())
            .and_then(|s| s.secret_versions.clone())
            != fp
    })
    .await;
    if let Es::Standin(s) = &es {
        assert_eq!(
            s.endpoint_secrets(LIFECYCLE_ID).expect("secrets")["api_key"],
            rotated.as_str()
        );
    }

    // Edit the spec → update, observed at the new generation.
    let edited = api
        .patch(
            "claude",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taskSettings": edited_task_settings()}})),
        )
        .await
        .expect("edit");
    let generation = edited.metadata.generation;
    wait(&api, "claude", "the edit to be applied", move |o| {
        o.and_then(|o| o.status.as_ref())
            .is_some_and(|s| s.observed_generation == generation)
            && ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    wait_es(
        es,
        LIFECYCLE_ID,
        "the edited task settings in Elasticsearch",
        |ep| ep.is_some_and(|e| has_task_settings(e, &edited_task_settings())),
    )
    .await;

    // Blocked delete, then unblocked.
    es.reference(LIFECYCLE_ID, true).await;
    api.delete("claude", &DeleteParams::default())
        .await
        .expect("delete");
    wait(&api, "claude", "DeletionBlocked", |o| {
        ready_reason(o).is_some_and(|(_, r)| r == "DeletionBlocked")
    })
    .await;
    assert!(
        es.endpoint(LIFECYCLE_ID).await.is_some(),
        "not deleted while referenced"
    );
    es.reference(LIFECYCLE_ID, false).await;
    wait(&api, "claude", "the resource to be gone", |o| o.is_none()).await;
    wait_es(es, LIFECYCLE_ID, "the endpoint to be deleted", |ep| {
        ep.is_none()
    })
    .await;

    // Retain: the resource goes, the endpoint stays.
    let mut spec = completion_spec(LIFECYCLE_ID);
    spec["deletionPolicy"] = json!("Retain");
    api.create(&PostParams::default(), &ie("kept", &ns.name, spec))
        .await
        .expect("create");
    wait(&api, "kept", "Ready=True", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    api.delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    wait(&api, "kept", "the resource to be gone", |o| o.is_none()).await;
    assert!(es.endpoint(LIFECYCLE_ID).await.is_some(), "retained");
    es.delete(LIFECYCLE_ID).await;

    let logs = operator.logs();
    assert!(logs.contains("operator started"), "operator logs:\n{logs}");
    for v in [&key, &rotated] {
        assert!(
            !logs.contains(v.as_str()),
            "a secret value reached the operator's logs"
        );
    }
    drop(operator);
}

pub(crate) async fn leader_election_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the leader election test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-ha").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let args = [
        "--leader-election",
        "true",
        "--leader-election-namespace",
        ns.name.as_str(),
        "--leader-election-lease-duration",
        "4s",
        "--shutdown-timeout",
        "2s",
    ];
    let mut a = Operator::start_with(&env.kubeconfig, &es, &ns.name, "replica-a", &args);
    let first = wait_holder(&leases, "a leader", |h| h.is_some())
        .await
        .expect("holder");
    let mut b = Operator::start_with(&env.kubeconfig, &es, &ns.name, "replica-b", &args);
    let (leader, standby) = if first == "replica-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    // A standby is ready too (so a two-replica rollout completes), and writes nothing.
    let end = tokio::time::Instant::now() + DEADLINE;
    while standby.readyz().await != Some(200) {
        assert!(
            tokio::time::Instant::now() < end,
            "the standby never turned ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Only the leader reconciles.
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "anthropic"}, "stringData": {"api-key": "sk-ant-e2e-HA-KEY-0003"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    api.create(
        &PostParams::default(),
        &ie("one", &ns.name, completion_spec("e2e-ha-one")),
    )
    .await
    .expect("create");
    wait(&api, "one", "Ready=True", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    assert!(
        leader.logs().contains("created inference endpoint"),
        "the leader reconciled"
    );
    assert!(
        !standby.logs().contains("created inference endpoint"),
        "the standby did not reconcile"
    );

    // The leader dies without releasing: the standby takes over within the lease duration.
    let killed_at = tokio::time::Instant::now();
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    let new_holder = wait_holder(&leases, "the standby to take over", |h| {
        h.is_some_and(|h| h != first)
    })
    .await
    .expect("holder");
    let took = killed_at.elapsed();
    println!("    failover to {new_holder} took {took:?} (lease duration 4s)");
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    api.create(
        &PostParams::default(),
        &ie("two", &ns.name, completion_spec("e2e-ha-two")),
    )
    .await
    .expect("create");
    wait(&api, "two", "Ready=True on the new leader", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;

    // A graceful shutdown releases the Lease at once.
    standby.terminate();
    wait_holder(&leases, "the Lease to be released", |h| h.is_none()).await;
    assert!(
        standby.logs().contains("released the leader Lease"),
        "{}",
        standby.logs()
    );
    for id in ["e2e-ha-one", "e2e-ha-two"] {
        es.delete(id).await;
    }
}

pub(crate) async fn least_privilege_identity_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the least-privilege test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    install_identity(&client).await;

    // The authorizer sees new bindings through its informers: wait until the grant is visible.
    let end = tokio::time::Instant::now() + DEADLINE;
    while !can_i(
        &client,
        "list",
        "es-inference.dev",
        "inferenceendpoints",
        None,
    )
    .await
    {
        assert!(
            tokio::time::Instant::now() < end,
            "the ClusterRoleBinding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the chart's RBAC allows, and what it must not.
    let ns = Some("default");
    for (verb, group, resource, namespace) in [
        ("list", "es-inference.dev", "inferenceendpoints", None),
        ("watch", "es-inference.dev", "inferenceendpoints", None),
        ("patch", "es-inference.dev", "inferenceendpoints", ns),
        ("patch", "es-inference.dev", "inferenceendpoints/status", ns),
        ("get", "", "secrets", ns),
        ("watch", "", "secrets", None),
        ("create", "events.k8s.io", "events", ns),
        ("get", "", "configmaps", ns),
        ("get", "es-inference.dev", "elasticsearchconnections", ns),
        (
            "patch",
            "es-inference.dev",
            "elasticsearchconnections/status",
            ns,
        ),
    ] {
        assert!(
            can_i(&client, verb, group, resource, namespace).await,
            "must be allowed: {verb} {group}/{resource}"
        );
    }
    for (verb, group, resource, namespace) in [
        ("create", "", "secrets", ns),
        ("update", "", "secrets", ns),
        ("patch", "", "secrets", ns),
        ("delete", "", "secrets", ns),
        ("delete", "es-inference.dev", "inferenceendpoints", ns),
        ("create", "es-inference.dev", "inferenceendpoints", ns),
        ("update", "es-inference.dev", "inferenceendpoints", ns),
        ("get", "apps", "deployments", ns),
        ("create", "", "configmaps", ns),
        ("create", "es-inference.dev", "elasticsearchconnections", ns),
        ("create", "", "pods", ns),
        ("create", "coordination.k8s.io", "leases", Some(OPERATOR_NS)),
        (
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
        ),
        (
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
        ),
    ] {
        assert!(
            !can_i(&client, verb, group, resource, namespace).await,
            "must be denied: {verb} {group}/{resource}"
        );
    }

    // The whole lifecycle works with only that identity.
    let kubeconfig = service_account_kubeconfig(&env, &client).await;
    lifecycle(&env, &es, kubeconfig.to_str().expect("path"), "e2e-sa").await;
    let _ = std::fs::remove_file(&kubeconfig);

    // With watchNamespaces, nothing outside them (needs helm to render that variant).
    let Some(helm) = std::env::var("HELM").ok().filter(|h| !h.is_empty()) else {
        skipped("watchNamespaces scoping needs HELM (the chart is rendered for it)");
        return;
    };
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/es-inference-operator");
    let watched = TempNamespace::new(&client, "e2e-watched").await;
    let out = Command::new(helm)
        .args(["template", "scoped", chart, "--namespace", OPERATOR_NS])
        .args([
            "--set",
            "elasticsearch.url=https://elasticsearch.example:9200",
        ])
        .args(["--set", &format!("watchNamespaces={{{}}}", watched.name)])
        .output()
        .expect("helm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout).to_string();
    apply_identity(
        &client,
        &rendered,
        &["ServiceAccount", "Role", "RoleBinding"],
    )
    .await;
    let sa_doc: Value = serde_saphyr::from_multiple::<Value>(&rendered)
        .expect("manifests")
        .into_iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("ServiceAccount");
    let sa = sa_doc["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let end = tokio::time::Instant::now() + DEADLINE;
    while !can_sa(&client, &sa, "get", "", "secrets", Some(&watched.name)).await {
        assert!(
            tokio::time::Instant::now() < end,
            "the RoleBinding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !can_sa(&client, &sa, "get", "", "secrets", Some("default")).await,
        "secrets outside watchNamespaces"
    );
    assert!(
        !can_sa(&client, &sa, "list", "", "secrets", None).await,
        "cluster-wide secrets"
    );
    assert!(
        !can_sa(
            &client,
            &sa,
            "list",
            "es-inference.dev",
            "inferenceendpoints",
            None
        )
        .await
    );
    assert!(
        can_sa(
            &client,
            &sa,
            "patch",
            "es-inference.dev",
            "inferenceendpoints/status",
            Some(&watched.name)
        )
        .await
    );
}

pub(crate) async fn model_endpoint_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the model endpoint test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    match &es {
        // Two stats calls see `starting`: the operator must follow the deployment to Ready.
        Es::Standin(s) => s.set_model_deployment(2, false),
        Es::Real { .. } if std::env::var_os("E2E_MODEL_ENDPOINTS").is_none() => {
            skipped(
                "the model endpoint test downloads ELSER on a real cluster: set E2E_MODEL_ENDPOINTS=1 to run it",
            );
            return;
        }
        Es::Real { .. } => {}
    }
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-model").await;
    let operator = Operator::start_with(&env.kubeconfig, &es, &ns.name, "single", &[]);
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let spec = json!({
        "inferenceId": "e2e-elser", "taskType": "sparse_embedding", "service": "elasticsearch",
        "serviceSettings": {"model_id": ".elser_model_2", "num_threads": 1,
            "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 1, "max_number_of_allocations": 2}}
    });
    api.create(&PostParams::default(), &ie("elser", &ns.name, spec))
        .await
        .expect("create");
    wait(&api, "elser", "ModelDeploying", |o| {
        ready_reason(o).is_some_and(|(_, r)| r == "ModelDeploying" || r == "InSync")
    })
    .await;
    wait(
        &api,
        "elser",
        "Ready=True once the deployment started",
        |o| ready_reason(o) == Some(("True".into(), "InSync".into())),
    )
    .await;
    let status = api.get("elser").await.expect("get").status.expect("status");
    let model = status.model_deployment.expect("modelDeployment");
    assert_eq!(
        (model.deployment_id.as_str(), model.state.as_str()),
        ("e2e-elser", "started")
    );
    api.delete("elser", &DeleteParams::default())
        .await
        .expect("delete");
    wait(&api, "elser", "the resource to be gone", |o| o.is_none()).await;
    assert!(
        es.endpoint("e2e-elser").await.is_none(),
        "deleted with its resource"
    );
    drop(operator);
}

/// An endpoint on a cluster named by an ElasticsearchConnection: with the stand-in, a second
/// cluster over TLS with its own CA and an API key; with a real Elasticsearch, the same cluster
/// reached through a connection built from the E2E_* credentials.
pub(crate) async fn connection_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the connection test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-conn").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let mk_secret = |name: &str, data: Value| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
            .expect("secret")
    };
    // The cluster the connection points at.
    let (tls_standin, conn_spec, check): (Option<EsStandin>, Value, Es) = match &es {
        Es::Standin(_) => {
            let key = "e2e-connection-api-key";
            let (b, ca) = EsStandin::start_tls(StandinConfig {
                cluster_uuid: "uuid-e2e-cluster-b".into(),
                api_key: Some(key.into()),
                ..StandinConfig::default()
            })
            .await;
            secrets
                .create(
                    &PostParams::default(),
                    &mk_secret("es-b", json!({"api-key": key, "ca.crt": ca})),
                )
                .await
                .expect("secret");
            let spec = json!({
                "url": b.url(),
                "auth": {"apiKeySecretRef": {"name": "es-b", "key": "api-key"}},
                "tls": {"ca": {"secretRef": {"name": "es-b"}}}
            });
            let check = Es::Standin(EsStandin::start(StandinConfig::default()).await);
            (Some(b), spec, check)
        }
        Es::Real { url, .. } => {
            let mut spec = json!({"url": url});
            let mut data = serde_json::Map::new();
            if let Ok(k) = std::env::var("E2E_ELASTICSEARCH_API_KEY") {
                data.insert("api-key".into(), json!(k));
                spec["auth"] = json!({"apiKeySecretRef": {"name": "es-b", "key": "api-key"}});
            } else if let (Ok(u), Ok(p)) = (
                std::env::var("E2E_ELASTICSEARCH_USERNAME"),
                std::env::var("E2E_ELASTICSEARCH_PASSWORD"),
            ) {
                data.insert("password".into(), json!(p));
                spec["auth"] = json!({"basic": {"username": u, "passwordSecretRef": {"name": "es-b", "key": "password"}}});
            }
            if let Ok(path) = std::env::var("E2E_ELASTICSEARCH_CA_FILE") {
                data.insert(
                    "ca.crt".into(),
                    json!(std::fs::read_to_string(path).expect("CA file")),
                );
                spec["tls"] = json!({"ca": {"secretRef": {"name": "es-b"}}});
            }
            secrets
                .create(
                    &PostParams::default(),
                    &mk_secret("es-b", Value::Object(data)),
                )
                .await
                .expect("secret");
            (None, spec, Es::new(&env).await.expect("es"))
        }
    };
    let check = tls_standin.map(Es::Standin).unwrap_or(check);
    // A plaintext cluster given by URL is the tester's choice: a connection may use it only
    // with the operator-wide opt-in (InsecureConnection otherwise, see tests/connections.rs).
    let plaintext: &[&str] = if conn_spec["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://"))
    {
        &["--allow-plaintext-elasticsearch", "true"]
    } else {
        &[]
    };
    let operator = Operator::start_with(&env.kubeconfig, &es, &ns.name, "single", plaintext);
    let conns: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<es_inference_operator::crd::ElasticsearchConnection>(&()),
    );
    let conn: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "ElasticsearchConnection",
        "metadata": {"name": "cluster-b", "namespace": ns.name}, "spec": conn_spec,
    }))
    .expect("connection");
    conns
        .create(&PostParams::default(), &conn)
        .await
        .expect("create connection");
    secrets
        .create(
            &PostParams::default(),
            &mk_secret("anthropic", json!({"api-key": "sk-ant-e2e-CONN-KEY-0004"})),
        )
        .await
        .expect("secret");
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let mut spec = completion_spec("e2e-on-connection");
    spec["elasticsearchRef"] = json!({"name": "cluster-b"});
    api.create(&PostParams::default(), &ie("via-conn", &ns.name, spec))
        .await
        .expect("create");
    wait(&api, "via-conn", "Ready=True through the connection", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    assert!(
        check.endpoint("e2e-on-connection").await.is_some(),
        "created on the connection's cluster"
    );
    // The connection reports its cluster.
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let c = conns.get("cluster-b").await.expect("get");
        let ready = c
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Ready")
                    .map(|c| c["status"] == "True")
            });
        if ready == Some(true) && c.data.pointer("/status/clusterUUID").is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "connection never Ready: {:?}",
            c.data.get("status")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.delete("via-conn", &DeleteParams::default())
        .await
        .expect("delete");
    wait(&api, "via-conn", "the resource to be gone", |o| o.is_none()).await;
    assert!(
        check.endpoint("e2e-on-connection").await.is_none(),
        "deleted from the connection's cluster"
    );
    drop(operator);
}

/// Two resources with one inference id: the older owns it, the other reports Conflict and
/// takes over as soon as the owner is gone (the operator runs with a 10-minute resync, so
/// only the watch can explain a quick takeover).
pub(crate) async fn conflict_takeover_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the conflict test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-conflict").await;
    // Unique per run: a cluster given by URL keeps what an earlier, failed run left.
    let id = format!("{}-contested", ns.name);
    let operator = Operator::start_with(
        &env.kubeconfig,
        &es,
        &ns.name,
        "single",
        &["--resync-interval", "10m"],
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "anthropic"}, "stringData": {"api-key": "sk-ant-e2e-CONFLICT-0005"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &ie("alpha", &ns.name, completion_spec(&id)),
    )
    .await
    .expect("create");
    wait(&api, "alpha", "Ready=True", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    api.create(
        &PostParams::default(),
        &ie("beta", &ns.name, completion_spec(&id)),
    )
    .await
    .expect("create");
    wait(&api, "beta", "Conflict", |o| {
        ready_reason(o).is_some_and(|(_, r)| r == "Conflict")
    })
    .await;
    let deleted_at = tokio::time::Instant::now();
    api.delete("alpha", &DeleteParams::default())
        .await
        .expect("delete");
    wait(&api, "beta", "beta to take over", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    let took = deleted_at.elapsed();
    println!("    takeover after the owner's deletion took {took:?} (resync interval 10m)");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(es.endpoint(&id).await.is_some());
    es.delete(&id).await;
    drop(operator);
}

/// A request the cluster's version cannot accept (chat_completion on 8.17) is never sent: the
/// resource ends `UnsupportedByCluster` without a PUT; an upgrade of the cluster (noticed by the
/// resync) lets it through. Always on a stand-in, which can be upgraded in place.
pub(crate) async fn unsupported_by_cluster_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let standin = EsStandin::start(StandinConfig::for_version("8.17.0")).await;
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-unsupported").await;
    let es = Es::Standin(standin);
    let operator = Operator::start_with(&env.kubeconfig, &es, &ns.name, "single", &[]);
    let Es::Standin(standin) = &es else {
        unreachable!()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai"},
        "stringData": {"api-key": "sk-e2e-UNSUPPORTED-0001"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    let spec = json!({
        "inferenceId": "e2e-chat", "taskType": "chat_completion", "service": "openai",
        "serviceSettings": {"model_id": "gpt-4o"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
    });
    api.create(&PostParams::default(), &ie("chat", &ns.name, spec))
        .await
        .expect("create");
    wait(&api, "chat", "UnsupportedByCluster", |o| {
        ready_reason(o) == Some(("False".into(), "UnsupportedByCluster".into()))
    })
    .await;
    let puts = |s: &EsStandin| {
        s.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.starts_with("/_inference/"))
            .count()
    };
    assert_eq!(puts(standin), 0, "nothing is sent to 8.17");
    let status = api.get("chat").await.expect("get").status.expect("status");
    assert_eq!(status.ownership, None, "no Creating mark either");
    standin.set_version("8.18.0");
    wait(&api, "chat", "Ready=True after the upgrade", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    assert_eq!(puts(standin), 1, "one create once the cluster accepts it");
    drop(operator);
}

/// The contracts of the API server that the Kubernetes fake of the other tests keeps
/// (tests/support/contracts.rs, run against the fake by tests/contract.rs), on a real one.
pub(crate) async fn contracts_on_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-contract").await;
    crate::support::contracts::contracts(client.clone(), &ns.name).await;
}
