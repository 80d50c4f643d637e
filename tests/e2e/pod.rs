//! The operator as users run it: a Pod from the Helm chart, on a real node. Needs a schedulable
//! node, an image of the operator in the node's runtime (`E2E_IMAGE`), an Elasticsearch the
//! Pods can reach (`E2E_POD_ELASTICSEARCH_URL`), and `HELM`. Without them it says it skipped.
//!
//! It installs the chart with `helm install --wait` (taking over the CRDs the suite installed,
//! as docs/install.md describes), checks the Pod is Ready under the restricted Pod Security
//! level, reconciles a resource through it, scrapes /metrics through the Service, upgrades to two
//! replicas (the standby Ready too), kills the leader Pod (the standby takes over), and checks
//! that `helm uninstall` keeps the CRDs.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::{Node, Pod, Secret},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::common::*;

const RELEASE: &str = "e2e-pod";

fn chart() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/charts/es-inference-operator")
}

fn helm(helm: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!(
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

async fn schedulable_node(client: &Client) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.list(&ListParams::default()).await.is_ok_and(|l| {
        l.items.iter().any(|n| {
            n.spec
                .as_ref()
                .is_none_or(|s| s.unschedulable != Some(true))
                && n.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
    })
}

/// Hand the CRDs over to the release, the way docs/install.md says.
async fn adopt_crds(client: &Client, ns: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "inferenceendpoints.es-inference.dev",
        "elasticsearchconnections.es-inference.dev",
    ] {
        let patch = json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": ns}
        }});
        crds.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("label the CRD for the release");
    }
}

async fn operator_pods(client: &Client, ns: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels("app.kubernetes.io/instance=e2e-pod"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(crate) async fn pod_from_the_chart_on_a_real_node() {
    let Some(env) = Env::get() else { return };
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(image), Some(es_url), Some(helm_bin)) = (
        var("E2E_IMAGE"),
        var("E2E_POD_ELASTICSEARCH_URL"),
        var("HELM"),
    ) else {
        skipped(
            "the Pod stage needs E2E_IMAGE, E2E_POD_ELASTICSEARCH_URL and HELM (see README, End-to-end tests)",
        );
        return;
    };
    let client = client(&env).await;
    if !schedulable_node(&client).await {
        skipped("the Pod stage needs a schedulable, Ready node");
        return;
    }
    let es = Es::new(&Env {
        kubeconfig: env.kubeconfig.clone(),
        es_url: Some(es_url.clone()),
    })
    .await
    .expect("Elasticsearch by URL");
    install_crd(&client).await;
    let release_ns = TempNamespace::new(&client, "e2e-pod-operator").await;
    let watched = TempNamespace::new(&client, "e2e-pod-watched").await;
    // The restricted Pod Security level, enforced by the API server.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &release_ns.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}})),
        )
        .await
        .expect("label namespace");
    adopt_crds(&client, &release_ns.name).await;
    let (repository, tag) = image.rsplit_once(':').expect("E2E_IMAGE is repository:tag");
    let kubeconfig = env.kubeconfig.as_str();
    let common = [
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        release_ns.name.as_str(),
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "image.pullPolicy=Never",
        "--set",
        &format!("elasticsearch.url={es_url}"),
        "--set",
        &format!("watchNamespaces={{{}}}", watched.name),
        "--set",
        "leaderElection.leaseDuration=6s",
        "--set",
        "shutdownTimeout=3s",
        "--set",
        "readinessProbe.periodSeconds=2",
        "--set",
        "readinessProbe.initialDelaySeconds=1",
    ]
    .map(str::to_string);
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(common.iter().cloned());
        // The chart refuses an http:// default cluster unless plaintext is allowed.
        if es_url.starts_with("http://") {
            a.extend(["--set", "security.allowPlaintextElasticsearch=true"].map(str::to_string));
        }
        a
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        helm(&helm_bin, &refs)
    };

    // Install and wait for the Deployment to become Available.
    let t = Instant::now();
    run(args(&[
        "install",
        RELEASE,
        chart(),
        "--wait",
        "--timeout",
        "3m",
    ]))
    .expect("helm install --wait");
    let installed = t.elapsed();
    println!("    helm install --wait: Available after {installed:?}");
    let pods = operator_pods(&client, &release_ns.name).await;
    assert_eq!(pods.len(), 1);
    assert!(is_ready(&pods[0]), "the Pod is Ready");
    let sc = pods[0].spec.as_ref().expect("spec").containers[0]
        .security_context
        .clone()
        .expect("securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );

    // A resource reconciled through the Pod.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &watched.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "anthropic"}, "stringData": {"api-key": "sk-ant-e2e-POD-KEY-0009"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let api: Api<InferenceEndpoint> = Api::namespaced(client.clone(), &watched.name);
    api.create(
        &PostParams::default(),
        &ie("one", &watched.name, completion_spec("e2e-pod-one")),
    )
    .await
    .expect("create");
    wait(&api, "one", "Ready through the Pod", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    assert!(es.endpoint("e2e-pod-one").await.is_some());

    // /metrics through the Service (the API server's service proxy).
    let svc = format!("{RELEASE}-es-inference-operator");
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{}/services/{svc}:metrics/proxy/metrics",
        release_ns.name
    ))
    .body(Vec::new())
    .expect("request");
    let metrics = client.request_text(req).await.expect("scrape /metrics");
    assert!(
        metrics.contains("es_inference_operator_build_info"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "es_inference_operator_endpoint_ready{{namespace=\"{}\",name=\"one\"}} 1",
            watched.name
        )),
        "{metrics}"
    );

    // Two replicas: the rollout completes (the standby is Ready too).
    let t = Instant::now();
    run(args(&[
        "upgrade",
        RELEASE,
        chart(),
        "--wait",
        "--timeout",
        "3m",
        "--set",
        "replicaCount=2",
    ]))
    .expect("helm upgrade --set replicaCount=2 --wait");
    println!(
        "    helm upgrade to two replicas: Available after {:?}",
        t.elapsed()
    );
    let pods = operator_pods(&client, &release_ns.name).await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(is_ready), "leader and standby Ready");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &release_ns.name);
    let leader = wait_holder(&leases, "a leader", |h| h.is_some())
        .await
        .expect("holder");

    // Kill the leader Pod: the standby takes over.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &release_ns.name);
    let killed = Instant::now();
    pod_api
        .delete(&leader, &DeleteParams::default().grace_period(0))
        .await
        .expect("kill the leader");
    let new = wait_holder(&leases, "the standby to take over", |h| {
        h.is_some_and(|h| h != leader)
    })
    .await
    .expect("holder");
    println!(
        "    failover from {leader} to {new}: {:?} (lease 6 s)",
        killed.elapsed()
    );
    api.create(
        &PostParams::default(),
        &ie("two", &watched.name, completion_spec("e2e-pod-two")),
    )
    .await
    .expect("create");
    wait(&api, "two", "Ready on the new leader", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;

    // Clean up through the operator, then uninstall: the CRDs stay.
    for name in ["one", "two"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        wait(&api, name, "the resource to be gone", |o| o.is_none()).await;
    }
    run(vec![
        "uninstall".into(),
        RELEASE.into(),
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        release_ns.name.clone(),
        "--wait".into(),
    ])
    .expect("helm uninstall");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "inferenceendpoints.es-inference.dev",
        "elasticsearchconnections.es-inference.dev",
    ] {
        assert!(
            crds.get_opt(name).await.expect("get").is_some(),
            "{name} kept on uninstall"
        );
    }
    assert!(es.endpoint("e2e-pod-one").await.is_none());
    assert!(installed < Duration::from_secs(180));
}
