//! PURE: the reconcile decision. Given the spec, what the Secrets and Elasticsearch look like
//! now, and what status remembers, say what to do next, or that nothing is left to do and how
//! the resource stands. The shell (`reconcile`) performs the step, feeds the result back in, and
//! asks again, until the answer is `Done`.
//!
//! The safety rules live here, in one place each:
//! - an endpoint is updated, replaced or deleted only when the record says this resource (this
//!   UID) created or adopted it on this cluster;
//! - a create whose outcome is unknown is claimed only with evidence: the stored endpoint has the
//!   service, task type and non-secret configuration this resource sent;
//! - at most one replacement per configuration: a difference that survives it is reported.

mod cleanup;
mod conflict;
pub mod connection;
mod model_deployment;
mod record;

pub use cleanup::{Cleanup, decide_cleanup};
pub use conflict::conflict_owner;
pub use model_deployment::{deployment_id, deployment_outcome, uses_model_deployment};
pub use record::Record;

use crate::{
    conditions::{Outcome, reason},
    crd::{DriftPolicy, InferenceEndpointSpec, Ownership, ReplacementPolicy},
    desired::{FieldDiff, config_hash, diff},
    model::{ClusterInfo, EndpointConfig, Version},
};

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub spec: &'a InferenceEndpointSpec,
    /// The effective inference id (spec.inferenceId or metadata.name).
    pub inference_id: &'a str,
    /// What status records for this resource (the working copy: the shell updates it as steps
    /// succeed).
    pub record: &'a Record,
    pub cluster: &'a ClusterInfo,
    /// Which secret values are in use now (`secrets::versions`); `None` when the spec has no
    /// secrets.
    pub secrets: Option<&'a str>,
    /// The endpoint as Elasticsearch has it, if it exists.
    pub observed: Option<&'a EndpointConfig>,
}

/// Why an `_update` is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateCause {
    SpecChanged,
    SecretRotated,
    DriftCorrected,
    /// First sync of secrets after adopting: the values in Elasticsearch are unknown.
    Adopted,
}

/// One step for the shell to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `ownership: Creating` to status before creating, so that a create interrupted after
    /// Elasticsearch stored the endpoint is never orphaned.
    MarkCreating,
    /// `PUT` the endpoint.
    Create,
    /// Record ownership without calling Elasticsearch (adopt, or claim a create that landed).
    Claim(Ownership),
    /// Drop a `Creating` mark: what exists is not what this resource sent.
    Forget,
    /// `_update` with every secret, the task settings, and these mutable differences.
    Update {
        changed: Vec<FieldDiff>,
        cause: UpdateCause,
    },
    /// Delete and create again (replacementPolicy: Recreate).
    Replace { fields: Vec<String> },
}

impl Step {
    /// Whether the step changes which endpoint the record stands for, or destroys one: such a
    /// step is taken only on a fresh read of the endpoint, never on a shared snapshot.
    pub fn needs_fresh_observation(&self) -> bool {
        matches!(self, Step::Claim(_) | Step::Forget | Step::Replace { .. })
    }

    /// Whether the step sends a request to Elasticsearch (or prepares one: the mark): such a
    /// step is taken only when the cluster can accept what the spec asks
    /// (`catalog::check_version`).
    pub fn sends_request(&self) -> bool {
        matches!(
            self,
            Step::MarkCreating | Step::Create | Step::Update { .. } | Step::Replace { .. }
        )
    }

    /// Whether the step sends the secret values (then they are read first).
    pub fn sends_secrets(&self) -> bool {
        matches!(
            self,
            Step::Create | Step::Update { .. } | Step::Replace { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Step::MarkCreating => "mark",
            Step::Create => "create",
            Step::Claim(_) => "claim",
            Step::Forget => "forget",
            Step::Update { .. } => "update",
            Step::Replace { .. } => "replace",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Act(Step),
    Done(Outcome),
}

fn fields(d: &[FieldDiff]) -> String {
    d.iter()
        .map(|d| d.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `ep` is the endpoint this spec creates: same service and task type, and every
/// non-secret setting the spec writes is what Elasticsearch holds.
pub fn is_what_spec_creates(
    spec: &InferenceEndpointSpec,
    ep: &EndpointConfig,
    version: Version,
) -> bool {
    ep.service == spec.service
        && ep.task_type == spec.task_type.as_str()
        && diff(spec, ep, version).is_empty()
}

/// The next step, or the final outcome.
pub fn decide(f: &Facts<'_>) -> Decision {
    let spec = f.spec;
    let id = f.inference_id;
    let version = f.cluster.version;
    if version < Version::MIN_SUPPORTED {
        return Decision::Done(Outcome::stalled(
            reason::UNSUPPORTED_VERSION,
            format!(
                "Elasticsearch {version} is not supported: the operator needs {} or newer (the _update API)",
                Version::MIN_SUPPORTED
            ),
        ));
    }
    let ownership = f.record.ownership_of(id, &f.cluster.uuid);
    let Some(ep) = f.observed else {
        return Decision::Act(match ownership {
            Some(Ownership::Creating) => Step::Create,
            // Absent, or deleted outside Kubernetes: a new create, under a new mark.
            None | Some(Ownership::Created | Ownership::Adopted) => Step::MarkCreating,
        });
    };
    match ownership {
        None => adopt_or_leave(spec, id, ep),
        Some(Ownership::Creating) => {
            if is_what_spec_creates(spec, ep, version) {
                // Our create landed even though we did not see its answer.
                Decision::Act(Step::Claim(Ownership::Created))
            } else {
                Decision::Act(Step::Forget)
            }
        }
        Some(own @ (Ownership::Created | Ownership::Adopted)) => compare(f, ep, own),
    }
}

fn adopt_or_leave(spec: &InferenceEndpointSpec, id: &str, ep: &EndpointConfig) -> Decision {
    if !spec.adopt {
        return Decision::Done(Outcome::stalled(
            reason::ALREADY_EXISTS,
            format!(
                "Elasticsearch already has an inference endpoint {id:?} that this resource did not create; it was left untouched. Set spec.adopt: true to take it over, or choose another spec.inferenceId"
            ),
        ));
    }
    if ep.service != spec.service || ep.task_type != spec.task_type.as_str() {
        return Decision::Done(Outcome::stalled(
            reason::ALREADY_EXISTS,
            format!(
                "cannot adopt inference endpoint {id:?}: it has service {:?} and task type {:?}, the spec asks for {:?} and {:?}; it was left untouched",
                ep.service,
                ep.task_type,
                spec.service,
                spec.task_type.as_str()
            ),
        ));
    }
    Decision::Act(Step::Claim(Ownership::Adopted))
}

fn compare(f: &Facts<'_>, ep: &EndpointConfig, ownership: Ownership) -> Decision {
    let spec = f.spec;
    let version = f.cluster.version;
    let desired_hash = config_hash(spec);
    let spec_changed = f.record.applied_config_hash.as_deref() != Some(desired_hash.as_str());
    let (immutable, mutable): (Vec<_>, Vec<_>) = diff(spec, ep, version)
        .into_iter()
        .partition(|d| !d.mutable);
    let correct = spec_changed || spec.drift_policy == DriftPolicy::Correct;
    let report = !spec_changed && spec.drift_policy == DriftPolicy::Report;

    if !immutable.is_empty() {
        if correct {
            return replace_or_report(f, &immutable, spec_changed, &desired_hash);
        }
        if report {
            return drift_reported(f.inference_id, &immutable);
        }
    }
    if !mutable.is_empty() {
        if correct {
            let cause = if spec_changed {
                UpdateCause::SpecChanged
            } else {
                UpdateCause::DriftCorrected
            };
            return Decision::Act(Step::Update {
                changed: mutable,
                cause,
            });
        }
        if report {
            return drift_reported(f.inference_id, &mutable);
        }
    }
    if let Some(current) = f.secrets
        && f.record.secrets_applied.as_deref() != Some(current)
    {
        let cause = if f.record.secrets_applied.is_none() && ownership == Ownership::Adopted {
            UpdateCause::Adopted
        } else {
            UpdateCause::SecretRotated
        };
        return Decision::Act(Step::Update {
            changed: Vec::new(),
            cause,
        });
    }
    Decision::Done(Outcome::ready(format!(
        "inference endpoint {:?} matches the spec",
        f.inference_id
    )))
}

fn drift_reported(id: &str, diffs: &[FieldDiff]) -> Decision {
    Decision::Done(Outcome::stalled(
        reason::DRIFT_DETECTED,
        format!(
            "endpoint {id:?} was changed outside Kubernetes: {} differ from the spec (driftPolicy: Report leaves them as they are)",
            fields(diffs)
        ),
    ))
}

fn replace_or_report(
    f: &Facts<'_>,
    immutable: &[FieldDiff],
    spec_changed: bool,
    desired_hash: &str,
) -> Decision {
    let spec = f.spec;
    let version = f.cluster.version;
    if spec.replacement_policy == ReplacementPolicy::Recreate {
        if f.record.replaced_for.as_deref() == Some(desired_hash) {
            return Decision::Done(Outcome::stalled(
                reason::DIFFERS_AFTER_REPLACEMENT,
                format!(
                    "endpoint {:?} was already replaced once for this spec, and {} still differ from it: Elasticsearch stores them differently than the spec writes them. It is not replaced again; write the values as Elasticsearch returns them (GET _inference/{}) or edit the spec",
                    f.inference_id,
                    fields(immutable),
                    f.inference_id
                ),
            ));
        }
        return Decision::Act(Step::Replace {
            fields: immutable.iter().map(|d| d.field.clone()).collect(),
        });
    }
    let mut msg = format!(
        "Elasticsearch cannot change {} of endpoint {:?} in place{}. Revert the change, or set spec.replacementPolicy: Recreate to delete and create the endpoint (references by pipelines and semantic_text fields are respected unless forceDelete)",
        fields(immutable),
        f.inference_id,
        if spec_changed {
            ""
        } else {
            " (it was changed outside Kubernetes)"
        },
    );
    if immutable.iter().any(|d| d.field == "chunking_settings") && version.update_resets_chunking()
    {
        msg.push_str(&format!(
            ". Note: Elasticsearch {version} resets chunking_settings on every _update (elastic/elasticsearch#139574, fixed in 9.3)"
        ));
    }
    Decision::Done(Outcome::stalled(reason::REQUIRES_REPLACEMENT, msg))
}

#[cfg(test)]
mod tests;
