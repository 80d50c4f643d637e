//! End-to-end: the real `es-inference-operator run` binary against a real Kubernetes API server
//! (and a real Elasticsearch, or the repository's stand-in on 127.0.0.1). Configured only by
//! environment variables (see README, "End-to-end tests"); prints SKIPPED without them.
//! Waits on conditions with deadlines; never sleeps.

mod support;

type TestFn = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// A minimal runner in libtest's output format: each test runs on its own runtime, a panic is a
/// failure, and the process exits non-zero when any test failed.
fn main() {
    let tests: [(&str, TestFn); 7] = [
        ("conflict_takeover_against_a_real_api_server", || {
            Box::pin(conflict_takeover_against_a_real_api_server())
        }),
        ("connection_against_a_real_api_server", || {
            Box::pin(connection_against_a_real_api_server())
        }),
        ("model_endpoint_against_a_real_api_server", || {
            Box::pin(model_endpoint_against_a_real_api_server())
        }),
        ("least_privilege_identity_against_a_real_api_server", || {
            Box::pin(least_privilege_identity_against_a_real_api_server())
        }),
        ("leader_election_against_a_real_api_server", || {
            Box::pin(leader_election_against_a_real_api_server())
        }),
        ("crd_rules_on_a_real_api_server", || {
            Box::pin(crd_rules_on_a_real_api_server())
        }),
        ("lifecycle_against_a_real_api_server", || {
            Box::pin(lifecycle_against_a_real_api_server())
        }),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = tests
        .iter()
        .filter(|(n, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for (name, test) in selected {
        SKIPPED.store(false, std::sync::atomic::Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(test())));
        drop(rt);
        if result.is_ok() && SKIPPED.load(std::sync::atomic::Ordering::SeqCst) {
            ignored += 1;
            println!("test {name} ... ignored");
        } else if result.is_ok() {
            passed += 1;
            println!("test {name} ... ok");
        } else {
            failed += 1;
            println!("test {name} ... FAILED");
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; 0 filtered out\n"
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::{Namespace, Secret},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};
use support::es_standin::{EsStandin, StandinConfig};

const DEADLINE: Duration = Duration::from_secs(90);

struct Env {
    kubeconfig: String,
    es_url: Option<String>,
}

impl Env {
    fn get() -> Option<Env> {
        let kubeconfig = std::env::var("E2E_KUBECONFIG")
            .ok()
            .filter(|s| !s.is_empty());
        let es_url = std::env::var("E2E_ELASTICSEARCH_URL")
            .ok()
            .filter(|s| !s.is_empty());
        match kubeconfig {
            Some(kubeconfig) => Some(Env { kubeconfig, es_url }),
            None => {
                skipped(
                    "end-to-end tests need E2E_KUBECONFIG (and E2E_ELASTICSEARCH_URL, or `standin`); see README",
                );
                None
            }
        }
    }
}

/// This target runs without libtest (`harness = false` in Cargo.toml), so a skip is printed
/// plainly instead of being captured.
fn skipped(why: &str) {
    println!("SKIPPED: {why}");
    SKIPPED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Set by `skipped`: the runner reports the test as ignored, not as passed.
static SKIPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn client(env: &Env) -> Client {
    let kc = Kubeconfig::read_from(&env.kubeconfig).expect("read E2E_KUBECONFIG");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

async fn install_crd(client: &Client) {
    install_one_crd(client, "elasticsearchconnections.es-inference.dev").await;
    install_one_crd(client, "inferenceendpoints.es-inference.dev").await;
}

async fn install_one_crd(client: &Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(format!("{}/crds/{name}.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("crd file");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("crd yaml");
    crds.patch(
        name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD (server-side): the API server must accept its schema and CEL rules");
    tokio::time::timeout(
        DEADLINE,
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watch");
}

struct TempNamespace {
    api: Api<Namespace>,
    name: String,
}

impl TempNamespace {
    async fn new(client: &Client, prefix: &str) -> Self {
        let api: Api<Namespace> = Api::all(client.clone());
        let name = format!("{prefix}-{:x}", rand_suffix());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns"),
        )
        .await
        .expect("create namespace");
        Self { api, name }
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        let api = self.api.clone();
        let name = self.name.clone();
        // Best effort; the namespace may be left terminating on an API server without controllers.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 & 0xffff_ffff)
        .unwrap_or(0)
}

/// The same object, untyped: the API server, not serde, must judge invalid specs.
fn raw_ie(name: &str, ns: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("object")
}

fn ie(name: &str, ns: &str, spec: Value) -> InferenceEndpoint {
    serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("InferenceEndpoint")
}

fn anthropic_spec(id: &str) -> Value {
    json!({
        "inferenceId": id, "taskType": "completion", "service": "anthropic",
        "serviceSettings": {"model_id": "claude-sonnet-4-5"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}},
        "taskSettings": {"max_tokens": 256}
    })
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn crd_rules_on_a_real_api_server() {
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
        let mut spec = anthropic_spec("x");
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
    let mut spec = anthropic_spec("Not_Valid!");
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
    let mut spec = anthropic_spec("emb");
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
    let mut spec = anthropic_spec("cmp");
    spec["chunkingSettings"] = json!({"strategy": "none"});
    let (_, msg) = api_error(
        raw.create(&dry, &raw_ie("bad", &ns.name, spec))
            .await
            .expect_err("chunking on completion"),
    );
    assert!(msg.contains("embedding task types"), "{msg}");
    let mut spec = anthropic_spec("sp");
    spec["secretSettings"] =
        json!({"secret_parameters.token": {"secretKeyRef": {"name": "s", "key": "k"}}});
    raw.create(&dry, &raw_ie("ok", &ns.name, spec))
        .await
        .expect("secret_parameters.<name> accepted");

    // Immutability: service, taskType, inferenceId (including adding one later).
    let obj = api
        .create(
            &PostParams::default(),
            &ie("imm", &ns.name, {
                let mut s = anthropic_spec("imm");
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

enum Es {
    Standin(EsStandin),
    Real {
        url: String,
        http: reqwest::Client,
        auth: Option<String>,
    },
}

impl Es {
    async fn new(env: &Env) -> Option<Es> {
        match env.es_url.as_deref() {
            None => None,
            Some("standin") => Some(Es::Standin(
                EsStandin::start(StandinConfig::default()).await,
            )),
            Some(url) => {
                let auth = std::env::var("E2E_ELASTICSEARCH_API_KEY")
                    .ok()
                    .map(|k| format!("ApiKey {k}"))
                    .or_else(|| {
                        let u = std::env::var("E2E_ELASTICSEARCH_USERNAME").ok()?;
                        let p = std::env::var("E2E_ELASTICSEARCH_PASSWORD").ok()?;
                        use base64::Engine;
                        Some(format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                        ))
                    });
                Some(Es::Real {
                    url: url.trim_end_matches('/').into(),
                    http: reqwest::Client::builder().build().ok()?,
                    auth,
                })
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Es::Standin(s) => s.url(),
            Es::Real { url, .. } => url.clone(),
        }
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let Es::Real { url, http, auth } = self else {
            unreachable!("raw requests are for a real cluster")
        };
        let mut req = http.request(method, format!("{url}{path}"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("Elasticsearch reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn endpoint(&self, id: &str) -> Option<Value> {
        match self {
            Es::Standin(s) => s.endpoint(id),
            Es::Real { .. } => {
                let (status, body) = self
                    .raw(reqwest::Method::GET, &format!("/_inference/{id}"), None)
                    .await;
                (status == 200).then(|| body["endpoints"][0].clone())
            }
        }
    }

    async fn reference(&self, id: &str, on: bool) {
        match self {
            Es::Standin(s) if on => s.add_pipeline_reference(id, "e2e-pipeline"),
            Es::Standin(s) => s.clear_references(id),
            Es::Real { .. } if on => {
                let body = json!({"processors": [{"inference": {"model_id": id, "input_output": {"input_field": "a", "output_field": "b"}}}]});
                let (status, resp) = self
                    .raw(
                        reqwest::Method::PUT,
                        "/_ingest/pipeline/e2e-pipeline",
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 200, "{resp}");
            }
            Es::Real { .. } => {
                self.raw(
                    reqwest::Method::DELETE,
                    "/_ingest/pipeline/e2e-pipeline",
                    None,
                )
                .await;
            }
        }
    }

    async fn delete(&self, id: &str) {
        match self {
            Es::Standin(s) => {
                s.remove_endpoint(id);
            }
            Es::Real { .. } => {
                self.raw(
                    reqwest::Method::DELETE,
                    &format!("/_inference/{id}?force=true"),
                    None,
                )
                .await;
            }
        }
    }
}

/// The operator process; killed on drop. Its output goes to a file that is checked for secrets.
struct Operator {
    child: Child,
    log: std::path::PathBuf,
}

impl Operator {
    fn start_with(
        kubeconfig: &str,
        es: &Es,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Operator {
        let log = std::env::temp_dir().join(format!(
            "es-inference-operator-e2e-{namespace}-{identity}.log"
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_es-inference-operator"));
        cmd.arg("run")
            .args(["--elasticsearch-url", &es.url()])
            .args(["--namespace", namespace])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(if extra.contains(&"--resync-interval") {
                &[][..]
            } else {
                &["--resync-interval", "20s"][..]
            })
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out));
        for (from, to) in [
            ("E2E_ELASTICSEARCH_API_KEY", "ELASTICSEARCH_API_KEY"),
            ("E2E_ELASTICSEARCH_USERNAME", "ELASTICSEARCH_USERNAME"),
            ("E2E_ELASTICSEARCH_PASSWORD", "ELASTICSEARCH_PASSWORD"),
            ("E2E_ELASTICSEARCH_CA_FILE", "ELASTICSEARCH_CA_FILE"),
        ] {
            if let Ok(v) = std::env::var(from)
                && matches!(es, Es::Real { .. })
            {
                cmd.env(to, v);
            }
        }
        Operator {
            child: cmd.spawn().expect("start the operator binary"),
            log,
        }
    }

    fn terminate(&mut self) {
        // SIGTERM, as the kubelet sends it; std only offers SIGKILL.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ready_reason(obj: Option<&InferenceEndpoint>) -> Option<(String, String)> {
    let c = obj?.status.as_ref()?.condition("Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

async fn wait(
    api: &Api<InferenceEndpoint>,
    name: &str,
    what: &str,
    cond: impl Fn(Option<&InferenceEndpoint>) -> bool,
) {
    let r = tokio::time::timeout(
        DEADLINE,
        await_condition(api.clone(), name, move |o: Option<&InferenceEndpoint>| {
            cond(o)
        }),
    )
    .await;
    let last = api.get_opt(name).await.ok().flatten();
    assert!(
        r.is_ok(),
        "timed out waiting for {what}; last seen: {:?}",
        last.map(|o| o.status)
    );
}

async fn wait_es(es: &Es, id: &str, what: &str, cond: impl Fn(Option<&Value>) -> bool) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ep = es.endpoint(id).await;
        if cond(ep.as_ref()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        // Polling Elasticsearch: nothing to watch there.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const LIFECYCLE_ID: &str = "e2e-claude";

async fn lifecycle_against_a_real_api_server() {
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
    let operator = Operator::start_with(operator_kubeconfig, es, &ns.name, "single", &[]);
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
        &ie("claude", &ns.name, anthropic_spec(LIFECYCLE_ID)),
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
        .and_then(|s| s.secret_fingerprint);

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
            .and_then(|s| s.secret_fingerprint.clone())
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
            &Patch::Merge(json!({"spec": {"taskSettings": {"max_tokens": 512}}})),
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
    wait_es(es, LIFECYCLE_ID, "max_tokens 512 in Elasticsearch", |ep| {
        ep.is_some_and(|e| e["task_settings"]["max_tokens"] == 512)
    })
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
    let mut spec = anthropic_spec(LIFECYCLE_ID);
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

async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("es-inference-operator")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn wait_holder(
    leases: &Api<Lease>,
    what: &str,
    cond: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let holder = lease_holder(leases).await;
        if cond(holder.as_deref()) {
            return holder;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}; holder {holder:?}"
        );
        // Lease renewals are not events we can watch cheaply: poll with a deadline.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn leader_election_against_a_real_api_server() {
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
        &ie("one", &ns.name, anthropic_spec("e2e-ha-one")),
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
        &ie("two", &ns.name, anthropic_spec("e2e-ha-two")),
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

const OPERATOR_NS: &str = "es-inference-system";
const OPERATOR_SA: &str = "es-inference-operator";

/// Apply the identity parts of the plain manifests (rendered from the chart): namespace,
/// ServiceAccount and RBAC. The Deployment itself is not needed: the binary runs here.
async fn install_identity(client: &Client) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut text = std::fs::read_to_string(format!("{root}/deploy/namespace.yaml"))
        .expect("deploy/namespace.yaml");
    text.push_str("\n---\n");
    text.push_str(
        &std::fs::read_to_string(format!("{root}/deploy/es-inference-operator.yaml"))
            .expect("deploy/"),
    );
    let required = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    apply_identity(client, &text, &required).await;
}

/// Server-side apply the namespace, ServiceAccount and RBAC documents of `text`; `required`
/// kinds must be among them.
async fn apply_identity(client: &Client, text: &str, required: &[&str]) {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("manifests");
    let ssa = PatchParams::apply("e2e").force();
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
        macro_rules! apply {
            ($t:ty, $api:expr) => {{
                let obj: $t = serde_json::from_value(doc.clone()).expect(&kind);
                $api.patch(&name, &ssa, &Patch::Apply(&obj))
                    .await
                    .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
            }};
        }
        use k8s_openapi::api::{
            core::v1::ServiceAccount,
            rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
        };
        match kind.as_str() {
            "Namespace" => apply!(Namespace, Api::<Namespace>::all(client.clone())),
            "ServiceAccount" => apply!(
                ServiceAccount,
                Api::<ServiceAccount>::namespaced(
                    client.clone(),
                    ns.as_deref().unwrap_or(OPERATOR_NS)
                )
            ),
            "ClusterRole" => apply!(ClusterRole, Api::<ClusterRole>::all(client.clone())),
            "ClusterRoleBinding" => apply!(
                ClusterRoleBinding,
                Api::<ClusterRoleBinding>::all(client.clone())
            ),
            "Role" => apply!(
                Role,
                Api::<Role>::namespaced(client.clone(), ns.as_deref().unwrap_or(OPERATOR_NS))
            ),
            "RoleBinding" => apply!(
                RoleBinding,
                Api::<RoleBinding>::namespaced(
                    client.clone(),
                    ns.as_deref().unwrap_or(OPERATOR_NS)
                )
            ),
            _ => continue,
        }
        applied.push(kind);
    }
    for want in required {
        assert!(
            applied.iter().any(|k| k == want),
            "the manifests have no {want}"
        );
    }
}

/// A kubeconfig for the operator's ServiceAccount (a TokenRequest, like `kubectl create token`).
async fn service_account_kubeconfig(env: &Env, client: &Client) -> std::path::PathBuf {
    use k8s_openapi::api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::ServiceAccount,
    };
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), OPERATOR_NS);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(OPERATOR_SA, &PostParams::default(), &req)
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token;
    let admin = Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("cluster");
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
            "certificate-authority": cluster.certificate_authority,
        }}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator"}}],
        "current-context": "operator",
    });
    let path = std::env::temp_dir().join(format!(
        "es-inference-operator-e2e-sa-{}.kubeconfig",
        rand_suffix()
    ));
    std::fs::write(&path, serde_json::to_string(&kubeconfig).expect("json"))
        .expect("write kubeconfig");
    path
}

/// `kubectl auth can-i` for the operator's ServiceAccount, through a SubjectAccessReview.
async fn can_i(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    can_sa(client, OPERATOR_SA, verb, group, resource, namespace).await
}

async fn can_sa(
    client: &Client,
    sa: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (resource.to_string(), None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{OPERATOR_NS}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{OPERATOR_NS}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource),
                subresource,
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

async fn least_privilege_identity_against_a_real_api_server() {
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

async fn model_endpoint_against_a_real_api_server() {
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
async fn connection_against_a_real_api_server() {
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
    let operator = Operator::start_with(&env.kubeconfig, &es, &ns.name, "single", &[]);
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
    let mut spec = anthropic_spec("e2e-on-connection");
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
async fn conflict_takeover_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the conflict test needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-conflict").await;
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
        &ie("alpha", &ns.name, anthropic_spec("e2e-contested")),
    )
    .await
    .expect("create");
    wait(&api, "alpha", "Ready=True", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    api.create(
        &PostParams::default(),
        &ie("beta", &ns.name, anthropic_spec("e2e-contested")),
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
    assert!(es.endpoint("e2e-contested").await.is_some());
    es.delete("e2e-contested").await;
    drop(operator);
}
