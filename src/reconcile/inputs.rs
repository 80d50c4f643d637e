//! The stages before Elasticsearch is read: the Secrets' values (`Secrets`), the cluster the
//! reference names (`Reached`), the tenancy rule and the conflict rule. Each takes what it needs
//! and returns its result; none writes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::pass::{Pass, RECONCILE};
use crate::{
    cluster::Cluster,
    conditions::{Outcome, reason},
    connection::{Target, TargetProblem},
    crd::{InferenceEndpointStatus, TenancyPolicy},
    desired::SecretValues,
    error::{Error, Result},
    model::ClusterInfo,
    plan::{Record, conflict_owner},
    policy::{self, NamespaceInfo},
    secrets::{
        SecretProblem, check_references, legacy_fingerprint, referenced_secrets, resolve,
        values_mac, versions,
    },
    status::Note,
};

/// The Secrets' values as read, which versions they are, and their MAC under the process key.
pub(super) struct Secrets {
    pub values: SecretValues,
    pub current: Option<String>,
    pub mac: [u8; 16],
}

/// Read the referenced Secrets: `Err(outcome)` when they cannot be used.
pub(super) async fn load_secrets(pass: &Pass<'_>) -> Result<std::result::Result<Secrets, Outcome>> {
    let ns = pass.namespace();
    let spec = &pass.ie.spec;
    if let Err(p) = check_references(spec, &ns) {
        return Ok(Err(secret_outcome(&p)));
    }
    let api: Api<Secret> = Api::namespaced(pass.ctx.client.clone(), &ns);
    let names = referenced_secrets(spec);
    let metrics = &pass.ctx.metrics;
    let fetched = pass
        .ctx
        .secret_reads
        .read(&api, &ns, &names, || metrics.secret_read())
        .await?;
    Ok(match resolve(spec, &ns, &fetched) {
        Ok(values) => Ok(Secrets {
            mac: values_mac(pass.ctx.process_key(), &values),
            current: versions(spec, &fetched),
            values,
        }),
        Err(problem) => Err(secret_outcome(&problem)),
    })
}

fn secret_outcome(problem: &SecretProblem) -> Outcome {
    let r = if problem.is_spec_error() {
        reason::INVALID_SPEC
    } else {
        reason::SECRET_NOT_FOUND
    };
    Outcome::stalled(
        r,
        format!("{problem}; the operator retries as soon as the Secret changes"),
    )
}

/// When the Secrets' versions moved but the values Elasticsearch holds are still the ones in
/// use (another key of the Secret changed, or status comes from 0.1), the versions to record
/// instead of sending the same values again. `last_mac` is the MAC of the values this process
/// last sent; from 0.1, the UID-keyed fingerprint in status is trusted once.
pub(super) fn unchanged_values(
    record: &Record,
    stored: &InferenceEndpointStatus,
    uid: &str,
    last_mac: Option<[u8; 16]>,
    read: &Secrets,
) -> Option<String> {
    let current = read.current.as_deref()?;
    if record.secrets_applied.as_deref() == Some(current) {
        return None;
    }
    let same_in_memory = record.secrets_applied.is_some() && last_mac == Some(read.mac);
    let same_as_legacy = record.secrets_applied.is_none()
        && record.manages_something()
        && stored.secret_fingerprint.is_some()
        && stored.secret_fingerprint == legacy_fingerprint(uid, &read.values);
    (same_in_memory || same_as_legacy).then(|| current.to_string())
}

/// The cluster of a pass: the reference resolved and allowed, its client, its identity.
pub(super) struct Reached {
    pub target: Target,
    pub cluster: Arc<Cluster>,
    pub info: ClusterInfo,
}

/// The cluster of this pass: the reference resolved (and allowed by the tenancy rules), its
/// client and its identity; `Err` with the outcome to report when the user must change
/// something first (`suffix` ends its message).
pub(super) async fn reach(
    pass: &Pass<'_>,
    suffix: &str,
) -> Result<std::result::Result<Reached, Outcome>> {
    let ns = pass.namespace();
    let target = match pass
        .ctx
        .target_for(&ns, pass.ie.spec.elasticsearch_ref.as_ref())
        .await
    {
        Ok(t) => t,
        Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
        Err(problem) => {
            return Ok(Err(Outcome::stalled(
                problem.reason(),
                format!("{problem}{suffix}"),
            )));
        }
    };
    if let Some(violation) = policy_violation(pass, &target)? {
        return Ok(Err(violation));
    }
    let cluster = match pass.ctx.clusters.get(&target) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(Outcome::stalled(
                reason::CONNECTION_FAILED,
                format!("cannot build a client for {}: {e}", target.url),
            )));
        }
    };
    let info = cluster.identity().await?;
    Ok(Ok(Reached {
        target,
        cluster,
        info,
    }))
}

/// The cluster's tenancy rule this resource breaks, as an outcome. An error while the labels
/// the rules need cannot be read: never judged on guessed labels.
fn policy_violation(pass: &Pass<'_>, target: &Target) -> Result<Option<Outcome>> {
    let ns = pass.namespace();
    let own = target.home_namespace.as_deref().is_none_or(|h| h == ns);
    // A connection without a policy serves its own namespace only.
    let no_policy = TenancyPolicy::default();
    let policy = match (target.policy.as_ref(), own) {
        (Some(p), _) => p,
        (None, true) => return Ok(None),
        (None, false) => &no_policy,
    };
    let info = match &pass.ns_info {
        Some(info) => info.clone(),
        None if policy.uses_labels() => {
            return Err(Error::Unavailable(format!(
                "cannot read namespace {ns:?}, whose labels this cluster's policy needs"
            )));
        }
        None => NamespaceInfo::default(),
    };
    Ok(
        policy::check(&pass.ie.spec, &pass.id, &ns, &info, own, policy)
            .err()
            .map(|v| {
                Outcome::stalled(
                    reason::POLICY_VIOLATION,
                    format!("{v}; nothing was sent to Elasticsearch"),
                )
            }),
    )
}

/// `Conflict` when another resource owns this inference id on this cluster.
pub(super) fn conflict(pass: &Pass<'_>, reached: &Reached) -> Option<Outcome> {
    let peers = pass.ctx.peers_with_id(&pass.id);
    let owner = conflict_owner(pass.ie, &reached.target.key, &reached.info.uuid, &peers)?;
    Some(Outcome::stalled(
        reason::CONFLICT,
        format!(
            "InferenceEndpoint {owner} owns inference endpoint {:?} on this cluster; this resource sends nothing to Elasticsearch. Choose another spec.inferenceId, or delete one of the two",
            pass.id
        ),
    ))
}

/// A Warning when the cluster behind the reference is not the one the record names.
pub(super) fn cluster_changed(record: &Record, id: &str, info: &ClusterInfo) -> Option<Note> {
    let was = record.cluster_uuid.as_deref()?;
    (record.manages_something() && record.inference_id.as_deref() == Some(id) && was != info.uuid)
        .then(|| {
            Note::warning(
                "ClusterChanged",
                RECONCILE,
                format!(
                    "the Elasticsearch cluster behind this resource changed (cluster_uuid {was} is now {}): inference endpoint {id:?} is created on the new cluster",
                    info.uuid
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::Ownership;

    fn values() -> SecretValues {
        SecretValues {
            values: BTreeMap::from([("api_key".to_string(), "k".to_string().into())]),
        }
    }

    fn read(current: &str, mac: u8) -> Secrets {
        Secrets {
            values: values(),
            current: Some(current.into()),
            mac: [mac; 16],
        }
    }

    fn managed(applied: Option<&str>) -> Record {
        Record {
            inference_id: Some("a".into()),
            ownership: Some(Ownership::Created),
            cluster_uuid: Some("u1".into()),
            secrets_applied: applied.map(str::to_string),
            ..Record::default()
        }
    }

    #[test]
    fn values_already_sent_are_recognised_by_their_mac_only() {
        let stored = InferenceEndpointStatus::default();
        let r = managed(Some("s@1"));
        // Same values under a new version: record it, send nothing.
        assert_eq!(
            unchanged_values(&r, &stored, "uid", Some([7; 16]), &read("s@2", 7)),
            Some("s@2".into())
        );
        // Other values, or none remembered (a restart): they are sent.
        assert_eq!(
            unchanged_values(&r, &stored, "uid", Some([7; 16]), &read("s@2", 8)),
            None
        );
        assert_eq!(
            unchanged_values(&r, &stored, "uid", None, &read("s@2", 7)),
            None
        );
        // Versions already recorded: nothing to recognise.
        assert_eq!(
            unchanged_values(&r, &stored, "uid", Some([7; 16]), &read("s@1", 7)),
            None
        );
    }

    #[test]
    fn a_fingerprint_from_0_1_is_trusted_only_for_a_managed_record_without_versions() {
        let stored = InferenceEndpointStatus {
            secret_fingerprint: legacy_fingerprint("uid", &values()),
            ..Default::default()
        };
        let secrets = read("s@1", 1);
        assert_eq!(
            unchanged_values(&managed(None), &stored, "uid", None, &secrets),
            Some("s@1".into())
        );
        // Another UID's fingerprint does not match.
        assert_eq!(
            unchanged_values(&managed(None), &stored, "other", None, &secrets),
            None
        );
        // A record that manages nothing trusts nothing.
        assert_eq!(
            unchanged_values(&Record::default(), &stored, "uid", None, &secrets),
            None
        );
    }

    #[test]
    fn a_changed_cluster_is_reported_only_for_the_managed_id() {
        let info = ClusterInfo {
            uuid: "u2".into(),
            name: "c".into(),
            version: crate::model::Version::parse("9.1.0").expect("version"),
        };
        let note = cluster_changed(&managed(None), "a", &info).expect("a note");
        assert_eq!(note.reason, "ClusterChanged");
        assert!(note.message.contains("u1") && note.message.contains("u2"));
        assert!(cluster_changed(&managed(None), "b", &info).is_none());
        let same = ClusterInfo {
            uuid: "u1".into(),
            ..info.clone()
        };
        assert!(cluster_changed(&managed(None), "a", &same).is_none());
        assert!(cluster_changed(&Record::default(), "a", &info).is_none());
    }
}
