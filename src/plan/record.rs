//! PURE: the part of status that remembers what a resource did in Elasticsearch (`Record`): which
//! endpoint on which cluster it created or adopted, with which secrets and configuration.

use crate::crd::{InferenceEndpointStatus, Ownership};

/// The part of status that remembers what this resource did in Elasticsearch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub inference_id: Option<String>,
    pub ownership: Option<Ownership>,
    pub cluster_uuid: Option<String>,
    /// Which secret values Elasticsearch holds (`secrets::versions` when they were sent).
    pub secrets_applied: Option<String>,
    pub applied_config_hash: Option<String>,
    /// While `Creating`: how many creates may have been sent under this mark.
    pub create_attempts: u32,
    /// The configuration (hash) for which the endpoint was last replaced.
    pub replaced_for: Option<String>,
}

impl Record {
    /// The record in `status`, if it was written for the resource with `uid`. A record written
    /// for another UID (a status restored from a backup, or copied onto another object) is
    /// ignored: it confers no ownership. Records from before UIDs were recorded are accepted.
    pub fn from_status(s: &InferenceEndpointStatus, uid: &str) -> Self {
        if s.owner_uid.as_deref().is_some_and(|owner| owner != uid) {
            return Self::default();
        }
        Self {
            inference_id: s.inference_id.clone(),
            ownership: s.ownership,
            cluster_uuid: s.cluster_uuid.clone(),
            secrets_applied: s.secret_versions.clone(),
            applied_config_hash: s.applied_config_hash.clone(),
            create_attempts: s
                .create_attempts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            replaced_for: s.replaced_for.clone(),
        }
    }

    /// Whether status holds a record written for another resource.
    pub fn is_foreign(s: &InferenceEndpointStatus, uid: &str) -> bool {
        s.ownership.is_some() && s.owner_uid.as_deref().is_some_and(|owner| owner != uid)
    }

    /// The ownership recorded for `inference_id` on `cluster_uuid`, if any.
    pub fn ownership_of(&self, inference_id: &str, cluster_uuid: &str) -> Option<Ownership> {
        (self.inference_id.as_deref() == Some(inference_id)
            && self.cluster_uuid.as_deref() == Some(cluster_uuid))
        .then_some(self.ownership)
        .flatten()
    }

    /// Whether this resource manages an endpoint (on any cluster).
    pub fn manages_something(&self) -> bool {
        matches!(
            self.ownership,
            Some(Ownership::Created | Ownership::Adopted)
        )
    }

    /// The record of a create about to be sent (the first under this mark).
    pub fn creating(inference_id: &str, cluster_uuid: &str, secrets: Option<&str>) -> Self {
        Self {
            inference_id: Some(inference_id.to_string()),
            ownership: Some(Ownership::Creating),
            cluster_uuid: Some(cluster_uuid.to_string()),
            // The values the create sends: a pass that finds the endpoint created knows whether
            // they are current, and does not push them again.
            secrets_applied: secrets.map(str::to_string),
            applied_config_hash: None,
            create_attempts: 1,
            replaced_for: None,
        }
    }
}
