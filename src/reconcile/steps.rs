//! One executor per `Step`: each performs its request, updates the pass's record and
//! observation, and says whether the pass goes on.

use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::{apply::Pass, failure::write_failure};
use crate::{
    cluster::Cluster,
    conditions::{Outcome, reason},
    crd::Ownership,
    desired::{FieldDiff, SecretMode, SecretValues, create_body, create_timeout, update_body},
    error::{Error, Result},
    es::{Scrubber, SecretBody},
    model::ClusterInfo,
    plan::{Record, Step, UpdateCause},
};

/// What every step may need.
pub(super) struct StepInputs<'a> {
    pub cluster: &'a Cluster,
    pub info: &'a ClusterInfo,
    /// The secret values, once read: a pass whose recorded versions are current starts without
    /// them, and reads them only for a step that sends them (`Step::sends_secrets`).
    pub values: Option<SecretValues>,
    /// Which Secret versions are current (`secrets::versions`).
    pub secrets: Option<String>,
    pub desired_hash: String,
    /// What the cluster cannot accept of the spec (`catalog::check_version`), if anything.
    pub unsupported: Option<crate::catalog::Unsupported>,
}

/// No values: what a step sees if it ran before they were read (the pass reads them first).
static NO_VALUES: SecretValues = SecretValues {
    values: std::collections::BTreeMap::new(),
};

impl StepInputs<'_> {
    fn values(&self) -> &SecretValues {
        self.values.as_ref().unwrap_or(&NO_VALUES)
    }

    /// A request body with the secret values, and a scrubber for them.
    fn secret_body(&self, body: serde_json::Value) -> SecretBody {
        SecretBody {
            body,
            scrubber: Scrubber::new(self.values().values.values()),
        }
    }
}

/// What a step leaves the pass with.
pub(super) enum Effect {
    /// Ask the core again.
    Continue,
    /// The pass ends with this outcome.
    Finish(Outcome),
    /// A write failed permanently: the pass ends with this outcome, and the same write is not
    /// sent again until its inputs change.
    Refused(Outcome),
}

fn describe(fields: &[String], empty: &str) -> String {
    if fields.is_empty() {
        empty.to_string()
    } else {
        fields.join(", ")
    }
}

impl Pass<'_> {
    pub(super) async fn execute(
        &mut self,
        step: Step,
        inputs: &StepInputs<'_>,
        last_update: &mut Option<Vec<String>>,
    ) -> Result<Effect> {
        match step {
            Step::MarkCreating => self.mark_creating(inputs).await,
            Step::Create => self.create(inputs).await,
            Step::Claim(ownership) => Ok(self.claim(ownership, inputs).await),
            Step::Forget => Ok(self.forget()),
            Step::Update { changed, cause } => {
                self.update(changed, cause, inputs, last_update).await
            }
            Step::Replace { fields } => self.replace(fields, inputs).await,
        }
    }

    /// A record with nothing owned (a replacement already made for this spec is still counted).
    fn cleared(&self) -> Record {
        Record {
            replaced_for: self.record.replaced_for.clone(),
            ..Record::default()
        }
    }

    fn creating_outcome(&self) -> Outcome {
        Outcome::progressing(
            reason::CREATING,
            format!("creating inference endpoint {:?} in Elasticsearch", self.id),
        )
    }

    /// Write `ownership: Creating` before the create is sent.
    async fn mark_creating(&mut self, inputs: &StepInputs<'_>) -> Result<Effect> {
        self.recreating |= self.record.manages_something()
            && self.record.inference_id.as_deref() == Some(self.id.as_str());
        self.record = Record {
            replaced_for: self.record.replaced_for.clone(),
            ..Record::creating(&self.id, &inputs.info.uuid, inputs.secrets.as_deref())
        };
        self.write_now(&self.creating_outcome()).await?;
        self.marked_this_pass = true;
        Ok(Effect::Continue)
    }

    async fn create(&mut self, inputs: &StepInputs<'_>) -> Result<Effect> {
        if !self.marked_this_pass {
            // A create may already have been sent under this mark (by an earlier pass or
            // process): count this one in status before it is sent.
            self.record.create_attempts = self.record.create_attempts.saturating_add(1);
            self.record.secrets_applied = inputs.secrets.clone();
            self.write_now(&self.creating_outcome()).await?;
            self.marked_this_pass = true;
        }
        let spec = &self.ie.spec;
        let body = inputs.secret_body(create_body(spec, SecretMode::Reveal(inputs.values())));
        let timeout = inputs
            .info
            .version
            .put_accepts_timeout()
            .then(|| create_timeout(spec, self.ctx.settings.create_timeout));
        let task = spec.task_type.as_str();
        match inputs.cluster.create(task, &self.id, body, timeout).await {
            Ok(ep) => {
                info!(inference_id = %self.id, "created inference endpoint");
                self.record.ownership = Some(Ownership::Created);
                self.record.create_attempts = 0;
                self.record.secrets_applied = inputs.secrets.clone();
                self.observed = Some(ep);
                self.fresh = true;
                self.observed_known = true;
                self.created_event().await;
                Ok(Effect::Continue)
            }
            Err(e) => self.create_failed(e, inputs).await,
        }
    }

    async fn created_event(&self) {
        let spec = &self.ie.spec;
        if self.replaced {
            self.event(
                EventType::Normal,
                "Replaced",
                format!(
                    "created inference endpoint {:?} again with the new settings",
                    self.id
                ),
            )
            .await;
        } else if self.recreating {
            self.event(
                EventType::Warning,
                "Recreated",
                format!(
                    "inference endpoint {:?} was missing from Elasticsearch and was created again",
                    self.id
                ),
            )
            .await;
        } else {
            self.event(
                EventType::Normal,
                "Created",
                format!(
                    "created inference endpoint {:?} ({} {})",
                    self.id, spec.service, spec.task_type
                ),
            )
            .await;
        }
    }

    /// After a failed create, look before anything else: Elasticsearch may have stored the
    /// endpoint before failing (a timeout, a lost answer, a model deployment that did not start).
    async fn create_failed(&mut self, e: Error, inputs: &StepInputs<'_>) -> Result<Effect> {
        let es = match &e {
            Error::Es(es) => es.clone(),
            // Not sent, or the connection failed: the mark stays, the next pass looks.
            _ => return Err(e),
        };
        warn!(inference_id = %self.id, error = %es, "create failed; checking whether the endpoint was stored");
        self.refresh(inputs.cluster).await?;
        if es.is_already_exists() && self.record.create_attempts <= 1 {
            // The id was taken before this resource's first create reached Elasticsearch: what
            // exists is someone else's.
            self.record = self.cleared();
            return Ok(Effect::Continue);
        }
        if self.observed.is_some() {
            // Stored by this create or an earlier one under the same mark; the core claims it
            // only if it is what this resource sends.
            return Ok(Effect::Continue);
        }
        if !es.is_transient() && !es.is_connection_failure() {
            // A definitive refusal: nothing was stored, the mark goes.
            self.record = self.cleared();
            return write_failure("create", &self.id, e).map(Effect::Refused);
        }
        Err(e)
    }

    async fn claim(&mut self, ownership: Ownership, inputs: &StepInputs<'_>) -> Effect {
        self.record.inference_id = Some(self.id.clone());
        self.record.cluster_uuid = Some(inputs.info.uuid.clone());
        self.record.ownership = Some(ownership);
        self.record.create_attempts = 0;
        if ownership == Ownership::Adopted {
            // What the adopted endpoint holds is unknown: send the Secret's values once.
            self.record.secrets_applied = None;
            self.record.applied_config_hash = None;
            info!(inference_id = %self.id, "adopted inference endpoint");
            self.event(EventType::Normal, "Adopted", format!(
                "adopted the existing inference endpoint {:?}; it is now managed by this resource", self.id
            )).await;
        } else {
            info!(inference_id = %self.id, "the create landed although its answer was lost; claimed it");
            self.created_event().await;
        }
        Effect::Continue
    }

    /// What exists is not what this resource sent: drop the mark, touch nothing.
    fn forget(&mut self) -> Effect {
        info!(inference_id = %self.id, "the endpoint in Elasticsearch is not the one this resource sent; leaving it");
        self.record = self.cleared();
        Effect::Continue
    }

    async fn update(
        &mut self,
        changed: Vec<FieldDiff>,
        cause: UpdateCause,
        inputs: &StepInputs<'_>,
        last_update: &mut Option<Vec<String>>,
    ) -> Result<Effect> {
        let fields: Vec<String> = changed.iter().map(|d| d.field.clone()).collect();
        let version = inputs.info.version;
        if !fields.is_empty() && last_update.as_ref() == Some(&fields) {
            return Ok(Effect::Finish(Outcome::stalled(
                reason::REQUIRES_REPLACEMENT,
                format!(
                    "Elasticsearch {version} accepted an update of {} for endpoint {:?} but did not apply it; it cannot change these in place. Revert the change or set spec.replacementPolicy: Recreate",
                    fields.join(", "),
                    self.id
                ),
            )));
        }
        let spec = &self.ie.spec;
        let Some(body) = update_body(spec, SecretMode::Reveal(inputs.values()), &changed, version)
        else {
            // Nothing Elasticsearch could take (no secrets, no task settings).
            self.record.secrets_applied = inputs.secrets.clone();
            return Ok(Effect::Continue);
        };
        let body = inputs.secret_body(body);
        match inputs
            .cluster
            .update(spec.task_type.as_str(), &self.id, body)
            .await
        {
            Ok(ep) => {
                self.record.secrets_applied = inputs.secrets.clone();
                self.observed = Some(ep);
                self.fresh = true;
                self.observed_known = true;
                self.updated_event(cause, &fields).await;
                *last_update = Some(fields);
                Ok(Effect::Continue)
            }
            Err(Error::Es(e)) if e.status() == Some(404) => {
                self.observed = None;
                self.fresh = true;
                Ok(Effect::Continue)
            }
            Err(e) => write_failure("update", &self.id, e).map(Effect::Refused),
        }
    }

    async fn updated_event(&self, cause: UpdateCause, fields: &[String]) {
        let id = &self.id;
        let (event_reason, note) = match cause {
            UpdateCause::SpecChanged => (
                "Updated",
                format!(
                    "updated {} of inference endpoint {id:?}",
                    describe(fields, "secrets")
                ),
            ),
            UpdateCause::SecretRotated => {
                self.ctx.metrics.secret_rotated();
                (
                    "SecretRotated",
                    format!("sent the rotated secret values to inference endpoint {id:?}"),
                )
            }
            UpdateCause::DriftCorrected => {
                self.ctx.metrics.drift_corrected();
                (
                    "DriftCorrected",
                    format!(
                        "corrected {} of inference endpoint {id:?}, changed outside Kubernetes",
                        describe(fields, "settings")
                    ),
                )
            }
            UpdateCause::Adopted => (
                "SecretsApplied",
                format!("sent the referenced secret values to adopted inference endpoint {id:?}"),
            ),
        };
        info!(inference_id = %id, reason = event_reason, "updated inference endpoint");
        self.event(EventType::Normal, event_reason, note).await;
    }

    /// Delete, so that the next steps create the endpoint again (at most once per spec).
    async fn replace(&mut self, fields: Vec<String>, inputs: &StepInputs<'_>) -> Result<Effect> {
        let spec = &self.ie.spec;
        match inputs
            .cluster
            .delete(spec.task_type.as_str(), &self.id, spec.force_delete)
            .await
        {
            Ok(_) => {
                info!(inference_id = %self.id, "deleted inference endpoint to replace it");
                self.record.replaced_for = Some(inputs.desired_hash.clone());
                self.replaced = true;
                self.observed = None;
                self.fresh = true;
                self.event(
                    EventType::Normal,
                    "Replacing",
                    format!(
                        "deleted inference endpoint {:?} to create it again with the new {}",
                        self.id,
                        fields.join(", ")
                    ),
                )
                .await;
                Ok(Effect::Continue)
            }
            Err(Error::Es(e)) if e.status() == Some(409) => Ok(Effect::Finish(Outcome::stalled(
                reason::REPLACEMENT_BLOCKED,
                format!(
                    "cannot replace inference endpoint {:?} to change {}: {}. Remove those references, or set spec.forceDelete: true to replace it anyway",
                    self.id,
                    fields.join(", "),
                    e.reason_text()
                ),
            ))),
            Err(e) => write_failure("replace", &self.id, e).map(Effect::Refused),
        }
    }
}
