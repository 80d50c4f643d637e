//! The values one apply pass hands along. The stages are functions: the controls give a `Pass`
//! (what the pass knows from the object and its Namespace); the Secrets and the cluster reference
//! give `StepInputs`; reading the endpoint gives an `Observation`; each executor changes the
//! `Progress` it is given and returns an `Effect` with the `Note`s it raises, and never writes
//! to Kubernetes itself: the driver (`apply.rs`) writes the marks, and `finish` the end.

use std::{future::Future, time::Duration};

use crate::{
    catalog::Unsupported,
    cluster::Cluster,
    conditions::Outcome,
    context::Context,
    crd::{DeletionPolicy, InferenceEndpoint, InferenceEndpointStatus, ModelDeploymentStatus},
    desired::SecretValues,
    error::Result,
    es::{Scrubber, SecretBody},
    memory::LastSeen,
    model::{ClusterInfo, Deleted, EndpointConfig},
    plan::Record,
    policy::NamespaceInfo,
    status::Note,
};

/// The action of the Events an apply pass raises.
pub(super) const RECONCILE: &str = "Reconcile";

/// What one pass knows before it reads anything: the object, its identity, the controls in
/// effect. Never changed by the stages.
pub(super) struct Pass<'a> {
    pub ctx: &'a Context,
    pub ie: &'a InferenceEndpoint,
    pub uid: String,
    pub id: String,
    /// The status in effect when the pass started (our own lagging writes included).
    pub stored: InferenceEndpointStatus,
    /// The reconcile request on the object, and whether it is new (then nothing is read from
    /// the shared snapshot).
    pub requested: Option<String>,
    pub forced: bool,
    /// The deletion policy in effect (for status).
    pub deletion_policy: DeletionPolicy,
    /// The namespace's labels and annotations, when they could be read.
    pub ns_info: Option<NamespaceInfo>,
}

impl Pass<'_> {
    pub fn namespace(&self) -> String {
        self.ie.metadata.namespace.clone().unwrap_or_default()
    }
}

/// What a pass learned on its way, for its end (`finish`). Only the driver fills it, from what
/// the stages return.
#[derive(Default)]
pub(super) struct Learned {
    pub progress: Progress,
    /// The Events raised so far, published by `finish` after the status write.
    pub notes: Vec<Note>,
    /// The Elasticsearch version and model deployment to report.
    pub version: Option<String>,
    pub model: Option<ModelDeploymentStatus>,
    /// The cluster the reference resolved to.
    pub cluster_key: Option<String>,
    /// Set when the quiet path found the resource in sync: what the resync keeps comparing.
    pub in_sync: Option<LastSeen>,
    /// The MAC of the values in use (see `inputs::unchanged_values`).
    pub values_mac: Option<[u8; 16]>,
    /// What the table of Elasticsearch services does not know of the spec (sent as written).
    pub notice: Option<String>,
}

/// What the pass knows of the endpoint in Elasticsearch.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Observation {
    /// Not looked at (the pass stopped before Elasticsearch).
    #[default]
    Unknown,
    /// From the shared list snapshot: may be up to one resync interval old.
    Listed(Option<EndpointConfig>),
    /// Read from Elasticsearch by this pass (a GET, or the answer to a write).
    Fresh(Option<EndpointConfig>),
}

impl Observation {
    pub fn endpoint(&self) -> Option<&EndpointConfig> {
        match self {
            Observation::Unknown => None,
            Observation::Listed(ep) | Observation::Fresh(ep) => ep.as_ref(),
        }
    }

    pub fn is_fresh(&self) -> bool {
        matches!(self, Observation::Fresh(_))
    }

    /// Whether it says what Elasticsearch has (the pass got that far).
    pub fn is_known(&self) -> bool {
        !matches!(self, Observation::Unknown)
    }
}

/// What the steps of one pass change: the record, what is known of the endpoint, and what the
/// Events need to tell apart.
#[derive(Clone, Debug, Default)]
pub(super) struct Progress {
    pub record: Record,
    pub observation: Observation,
    /// A `Creating` mark was written by this pass (its create needs no new one).
    pub marked_this_pass: bool,
    /// The mark replaced a record of an endpoint this resource had (a re-creation).
    pub recreating: bool,
    /// This pass deleted the endpoint to replace it.
    pub replaced: bool,
    /// The fields of the last `_update` this pass sent (the same update twice means
    /// Elasticsearch accepted it without applying it).
    pub last_update: Option<Vec<String>>,
}

impl Progress {
    /// A record with nothing owned (a replacement already made for this spec is still counted).
    pub fn cleared(&self) -> Record {
        Record {
            replaced_for: self.record.replaced_for.clone(),
            ..Record::default()
        }
    }
}

/// What every step may need besides the progress.
pub(super) struct StepInputs<'a> {
    pub info: &'a ClusterInfo,
    /// The secret values, once read: a pass whose recorded versions are current starts without
    /// them, and reads them only for a step that sends them (`Step::sends_secrets`).
    pub values: Option<SecretValues>,
    /// Which Secret versions are current (`secrets::versions`).
    pub secrets: Option<String>,
    pub desired_hash: String,
    /// What the cluster cannot accept of the spec (`catalog::check_version`), if anything.
    pub unsupported: Option<Unsupported>,
    /// How long Elasticsearch may take over a create (a model download for built-in models).
    pub create_timeout: Duration,
}

/// No values: what a step sees if it ran before they were read (the driver reads them first).
static NO_VALUES: SecretValues = SecretValues {
    values: std::collections::BTreeMap::new(),
};

impl StepInputs<'_> {
    pub fn values(&self) -> &SecretValues {
        self.values.as_ref().unwrap_or(&NO_VALUES)
    }

    /// A request body with the secret values, and a scrubber for them.
    pub fn secret_body(&self, body: serde_json::Value) -> SecretBody {
        SecretBody {
            body,
            scrubber: Scrubber::new(self.values().values.values()),
        }
    }
}

/// What a step leaves the pass with.
#[derive(Debug, PartialEq)]
pub(super) enum Effect {
    /// Ask the core again.
    Continue,
    /// Write status with this outcome (the record says `Creating`) before anything is sent,
    /// then ask the core again.
    Mark(Outcome),
    /// The pass ends with this outcome.
    Finish(Outcome),
    /// A write failed permanently: the pass ends with this outcome, and the same write is not
    /// sent again until its inputs change.
    Refused(Outcome),
}

/// An executor's answer: the effect, and the Events it raises.
#[derive(Debug, PartialEq)]
pub(super) struct Executed {
    pub effect: Effect,
    pub notes: Vec<Note>,
}

impl From<Effect> for Executed {
    fn from(effect: Effect) -> Self {
        Self {
            effect,
            notes: Vec::new(),
        }
    }
}

/// The inference routes the executors use, so that each can be tested against a stand-in.
pub(super) trait Endpoints {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<EndpointConfig>>> + Send;
    fn create(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<EndpointConfig>> + Send;
    fn update(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
    ) -> impl Future<Output = Result<EndpointConfig>> + Send;
    fn delete(
        &self,
        task_type: &str,
        id: &str,
        force: bool,
    ) -> impl Future<Output = Result<Deleted>> + Send;
}

impl Endpoints for Cluster {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<EndpointConfig>>> + Send {
        Cluster::get(self, id)
    }

    fn create(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<EndpointConfig>> + Send {
        Cluster::create(self, task_type, id, body, timeout)
    }

    fn update(
        &self,
        task_type: &str,
        id: &str,
        body: SecretBody,
    ) -> impl Future<Output = Result<EndpointConfig>> + Send {
        Cluster::update(self, task_type, id, body)
    }

    fn delete(
        &self,
        task_type: &str,
        id: &str,
        force: bool,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        Cluster::delete(self, task_type, id, force)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> EndpointConfig {
        serde_json::from_value(serde_json::json!({
            "inference_id": "a", "task_type": "completion", "service": "openai",
            "service_settings": {}, "task_settings": {}
        }))
        .expect("endpoint")
    }

    #[test]
    fn an_observation_says_what_it_knows_and_how_fresh_it_is() {
        let unknown = Observation::Unknown;
        assert!(!unknown.is_known() && !unknown.is_fresh() && unknown.endpoint().is_none());
        let listed = Observation::Listed(Some(ep()));
        assert!(listed.is_known() && !listed.is_fresh());
        assert_eq!(
            listed.endpoint().map(|e| e.service.as_str()),
            Some("openai")
        );
        let absent = Observation::Fresh(None);
        assert!(absent.is_known() && absent.is_fresh() && absent.endpoint().is_none());
    }

    #[test]
    fn clearing_keeps_only_the_replacement_already_made() {
        let p = Progress {
            record: Record {
                inference_id: Some("a".into()),
                ownership: Some(crate::crd::Ownership::Created),
                replaced_for: Some("h".into()),
                create_attempts: 2,
                ..Record::default()
            },
            ..Progress::default()
        };
        assert_eq!(
            p.cleared(),
            Record {
                replaced_for: Some("h".into()),
                ..Record::default()
            }
        );
    }

    #[test]
    fn a_step_that_runs_before_the_values_were_read_sends_none() {
        let info = ClusterInfo {
            uuid: "u".into(),
            name: "c".into(),
            version: crate::model::Version::parse("9.1.0").expect("version"),
        };
        let inputs = StepInputs {
            info: &info,
            values: None,
            secrets: None,
            desired_hash: "h".into(),
            unsupported: None,
            create_timeout: Duration::from_secs(1),
        };
        assert!(inputs.values().values.is_empty());
    }
}
