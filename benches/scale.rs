//! Scale benchmark: the release operator binary on a real API server against the repository's
//! Elasticsearch stand-in (with a configurable latency), compared with a minimal reference
//! client measured in the same run on the same API server and stand-in.
//!
//!   BENCH_KUBECONFIG=~/.kube/config cargo bench --bench scale
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_KUBECONFIG` (or `E2E_KUBECONFIG`) | (required) | the cluster; two namespaces are created and deleted |
//! | `BENCH_N` | 1000 | InferenceEndpoints |
//! | `BENCH_ES_LATENCY` | 20ms | added by the stand-in to every request |
//! | `BENCH_CONCURRENCY` | 8 | Elasticsearch requests in flight (operator and reference client) |
//! | `BENCH_RECONCILES` | 16 | the operator's --max-concurrent-reconciles |
//! | `BENCH_RESYNC` | 15s | the operator's --resync-interval (two are idled) |
//!
//! Phases: the reference client (one PUT and one status write per endpoint); the operator
//! creating N endpoints; a Secret shared by all of them rotated; two idle resyncs; a restart of
//! the operator (one pass over every endpoint); everything deleted. It prints one table. Not a
//! test: it asserts nothing.

#[path = "../tests/support/es_standin.rs"]
mod es_standin;

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use es_inference_operator::crd::InferenceEndpoint;
use es_standin::{EsStandin, StandinConfig};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::watcher,
};
use serde_json::json;

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn duration(k: &str, default: &str) -> Duration {
    humantime::parse_duration(&var(k).unwrap_or_else(|| default.into())).expect(k)
}

struct Settings {
    kubeconfig: String,
    n: usize,
    latency: Duration,
    concurrency: usize,
    reconciles: usize,
    resync: Duration,
}

fn main() {
    let Some(kubeconfig) = var("BENCH_KUBECONFIG").or_else(|| var("E2E_KUBECONFIG")) else {
        println!("SKIPPED: the scale benchmark needs BENCH_KUBECONFIG (a real API server)");
        return;
    };
    let s = Settings {
        kubeconfig,
        n: var("BENCH_N").map_or(1000, |v| v.parse().expect("BENCH_N")),
        latency: duration("BENCH_ES_LATENCY", "20ms"),
        concurrency: var("BENCH_CONCURRENCY").map_or(8, |v| v.parse().expect("BENCH_CONCURRENCY")),
        reconciles: var("BENCH_RECONCILES").map_or(16, |v| v.parse().expect("BENCH_RECONCILES")),
        resync: duration("BENCH_RESYNC", "15s"),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(s));
}

async fn client(kubeconfig: &str) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    // The benchmark's own client must not be the bottleneck.
    cfg.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(cfg).expect("client")
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for text in [
        es_inference_operator::crd::inference_endpoint_crd_yaml(),
        es_inference_operator::crd::connection_crd_yaml(),
    ] {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("crd");
        let name = crd.metadata.name.clone().expect("name");
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD");
    }
}

fn spec(id: &str) -> serde_json::Value {
    json!({
        "inferenceId": id, "taskType": "completion", "service": "anthropic",
        "serviceSettings": {"model_id": "claude-sonnet-4-5"},
        "secretSettings": {"api_key": {"secretKeyRef": {"name": "shared", "key": "api-key"}}},
        "taskSettings": {"max_tokens": 256}
    })
}

/// Create `n` InferenceEndpoints in `ns` (32 requests in flight, like a bulk `kubectl create`).
async fn create_all(client: &Client, ns: &str, prefix: &str, n: usize) {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("{prefix}-{i}");
                let ie: InferenceEndpoint = serde_json::from_value(json!({
                    "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
                    "metadata": {"name": name}, "spec": spec(&name),
                }))
                .expect("ie");
                api.create(&PostParams::default(), &ie)
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// Wait until `done` holds for all `n` objects of `ns` (watch-based, no polling).
async fn wait_all(
    client: &Client,
    ns: &str,
    n: usize,
    done: impl Fn(&InferenceEndpoint) -> bool,
) -> Instant {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let deadline = Instant::now() + Duration::from_secs(3600);
    while let Some(ev) = events.try_next().await.expect("watch") {
        match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                state.insert(o.metadata.name.clone().unwrap_or_default(), done(&o));
            }
            watcher::Event::Delete(o) => {
                state.remove(&o.metadata.name.clone().unwrap_or_default());
            }
            _ => {}
        }
        if state.len() >= n && state.values().all(|d| *d) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "timed out");
    }
    unreachable!("the watch ended")
}

fn ready(o: &InferenceEndpoint) -> bool {
    o.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Wait until `ns` has no InferenceEndpoint left.
async fn wait_empty(client: &Client, ns: &str) -> Instant {
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let mut names = std::collections::BTreeSet::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut synced = false;
    while let Some(ev) = events.try_next().await.expect("watch") {
        match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                names.insert(o.metadata.name.unwrap_or_default());
            }
            watcher::Event::Delete(o) => {
                names.remove(&o.metadata.name.unwrap_or_default());
            }
            watcher::Event::InitDone => synced = true,
            watcher::Event::Init => {}
        }
        if synced && names.is_empty() {
            return Instant::now();
        }
    }
    unreachable!("the watch ended")
}

/// The reference: one PUT and one status write per endpoint, `concurrency` at a time.
async fn reference(
    client: &Client,
    es: &EsStandin,
    ns: &str,
    n: usize,
    concurrency: usize,
) -> Duration {
    let http = reqwest::Client::new();
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), ns);
    let url = es.url();
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let (http, api, url) = (http.clone(), api.clone(), url.clone());
            async move {
                let name = format!("ref-{i}");
                let body = json!({"service": "anthropic",
                    "service_settings": {"model_id": "claude-sonnet-4-5", "api_key": "sk-bench"},
                    "task_settings": {"max_tokens": 256}});
                let resp = http
                    .put(format!("{url}/_inference/completion/{name}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("PUT");
                assert!(resp.status().is_success(), "reference PUT: {}", resp.status());
                let status = json!({"apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
                    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "InSync",
                        "message": "created", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                api.patch_status(&name, &PatchParams::apply("reference").force(), &Patch::Apply(&status))
                    .await
                    .expect("status");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

struct Operator {
    child: Child,
    addr: String,
}

impl Operator {
    fn start(s: &Settings, es_url: &str, ns: &str) -> Operator {
        let log = std::env::temp_dir().join("es-inference-operator-bench.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_es-inference-operator"))
            .arg("run")
            .args(["--elasticsearch-url", es_url])
            .args(["--namespace", ns])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args([
                "--resync-interval",
                &humantime::format_duration(s.resync).to_string(),
            ])
            .args([
                "--elasticsearch-max-concurrency",
                &s.concurrency.to_string(),
            ])
            .args(["--max-concurrent-reconciles", &s.reconciles.to_string()])
            // The stand-in is served over http://, which the operator refuses unless allowed.
            .args(if es_url.starts_with("http://") {
                &["--allow-plaintext-elasticsearch", "true"][..]
            } else {
                &[][..]
            })
            .env("KUBECONFIG", &s.kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("operator binary");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(a) = logs
                .lines()
                .find(|l| l.contains("serving /healthz"))
                .and_then(|l| l.split("addr=").nth(1))
            {
                break a.split_whitespace().next().unwrap_or_default().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not start: {logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Operator { child, addr }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("http://{}/readyz", self.addr))
            .await
            .map(|r| r.status().as_u16())
            .ok()
            != Some(200)
        {
            assert!(Instant::now() < deadline, "not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sum of a metric's samples whose line contains every filter.
    async fn metric(&self, name: &str, filters: &[&str]) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Reconcile passes of InferenceEndpoints so far.
    async fn passes(&self) -> f64 {
        self.metric(
            "es_inference_operator_reconciles_total",
            &["kind=\"InferenceEndpoint\""],
        )
        .await
    }

    /// GETs of Secrets for their values so far.
    async fn secret_reads(&self) -> f64 {
        self.metric("es_inference_operator_secret_reads_total", &[])
            .await
    }

    async fn k8s_writes(&self) -> f64 {
        self.metric("es_inference_operator_kubernetes_writes_total", &[])
            .await
    }

    fn proc_field(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory, MiB.
    fn rss(&self) -> f64 {
        self.proc_field("VmRSS:") as f64 / 1024.0
    }

    /// CPU time used so far (user + system), seconds.
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or_default();
        let f: Vec<u64> = after
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // utime and stime are fields 14 and 15 of /proc/pid/stat; after the command name
        // (field 2) and the state (field 3, not numeric) they are at 10 and 11 here.
        (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 / 100.0
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct EsCount<'a>(&'a EsStandin);

impl EsCount<'_> {
    fn all(&self) -> usize {
        self.0.requests().len()
    }
    fn count(&self, method: &str, pred: impl Fn(&str) -> bool) -> usize {
        self.0
            .requests()
            .iter()
            .filter(|r| r.method == method && pred(&r.path))
            .count()
    }
}

async fn run(s: Settings) {
    let client = client(&s.kubeconfig).await;
    install_crds(&client).await;
    let suffix = format!("{:x}", std::process::id());
    let (ns_ref, ns_op) = (format!("bench-ref-{suffix}"), format!("bench-op-{suffix}"));
    namespace(&client, &ns_ref).await;
    namespace(&client, &ns_op).await;
    let es = Arc::new(EsStandin::start(StandinConfig::default()).await);
    es.set_latency(s.latency);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_op);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "shared"}, "stringData": {"api-key": "sk-bench-FIRST"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let n = s.n;
    println!(
        "scale benchmark: N={n}, Elasticsearch latency {:?}, ES concurrency {}, reconciles {}, resync {:?}",
        s.latency, s.concurrency, s.reconciles, s.resync
    );

    // The reference client.
    let t = Instant::now();
    create_all(&client, &ns_ref, "ref", n).await;
    let ref_create = t.elapsed();
    let ref_work = reference(&client, &es, &ns_ref, n, s.concurrency).await;
    let ref_total = ref_create + ref_work;
    println!("  reference: creating {ref_create:.1?} + work {ref_work:.1?}");
    for i in 0..n {
        es.remove_endpoint(&format!("ref-{i}"));
    }
    let ref_rotation = {
        // The reference rotation: per endpoint one _update and one status write (recording what
        // was applied, as any controller must), at the same concurrency.
        let http = reqwest::Client::new();
        let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns_ref);
        let url = es.url();
        for i in 0..n {
            es.insert_endpoint(
                json!({"inference_id": format!("rot-{i}"), "task_type": "completion",
                "service": "anthropic", "service_settings": {"model_id": "m", "api_key": "k"},
                "task_settings": {"max_tokens": 1}}),
            );
        }
        let t = Instant::now();
        stream::iter(0..n)
            .map(|i| {
                let (http, url, api) = (http.clone(), url.clone(), api.clone());
                async move {
                    http.put(format!("{url}/_inference/completion/rot-{i}/_update"))
                        .json(&json!({"service_settings": {"api_key": "k2"}}))
                        .send()
                        .await
                        .expect("update");
                    let status = json!({"apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
                        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "InSync",
                            "message": "updated", "lastTransitionTime": "2026-01-01T00:00:01Z"}]}});
                    api.patch_status(&format!("ref-{i}"), &PatchParams::apply("reference").force(), &Patch::Apply(&status))
                        .await
                        .expect("status");
                }
            })
            .buffer_unordered(s.concurrency)
            .collect::<Vec<_>>()
            .await;
        let took = t.elapsed();
        for i in 0..n {
            es.remove_endpoint(&format!("rot-{i}"));
        }
        took
    };
    delete_all(&Api::namespaced(client.clone(), &ns_ref), "ref", n).await;

    // The operator.
    let op = Operator::start(&s, &es.url(), &ns_op);
    op.ready().await;
    let rss_idle = op.rss();
    es.clear_requests();
    let (w0, p0, cpu_c0) = (op.k8s_writes().await, op.passes().await, op.cpu());
    let r0 = op.secret_reads().await;
    let t = Instant::now();
    let waiter = {
        let (client, ns_op) = (client.clone(), ns_op.clone());
        tokio::spawn(async move { wait_all(&client, &ns_op, n, ready).await })
    };
    create_all(&client, &ns_op, "ep", n).await;
    let created = t.elapsed();
    let all_ready = waiter.await.expect("wait") - t;
    let es_create = EsCount(&es);
    let (es_requests_create, puts) = (
        es_create.all(),
        es_create.count("PUT", |p| !p.ends_with("_update")),
    );
    let writes_create = op.k8s_writes().await - w0;
    let (passes_create, cpu_create) = (op.passes().await - p0, op.cpu() - cpu_c0);
    let rss_n = op.rss();
    let reads_create = op.secret_reads().await - r0;
    println!(
        "  created: all Ready after {all_ready:.1?}; {es_requests_create} ES requests ({puts} PUTs); {writes_create} Kubernetes writes; {passes_create} passes; {cpu_create:.1} s CPU; RSS {rss_n:.1} MiB"
    );

    // Rotation of the shared Secret.
    es.clear_requests();
    let (w1, p1, r1) = (
        op.k8s_writes().await,
        op.passes().await,
        op.secret_reads().await,
    );
    let fp_before = {
        let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns_op);
        api.list(&ListParams::default().limit(1))
            .await
            .expect("list")
            .items
            .first()
            .and_then(|o| o.status.as_ref()?.secret_versions.clone())
    };
    let t = Instant::now();
    let waiter = {
        let (client, ns_op, fp) = (client.clone(), ns_op.clone(), fp_before.clone());
        tokio::spawn(async move {
            wait_all(&client, &ns_op, n, move |o| {
                ready(o) && o.status.as_ref().and_then(|s| s.secret_versions.clone()) != fp
            })
            .await
        })
    };
    secrets
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"api-key": "sk-bench-ROTATED"}})),
        )
        .await
        .expect("rotate");
    let rotated = waiter.await.expect("wait") - t;
    let es_rotation = es.requests().len();
    let updates = EsCount(&es).count("PUT", |p| p.ends_with("_update"));
    let writes_rotation = op.k8s_writes().await - w1;
    let passes_rotation = op.passes().await - p1;
    let reads_rotation = op.secret_reads().await - r1;
    println!(
        "  rotated: {rotated:.1?}; {updates} _update of {es_rotation} ES requests; {writes_rotation} Kubernetes writes; {passes_rotation} passes"
    );

    // Two idle resyncs.
    es.clear_requests();
    let (w2, cpu0, r2) = (op.k8s_writes().await, op.cpu(), op.secret_reads().await);
    // A deliberate idle interval (what is measured is what happens during it).
    tokio::time::sleep(s.resync * 2 + s.resync / 5).await;
    let idle_es = es.requests().len();
    let idle_lists = EsCount(&es).count("GET", |p| p == "/_inference/_all");
    let idle_roots = EsCount(&es).count("GET", |p| p == "/");
    let idle_writes = op.k8s_writes().await - w2;
    let idle_cpu = op.cpu() - cpu0;
    let reads_idle = op.secret_reads().await - r2;
    // Still N endpoints, after the rotation and two quiet intervals: what holding them costs
    // once the create storm's transient memory has gone back.
    let rss_settled = op.rss();
    // The window is 2.2 intervals and resyncs are jittered (±10%): up to three can fall in it.
    println!(
        "  idle (2.2 intervals): {idle_es} ES requests ({idle_lists} lists, {idle_roots} GET /); {idle_writes} writes; {idle_cpu:.2} s CPU"
    );

    // A restart: the new process passes over every endpoint once.
    drop(op);
    es.clear_requests();
    let op = Operator::start(&s, &es.url(), &ns_op);
    op.ready().await;
    let t = Instant::now();
    let deadline = t + Duration::from_secs(600);
    while op.passes().await < n as f64 {
        assert!(
            Instant::now() < deadline,
            "the restarted operator did not pass over every endpoint"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restart_passes = t.elapsed();
    let (reads_restart, restart_es) = (op.secret_reads().await, es.requests().len());
    // `+ 0.0`: a sum of no samples is -0.0.
    let restart_writes = op.k8s_writes().await + 0.0;
    println!(
        "  restarted: {n} passes in {restart_passes:.1?}; {reads_restart} Secret reads; {restart_es} ES requests; {restart_writes} Kubernetes writes"
    );

    // Delete everything.
    es.clear_requests();
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &ns_op);
    let t = Instant::now();
    delete_all(&api, "ep", n).await;
    let deleted = wait_empty(&client, &ns_op).await - t;
    let deletes = EsCount(&es).count("DELETE", |_| true);
    // Memory is returned when the objects go (their memory at once, the rest at the next sweep).
    tokio::time::sleep(s.resync + s.resync / 5).await;
    let rss_after = op.rss();

    let per = |x: f64| x / n as f64;
    println!();
    println!("| figure | operator | reference client | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| Elasticsearch requests per create | {:.3} ({puts} PUTs of {es_requests_create}) | 1 | {:.2} |",
        per(es_requests_create as f64),
        per(es_requests_create as f64)
    );
    println!(
        "| Kubernetes writes per create (finalizer, mark, status, event) | {:.2} | 1 | |",
        per(writes_create)
    );
    println!(
        "| all {n} Ready after the first create | {all_ready:.1?} (creating took {created:.1?}) | {ref_total:.1?} (creating {ref_create:.1?} + work {ref_work:.1?}) | {:.2} |",
        all_ready.as_secs_f64() / ref_total.as_secs_f64()
    );
    println!(
        "| reconcile passes per create; per rotated endpoint | {:.2}; {:.2} ({:.1} s CPU for the creates) | 1; 1 | |",
        per(passes_create),
        per(passes_rotation),
        cpu_create
    );
    // Both sides write through the same API server: when it is the slow part, time follows
    // the number of writes (the user's creates included), and these two rates are close.
    println!(
        "| Kubernetes writes per second until all Ready (creates included) | {:.0} ({n} + {writes_create:.0} in {all_ready:.1?}) | {:.0} ({n} + {n} in {ref_total:.1?}) | |",
        (n as f64 + writes_create) / all_ready.as_secs_f64(),
        2.0 * n as f64 / ref_total.as_secs_f64()
    );
    println!(
        "| Secret shared by {n} rotated → all updated | {rotated:.1?}, {updates} _update of {es_rotation} requests, {writes_rotation} writes | {ref_rotation:.1?} ({n} _update, {n} status writes) | {:.2} |",
        rotated.as_secs_f64() / ref_rotation.as_secs_f64()
    );
    println!(
        "| idle for 2.2 resync intervals | {idle_es} ES requests ({idle_lists} lists, {idle_roots} GET /), {idle_writes} writes, {idle_cpu:.2} s CPU | | |"
    );
    println!(
        "| Secret reads (GET) per endpoint: create; rotation of the shared Secret; idle; restart | {:.3}; {:.3} ({reads_rotation} in all); {:.3}; {:.3} ({reads_restart} in all) | | |",
        per(reads_create),
        per(reads_rotation),
        per(reads_idle),
        per(reads_restart)
    );
    println!(
        "| restart: every endpoint passed over once | {restart_passes:.1?}, {restart_es} ES requests, {restart_writes} writes | | |"
    );
    println!("| delete all {n} | {deleted:.1?}, {deletes} DELETEs | | |");
    println!(
        "| RSS idle / at {n} (when all Ready; after the idle resyncs) / after deleting all (the restarted process) | {rss_idle:.1} / {rss_n:.1}; {rss_settled:.1} / {rss_after:.1} MiB | | |"
    );
    drop(op);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&ns_ref, &ns_op] {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
}

/// Delete `{prefix}-0` to `{prefix}-{n-1}`: one DELETE per object, 32 in flight, as `kubectl
/// delete` of a directory does (a single delete-collection of thousands of objects outlasts a
/// client's timeout).
async fn delete_all(api: &Api<InferenceEndpoint>, prefix: &str, n: usize) {
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.delete(&format!("{prefix}-{i}"), &DeleteParams::default())
                    .await
                    .expect("delete");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}
