//! The InferenceEndpoint reconciler: the entry point the controller calls, and its error policy.
//!
//! One pass is: the finalizer, then `apply` (bring Elasticsearch in line with the spec) or
//! `cleanup` (the resource is being deleted), then one status write if anything changed.
//! Objects the operator cannot decode get a condition that says so, and can still be deleted.

mod apply;
mod cleanup;
pub mod controls;
mod failure;
mod finish;
mod inputs;
mod observe;
mod pass;
mod read;
mod steps;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use kube::runtime::controller::Action;
use tracing::{Instrument, info_span, warn};

use crate::{
    conditions::{Outcome, READY, reason},
    context::Context,
    error::{Error, Result},
    guard::{Undecodable, Watched},
    metrics::KIND_ENDPOINT,
    plan::Record,
    status::{Note, StatusExtras, build_status, outcome_note, publish, reference, report},
};

pub use failure::failure_outcome;

/// A short id that ties together the log lines of one pass.
fn reconcile_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Reconcile one InferenceEndpoint: the entry point for the controller.
pub async fn reconcile(obj: Arc<Watched>, ctx: Arc<Context>) -> Result<Action> {
    let ns = obj
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingNamespace)?;
    let span = info_span!(
        "reconcile",
        object = %format!("{ns}/{}", obj.name()),
        reconcile_id = %reconcile_id()
    );
    let timer = ctx.metrics.reconcile_started(KIND_ENDPOINT);
    let result = async {
        match &*obj {
            Watched::Valid(cached) => match cached.decoded() {
                Ok(ie) if ie.metadata.deletion_timestamp.is_some() => {
                    cleanup::run(&ctx, &ie.metadata, &ie.spec, ie.status.as_ref()).await
                }
                Ok(ie) => apply::run(&ctx, &ie).await,
                // Where, never what: serde's message can quote a value.
                Err(e) => Err(Error::Unavailable(format!(
                    "the cached settings or status did not decode ({:?} error at column {})",
                    e.classify(),
                    e.column()
                ))),
            },
            Watched::Invalid(u) => invalid(&ctx, u).await,
        }
    }
    .instrument(span)
    .await;
    timer.finish(result.is_ok());
    if result.is_ok()
        && let Some(uid) = obj.uid()
    {
        ctx.memory.reset_backoff(uid);
    }
    result
}

/// What to do after a failed pass: wait for the connection's window when the cluster is down,
/// nothing when this replica may not write, else back off per object (short base, doubling,
/// capped, jittered, at least a capped `Retry-After`).
pub fn error_policy(obj: Arc<Watched>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_error(KIND_ENDPOINT, err.metric_label());
    match err {
        Error::ConnectionDown { until, .. } => ctx.requeue_at(*until),
        Error::NotLeader => Action::await_change(),
        _ => {
            let delay = ctx
                .memory
                .next_backoff(obj.uid().unwrap_or_default(), err.retry_after());
            warn!(object = %format!("{}/{}", obj.namespace(), obj.name()), error = %err, retry_in = ?delay, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// An object the operator cannot decode: say so in status (keeping what status records), and
/// still honour a deletion with what could be read.
async fn invalid(ctx: &Context, u: &Undecodable) -> Result<Action> {
    let meta = &u.metadata;
    let prev = u.status.clone().unwrap_or_default();
    if meta.deletion_timestamp.is_some() {
        if let Some(identity) = &u.identity {
            return cleanup::run(ctx, meta, &identity.to_spec(), u.status.as_ref()).await;
        }
        if crate::status::has_finalizer(meta) {
            let note = not_deleted(&u.error, prev.inference_id.as_deref());
            publish(ctx, &reference::<Watched>(meta), vec![note]).await;
            crate::status::remove_finalizer(ctx, meta).await?;
        }
        return Ok(Action::await_change());
    }
    let uid = meta.uid.clone().unwrap_or_default();
    let outcome = unreadable(&u.error);
    let record = Record::from_status(&prev, &uid);
    let next = build_status(&prev, &record, &outcome, meta, StatusExtras::from(&prev));
    let previous = prev.condition(READY).map(|c| c.reason.as_str());
    let note = outcome_note(previous, &outcome, pass::RECONCILE);
    if note.is_some() {
        warn!(object = %format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()), "{}", outcome.message);
    }
    let mut rv = meta.resource_version.clone();
    report(ctx, meta, &mut rv, &prev, next, note.into_iter().collect()).await?;
    ctx.metrics.set_endpoint_reason(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
        Some((reason::INVALID_OBJECT, false)),
    );
    Ok(Action::await_change())
}

/// The outcome of an object the operator cannot decode (`error` says where, never a value).
fn unreadable(error: &str) -> Outcome {
    Outcome::stalled(
        reason::INVALID_OBJECT,
        format!(
            "the operator cannot read this resource: {error}. Nothing is sent to Elasticsearch for it; fix or delete it"
        ),
    )
}

/// The Warning when an object that cannot be decoded, and names no endpoint it could delete,
/// is released: what was left behind.
fn not_deleted(error: &str, inference_id: Option<&str>) -> Note {
    Note::warning(
        "NotDeleted",
        "Delete",
        format!(
            "the operator cannot read this resource ({error}), so the Elasticsearch endpoint{} was NOT deleted; delete it by hand if it should go",
            inference_id
                .map(|id| format!(" {id:?}"))
                .unwrap_or_default()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_object_is_stalled_and_says_what_was_left_behind() {
        let o = unreadable("spec.serviceSettings: invalid type at column 12");
        assert_eq!(o.reason, reason::INVALID_OBJECT);
        assert!(o.message.contains("column 12") && o.message.contains("fix or delete it"));
        let n = not_deleted("bad spec", Some("emb"));
        assert_eq!(n.reason, "NotDeleted");
        assert!(
            n.message.contains("\"emb\" was NOT deleted"),
            "{}",
            n.message
        );
        let n = not_deleted("bad spec", None);
        assert!(
            n.message.contains("endpoint was NOT deleted"),
            "{}",
            n.message
        );
    }

    #[test]
    fn each_pass_has_its_own_id() {
        assert_ne!(reconcile_id(), reconcile_id());
    }
}
