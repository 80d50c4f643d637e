//! Deleting a resource: delete its endpoint when this resource owns it (and the policy says so),
//! then release the finalizer. Needs neither the Secret nor the settings, so a missing Secret or
//! a broken spec never blocks a deletion.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::{controller::Action, events::EventType};
use tracing::{info, warn};

use super::{controls, failure::failure_outcome};
use crate::{
    cluster::Cluster,
    conditions::{Outcome, READY, reason},
    connection::{TargetProblem, target_key},
    context::Context,
    crd::{
        DeletionPolicy, InferenceEndpoint, InferenceEndpointSpec, InferenceEndpointStatus,
        ManagementPolicy,
    },
    error::{Error, Result},
    guard::Watched,
    model::Deleted,
    plan::{Cleanup, Record, conflict_owner, decide_cleanup, is_what_spec_creates},
    policy,
    status::{
        Note, StatusExtras, build_status, outcome_note, publish, reference, remove_finalizer,
        report,
    },
};

const ACTION: &str = "Delete";

struct Deletion<'a> {
    ctx: &'a Context,
    meta: &'a ObjectMeta,
    spec: &'a InferenceEndpointSpec,
    stored: InferenceEndpointStatus,
    uid: String,
    id: String,
}

pub async fn run(
    ctx: &Context,
    meta: &ObjectMeta,
    spec: &InferenceEndpointSpec,
    status: Option<&InferenceEndpointStatus>,
) -> Result<Action> {
    let uid = meta.uid.clone().unwrap_or_default();
    if !crate::status::has_finalizer(meta) {
        ctx.memory.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx.memory.is_released(&uid) {
        // Done already; this pass runs on a cache that has not seen the finalizer go.
        return Ok(Action::await_change());
    }
    let ie = InferenceEndpoint {
        metadata: meta.clone(),
        spec: spec.clone(),
        status: None,
    };
    let d = Deletion {
        ctx,
        meta,
        spec,
        stored: ctx
            .memory
            .effective_status(&uid, meta.resource_version.as_deref(), status),
        id: ie.inference_id(),
        uid,
    };
    d.run(&ie).await
}

/// The Event of a deletion that went through.
fn deleted_note(id: &str, gone: Deleted, force: bool) -> Note {
    let message = match gone {
        Deleted::Deleted => format!(
            "deleted inference endpoint {id:?}{}",
            if force { " (forced)" } else { "" }
        ),
        Deleted::AlreadyGone => format!("inference endpoint {id:?} was already gone"),
    };
    Note::normal("Deleted", ACTION, message)
}

/// A refusal because the endpoint is in use (409) becomes `DeletionBlocked`, with the three
/// ways out; any other error is kept.
fn blocked(id: &str, e: Error) -> Error {
    match e {
        Error::Es(e) if e.status() == Some(409) => Error::DeletionBlocked(format!(
            "Elasticsearch refuses to delete inference endpoint {id:?} while it is in use: {}. Remove those references, set spec.forceDelete: true, or set spec.deletionPolicy: Retain",
            e.reason_text()
        )),
        other => other,
    }
}

impl Deletion<'_> {
    /// Another resource that the conflict rule says owns this id on this cluster.
    fn other_owner(&self, ie: &InferenceEndpoint, target: &str, uuid: &str) -> Option<String> {
        let me = InferenceEndpoint {
            status: Some(self.stored.clone()),
            ..ie.clone()
        };
        let peers = self.ctx.peers_with_id(&self.id);
        conflict_owner(&me, target, uuid, &peers)
    }

    async fn run(&self, ie: &InferenceEndpoint) -> Result<Action> {
        if controls::is_paused(self.meta) {
            return self.wait_while_paused().await;
        }
        let rec = Record::from_status(&self.stored, &self.uid);
        if self.spec.management_policy == ManagementPolicy::Observe {
            let why = format!(
                "managementPolicy is Observe: inference endpoint {:?} was left in Elasticsearch",
                self.id
            );
            return self.release(Note::normal("Released", ACTION, why)).await;
        }
        let ns = self.meta.namespace.clone().unwrap_or_default();
        let ns_info = self.ctx.namespace_info(&ns).await;
        if ns_info.is_none() && self.spec.deletion_policy.is_none() {
            // The namespace may say Retain: never guessed, least of all before a delete.
            return self
                .failed(Error::Unavailable(format!(
                    "cannot read namespace {ns:?}, whose annotation may set the deletion policy"
                )))
                .await;
        }
        let policy = policy::deletion_policy(
            self.spec,
            ns_info.as_ref(),
            self.ctx.settings.default_deletion_policy,
        );
        // Retain and never-managed need no Elasticsearch at all.
        if policy == DeletionPolicy::Retain || rec.ownership.is_none() {
            let Cleanup::Release(why) = decide_cleanup(policy, false, &rec, &self.id, "") else {
                unreachable!("decide_cleanup deletes only what this resource owns");
            };
            return self.release(Note::normal("Released", ACTION, why)).await;
        }
        let Some((cluster, tenancy)) = self.cluster(ie).await? else {
            return Ok(Action::await_change());
        };
        // A forced delete the cluster's policy does not allow here is an ordinary delete.
        let force = self.spec.force_delete
            && tenancy
                .as_ref()
                .is_none_or(|p| policy::force_allowed(&ns_info.clone().unwrap_or_default(), p));
        self.on_cluster(ie, &cluster, policy, force, &rec).await
    }

    /// The deletion on the cluster: release, or delete what this resource owns.
    async fn on_cluster(
        &self,
        ie: &InferenceEndpoint,
        cluster: &Cluster,
        policy: DeletionPolicy,
        force: bool,
        rec: &Record,
    ) -> Result<Action> {
        let info = match cluster.identity().await {
            Ok(i) => i,
            Err(e) => return self.failed(e).await,
        };
        match decide_cleanup(policy, force, rec, &self.id, &info.uuid) {
            Cleanup::Release(why) => self.release(Note::normal("Released", ACTION, why)).await,
            // Two records can both claim one endpoint (a retried create that found the twin's
            // identical endpoint); the one the conflict rule does not name must not delete what
            // the other manages.
            Cleanup::Delete { .. }
                if let Some(owner) = self.other_owner(ie, cluster.key(), &info.uuid) =>
            {
                let why = format!(
                    "InferenceEndpoint {owner} owns inference endpoint {:?} on this cluster; it was left in Elasticsearch",
                    self.id
                );
                self.release(Note::normal("Released", ACTION, why)).await
            }
            Cleanup::Delete {
                force,
                verify_first,
            } => {
                if verify_first {
                    let found = match cluster.get(&self.id).await {
                        Ok(f) => f,
                        Err(e) => return self.failed(e).await,
                    };
                    if !found.is_some_and(|ep| is_what_spec_creates(self.spec, &ep, info.version)) {
                        let why = format!(
                            "inference endpoint {:?} was never created by this resource; nothing was deleted",
                            self.id
                        );
                        return self.release(Note::normal("Released", ACTION, why)).await;
                    }
                }
                self.delete(cluster, force).await
            }
        }
    }

    /// Paused: the deletion waits (finalizer kept) until the annotation is removed; nothing is
    /// destroyed or orphaned silently.
    async fn wait_while_paused(&self) -> Result<Action> {
        let message = format!(
            "paused by the annotation {}: the deletion waits, and inference endpoint {:?} is neither deleted nor released, until the annotation is removed",
            controls::PAUSED,
            self.id
        );
        let mut rv = self.meta.resource_version.clone();
        crate::status::write_paused(self.ctx, self.meta, &mut rv, &self.stored, message, None)
            .await?;
        Ok(Action::await_change())
    }

    /// The cluster to delete from, and its tenancy policy; `None` after releasing, when the
    /// reference is gone and no client for it remains (saying plainly what was left behind
    /// rather than blocking forever).
    async fn cluster(
        &self,
        ie: &InferenceEndpoint,
    ) -> Result<Option<(std::sync::Arc<Cluster>, Option<crate::crd::TenancyPolicy>)>> {
        let ns = self.meta.namespace.clone().unwrap_or_default();
        let target = self
            .ctx
            .target_for(&ns, self.spec.elasticsearch_ref.as_ref())
            .await;
        match target {
            Ok(t) => self
                .ctx
                .clusters
                .get(&t)
                .map(|c| Some((c, t.policy.clone())))
                .map_err(|e| Error::Unavailable(e.to_string())),
            Err(TargetProblem::Unreadable(e)) => Err(Error::Unavailable(e)),
            // The reference is gone (often: the whole namespace is being deleted).
            Err(problem) => match self.ctx.clusters.existing(&target_key(ie)) {
                Some(c) => Ok(Some((c, None))),
                None => {
                    let why = format!(
                        "inference endpoint {:?} could NOT be deleted from Elasticsearch: {problem}. Delete it there by hand (DELETE _inference/{}/{})",
                        self.id, self.spec.task_type, self.id
                    );
                    warn!(inference_id = %self.id, "{why}");
                    self.release(Note::warning("NotDeleted", ACTION, why))
                        .await?;
                    Ok(None)
                }
            },
        }
    }

    async fn delete(&self, cluster: &Cluster, force: bool) -> Result<Action> {
        let task = self.spec.task_type.as_str();
        match cluster.delete(task, &self.id, force).await {
            Ok(gone) => {
                let note = deleted_note(&self.id, gone, force);
                info!(inference_id = %self.id, "{}", note.message);
                self.release(note).await
            }
            Err(e) => self.failed(blocked(&self.id, e)).await,
        }
    }

    /// Remove the finalizer, say why, and forget the object.
    async fn release(&self, note: Note) -> Result<Action> {
        if note.type_ == EventType::Normal {
            info!(inference_id = %self.id, "released: {}", note.message);
        }
        publish(self.ctx, &reference::<Watched>(self.meta), vec![note]).await;
        remove_finalizer(self.ctx, self.meta).await?;
        self.ctx.memory.released(&self.uid);
        self.ctx.metrics.set_endpoint_reason(
            self.meta.namespace.as_deref().unwrap_or_default(),
            self.meta.name.as_deref().unwrap_or_default(),
            None,
        );
        Ok(Action::await_change())
    }

    /// Report why the deletion waits (status, and an Event when the reason is new), and retry.
    async fn failed(&self, e: Error) -> Result<Action> {
        if matches!(e, Error::NotLeader) {
            return Err(e);
        }
        let outcome: Outcome = failure_outcome(&e);
        let record = Record::from_status(&self.stored, &self.uid);
        let next = build_status(
            &self.stored,
            &record,
            &outcome,
            self.meta,
            StatusExtras::from(&self.stored),
        );
        let previous = self.stored.condition(READY).map(|c| c.reason.as_str());
        let notes = outcome_note(previous, &outcome, ACTION)
            .into_iter()
            .collect();
        let mut rv = self.meta.resource_version.clone();
        report(self.ctx, self.meta, &mut rv, &self.stored, next, notes).await?;
        if outcome.reason == reason::DELETION_BLOCKED {
            warn!(inference_id = %self.id, "{}", outcome.message);
        }
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::EsError;

    fn status(code: u16) -> Error {
        Error::Es(EsError::Status {
            status: code,
            kind: Some("status_exception".into()),
            reason: "referenced by pipelines [p1]".into(),
            retry_after: None,
        })
    }

    #[test]
    fn a_deletion_in_use_is_blocked_with_the_ways_out_and_other_errors_are_kept() {
        let Error::DeletionBlocked(m) = blocked("emb", status(409)) else {
            panic!("409 blocks the deletion");
        };
        assert!(m.contains("[p1]"), "{m}");
        for way in [
            "forceDelete: true",
            "deletionPolicy: Retain",
            "Remove those references",
        ] {
            assert!(m.contains(way), "{m}");
        }
        assert_eq!(
            failure_outcome(&Error::DeletionBlocked(m)).reason,
            reason::DELETION_BLOCKED
        );
        assert!(matches!(blocked("emb", status(503)), Error::Es(_)));
    }

    #[test]
    fn the_deletion_event_says_whether_it_was_forced_or_already_gone() {
        let n = deleted_note("emb", Deleted::Deleted, true);
        assert_eq!((n.type_, n.reason.as_str()), (EventType::Normal, "Deleted"));
        assert_eq!(n.message, "deleted inference endpoint \"emb\" (forced)");
        let n = deleted_note("emb", Deleted::AlreadyGone, false);
        assert_eq!(n.message, "inference endpoint \"emb\" was already gone");
    }
}
