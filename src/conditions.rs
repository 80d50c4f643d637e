//! Condition types, reasons, and the pure functions that turn an outcome into conditions.
//!
//! Conditions follow the Kubernetes API conventions and kstatus: `Ready` always, with
//! `observedGeneration`; `Reconciling=True` while a transient problem is being retried;
//! `Stalled=True` when nothing will change until a person acts. `lastTransitionTime` only moves
//! when a condition's status changes, so a resync never produces a new status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
/// True while the resource is paused (es-inference.dev/paused: "true").
pub const PAUSED: &str = "Paused";
/// True while the endpoint's EIS model is deprecated or near or past its end of life.
pub const MODEL_DEPRECATED: &str = "ModelDeprecated";

/// Reasons of the Ready condition. The README's troubleshooting table lists each one.
pub mod reason {
    pub const IN_SYNC: &str = "InSync";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    pub const REQUIRES_REPLACEMENT: &str = "RequiresReplacement";
    pub const REPLACEMENT_BLOCKED: &str = "ReplacementBlocked";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    pub const REJECTED: &str = "Rejected";
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";
    /// The connected cluster cannot accept what the spec asks (service, task type, chunking
    /// strategy too new for its version): nothing is sent until the spec or the version changes.
    pub const UNSUPPORTED_BY_CLUSTER: &str = "UnsupportedByCluster";
    pub const ELASTICSEARCH_UNAVAILABLE: &str = "ElasticsearchUnavailable";
    pub const CREATING: &str = "Creating";
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    pub const MODEL_DEPLOYING: &str = "ModelDeploying";
    pub const INVALID_REFERENCE: &str = "InvalidReference";
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    pub const CONFLICT: &str = "Conflict";
    pub const MODEL_DEPLOYMENT_FAILED: &str = "ModelDeploymentFailed";
    pub const DIFFERS_AFTER_REPLACEMENT: &str = "DiffersAfterReplacement";
    pub const INVALID_OBJECT: &str = "InvalidObject";
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    pub const OBSERVED: &str = "Observed";
    pub const NOT_FOUND: &str = "NotFound";
    pub const PAUSED: &str = "Paused";
    pub const MODEL_END_OF_LIFE: &str = "ModelEndOfLife";
    pub const INSECURE_CONNECTION: &str = "InsecureConnection";
}

/// How an outcome weighs for kstatus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Ready=True.
    Ready,
    /// Ready=False and Reconciling=True: the operator is retrying on its own.
    Progressing,
    /// Ready=False and Stalled=True: a person has to change something.
    Stalled,
}

/// The result of one reconcile, as far as status is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub severity: Severity,
    pub reason: String,
    pub message: String,
}

impl Outcome {
    pub fn ready(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Ready,
            reason: reason::IN_SYNC.to_string(),
            message: message.into(),
        }
    }
    pub fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Stalled,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn progressing(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Progressing,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    /// Keep the severity and message, but use `reason` when given.
    pub fn with_reason(mut self, reason: Option<String>) -> Self {
        if let Some(r) = reason {
            self.reason = r;
        }
        self
    }
    pub fn is_ready(&self) -> bool {
        self.severity == Severity::Ready
    }
}

/// A condition, keeping the `lastTransitionTime` of the previous condition of its type when its
/// status did not change (else `now`): the one rule of transition times, for every condition of
/// both kinds. Pure.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The conditions for `outcome`, keeping `lastTransitionTime` of any condition whose status did
/// not change. Pure: `now` is passed in.
pub fn conditions_for(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let make = |type_: &str, status: &str| {
        condition(
            previous,
            type_,
            status,
            &outcome.reason,
            outcome.message.clone(),
            generation,
            now,
        )
    };
    match outcome.severity {
        Severity::Ready => vec![make(READY, "True")],
        Severity::Progressing => vec![make(READY, "False"), make(RECONCILING, "True")],
        Severity::Stalled => vec![make(READY, "False"), make(STALLED, "True")],
    }
}

/// Equality that ignores `lastTransitionTime`, so a status is only written when it says
/// something new.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                x.type_ == y.type_
                    && x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn stalled_outcome_sets_ready_false_and_stalled() {
        let c = conditions_for(
            &[],
            &Outcome::stalled(reason::SECRET_NOT_FOUND, "x"),
            Some(3),
            &t(10),
        );
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].type_.as_str(), c[0].status.as_str()),
            (READY, "False")
        );
        assert_eq!(
            (c[1].type_.as_str(), c[1].status.as_str()),
            (STALLED, "True")
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = conditions_for(&[], &Outcome::ready("ok"), Some(1), &t(10));
        let second = conditions_for(&first, &Outcome::ready("ok, again"), Some(2), &t(20));
        assert_eq!(second[0].last_transition_time, t(10));
        let third = conditions_for(
            &second,
            &Outcome::progressing(reason::ELASTICSEARCH_UNAVAILABLE, "down"),
            Some(2),
            &t(30),
        );
        assert_eq!(third[0].last_transition_time, t(30));
        assert_eq!(third[1].type_, RECONCILING);
    }

    #[test]
    fn equality_ignores_only_transition_time() {
        let a = conditions_for(&[], &Outcome::ready("ok"), Some(1), &t(10));
        let b = conditions_for(&[], &Outcome::ready("ok"), Some(1), &t(99));
        assert!(same_conditions(&a, &b));
        let c = conditions_for(&[], &Outcome::ready("ok"), Some(2), &t(10));
        assert!(!same_conditions(&a, &c));
        let d = conditions_for(&[], &Outcome::ready("other"), Some(1), &t(10));
        assert!(!same_conditions(&a, &d));
    }
}
