//! The safety invariants on a real API server, with faults injected by a proxy in front of
//! Elasticsearch (any Elasticsearch: the stand-in or a real one by URL) and a relay in front of
//! the API server: an outage with pending changes, a burst of 503s, a refused create followed by
//! a foreign endpoint, a status copied onto another object, an object too deep to decode (also
//! across a restart), `Recreate` with a setting stored in another case, an unrecovered cluster,
//! a lost create answer with the operator SIGKILLed, and a leader cut off from the API server.

use std::time::{Duration, Instant};

use es_inference_operator::{crd::InferenceEndpoint, guard::Watched};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    common::*,
    support::es_proxy::{EsProxy, ProxyFault},
};

const KEY: &str = "sk-ant-e2e-FAULTS-KEY-0007";

/// An operator behind a fault proxy, in a fresh namespace.
pub(crate) struct Rig {
    pub(crate) env: Env,
    pub(crate) es: Es,
    pub(crate) client: Client,
    pub(crate) ns: TempNamespace,
    pub(crate) proxy: EsProxy,
    pub(crate) operator: Operator,
    pub(crate) api: Api<InferenceEndpoint>,
}

impl Rig {
    pub(crate) async fn new(prefix: &str, args: &[&str]) -> Option<Rig> {
        let env = Env::get()?;
        let Some(es) = Es::new(&env).await else {
            skipped("fault scenarios need E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
            return None;
        };
        let client = client(&env).await;
        install_crd(&client).await;
        let ns = TempNamespace::new(&client, prefix).await;
        let proxy = EsProxy::start(&es.url(), e2e_ca().as_deref()).await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "anthropic"}, "stringData": {"api-key": provider_key()}
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
        let operator =
            Operator::start_at(&env.kubeconfig, &es, &proxy.url(), &ns.name, "single", args);
        let api = Api::namespaced(client.clone(), &ns.name);
        Some(Rig {
            env,
            es,
            client,
            ns,
            proxy,
            operator,
            api,
        })
    }

    pub(crate) async fn create(&self, name: &str, spec: Value) {
        self.api
            .create(&PostParams::default(), &ie(name, &self.ns.name, spec))
            .await
            .expect("create");
    }

    pub(crate) async fn ready(&self, name: &str) {
        wait(&self.api, name, &format!("{name} Ready"), |o| {
            ready_reason(o) == Some(("True".into(), "InSync".into()))
        })
        .await;
    }

    pub(crate) async fn reason(&self, name: &str, reason: &'static str) {
        wait(&self.api, name, &format!("{name}: {reason}"), move |o| {
            ready_reason(o).is_some_and(|(_, r)| r == reason)
        })
        .await;
    }

    pub(crate) async fn gone(&self, name: &str) {
        wait(&self.api, name, &format!("{name} gone"), |o| o.is_none()).await;
    }

    pub(crate) async fn delete(&self, name: &str) {
        self.api
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Restart the operator (same flags), as a crash or a rollout would.
    pub(crate) fn restart(&mut self, sigkill: bool, args: &[&str]) {
        if sigkill {
            self.operator.kill();
        } else {
            self.operator.terminate();
        }
        self.operator = Operator::start_at(
            &self.env.kubeconfig,
            &self.es,
            &self.proxy.url(),
            &self.ns.name,
            "restarted",
            args,
        );
    }

    pub(crate) fn no_secret_in_logs(&self) {
        assert!(
            !self.operator.logs().contains(provider_key().as_str()),
            "a secret value reached the operator's logs"
        );
    }
}

pub(crate) fn provider_key() -> String {
    std::env::var("E2E_PROVIDER_API_KEY").unwrap_or_else(|_| KEY.into())
}

fn spec(id: &str) -> Value {
    completion_spec(id)
}

pub(crate) async fn outage_with_pending_changes_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-outage", &[]).await else {
        return;
    };
    for i in 0..10 {
        r.create(&format!("e{i}"), spec(&format!("e2e-outage-{i}")))
            .await;
    }
    for i in 0..10 {
        r.ready(&format!("e{i}")).await;
    }
    r.proxy.set_cut(true);
    // While Elasticsearch is unreachable: five edits, two deletes, three creates.
    for i in 0..5 {
        r.api
            .patch(
                &format!("e{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taskSettings": task_settings_with(99)}})),
            )
            .await
            .expect("edit");
    }
    for i in 5..7 {
        r.delete(&format!("e{i}")).await;
    }
    for i in 0..3 {
        r.create(&format!("n{i}"), spec(&format!("e2e-outage-new-{i}")))
            .await;
    }
    let outage = Duration::from_secs(15);
    // The outage itself: a deliberate interval, not a wait for state.
    tokio::time::sleep(outage).await;
    r.proxy.set_cut(false);
    let back = Instant::now();
    for i in 0..5 {
        let name = format!("e{i}");
        wait(&r.api, &name, "the edit", |o| {
            o.is_some_and(|o| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == o.metadata.generation)
            }) && ready_reason(o) == Some(("True".into(), "InSync".into()))
        })
        .await;
    }
    for i in 5..7 {
        r.gone(&format!("e{i}")).await;
    }
    for i in 0..3 {
        r.ready(&format!("n{i}")).await;
    }
    let landed = back.elapsed();
    println!(
        "    every pending change landed {landed:?} after a {outage:?} outage ended (target: 20 s)"
    );
    assert!(landed <= Duration::from_secs(20), "{landed:?}");
    for i in 0..5 {
        let ep = r.es.endpoint(&format!("e2e-outage-{i}")).await.expect("ep");
        assert!(has_task_settings(&ep, &task_settings_with(99)), "{ep}");
    }
    for i in 5..7 {
        assert!(r.es.endpoint(&format!("e2e-outage-{i}")).await.is_none());
    }
    for i in 0..3 {
        assert_eq!(
            r.proxy.creates(&format!("e2e-outage-new-{i}")),
            1,
            "no duplicate create"
        );
    }
    // Resources created after the outage are not held back by it.
    let t = Instant::now();
    r.create("after", spec("e2e-outage-after")).await;
    r.ready("after").await;
    println!(
        "    a resource created after the outage was Ready in {:?}",
        t.elapsed()
    );
    r.no_secret_in_logs();
    for i in (0..5).chain(7..10) {
        r.es.delete(&format!("e2e-outage-{i}")).await;
    }
    for id in [
        "e2e-outage-new-0",
        "e2e-outage-new-1",
        "e2e-outage-new-2",
        "e2e-outage-after",
    ] {
        r.es.delete(id).await;
    }
}

pub(crate) async fn five_503s_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-503", &[]).await else {
        return;
    };
    r.proxy.inject(Some("PUT"), ProxyFault::Status(503), 5);
    let t = Instant::now();
    r.create("burst", spec("e2e-burst")).await;
    r.ready("burst").await;
    let took = t.elapsed();
    println!("    Ready {took:?} after five 503s in a row (target: 30 s)");
    assert!(took <= Duration::from_secs(30));
    let refused = r
        .proxy
        .log()
        .iter()
        .filter(|l| l.method == "PUT" && l.status == Some(503))
        .count();
    assert_eq!((refused, r.proxy.creates("e2e-burst")), (5, 1));
    r.es.delete("e2e-burst").await;
}

pub(crate) async fn refused_create_then_foreign_endpoint_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-foreign", &[]).await else {
        return;
    };
    r.proxy.inject(
        Some("PUT"),
        ProxyFault::Refuse(
            "status_exception",
            "Could not complete inference endpoint creation as validation call to service threw an exception.",
        ),
        1,
    );
    r.create("mine", spec("e2e-foreign")).await;
    r.reason("mine", "Rejected").await;
    // Someone else creates the id, directly in Elasticsearch.
    r.es.create_foreign("e2e-foreign", "claude-sonnet-4-5", &provider_key())
        .await;
    let before = r.proxy.writes().len();
    // A new key reopens the resource's create.
    let secrets: Api<Secret> = Api::namespaced(r.client.clone(), &r.ns.name);
    secrets
        .patch(
            "anthropic",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"api-key": "sk-ant-e2e-ANOTHER-KEY-0008"}})),
        )
        .await
        .expect("rotate");
    r.reason("mine", "AlreadyExists").await;
    let writes = r.proxy.writes()[before..].to_vec();
    assert!(
        writes
            .iter()
            .all(|w| w == "PUT /_inference/completion/e2e-foreign"),
        "nothing but a refused create reached their endpoint: {writes:?}"
    );
    r.delete("mine").await;
    r.gone("mine").await;
    assert!(
        r.es.endpoint("e2e-foreign").await.is_some(),
        "their endpoint survives the deletion of the resource"
    );
    r.es.delete("e2e-foreign").await;
}

pub(crate) async fn copied_status_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-copied", &[]).await else {
        return;
    };
    let mut retained = spec("e2e-copied");
    retained["deletionPolicy"] = json!("Retain");
    r.create("original", retained).await;
    r.ready("original").await;
    let status = r.api.get("original").await.expect("get").status;
    r.delete("original").await;
    r.gone("original").await;
    // The object comes back from a backup as a new object (new UID) with its old status.
    r.create("restored", spec("e2e-copied")).await;
    let patch = json!({"apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "status": status});
    r.api
        .patch_status(
            "restored",
            &PatchParams::apply("velero").force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("restore status");
    r.reason("restored", "AlreadyExists").await;
    assert!(
        !r.proxy
            .writes()
            .iter()
            .any(|w| w.contains("_update") || w.starts_with("DELETE")),
        "{:?}",
        r.proxy.writes()
    );
    r.delete("restored").await;
    r.gone("restored").await;
    assert!(r.es.endpoint("e2e-copied").await.is_some(), "not deleted");
    r.es.delete("e2e-copied").await;
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for i in 0..depth {
        v = json!({ format!("k{i}"): v });
    }
    v
}

pub(crate) async fn undecodable_object_across_a_restart_against_a_real_api_server() {
    let Some(mut r) = Rig::new("e2e-deep", &[]).await else {
        return;
    };
    r.create("fine", spec("e2e-fine")).await;
    r.ready("fine").await;
    let mut deep = spec("e2e-deep");
    deep["serviceSettings"]["extra"] = nested(140);
    // Created with a raw request: no serde decoder in this suite could read the answer either.
    let body = serde_json::to_vec(&json!({
        "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": "deep", "namespace": r.ns.name}, "spec": deep,
    }))
    .expect("body");
    let req = http::Request::post(format!(
        "/apis/es-inference.dev/v1alpha1/namespaces/{}/inferenceendpoints",
        r.ns.name
    ))
    .header("content-type", "application/json")
    .body(body)
    .expect("request");
    if let Err(e) = r.client.request_text(req).await {
        println!("    the API server refused the 140-level object: {e}");
        r.es.delete("e2e-fine").await;
        return;
    }
    println!("    the API server accepted a 140-level object");
    // Read back the way the operator reads it.
    let watched: Api<Watched> = Api::namespaced(r.client.clone(), &r.ns.name);
    let wait_invalid = || async {
        let end = Instant::now() + DEADLINE;
        loop {
            let reason = match watched.get("deep").await.expect("get") {
                Watched::Invalid(u) => u
                    .status
                    .and_then(|s| s.condition("Ready").map(|c| c.reason.clone())),
                Watched::Valid(_) => panic!("a 140-level object decodes?"),
            };
            if reason.as_deref() == Some("InvalidObject") {
                return;
            }
            assert!(Instant::now() < end, "no InvalidObject condition");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    wait_invalid().await;
    // A restart: start-up neither fails nor skips the others.
    r.restart(false, &[]);
    let end = Instant::now() + DEADLINE;
    while r.operator.readyz().await != Some(200) {
        assert!(
            Instant::now() < end,
            "not ready after restart: {}",
            r.operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.create("after-restart", spec("e2e-after-restart")).await;
    r.ready("after-restart").await;
    wait_invalid().await;
    watched
        .delete("deep", &DeleteParams::default())
        .await
        .expect("delete");
    let end = Instant::now() + DEADLINE;
    while watched.get_opt("deep").await.expect("get").is_some() {
        assert!(Instant::now() < end, "the deep object was never released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.es.delete("e2e-fine").await;
    r.es.delete("e2e-after-restart").await;
}

pub(crate) async fn recreate_without_loops_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-cosine", &["--resync-interval", "2s"]).await else {
        return;
    };
    let spec = json!({
        "inferenceId": "e2e-cosine", "taskType": "text_embedding", "service": "openai",
        "replacementPolicy": "Recreate",
        "serviceSettings": openai_embedding_settings(
            json!({"model_id": "text-embedding-3-small", "similarity": "COSINE"})
        ),
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}}}
    });
    r.create("emb", spec).await;
    r.ready("emb").await;
    // Several resyncs (each one list): nothing is replaced.
    let lists = |p: &EsProxy| {
        p.log()
            .iter()
            .filter(|l| l.method == "GET" && l.path == "/_inference/_all")
            .count()
    };
    let start = lists(&r.proxy);
    let end = Instant::now() + DEADLINE;
    while lists(&r.proxy) < start + 3 {
        assert!(Instant::now() < end, "no resync happened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(r.proxy.creates("e2e-cosine"), 1, "{:?}", r.proxy.writes());
    assert!(!r.proxy.writes().iter().any(|w| w.starts_with("DELETE")));
    r.ready("emb").await;
    r.es.delete("e2e-cosine").await;
}

pub(crate) async fn unrecovered_cluster_against_a_real_api_server() {
    let Some(r) = Rig::new("e2e-na", &[]).await else {
        return;
    };
    r.create("na", spec("e2e-na")).await;
    r.ready("na").await;
    // The cluster restarts: unreachable, then up without its state (cluster_uuid _na_).
    r.proxy.set_cluster_uuid(Some("_na_"));
    r.proxy.set_cut(true);
    r.api
        .patch(
            "na",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taskSettings": task_settings_with(11)}})),
        )
        .await
        .expect("edit");
    r.reason("na", "ConnectionFailed").await;
    r.proxy.set_cut(false);
    r.delete("na").await;
    // Probes keep seeing _na_: the deletion waits, nothing is written, no ClusterChanged.
    let probes = |p: &EsProxy| p.log().iter().filter(|l| l.path == "/").count();
    let start = probes(&r.proxy);
    let end = Instant::now() + DEADLINE;
    while probes(&r.proxy) < start + 3 {
        assert!(Instant::now() < end, "no probes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        r.api.get_opt("na").await.expect("get").is_some(),
        "finalizer kept"
    );
    assert!(
        r.es.endpoint("e2e-na").await.is_some(),
        "not released without delete"
    );
    let writes = r.proxy.writes();
    assert!(
        !writes
            .iter()
            .any(|w| w.starts_with("DELETE") || w.contains("_update")),
        "{writes:?}"
    );
    assert!(!r.operator.logs().contains("ClusterChanged"));
    r.proxy.set_cluster_uuid(None);
    r.gone("na").await;
    assert!(
        r.es.endpoint("e2e-na").await.is_none(),
        "deleted once the identity is back"
    );
}

pub(crate) async fn lost_answer_and_sigkill_against_a_real_api_server() {
    let Some(mut r) = Rig::new("e2e-lost", &[]).await else {
        return;
    };
    r.proxy.inject(Some("PUT"), ProxyFault::LoseAnswer, 1);
    r.create("lost", spec("e2e-lost")).await;
    wait_es(&r.es, "e2e-lost", "the create to land", |ep| ep.is_some()).await;
    wait(&r.api, "lost", "ownership Creating", |o| {
        o.and_then(|o| o.status.as_ref())
            .is_some_and(|s| s.ownership == Some(es_inference_operator::crd::Ownership::Creating))
    })
    .await;
    // The operator dies before it learns anything more.
    r.restart(true, &[]);
    r.ready("lost").await;
    let st = r
        .api
        .get("lost")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        st.ownership,
        Some(es_inference_operator::crd::Ownership::Created)
    );
    assert_eq!(r.proxy.creates("e2e-lost"), 1, "claimed, never sent twice");
    r.delete("lost").await;
    r.gone("lost").await;
    assert!(r.es.endpoint("e2e-lost").await.is_none(), "and deletable");
}

/// A TCP relay to the API server that can be cut: the API server becomes unreachable for the
/// operator behind it, while staying reachable for everyone else.
struct Relay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay");
        let port = listener.local_addr().expect("addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let flag = flag.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch_cut = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = watch_cut => {} }
                });
            }
        });
        Relay { port, cut, task }
    }

    fn set_cut(&self, on: bool) {
        self.cut.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The admin kubeconfig with the server replaced by the relay.
fn kubeconfig_through(env: &Env, port: u16) -> std::path::PathBuf {
    let mut kc = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
    for c in &mut kc.clusters {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.server = Some(format!("https://127.0.0.1:{port}"));
        }
    }
    let path = std::env::temp_dir().join(format!("e2e-relay-{port}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&kc).expect("json")).expect("write");
    path
}

fn log_time(logs: &str, needle: &str) -> Option<String> {
    logs.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

pub(crate) async fn lease_loss_while_api_server_unreachable_against_a_real_api_server() {
    let Some(env) = Env::get() else { return };
    let Some(es) = Es::new(&env).await else {
        skipped("the lease scenario needs E2E_ELASTICSEARCH_URL (a URL, or `standin`)");
        return;
    };
    let client = client(&env).await;
    install_crd(&client).await;
    let ns = TempNamespace::new(&client, "e2e-fence").await;
    let server = kube::config::Kubeconfig::read_from(&env.kubeconfig)
        .ok()
        .and_then(|k| k.clusters.first().and_then(|c| c.cluster.clone()))
        .and_then(|c| c.server)
        .expect("server");
    let target = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let relay = Relay::start(target).await;
    let relayed = kubeconfig_through(&env, relay.port);
    let args = [
        "--leader-election",
        "true",
        "--leader-election-namespace",
        ns.name.as_str(),
        "--leader-election-lease-duration",
        "6s",
        "--shutdown-timeout",
        "2s",
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let a = Operator::start_with(
        relayed.to_str().expect("path"),
        &es,
        &ns.name,
        "relayed",
        &args,
    );
    wait_holder(&leases, "the relayed replica to lead", |h| {
        h == Some("relayed")
    })
    .await;
    let b = Operator::start_with(&env.kubeconfig, &es, &ns.name, "direct", &args);
    let end = Instant::now() + DEADLINE;
    while b.readyz().await != Some(200) {
        assert!(Instant::now() < end, "the standby never turned ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.set_cut(true);
    let cut = Instant::now();
    wait_holder(&leases, "the direct replica to take over", |h| {
        h == Some("direct")
    })
    .await;
    println!(
        "    the standby led {:?} after the leader lost the API server (lease 6 s)",
        cut.elapsed()
    );
    let (a_logs, b_logs) = (a.logs(), b.logs());
    let lost = log_time(&a_logs, "lost the leader Lease").expect("the leader noticed its loss");
    let led = log_time(&b_logs, "became the leader").expect("the standby led");
    assert!(
        lost < led,
        "the old leader stopped writing ({lost}) before the new one started ({led})"
    );
    // The new leader works.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "anthropic"}, "stringData": {"api-key": provider_key()}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &ie("after", &ns.name, completion_spec("e2e-fence")),
    )
    .await
    .expect("create");
    wait(&api, "after", "Ready on the new leader", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    drop(a);
    es.delete("e2e-fence").await;
    let _ = std::fs::remove_file(relayed);
}
