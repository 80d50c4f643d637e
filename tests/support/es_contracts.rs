//! Contracts of Elasticsearch that the operator relies on, as assertions made through HTTP only:
//! `tests/es_contract.rs` runs them against the stand-in (`es_standin.rs`) of each supported
//! version, and against a real Elasticsearch when asked to (`E2E_ELASTICSEARCH_REAL=1`), so that
//! the stand-in's answers stay Elasticsearch's: the counterpart of `contracts.rs`, which does the
//! same for the Kubernetes fake.
//!
//! Each contract is checked twice: the raw answer (status, the error envelope's `type`,
//! `root_cause[0].type`, `reason` and `status`, from `testdata/elasticsearch/error-envelopes.json`,
//! whose every fact names its source), and what the operator's own client (`EsClient`) makes of
//! it: `None` for a missing endpoint, `AlreadyGone` for a missing delete, the kind
//! `is_already_exists` tests, the 409's `reason_text` that the status quotes, the classifications
//! that decide between retrying and stalling.
//!
//! Creating an endpoint on a real Elasticsearch makes it call the provider (CONTRACT §2.2 step 11,
//! §13), so the contracts that need one are run only with a provider the cluster reaches (the
//! mock provider, `E2E_PROVIDER_URL`); the stand-in never calls it. Ids are `contract-` and a
//! random suffix, and whatever a run creates (an endpoint, a pipeline) is deleted at its end,
//! whether the assertions passed or not.

use std::{future::Future, panic::AssertUnwindSafe};

use es_inference_operator::{
    es::{EsAuth, EsClient, EsConfig, EsError, Scrubber, SecretBody},
    model::{Deleted, Version},
};
use futures::FutureExt;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// The facts asserted, with their sources.
const FACTS: &str = include_str!("../../testdata/elasticsearch/error-envelopes.json");

/// A service no Elasticsearch knows.
const UNKNOWN_SERVICE: &str = "contract-no-such-service";

/// The Elasticsearch the contracts are checked against.
pub struct Target {
    /// What the output calls it (never the URL, which could carry anything).
    pub label: String,
    pub url: String,
    pub auth: EsAuth,
    pub ca_pem: Option<Vec<u8>>,
    /// An OpenAI-compatible provider that the cluster reaches (base URL, without
    /// `/v1/chat/completions`); `None`: the contracts that create an endpoint are skipped.
    pub provider: Option<String>,
}

/// One error case of the facts file.
struct Case {
    status: u16,
    kind: String,
    root_cause_kind: String,
    /// `None` when no primary source gives the text.
    reason: Option<String>,
}

fn facts() -> Value {
    serde_json::from_str(FACTS).expect("testdata/elasticsearch/error-envelopes.json")
}

fn case(name: &str, fill: &[(&str, &str)]) -> Case {
    let facts = facts();
    let c = &facts["cases"][name];
    assert!(c.is_object(), "no case {name:?} in error-envelopes.json");
    let text = |k: &str| c[k].as_str().map(str::to_string);
    let reason = text("reason").map(|mut r| {
        for (placeholder, value) in fill {
            r = r.replace(placeholder, value);
        }
        r
    });
    Case {
        status: c["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .expect("status"),
        kind: text("type").expect("type"),
        root_cause_kind: text("root_cause_type").expect("root_cause_type"),
        reason,
    }
}

/// `contract-` and 16 random hex digits: a valid inference id and pipeline name (§2.2 step 1).
pub fn unique_id() -> String {
    format!("contract-{:016x}", rand::random::<u64>())
}

/// Plain HTTP to the target, with its credentials and CA (for the raw answers).
struct Raw {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl Raw {
    fn new(target: &Target) -> Raw {
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(pem) = &target.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).expect("the target's CA (PEM)");
            http = http.add_root_certificate(ca);
        }
        Raw {
            http: http.build().expect("the contracts' HTTP client"),
            base: target.url.trim_end_matches('/').to_string(),
            auth: authorization(&target.auth),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send_as(self.auth.as_deref(), method, path, body).await
    }

    async fn send_as(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_send(auth, method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: Elasticsearch did not answer: {e}"))
    }

    async fn try_send(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }
}

/// The `Authorization` header the operator sends for these credentials.
fn authorization(auth: &EsAuth) -> Option<String> {
    use base64::Engine;
    match auth {
        EsAuth::None => None,
        EsAuth::ApiKey(k) => Some(format!("ApiKey {}", k.expose_secret())),
        EsAuth::Basic { username, password } => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose_secret()))
        )),
    }
}

fn client(target: &Target, auth: EsAuth) -> EsClient {
    let mut cfg = EsConfig::new(target.url.clone(), auth);
    cfg.ca_pem = target.ca_pem.clone();
    EsClient::new(&cfg, None, "contract").expect("the operator's client for the target")
}

/// The raw answer is the error of `case`, in Elasticsearch's envelope (§4).
fn assert_envelope(what: &str, status: u16, body: &Value, case: &Case) {
    assert_eq!(status, case.status, "{what}: HTTP status; body {body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: the error body is not a JSON object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["error", "status"],
        "{what}: envelope keys; body {body}"
    );
    assert_eq!(
        body["status"],
        json!(case.status),
        "{what}: status field; body {body}"
    );
    let error = &body["error"];
    assert_eq!(
        error["type"],
        json!(case.kind),
        "{what}: error.type; body {body}"
    );
    let root = &error["root_cause"];
    assert!(
        root.as_array().is_some_and(|r| !r.is_empty()),
        "{what}: error.root_cause is a non-empty list; body {body}"
    );
    assert_eq!(
        root[0]["type"],
        json!(case.root_cause_kind),
        "{what}: error.root_cause[0].type; body {body}"
    );
    let reason = error["reason"].as_str();
    assert!(
        reason.is_some_and(|r| !r.trim().is_empty()),
        "{what}: error.reason is a non-empty string; body {body}"
    );
    if let Some(want) = &case.reason {
        assert_eq!(
            reason,
            Some(want.as_str()),
            "{what}: error.reason; body {body}"
        );
        if case.root_cause_kind == case.kind {
            // Not wrapped: the root cause is the error itself.
            assert_eq!(
                root[0]["reason"].as_str(),
                Some(want.as_str()),
                "{what}: error.root_cause[0].reason; body {body}"
            );
        }
    }
}

/// The operator's client made this error of `case` out of the answer.
fn assert_classified(what: &str, e: &EsError, case: &Case) {
    assert_eq!(
        e.status(),
        Some(case.status),
        "{what}: the client's status: {e}"
    );
    assert_eq!(
        e.kind(),
        Some(case.kind.as_str()),
        "{what}: the client's kind: {e}"
    );
    if let Some(want) = &case.reason {
        assert_eq!(
            e.reason_text(),
            want.trim_end_matches('.'),
            "{what}: the reason the operator quotes (reason_text)"
        );
    }
}

/// Runs each contract on its own, so that one run reports every broken one.
struct Checks {
    label: String,
    passed: usize,
    failed: Vec<String>,
    skipped: Vec<String>,
}

impl Checks {
    async fn run(&mut self, name: &str, check: impl Future<Output = ()>) -> bool {
        match AssertUnwindSafe(check).catch_unwind().await {
            Ok(()) => {
                self.passed += 1;
                true
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                println!("contract {name} on {} ... FAILED: {message}", self.label);
                self.failed.push(name.to_string());
                false
            }
        }
    }

    fn skip(&mut self, name: &str, why: &str) {
        println!("contract {name} on {} ... skipped: {why}", self.label);
        self.skipped.push(name.to_string());
    }
}

/// Every contract, against one Elasticsearch. Panics (after running all of them) when any fails;
/// returns the names of those skipped.
pub async fn es_contracts(target: &Target) -> Vec<String> {
    let raw = Raw::new(target);
    let es = client(target, target.auth.clone());
    let mut checks = Checks {
        label: target.label.clone(),
        passed: 0,
        failed: Vec::new(),
        skipped: Vec::new(),
    };
    let mut version = None;
    checks
        .run("identity", async {
            version = Some(identity(&raw, &es).await);
        })
        .await;
    if matches!(target.auth, EsAuth::None) {
        checks.skip(
            "unauthenticated",
            "the target is used without credentials, so none can be refused",
        );
    } else {
        checks
            .run("unauthenticated", unauthenticated(target, &raw))
            .await;
    }
    let missing = unique_id();
    checks
        .run("get_missing", get_missing(&raw, &es, &missing))
        .await;
    checks
        .run("delete_missing", delete_missing(&raw, &es, &missing))
        .await;
    if version.is_some_and(|v| v < Version::MIN_SUPPORTED) {
        checks.skip("update_missing", "_update exists from 8.17 (CONTRACT §1.2)");
    } else {
        checks
            .run("update_missing", update_missing(&raw, &es, &missing))
            .await;
    }
    let refused = unique_id();
    checks
        .run("unknown_service", unknown_service(&raw, &es, &refused))
        .await;
    match &target.provider {
        None => {
            for name in [
                "create_and_read",
                "already_exists",
                "delete_referenced_by_pipeline",
            ] {
                checks.skip(
                    name,
                    "creating an endpoint makes Elasticsearch call the provider (CONTRACT §2.2 \
                     step 11, §13): give a provider the cluster reaches (E2E_PROVIDER_URL, the \
                     mock provider: cargo run --example mock-provider)",
                );
            }
        }
        Some(provider) => {
            let (id, pipeline) = (unique_id(), unique_id());
            let lifecycle = lifecycle(&mut checks, &raw, &es, version, provider, &id, &pipeline);
            lifecycle.await;
            cleanup(&raw, &[&id, &refused], &pipeline).await;
        }
    }
    let Checks {
        label,
        passed,
        failed,
        skipped,
    } = checks;
    println!(
        "{passed} Elasticsearch contracts held on {label}, {} failed, {} skipped",
        failed.len(),
        skipped.len()
    );
    assert!(
        failed.is_empty(),
        "contracts broken on {label}: {}",
        failed.join(", ")
    );
    skipped
}

/// `GET /`: the identity fields the operator reads, a recovered cluster, and the operator's
/// client agreeing with them.
async fn identity(raw: &Raw, es: &EsClient) -> Version {
    let (status, body) = raw.send(Method::GET, "/", None).await;
    assert_eq!(
        status, 200,
        "GET / with the operator's credentials; the operator reads it for every connection (with \
         an API key, Elasticsearch grants it through the `monitor` privilege, see \
         error-envelopes.json): {body}"
    );
    let number = body["version"]["number"].as_str();
    let version = number.and_then(Version::parse);
    assert!(
        version.is_some(),
        "version.number is a version string: {body}"
    );
    let uuid = body["cluster_uuid"]
        .as_str()
        .expect("cluster_uuid is a string");
    let facts = facts();
    assert_ne!(
        Some(uuid),
        facts["identity"]["not_recovered_uuid"].as_str(),
        "the cluster has recovered its state"
    );
    let name = body["cluster_name"]
        .as_str()
        .expect("cluster_name is a string");
    assert!(!name.is_empty(), "cluster_name is not empty");
    let info = es.info().await.expect("the operator's GET /");
    assert!(
        info.has_identity(),
        "{uuid:?} is an identity for the operator"
    );
    assert_eq!(
        (info.uuid.as_str(), info.name.as_str(), Some(info.version)),
        (uuid, name, version),
        "the operator reads what GET / says"
    );
    info.version
}

/// An API key Elasticsearch does not know: 401 `security_exception`, which the operator takes
/// for a connection failure that needs a person.
async fn unauthenticated(target: &Target, raw: &Raw) {
    use base64::Engine;
    // Well formed (base64 of id:key), so that it is looked up and not found.
    let key =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:not-a-key", unique_id()));
    let header = format!("ApiKey {key}");
    let (status, body) = raw.send_as(Some(&header), Method::GET, "/", None).await;
    let c = case("unauthenticated", &[]);
    assert_envelope("GET / with an unknown API key", status, &body, &c);
    let es = client(target, EsAuth::ApiKey(SecretString::from(key)));
    let e = es.info().await.expect_err("refused");
    assert_classified("GET / with an unknown API key", &e, &c);
    assert!(
        e.is_connection_failure() && e.needs_a_person(),
        "refused credentials are a connection failure that needs a person: {e}"
    );
}

async fn get_missing(raw: &Raw, es: &EsClient, id: &str) {
    let (status, body) = raw
        .send(Method::GET, &format!("/_inference/{id}"), None)
        .await;
    assert_envelope(
        "GET of a missing id",
        status,
        &body,
        &case("get_missing", &[("{id}", id)]),
    );
    let got = es
        .get(id)
        .await
        .expect("the operator's GET of a missing id");
    assert!(
        got.is_none(),
        "the operator reads a missing endpoint as None: {got:?}"
    );
}

async fn delete_missing(raw: &Raw, es: &EsClient, id: &str) {
    let path = format!("/_inference/completion/{id}");
    let (status, body) = raw.send(Method::DELETE, &path, None).await;
    let c = case("delete_missing", &[("{id}", id)]);
    assert_envelope("DELETE of a missing id", status, &body, &c);
    let deleted = es
        .delete("completion", id, false)
        .await
        .expect("the operator's DELETE of a missing id");
    assert_eq!(
        deleted,
        Deleted::AlreadyGone,
        "a missing endpoint is already gone"
    );
}

async fn update_missing(raw: &Raw, es: &EsClient, id: &str) {
    let body = json!({"task_settings": {"user": "contract"}});
    let path = format!("/_inference/completion/{id}/_update");
    let (status, answer) = raw.send(Method::PUT, &path, Some(body.clone())).await;
    let c = case("update_missing", &[("{id}", id)]);
    assert_envelope("_update of a missing id", status, &answer, &c);
    let e = es
        .update("completion", id, secret_body(body, None))
        .await
        .expect_err("an _update of a missing id fails");
    // The reconcile reads a 404 from _update as "gone": it creates the endpoint again.
    assert_classified("_update of a missing id", &e, &c);
    assert!(!e.is_transient(), "{e}");
}

/// A service Elasticsearch does not know: 400 `status_exception`, refused before any provider
/// call, nothing stored; the operator reports it (not transient) and quotes the reason.
async fn unknown_service(raw: &Raw, es: &EsClient, id: &str) {
    let body = json!({"service": UNKNOWN_SERVICE, "service_settings": {"model_id": "contract"}});
    let path = format!("/_inference/completion/{id}");
    let (status, answer) = raw.send(Method::PUT, &path, Some(body.clone())).await;
    let c = case("unknown_service", &[("{service}", UNKNOWN_SERVICE)]);
    assert_envelope("PUT with an unknown service", status, &answer, &c);
    let e = es
        .create("completion", id, secret_body(body, None), None)
        .await
        .expect_err("a create with an unknown service fails");
    assert_classified("PUT with an unknown service", &e, &c);
    assert!(
        !e.is_transient() && !e.is_connection_failure() && !e.is_already_exists(),
        "a refusal the operator reports and does not retry: {e}"
    );
    let stored = es.get(id).await.expect("GET after the refused create");
    assert!(
        stored.is_none(),
        "a refused create stores nothing: {stored:?}"
    );
}

/// A request body with the secret values it carries.
fn secret_body(body: Value, secret: Option<&SecretString>) -> SecretBody {
    SecretBody {
        body,
        scrubber: Scrubber::new(secret),
    }
}

/// Create an endpoint of the `openai` service pointed at the provider, read it back, create it
/// again (already exists), block its deletion with a pipeline (409), then delete it.
async fn lifecycle(
    checks: &mut Checks,
    raw: &Raw,
    es: &EsClient,
    version: Option<Version>,
    provider: &str,
    id: &str,
    pipeline: &str,
) {
    // The operator scrubs any 8 characters of a secret from what comes back: the key shares no
    // such run with the ids (`contract-…`), whose echoes are asserted.
    let key = SecretString::from(format!("sk-mock-{:016x}", rand::random::<u64>()));
    let body = json!({
        "service": "openai",
        "service_settings": {
            "model_id": "contract-chat",
            "api_key": key.expose_secret(),
            "url": format!("{}/v1/chat/completions", provider.trim_end_matches('/')),
        },
        "task_settings": {"user": "contract"}
    });
    let created = checks
        .run(
            "create_and_read",
            create_and_read(raw, es, version, id, &body, &key),
        )
        .await;
    if !created {
        for name in ["already_exists", "delete_referenced_by_pipeline"] {
            checks.skip(
                name,
                "needs the endpoint that create_and_read could not make",
            );
        }
        return;
    }
    checks
        .run("already_exists", already_exists(raw, es, id, &body, &key))
        .await;
    checks
        .run(
            "delete_referenced_by_pipeline",
            delete_referenced_by_pipeline(raw, es, id, pipeline),
        )
        .await;
}

async fn create_and_read(
    raw: &Raw,
    es: &EsClient,
    version: Option<Version>,
    id: &str,
    body: &Value,
    key: &SecretString,
) {
    let created = es
        .create("completion", id, secret_body(body.clone(), Some(key)), None)
        .await
        .unwrap_or_else(|e| panic!("the operator's create of an openai endpoint: {e}"));
    assert_eq!(
        (
            created.inference_id.as_str(),
            created.task_type.as_str(),
            created.service.as_str()
        ),
        (id, "completion", "openai"),
        "the create answers the endpoint, unwrapped (CONTRACT §2.3)"
    );
    let (status, answer) = raw
        .send(Method::GET, &format!("/_inference/{id}"), None)
        .await;
    assert_eq!(status, 200, "GET of the new endpoint: {answer}");
    let facts = facts();
    let era = match version {
        Some(v) if v < Version::new(8, 15, 0) => "before_8_15",
        _ => "since_8_15",
    };
    let shape = &facts["read_one"][era];
    let (wrapper, id_key) = (
        shape["wrapper"].as_str().expect("wrapper"),
        shape["id_key"].as_str().expect("id_key"),
    );
    let items = answer[wrapper].as_array();
    assert!(
        items.is_some_and(|i| i.len() == 1),
        "GET of one id answers {{\"{wrapper}\": [one endpoint]}}: {answer}"
    );
    assert_eq!(answer[wrapper][0][id_key], json!(id), "{answer}");
    assert!(
        !answer.to_string().contains(key.expose_secret()),
        "GET never returns a secret value (CONTRACT §2.3)"
    );
    let read = es.get(id).await.expect("the operator's GET");
    let read = read.expect("the operator finds the new endpoint");
    assert_eq!(
        (read.inference_id.as_str(), read.service.as_str()),
        (id, "openai")
    );
    assert_eq!(read.task_settings.get("user"), Some(&json!("contract")));
}

/// A second create of the same id: 400 `resource_already_exists_exception`, which the operator
/// recognises by its kind (`is_already_exists`).
async fn already_exists(raw: &Raw, es: &EsClient, id: &str, body: &Value, key: &SecretString) {
    let path = format!("/_inference/completion/{id}");
    let (status, answer) = raw.send(Method::PUT, &path, Some(body.clone())).await;
    let c = case("already_exists", &[("{id}", id)]);
    assert_envelope("PUT of an existing id", status, &answer, &c);
    assert!(
        !answer.to_string().contains(key.expose_secret()),
        "the refusal does not echo the secret"
    );
    let e = es
        .create("completion", id, secret_body(body.clone(), Some(key)), None)
        .await
        .expect_err("a second create of one id fails");
    assert_classified("PUT of an existing id", &e, &c);
    assert!(e.is_already_exists() && !e.is_transient(), "{e}");
}

/// A pipeline's `inference` processor uses the endpoint: DELETE without force is a 409 whose
/// reason names the pipeline, and the operator quotes it; without the pipeline it deletes.
async fn delete_referenced_by_pipeline(raw: &Raw, es: &EsClient, id: &str, pipeline: &str) {
    let processor = json!({"processors": [{"inference": {"model_id": id,
        "input_output": {"input_field": "contract_in", "output_field": "contract_out"}}}]});
    let (status, answer) = raw
        .send(
            Method::PUT,
            &format!("/_ingest/pipeline/{pipeline}"),
            Some(processor),
        )
        .await;
    assert_eq!(
        status, 200,
        "PUT of a pipeline that uses the endpoint: {answer}"
    );
    let path = format!("/_inference/completion/{id}");
    let (status, answer) = raw.send(Method::DELETE, &path, None).await;
    let c = case(
        "delete_referenced_by_pipeline",
        &[("{id}", id), ("{pipeline}", pipeline)],
    );
    assert_envelope("DELETE of a referenced endpoint", status, &answer, &c);
    let e = es
        .delete("completion", id, false)
        .await
        .expect_err("a referenced endpoint is not deleted without force");
    assert_classified("DELETE of a referenced endpoint", &e, &c);
    assert!(!e.is_transient(), "a reference needs a person: {e}");
    assert!(
        e.reason_text().contains(pipeline),
        "the status names the pipeline: {e}"
    );
    let stored = es.get(id).await.expect("GET after the refused delete");
    assert!(stored.is_some(), "the refused delete kept the endpoint");
    let (status, answer) = raw
        .send(
            Method::DELETE,
            &format!("/_ingest/pipeline/{pipeline}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "DELETE of the pipeline: {answer}");
    let deleted = es.delete("completion", id, false).await.expect("delete");
    assert_eq!(deleted, Deleted::Deleted);
    assert!(es.get(id).await.expect("GET after the delete").is_none());
}

/// Remove what a run may have made, whatever happened to the assertions.
async fn cleanup(raw: &Raw, ids: &[&str], pipeline: &str) {
    let auth = raw.auth.as_deref();
    let path = format!("/_ingest/pipeline/{pipeline}");
    let _ = raw.try_send(auth, Method::DELETE, &path, None).await;
    for id in ids {
        let path = format!("/_inference/completion/{id}?force=true");
        let _ = raw.try_send(auth, Method::DELETE, &path, None).await;
    }
}
