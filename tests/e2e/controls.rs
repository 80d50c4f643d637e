//! The operational controls on a real API server, with every request to Elasticsearch seen by a
//! proxy: pause holds a Secret rotation and a spec change (nothing reaches Elasticsearch) and
//! unpausing lands both; reconcile-now forces a fresh GET and is echoed in status; a
//! preconfigured endpoint is observed without a write; an id outside the tenancy prefix is
//! refused; `import` output applied adopts an endpoint without creating it.

use std::process::Command;

use es_inference_operator::crd::InferenceEndpoint;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    common::*,
    faults::{Rig, provider_key},
};

async fn annotate(api: &Api<InferenceEndpoint>, name: &str, key: &str, value: Option<&str>) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
    )
    .await
    .expect("annotate");
}

fn condition(o: Option<&InferenceEndpoint>, type_: &str) -> Option<(String, String, Option<i64>)> {
    let c = o?.status.as_ref()?.condition(type_)?;
    Some((c.status.clone(), c.reason.clone(), c.observed_generation))
}

/// Requests the proxy forwarded whose path names `id`, from index `from` of its log on.
fn requests_for(r: &Rig, id: &str, from: usize) -> Vec<String> {
    r.proxy
        .log()
        .into_iter()
        .skip(from)
        .filter(|l| l.forwarded && l.path.contains(id))
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

pub(crate) async fn controls_against_a_real_api_server() {
    // Ids on this operator's default cluster must start with the namespace's name.
    let Some(r) = Rig::new("e2e-ctl", &["--inference-id-prefix", "{namespace}-"]).await else {
        return;
    };
    let ns = r.ns.name.clone();
    let id = format!("{ns}-paused");
    r.create("paused", completion_spec(&id)).await;
    r.ready("paused").await;

    // Pause, then rotate the Secret and change the spec.
    annotate(&r.api, "paused", "es-inference.dev/paused", Some("true")).await;
    wait(&r.api, "paused", "Paused=True", |o| {
        condition(o, "Paused").is_some_and(|(s, _, _)| s == "True")
            && ready_reason(o).is_some_and(|(s, _)| s == "True")
    })
    .await;
    let mark = r.proxy.log().len();
    let secrets: Api<Secret> = Api::namespaced(r.client.clone(), &ns);
    secrets
        .patch(
            "anthropic",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"stringData": {"api-key": format!("{}-ROTATED", provider_key())}}),
            ),
        )
        .await
        .expect("rotate");
    let edited = r
        .api
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taskSettings": edited_task_settings()}})),
        )
        .await
        .expect("edit");
    let generation = edited.metadata.generation;
    // The operator saw the change (its Paused condition describes the new generation)...
    wait(
        &r.api,
        "paused",
        "Paused for the new generation",
        move |o| condition(o, "Paused").is_some_and(|(s, _, g)| s == "True" && g == generation),
    )
    .await;
    // ...and a resource created after both changes is reconciled, so both were handled.
    let barrier = format!("{ns}-barrier");
    r.create("barrier", completion_spec(&barrier)).await;
    r.ready("barrier").await;
    let while_paused = requests_for(&r, &id, mark);
    assert!(
        while_paused.is_empty(),
        "requests reached Elasticsearch for a paused resource: {while_paused:?}"
    );

    // Unpaused: both pending changes land.
    annotate(&r.api, "paused", "es-inference.dev/paused", None).await;
    wait(&r.api, "paused", "the edit applied", move |o| {
        o.and_then(|o| o.status.as_ref())
            .is_some_and(|s| s.observed_generation == generation && s.condition("Paused").is_none())
            && ready_reason(o) == Some(("True".into(), "InSync".into()))
    })
    .await;
    let ep = r.es.endpoint(&id).await.expect("endpoint");
    assert!(has_task_settings(&ep, &edited_task_settings()), "{ep}");
    let after = requests_for(&r, &id, mark);
    assert!(
        after
            .iter()
            .any(|w| w.starts_with("PUT") && w.ends_with("/_update")),
        "the rotated key and the edit went out as an update: {after:?}"
    );
    if let Es::Standin(s) = &r.es {
        assert_eq!(
            s.endpoint_secrets(&id).expect("secrets")["api_key"],
            format!("{}-ROTATED", provider_key())
        );
    }

    // Reconcile now: a fresh GET of the endpoint, and the request echoed in status.
    let mark = r.proxy.log().len();
    annotate(
        &r.api,
        "paused",
        "es-inference.dev/reconcile-requested-at",
        Some("2026-11-30T12:00:00Z"),
    )
    .await;
    wait(&r.api, "paused", "lastHandledReconcileAt", |o| {
        o.and_then(|o| o.status.as_ref())
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("2026-11-30T12:00:00Z")
    })
    .await;
    let fresh = requests_for(&r, &id, mark);
    assert!(
        fresh.iter().any(|l| l.starts_with("GET")),
        "reconcile-now reads the endpoint itself: {fresh:?}"
    );

    // A preconfigured endpoint, observed: never written.
    let mark = r.proxy.log().len();
    r.create(
        "elser",
        json!({"inferenceId": ".elser-2-elasticsearch", "taskType": "sparse_embedding",
            "service": "elasticsearch", "managementPolicy": "Observe",
            "serviceSettings": {"model_id": ".elser_model_2", "num_threads": 1,
                "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0,
                    "max_number_of_allocations": 32}}}),
    )
    .await;
    // A real cluster may hold other settings than the stand-in: matching or drifted, it is
    // reported either way, and never changed.
    wait(&r.api, "elser", "observed", |o| {
        ready_reason(o).is_some_and(|(_, r)| r == "Observed" || r == "DriftDetected")
    })
    .await;
    let writes: Vec<String> = requests_for(&r, ".elser-2", mark)
        .into_iter()
        .filter(|l| !l.starts_with("GET"))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // An id outside the prefix: refused, nothing sent.
    let mark = r.proxy.log().len();
    r.create("squatter", completion_spec("someone-elses-id"))
        .await;
    r.reason("squatter", "PolicyViolation").await;
    assert!(requests_for(&r, "someone-elses-id", mark).is_empty());

    // import → apply → adopted, with no create.
    let imported = format!("{ns}-imported");
    r.es.create_foreign(&imported, "claude-sonnet-4-5", &provider_key())
        .await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_es-inference-operator"));
    cmd.args(["import", "--elasticsearch-url", &r.es.url(), "-n", &ns])
        .args(["--id", &imported]);
    if matches!(r.es, Es::Real { .. }) {
        for (to, v) in operator_credentials(r.es.url().starts_with("https://")) {
            cmd.env(to, v);
        }
    }
    let out = cmd.output().expect("run import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
        .expect("import output is YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    assert_eq!(docs.len(), 2, "a Secret stub and the resource: {text}");
    let mark = r.proxy.log().len();
    let mut name = String::new();
    for mut d in docs {
        if d["kind"] == "Secret" {
            let key = d["stringData"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .expect("a key");
            d["stringData"][key] = json!(provider_key());
            let s: Secret = serde_json::from_value(d).expect("Secret");
            secrets
                .create(&PostParams::default(), &s)
                .await
                .expect("secret");
        } else {
            let ie: InferenceEndpoint = serde_json::from_value(d).expect("resource");
            name = ie.metadata.name.clone().expect("name");
            r.api
                .create(&PostParams::default(), &ie)
                .await
                .expect("apply");
        }
    }
    wait(&r.api, &name, "adopted", |o| {
        ready_reason(o) == Some(("True".into(), "InSync".into()))
            && o.and_then(|o| o.status.as_ref())
                .and_then(|s| s.ownership.as_ref())
                .is_some_and(|w| format!("{w:?}") == "Adopted")
    })
    .await;
    let since = requests_for(&r, &imported, mark);
    assert_eq!(
        r.proxy.creates(&imported),
        0,
        "adopted, not created: {since:?}"
    );
    assert!(since.iter().all(|l| !l.starts_with("DELETE")), "{since:?}");
    r.no_secret_in_logs();
    assert!(
        !text.contains(&provider_key()),
        "import never prints a secret"
    );
}
