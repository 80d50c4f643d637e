//! One executor per `Step`. Each performs its request against `Endpoints`, changes the
//! `Progress` it is given (record, observation), and returns the `Effect` and the Events it
//! raises; none writes to Kubernetes or calls back into the driver.

use tracing::{info, warn};

use super::{
    failure::write_failure,
    pass::{Effect, Endpoints, Executed, Observation, Progress, RECONCILE as ACTION, StepInputs},
};
use crate::{
    conditions::{Outcome, reason},
    crd::{InferenceEndpointSpec, Ownership},
    desired::{FieldDiff, SecretMode, create_body, create_timeout, update_body},
    error::{Error, Result},
    metrics::Metrics,
    plan::{Record, Step, UpdateCause},
    status::Note,
};

/// What the executors know of the resource: its spec and inference id, and where to count.
pub(super) struct Subject<'a> {
    pub spec: &'a InferenceEndpointSpec,
    pub id: &'a str,
    pub metrics: &'a Metrics,
}

fn describe(fields: &[String], empty: &str) -> String {
    if fields.is_empty() {
        empty.to_string()
    } else {
        fields.join(", ")
    }
}

/// Take `step`.
pub(super) async fn execute(
    es: &impl Endpoints,
    at: &Subject<'_>,
    p: &mut Progress,
    step: Step,
    inputs: &StepInputs<'_>,
) -> Result<Executed> {
    match step {
        Step::MarkCreating => Ok(mark_creating(at, p, inputs).into()),
        Step::Create => create(es, at, p, inputs).await,
        Step::Claim(ownership) => Ok(claim(at, p, ownership, inputs)),
        Step::Forget => Ok(forget(at, p).into()),
        Step::Update { changed, cause } => update(es, at, p, changed, cause, inputs).await,
        Step::Replace { fields } => replace(es, at, p, fields, inputs).await,
    }
}

fn creating_outcome(id: &str) -> Outcome {
    Outcome::progressing(
        reason::CREATING,
        format!("creating inference endpoint {id:?} in Elasticsearch"),
    )
}

/// Record `ownership: Creating`; the driver writes it before the create is sent.
fn mark_creating(at: &Subject<'_>, p: &mut Progress, inputs: &StepInputs<'_>) -> Effect {
    p.recreating |= p.record.manages_something() && p.record.inference_id.as_deref() == Some(at.id);
    p.record = Record {
        replaced_for: p.record.replaced_for.clone(),
        ..Record::creating(at.id, &inputs.info.uuid, inputs.secrets.as_deref())
    };
    Effect::Mark(creating_outcome(at.id))
}

async fn create(
    es: &impl Endpoints,
    at: &Subject<'_>,
    p: &mut Progress,
    inputs: &StepInputs<'_>,
) -> Result<Executed> {
    if !p.marked_this_pass {
        // A create may already have been sent under this mark (by an earlier pass or process):
        // count this one in status before it is sent.
        p.record.create_attempts = p.record.create_attempts.saturating_add(1);
        p.record.secrets_applied = inputs.secrets.clone();
        return Ok(Effect::Mark(creating_outcome(at.id)).into());
    }
    let body = inputs.secret_body(create_body(at.spec, SecretMode::Reveal(inputs.values())));
    let timeout = inputs
        .info
        .version
        .put_accepts_timeout()
        .then(|| create_timeout(at.spec, inputs.create_timeout));
    match es
        .create(at.spec.task_type.as_str(), at.id, body, timeout)
        .await
    {
        Ok(ep) => {
            info!(inference_id = %at.id, "created inference endpoint");
            p.record.ownership = Some(Ownership::Created);
            p.record.create_attempts = 0;
            p.record.secrets_applied = inputs.secrets.clone();
            p.observation = Observation::Fresh(Some(ep));
            Ok(Executed {
                effect: Effect::Continue,
                notes: vec![created_note(at, p)],
            })
        }
        Err(e) => create_failed(es, at, p, e).await.map(Executed::from),
    }
}

fn created_note(at: &Subject<'_>, p: &Progress) -> Note {
    let id = at.id;
    if p.replaced {
        Note::normal(
            "Replaced",
            ACTION,
            format!("created inference endpoint {id:?} again with the new settings"),
        )
    } else if p.recreating {
        Note::warning(
            "Recreated",
            ACTION,
            format!(
                "inference endpoint {id:?} was missing from Elasticsearch and was created again"
            ),
        )
    } else {
        Note::normal(
            "Created",
            ACTION,
            format!(
                "created inference endpoint {id:?} ({} {})",
                at.spec.service, at.spec.task_type
            ),
        )
    }
}

/// After a failed create, look before anything else: Elasticsearch may have stored the
/// endpoint before failing (a timeout, a lost answer, a model deployment that did not start).
async fn create_failed(
    es: &impl Endpoints,
    at: &Subject<'_>,
    p: &mut Progress,
    e: Error,
) -> Result<Effect> {
    let es_error = match &e {
        Error::Es(es_error) => es_error.clone(),
        // Not sent, or the connection failed: the mark stays, the next pass looks.
        _ => return Err(e),
    };
    warn!(inference_id = %at.id, error = %es_error, "create failed; checking whether the endpoint was stored");
    p.observation = Observation::Fresh(es.get(at.id).await?);
    if es_error.is_already_exists() && p.record.create_attempts <= 1 {
        // The id was taken before this resource's first create reached Elasticsearch: what
        // exists is someone else's.
        p.record = p.cleared();
        return Ok(Effect::Continue);
    }
    if p.observation.endpoint().is_some() {
        // Stored by this create or an earlier one under the same mark; the core claims it only
        // if it is what this resource sends.
        return Ok(Effect::Continue);
    }
    if !es_error.is_transient() && !es_error.is_connection_failure() {
        // A definitive refusal: nothing was stored, the mark goes.
        p.record = p.cleared();
        return write_failure("create", at.id, e).map(Effect::Refused);
    }
    Err(e)
}

fn claim(
    at: &Subject<'_>,
    p: &mut Progress,
    ownership: Ownership,
    inputs: &StepInputs<'_>,
) -> Executed {
    p.record.inference_id = Some(at.id.to_string());
    p.record.cluster_uuid = Some(inputs.info.uuid.clone());
    p.record.ownership = Some(ownership);
    p.record.create_attempts = 0;
    let note = if ownership == Ownership::Adopted {
        // What the adopted endpoint holds is unknown: send the Secret's values once.
        p.record.secrets_applied = None;
        p.record.applied_config_hash = None;
        info!(inference_id = %at.id, "adopted inference endpoint");
        Note::normal(
            "Adopted",
            ACTION,
            format!(
                "adopted the existing inference endpoint {:?}; it is now managed by this resource",
                at.id
            ),
        )
    } else {
        info!(inference_id = %at.id, "the create landed although its answer was lost; claimed it");
        created_note(at, p)
    };
    Executed {
        effect: Effect::Continue,
        notes: vec![note],
    }
}

/// What exists is not what this resource sent: drop the mark, touch nothing.
fn forget(at: &Subject<'_>, p: &mut Progress) -> Effect {
    info!(inference_id = %at.id, "the endpoint in Elasticsearch is not the one this resource sent; leaving it");
    p.record = p.cleared();
    Effect::Continue
}

async fn update(
    es: &impl Endpoints,
    at: &Subject<'_>,
    p: &mut Progress,
    changed: Vec<FieldDiff>,
    cause: UpdateCause,
    inputs: &StepInputs<'_>,
) -> Result<Executed> {
    let fields: Vec<String> = changed.iter().map(|d| d.field.clone()).collect();
    let version = inputs.info.version;
    if !fields.is_empty() && p.last_update.as_ref() == Some(&fields) {
        return Ok(Effect::Finish(Outcome::stalled(
            reason::REQUIRES_REPLACEMENT,
            format!(
                "Elasticsearch {version} accepted an update of {} for endpoint {:?} but did not apply it; it cannot change these in place. Revert the change or set spec.replacementPolicy: Recreate",
                fields.join(", "),
                at.id
            ),
        ))
        .into());
    }
    let Some(body) = update_body(
        at.spec,
        SecretMode::Reveal(inputs.values()),
        &changed,
        version,
    ) else {
        // Nothing Elasticsearch could take (no secrets, no task settings).
        p.record.secrets_applied = inputs.secrets.clone();
        return Ok(Effect::Continue.into());
    };
    let body = inputs.secret_body(body);
    match es.update(at.spec.task_type.as_str(), at.id, body).await {
        Ok(ep) => {
            p.record.secrets_applied = inputs.secrets.clone();
            p.observation = Observation::Fresh(Some(ep));
            match cause {
                UpdateCause::SecretRotated => at.metrics.secret_rotated(),
                UpdateCause::DriftCorrected => at.metrics.drift_corrected(),
                UpdateCause::SpecChanged | UpdateCause::Adopted => {}
            }
            let note = updated_note(at.id, cause, &fields);
            p.last_update = Some(fields);
            Ok(Executed {
                effect: Effect::Continue,
                notes: vec![note],
            })
        }
        Err(Error::Es(e)) if e.status() == Some(404) => {
            p.observation = Observation::Fresh(None);
            Ok(Effect::Continue.into())
        }
        Err(e) => write_failure("update", at.id, e).map(|o| Effect::Refused(o).into()),
    }
}

fn updated_note(id: &str, cause: UpdateCause, fields: &[String]) -> Note {
    let (event_reason, message) = match cause {
        UpdateCause::SpecChanged => (
            "Updated",
            format!(
                "updated {} of inference endpoint {id:?}",
                describe(fields, "secrets")
            ),
        ),
        UpdateCause::SecretRotated => (
            "SecretRotated",
            format!("sent the rotated secret values to inference endpoint {id:?}"),
        ),
        UpdateCause::DriftCorrected => (
            "DriftCorrected",
            format!(
                "corrected {} of inference endpoint {id:?}, changed outside Kubernetes",
                describe(fields, "settings")
            ),
        ),
        UpdateCause::Adopted => (
            "SecretsApplied",
            format!("sent the referenced secret values to adopted inference endpoint {id:?}"),
        ),
    };
    info!(inference_id = %id, reason = event_reason, "updated inference endpoint");
    Note::normal(event_reason, ACTION, message)
}

/// Delete, so that the next steps create the endpoint again (at most once per spec).
async fn replace(
    es: &impl Endpoints,
    at: &Subject<'_>,
    p: &mut Progress,
    fields: Vec<String>,
    inputs: &StepInputs<'_>,
) -> Result<Executed> {
    let spec = at.spec;
    match es
        .delete(spec.task_type.as_str(), at.id, spec.force_delete)
        .await
    {
        Ok(_) => {
            info!(inference_id = %at.id, "deleted inference endpoint to replace it");
            p.record.replaced_for = Some(inputs.desired_hash.clone());
            p.replaced = true;
            p.observation = Observation::Fresh(None);
            Ok(Executed {
                effect: Effect::Continue,
                notes: vec![Note::normal(
                    "Replacing",
                    ACTION,
                    format!(
                        "deleted inference endpoint {:?} to create it again with the new {}",
                        at.id,
                        fields.join(", ")
                    ),
                )],
            })
        }
        Err(Error::Es(e)) if e.status() == Some(409) => Ok(Effect::Finish(Outcome::stalled(
            reason::REPLACEMENT_BLOCKED,
            format!(
                "cannot replace inference endpoint {:?} to change {}: {}. Remove those references, or set spec.forceDelete: true to replace it anyway",
                at.id,
                fields.join(", "),
                e.reason_text()
            ),
        ))
        .into()),
        Err(e) => write_failure("replace", at.id, e).map(|o| Effect::Refused(o).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, sync::Mutex, time::Duration};

    use secrecy::SecretString;

    use super::*;
    use crate::{
        desired::SecretValues,
        es::{EsError, SecretBody},
        model::{ClusterInfo, Deleted, EndpointConfig, Version},
    };

    /// A stand-in for the inference routes: scripted answers in order, and what was asked.
    #[derive(Default)]
    struct Script {
        answers: Mutex<VecDeque<Result<Answer>>>,
        asked: Mutex<Vec<String>>,
    }

    enum Answer {
        Endpoint(Option<EndpointConfig>),
        Deleted,
    }

    impl Script {
        fn answering(answers: Vec<Result<Answer>>) -> Self {
            Self {
                answers: Mutex::new(answers.into()),
                asked: Mutex::default(),
            }
        }

        fn next(&self, what: String) -> Result<Answer> {
            self.asked.lock().expect("lock").push(what);
            self.answers
                .lock()
                .expect("lock")
                .pop_front()
                .expect("a scripted answer for every request")
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().expect("lock").clone()
        }
    }

    fn endpoint(a: Answer) -> Option<EndpointConfig> {
        match a {
            Answer::Endpoint(ep) => ep,
            Answer::Deleted => panic!("a deletion answered a read or a write"),
        }
    }

    impl Endpoints for Script {
        async fn get(&self, id: &str) -> Result<Option<EndpointConfig>> {
            self.next(format!("GET {id}")).map(endpoint)
        }

        async fn create(
            &self,
            task_type: &str,
            id: &str,
            body: SecretBody,
            _timeout: Option<Duration>,
        ) -> Result<EndpointConfig> {
            let sent = body.body.to_string();
            let a = self.next(format!("PUT {task_type}/{id} {sent}"))?;
            Ok(endpoint(a).expect("a created endpoint"))
        }

        async fn update(
            &self,
            task_type: &str,
            id: &str,
            body: SecretBody,
        ) -> Result<EndpointConfig> {
            let sent = body.body.to_string();
            let a = self.next(format!("PUT {task_type}/{id}/_update {sent}"))?;
            Ok(endpoint(a).expect("an updated endpoint"))
        }

        async fn delete(&self, task_type: &str, id: &str, force: bool) -> Result<Deleted> {
            match self.next(format!("DELETE {task_type}/{id} force={force}"))? {
                Answer::Deleted => Ok(Deleted::Deleted),
                Answer::Endpoint(_) => panic!("a read answered a deletion"),
            }
        }
    }

    const KEY: &str = "sk-test-value";

    fn spec() -> InferenceEndpointSpec {
        serde_json::from_value(serde_json::json!({
            "service": "openai",
            "taskType": "text_embedding",
            "serviceSettings": {"model_id": "text-embedding-3-small"},
            "secretSettings": {"api_key": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
        }))
        .expect("spec")
    }

    fn ep() -> EndpointConfig {
        serde_json::from_value(serde_json::json!({
            "inference_id": "emb", "task_type": "text_embedding", "service": "openai",
            "service_settings": {"model_id": "text-embedding-3-small"}, "task_settings": {}
        }))
        .expect("endpoint")
    }

    fn refused(status: u16, kind: &str) -> Error {
        Error::Es(EsError::Status {
            status,
            kind: Some(kind.into()),
            reason: format!("{kind} for the test"),
            retry_after: None,
        })
    }

    struct Fixture {
        spec: InferenceEndpointSpec,
        metrics: Metrics,
        info: ClusterInfo,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                spec: spec(),
                metrics: Metrics::default(),
                info: ClusterInfo {
                    uuid: "uuid-1".into(),
                    name: "c".into(),
                    version: Version::parse("9.1.0").expect("version"),
                },
            }
        }

        fn subject(&self) -> Subject<'_> {
            Subject {
                spec: &self.spec,
                id: "emb",
                metrics: &self.metrics,
            }
        }

        fn inputs(&self, secrets: &str) -> StepInputs<'_> {
            StepInputs {
                info: &self.info,
                values: Some(SecretValues {
                    values: [("api_key".to_string(), SecretString::from(KEY))].into(),
                }),
                secrets: Some(secrets.into()),
                desired_hash: "hash-1".into(),
                unsupported: None,
                create_timeout: Duration::from_secs(30),
            }
        }

        async fn run(&self, es: &Script, p: &mut Progress, step: Step) -> Result<Executed> {
            execute(es, &self.subject(), p, step, &self.inputs("openai@2")).await
        }
    }

    fn managed() -> Record {
        Record {
            inference_id: Some("emb".into()),
            ownership: Some(Ownership::Created),
            cluster_uuid: Some("uuid-1".into()),
            secrets_applied: Some("openai@1".into()),
            applied_config_hash: Some("hash-1".into()),
            ..Record::default()
        }
    }

    fn creating(attempts: u32) -> Progress {
        Progress {
            record: Record {
                create_attempts: attempts,
                ..Record::creating("emb", "uuid-1", Some("openai@2"))
            },
            marked_this_pass: true,
            ..Progress::default()
        }
    }

    #[tokio::test]
    async fn a_mark_is_asked_for_before_anything_is_sent() {
        let f = Fixture::new();
        let es = Script::default();
        // Re-creating an endpoint this resource had: the mark says so.
        let mut p = Progress {
            record: Record {
                replaced_for: Some("old".into()),
                ..managed()
            },
            ..Progress::default()
        };
        let done = f.run(&es, &mut p, Step::MarkCreating).await.expect("mark");
        assert!(matches!(done.effect, Effect::Mark(ref o) if o.reason == reason::CREATING));
        assert_eq!(p.record.ownership, Some(Ownership::Creating));
        assert_eq!(p.record.create_attempts, 1);
        assert_eq!(p.record.secrets_applied.as_deref(), Some("openai@2"));
        assert_eq!(p.record.replaced_for.as_deref(), Some("old"));
        assert!(p.recreating);
        // A create under a mark of an earlier pass counts itself, and is marked again first.
        let mut p = Progress {
            marked_this_pass: false,
            ..creating(1)
        };
        let done = f.run(&es, &mut p, Step::Create).await.expect("mark");
        assert!(matches!(done.effect, Effect::Mark(_)));
        assert_eq!(p.record.create_attempts, 2);
        assert!(es.asked().is_empty(), "nothing sent: {:?}", es.asked());
    }

    #[tokio::test]
    async fn a_create_records_what_it_made_and_announces_it() {
        let f = Fixture::new();
        let es = Script::answering(vec![Ok(Answer::Endpoint(Some(ep())))]);
        let mut p = creating(1);
        let done = f.run(&es, &mut p, Step::Create).await.expect("create");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.record.ownership, Some(Ownership::Created));
        assert_eq!(p.record.create_attempts, 0);
        assert_eq!(p.observation, Observation::Fresh(Some(ep())));
        assert_eq!(done.notes.len(), 1);
        assert_eq!(done.notes[0].reason, "Created");
        assert!(!done.notes[0].message.contains(KEY));
        let asked = es.asked();
        assert!(asked[0].starts_with("PUT text_embedding/emb "), "{asked:?}");
        assert!(asked[0].contains(KEY), "the value is sent: {asked:?}");
    }

    #[tokio::test]
    async fn an_id_taken_before_the_first_create_is_left_to_its_owner() {
        let f = Fixture::new();
        let es = Script::answering(vec![
            Err(refused(400, "resource_already_exists_exception")),
            Ok(Answer::Endpoint(Some(ep()))),
        ]);
        let mut p = creating(1);
        let done = f.run(&es, &mut p, Step::Create).await.expect("looked");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.record, Record::default(), "nothing of it is claimed");
        assert_eq!(es.asked()[1], "GET emb");
    }

    #[tokio::test]
    async fn after_a_failed_create_the_endpoint_is_looked_up_before_anything_else() {
        let f = Fixture::new();
        // Stored before the answer was lost: the core decides whether to claim it.
        let es = Script::answering(vec![
            Err(refused(503, "unavailable_shards_exception")),
            Ok(Answer::Endpoint(Some(ep()))),
        ]);
        let mut p = creating(2);
        let done = f.run(&es, &mut p, Step::Create).await.expect("looked");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.record.ownership, Some(Ownership::Creating));
        assert_eq!(p.observation, Observation::Fresh(Some(ep())));
        // Not stored, and refused for good: the mark goes and the gate closes.
        let es = Script::answering(vec![
            Err(refused(400, "status_exception")),
            Ok(Answer::Endpoint(None)),
        ]);
        let mut p = creating(1);
        let done = f.run(&es, &mut p, Step::Create).await.expect("refused");
        assert!(matches!(done.effect, Effect::Refused(ref o) if o.reason == reason::REJECTED));
        assert_eq!(p.record, Record::default());
        // Not stored, and transient: retried with the mark kept.
        let es = Script::answering(vec![
            Err(refused(503, "unavailable_shards_exception")),
            Ok(Answer::Endpoint(None)),
        ]);
        let mut p = creating(1);
        assert!(f.run(&es, &mut p, Step::Create).await.is_err());
        assert_eq!(p.record.ownership, Some(Ownership::Creating));
    }

    #[tokio::test]
    async fn claiming_an_adopted_endpoint_sends_the_values_once_more() {
        let f = Fixture::new();
        let es = Script::default();
        let mut p = Progress::default();
        let done = f
            .run(&es, &mut p, Step::Claim(Ownership::Adopted))
            .await
            .expect("claim");
        assert_eq!(p.record.ownership, Some(Ownership::Adopted));
        assert_eq!(p.record.secrets_applied, None);
        assert_eq!(p.record.applied_config_hash, None);
        assert_eq!(done.notes[0].reason, "Adopted");
        // A create whose answer was lost is claimed as created.
        let mut p = creating(2);
        let done = f
            .run(&es, &mut p, Step::Claim(Ownership::Created))
            .await
            .expect("claim");
        assert_eq!(p.record.create_attempts, 0);
        assert_eq!(done.notes[0].reason, "Created");
        // Forgetting drops the mark and touches nothing.
        let mut p = creating(1);
        let done = f.run(&es, &mut p, Step::Forget).await.expect("forget");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.record, Record::default());
        assert!(es.asked().is_empty());
    }

    #[tokio::test]
    async fn a_rotation_is_sent_counted_and_announced() {
        let f = Fixture::new();
        let es = Script::answering(vec![Ok(Answer::Endpoint(Some(ep())))]);
        let mut p = Progress {
            record: managed(),
            observation: Observation::Listed(Some(ep())),
            ..Progress::default()
        };
        let step = Step::Update {
            changed: vec![],
            cause: UpdateCause::SecretRotated,
        };
        let done = f.run(&es, &mut p, step).await.expect("update");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.record.secrets_applied.as_deref(), Some("openai@2"));
        assert_eq!(done.notes[0].reason, "SecretRotated");
        let counted = f.metrics.render();
        assert!(
            counted
                .lines()
                .any(|l| l.starts_with("es_inference_operator_secret_rotations_total 1")),
            "{counted}"
        );
        assert!(es.asked()[0].contains("/_update"), "{:?}", es.asked());
    }

    #[tokio::test]
    async fn an_update_not_applied_twice_needs_a_replacement_and_a_missing_one_is_seen_gone() {
        let f = Fixture::new();
        let changed = vec![FieldDiff {
            field: "task_settings.user".into(),
            mutable: true,
        }];
        let es = Script::default();
        let mut p = Progress {
            record: managed(),
            last_update: Some(vec!["task_settings.user".into()]),
            ..Progress::default()
        };
        let step = Step::Update {
            changed: changed.clone(),
            cause: UpdateCause::SpecChanged,
        };
        let done = f.run(&es, &mut p, step.clone()).await.expect("update");
        assert!(
            matches!(done.effect, Effect::Finish(ref o) if o.reason == reason::REQUIRES_REPLACEMENT)
        );
        assert!(es.asked().is_empty());
        let es = Script::answering(vec![Err(refused(404, "resource_not_found_exception"))]);
        let mut p = Progress {
            record: managed(),
            ..Progress::default()
        };
        let done = f.run(&es, &mut p, step).await.expect("update");
        assert_eq!(done.effect, Effect::Continue);
        assert_eq!(p.observation, Observation::Fresh(None));
        assert!(done.notes.is_empty());
    }

    #[tokio::test]
    async fn a_replacement_deletes_once_and_stops_on_references() {
        let f = Fixture::new();
        let es = Script::answering(vec![Ok(Answer::Deleted)]);
        let mut p = Progress {
            record: managed(),
            ..Progress::default()
        };
        let step = Step::Replace {
            fields: vec!["service_settings.model_id".into()],
        };
        let done = f.run(&es, &mut p, step.clone()).await.expect("replace");
        assert_eq!(done.effect, Effect::Continue);
        assert!(p.replaced);
        assert_eq!(p.record.replaced_for.as_deref(), Some("hash-1"));
        assert_eq!(p.observation, Observation::Fresh(None));
        assert_eq!(done.notes[0].reason, "Replacing");
        assert_eq!(es.asked(), vec!["DELETE text_embedding/emb force=false"]);
        let es = Script::answering(vec![Err(refused(409, "status_exception"))]);
        let mut p = Progress {
            record: managed(),
            ..Progress::default()
        };
        let done = f.run(&es, &mut p, step).await.expect("replace");
        assert!(
            matches!(done.effect, Effect::Finish(ref o) if o.reason == reason::REPLACEMENT_BLOCKED)
        );
        assert!(!p.replaced);
        assert_eq!(p.record, managed());
    }
}
