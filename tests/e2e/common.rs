//! What every end-to-end scenario uses: the environment, the cluster client, temporary
//! namespaces, Elasticsearch (a real one by URL, or the stand-in), the operator process, waits.

#![allow(dead_code)]

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::support::es_standin::{EsStandin, StandinConfig};
use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};

pub(crate) const DEADLINE: Duration = Duration::from_secs(90);

pub(crate) struct Env {
    pub(crate) kubeconfig: String,
    pub(crate) es_url: Option<String>,
}

impl Env {
    pub(crate) fn get() -> Option<Env> {
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
/// plainly instead of being captured (`support::runner`).
pub(crate) fn skipped(why: &str) {
    crate::support::runner::skipped(why);
}

pub(crate) async fn client(env: &Env) -> Client {
    let kc = Kubeconfig::read_from(&env.kubeconfig).expect("read E2E_KUBECONFIG");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

pub(crate) async fn install_crd(client: &Client) {
    install_one_crd(client, "elasticsearchconnections.es-inference.dev").await;
    install_one_crd(client, "inferenceendpoints.es-inference.dev").await;
}

pub(crate) async fn install_one_crd(client: &Client, name: &str) {
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

pub(crate) struct TempNamespace {
    pub(crate) api: Api<Namespace>,
    pub(crate) name: String,
}

impl TempNamespace {
    pub(crate) async fn new(client: &Client, prefix: &str) -> Self {
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
    /// Leaves nothing behind: the test's runtime is ending (a task spawned on it may never run),
    /// so a thread with its own runtime and client deletes the namespace and the operator's
    /// objects in it, clears the finalizers a stopped operator can no longer remove, and is
    /// waited for (bounded).
    fn drop(&mut self) {
        let name = self.name.clone();
        let Some(env) = Env::get() else { return };
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let client = client(&env).await;
                let _ = Api::<Namespace>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await;
                let unfinalize = json!({"metadata": {"finalizers": null}});
                for kind in ["inferenceendpoints", "elasticsearchconnections"] {
                    let api: Api<DynamicObject> = Api::namespaced_with(
                        client.clone(),
                        &name,
                        &kube::discovery::ApiResource {
                            group: "es-inference.dev".into(),
                            version: "v1alpha1".into(),
                            api_version: "es-inference.dev/v1alpha1".into(),
                            kind: String::new(),
                            plural: kind.into(),
                        },
                    );
                    // Deleting them first: an object being deleted gets no new finalizer, so an
                    // operator still running cannot put one back after it is cleared.
                    let _ = api
                        .delete_collection(&DeleteParams::default(), &Default::default())
                        .await;
                    for o in api
                        .list(&Default::default())
                        .await
                        .map(|l| l.items)
                        .unwrap_or_default()
                    {
                        if let Some(n) = o.metadata.name.as_deref() {
                            let _ = api
                                .patch(n, &PatchParams::default(), &Patch::Merge(&unfinalize))
                                .await;
                        }
                    }
                }
            });
            let _ = done.send(());
        });
        let _ = wait.recv_timeout(Duration::from_secs(20));
    }
}

pub(crate) fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 & 0xffff_ffff)
        .unwrap_or(0)
}

/// The same object, untyped: the API server, not serde, must judge invalid specs.
pub(crate) fn raw_ie(name: &str, ns: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("object")
}

pub(crate) fn ie(name: &str, ns: &str, spec: Value) -> InferenceEndpoint {
    serde_json::from_value(json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("InferenceEndpoint")
}

/// The OpenAI-compatible provider of `E2E_PROVIDER_URL` (e.g. tests/e2e/mock-provider.py), without
/// a trailing slash; `None` for Anthropic.
pub(crate) fn provider_url() -> Option<String> {
    std::env::var("E2E_PROVIDER_URL")
        .ok()
        .map(|u| u.trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
}

/// A completion endpoint of the suite's provider, with its key in the Secret `anthropic`
/// (`api-key`): Anthropic by default; with `E2E_PROVIDER_URL`, the `openai` service sent to that
/// URL (its `url` setting), so that a real Elasticsearch's calls to the provider (on create, and
/// on every `_update`) reach a provider that answers.
pub(crate) fn completion_spec(id: &str) -> Value {
    let secret = json!({"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}});
    match provider_url() {
        None => json!({
            "inferenceId": id, "taskType": "completion", "service": "anthropic",
            "serviceSettings": {"model_id": "claude-sonnet-4-5"},
            "secretSettings": secret,
            "taskSettings": {"max_tokens": 256}
        }),
        Some(url) => json!({
            "inferenceId": id, "taskType": "completion", "service": "openai",
            "serviceSettings": {"model_id": "e2e-chat", "url": format!("{url}/v1/chat/completions")},
            "secretSettings": secret,
            "taskSettings": {"user": "e2e"}
        }),
    }
}

/// Task settings other than `completion_spec`'s, marked with `n`, for an edit that `_update`
/// applies: Anthropic's `max_tokens`, or OpenAI's `user`.
pub(crate) fn task_settings_with(n: u32) -> Value {
    match provider_url() {
        None => json!({"max_tokens": n}),
        Some(_) => json!({"user": format!("e2e-{n}")}),
    }
}

/// The edit of the lifecycle and controls scenarios.
pub(crate) fn edited_task_settings() -> Value {
    task_settings_with(512)
}

/// Whether the endpoint as Elasticsearch returns it has every task setting of `want`.
pub(crate) fn has_task_settings(ep: &Value, want: &Value) -> bool {
    want.as_object()
        .expect("task settings")
        .iter()
        .all(|(k, v)| ep["task_settings"][k] == *v)
}

/// `service_settings` of an OpenAI text embedding endpoint (`model_id` and more), sent to
/// `E2E_PROVIDER_URL` when it is set.
pub(crate) fn openai_embedding_settings(mut settings: Value) -> Value {
    if let Some(url) = provider_url() {
        settings["url"] = json!(format!("{url}/v1/embeddings"));
    }
    settings
}

pub(crate) fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other}"),
    }
}

/// The operator's credentials for a real Elasticsearch, from the E2E_* variables: one kind only
/// (an API key wins over a username and password), and the CA only for https.
pub(crate) fn operator_credentials(https: bool) -> Vec<(&'static str, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut out = Vec::new();
    if let Some(k) = var("E2E_ELASTICSEARCH_API_KEY") {
        out.push(("ELASTICSEARCH_API_KEY", k));
    } else if let (Some(u), Some(p)) = (
        var("E2E_ELASTICSEARCH_USERNAME"),
        var("E2E_ELASTICSEARCH_PASSWORD"),
    ) {
        out.push(("ELASTICSEARCH_USERNAME", u));
        out.push(("ELASTICSEARCH_PASSWORD", p));
    }
    if https && let Some(ca) = var("E2E_ELASTICSEARCH_CA_FILE") {
        out.push(("ELASTICSEARCH_CA_FILE", ca));
    }
    out
}

/// The CA of a real Elasticsearch, when given.
pub(crate) fn e2e_ca() -> Option<Vec<u8>> {
    let path = std::env::var("E2E_ELASTICSEARCH_CA_FILE").ok()?;
    Some(std::fs::read(path).expect("E2E_ELASTICSEARCH_CA_FILE"))
}

pub(crate) enum Es {
    Standin(EsStandin),
    Real {
        url: String,
        http: reqwest::Client,
        auth: Option<String>,
    },
}

impl Es {
    pub(crate) async fn new(env: &Env) -> Option<Es> {
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
                let mut http = reqwest::Client::builder();
                if let Some(pem) = e2e_ca() {
                    http = http.add_root_certificate(
                        reqwest::Certificate::from_pem(&pem).expect("E2E_ELASTICSEARCH_CA_FILE"),
                    );
                }
                Some(Es::Real {
                    url: url.trim_end_matches('/').into(),
                    http: http.build().expect("the suite's Elasticsearch client"),
                    auth,
                })
            }
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Es::Standin(s) => s.url(),
            Es::Real { url, .. } => url.clone(),
        }
    }

    pub(crate) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    pub(crate) async fn endpoint(&self, id: &str) -> Option<Value> {
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

    pub(crate) async fn reference(&self, id: &str, on: bool) {
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

    /// Create a completion endpoint of the suite's provider (`completion_spec`) directly in
    /// Elasticsearch (someone else's); `model` is Anthropic's model.
    pub(crate) async fn create_foreign(&self, id: &str, model: &str, key: &str) {
        let body = match provider_url() {
            None => json!({
                "service": "anthropic",
                "service_settings": {"model_id": model, "api_key": key},
                "task_settings": {"max_tokens": 256}
            }),
            Some(url) => json!({
                "service": "openai",
                "service_settings": {"model_id": "e2e-chat", "api_key": key,
                                     "url": format!("{url}/v1/chat/completions")},
                "task_settings": {"user": "e2e"}
            }),
        };
        match self {
            Es::Standin(s) => {
                let mut b = body;
                b["inference_id"] = json!(id);
                b["task_type"] = json!("completion");
                s.insert_endpoint(b);
            }
            Es::Real { .. } => {
                let (status, resp) = self
                    .raw(
                        reqwest::Method::PUT,
                        &format!("/_inference/completion/{id}"),
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 200, "{resp}");
            }
        }
    }

    pub(crate) async fn delete(&self, id: &str) {
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
pub(crate) struct Operator {
    pub(crate) child: Child,
    pub(crate) log: std::path::PathBuf,
}

impl Operator {
    pub(crate) fn start_with(
        kubeconfig: &str,
        es: &Es,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Operator {
        Self::start_at(kubeconfig, es, &es.url(), namespace, identity, extra)
    }

    /// Like `start_with`, with `url` as the default cluster (e.g. a fault proxy in front of `es`).
    pub(crate) fn start_at(
        kubeconfig: &str,
        es: &Es,
        url: &str,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Operator {
        let log = std::env::temp_dir().join(format!(
            "es-inference-operator-e2e-{namespace}-{identity}-{:x}.log",
            rand_suffix()
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_es-inference-operator"));
        cmd.arg("run")
            .args(["--elasticsearch-url", url])
            .args(["--namespace", namespace])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(if extra.contains(&"--resync-interval") {
                &[][..]
            } else {
                &["--resync-interval", "20s"][..]
            })
            .args(extra)
            // An http:// default cluster (the stand-in, a fault proxy) is the tester's choice; the
            // operator refuses one at start unless plaintext is allowed.
            .args(
                if url.starts_with("http://") && !extra.contains(&"--allow-plaintext-elasticsearch")
                {
                    &["--allow-plaintext-elasticsearch", "true"][..]
                } else {
                    &[][..]
                },
            )
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out));
        if matches!(es, Es::Real { .. }) {
            for (to, v) in operator_credentials(url.starts_with("https://")) {
                cmd.env(to, v);
            }
        }
        Operator {
            child: cmd.spawn().expect("start the operator binary"),
            log,
        }
    }

    pub(crate) fn terminate(&mut self) {
        // SIGTERM, as the kubelet sends it; std only offers SIGKILL.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// The status of `GET /readyz`, once the operator has said where it serves (`None` before).
    pub(crate) async fn readyz(&self) -> Option<u16> {
        let logs = self.logs();
        let line = logs.lines().find(|l| l.contains("serving /healthz"))?;
        let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
        let resp = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
        Some(resp.status().as_u16())
    }

    /// The operator's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as an OOM kill or a node failure would.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn ready_reason(obj: Option<&InferenceEndpoint>) -> Option<(String, String)> {
    let c = obj?.status.as_ref()?.condition("Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

pub(crate) async fn wait(
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

pub(crate) async fn wait_es(es: &Es, id: &str, what: &str, cond: impl Fn(Option<&Value>) -> bool) {
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

pub(crate) async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("es-inference-operator")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

pub(crate) async fn wait_holder(
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

pub(crate) const OPERATOR_NS: &str = "es-inference-system";
pub(crate) const OPERATOR_SA: &str = "es-inference-operator";

/// Apply the identity parts of the plain manifests (rendered from the chart): namespace,
/// ServiceAccount and RBAC. The Deployment itself is not needed: the binary runs here.
pub(crate) async fn install_identity(client: &Client) {
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
pub(crate) async fn apply_identity(client: &Client, text: &str, required: &[&str]) {
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
pub(crate) async fn service_account_kubeconfig(env: &Env, client: &Client) -> std::path::PathBuf {
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
pub(crate) async fn can_i(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    can_sa(client, OPERATOR_SA, verb, group, resource, namespace).await
}

pub(crate) async fn can_sa(
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
