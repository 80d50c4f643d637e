//! The InferenceEndpoint reconciler: the entry point the controller calls, and its error policy.
//!
//! One pass is: the finalizer, then `apply` (bring Elasticsearch in line with the spec) or
//! `cleanup` (the resource is being deleted), then one status write if anything changed.
//! Objects the operator cannot decode get a condition that says so, and can still be deleted.

mod apply;
mod cleanup;
pub mod controls;
mod failure;
mod observe;
mod steps;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use kube::{Resource, runtime::controller::Action, runtime::events::EventType};
use tracing::{Instrument, info_span, warn};

use crate::{
    conditions::{Outcome, READY, reason},
    context::Context,
    crd::FINALIZER,
    error::{Error, Result},
    guard::{Undecodable, Watched},
    metrics::KIND_ENDPOINT,
    plan::Record,
    status::{StatusExtras, build_status, publish, write_endpoint_status},
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
        let has_ours = meta
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        if has_ours {
            let note = format!(
                "the operator cannot read this resource ({}), so the Elasticsearch endpoint{} was NOT deleted; delete it by hand if it should go",
                u.error,
                prev.inference_id
                    .as_deref()
                    .map(|id| format!(" {id:?}"))
                    .unwrap_or_default()
            );
            let reference = Watched::Invalid(Box::new(u.clone())).object_ref(&());
            publish(
                ctx,
                &reference,
                EventType::Warning,
                "NotDeleted",
                "Delete",
                note,
            )
            .await;
            crate::status::remove_finalizer(ctx, meta).await?;
        }
        return Ok(Action::await_change());
    }
    let uid = meta.uid.clone().unwrap_or_default();
    let outcome = Outcome::stalled(
        reason::INVALID_OBJECT,
        format!(
            "the operator cannot read this resource: {}. Nothing is sent to Elasticsearch for it; fix or delete it",
            u.error
        ),
    );
    let record = Record::from_status(&prev, &uid);
    let next = build_status(&prev, &record, &outcome, meta, StatusExtras::from(&prev));
    let mut rv = meta.resource_version.clone();
    write_endpoint_status(ctx, meta, &mut rv, &prev, next).await?;
    if prev.condition(READY).map(|c| c.reason.as_str()) != Some(reason::INVALID_OBJECT) {
        warn!(object = %format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()), "{}", outcome.message);
        let reference = Watched::Invalid(Box::new(u.clone())).object_ref(&());
        publish(
            ctx,
            &reference,
            EventType::Warning,
            reason::INVALID_OBJECT,
            "Reconcile",
            outcome.message.clone(),
        )
        .await;
    }
    ctx.metrics.set_endpoint_reason(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
        Some((reason::INVALID_OBJECT, false)),
    );
    Ok(Action::await_change())
}

/// How long to wait before retrying an outcome that only time can change (references that
/// block a replacement may be removed without any Kubernetes event).
fn recheck_blocked(ctx: &Context) -> Action {
    Action::requeue(ctx.settings.resync.min(Duration::from_secs(300)))
}

/// Status of a paused resource (apply or deletion alike): everything as it was, and a Paused
/// condition with `message`; Ready keeps its last value, so GitOps health does not flap.
async fn write_paused(
    ctx: &Context,
    meta: &kube::api::ObjectMeta,
    rv: &mut Option<String>,
    stored: &crate::crd::InferenceEndpointStatus,
    message: String,
) -> Result<()> {
    let mut next = stored.clone();
    next.conditions
        .retain(|c| c.type_ != crate::conditions::PAUSED);
    next.conditions.push(crate::status::true_condition(
        stored,
        crate::conditions::PAUSED,
        crate::conditions::reason::PAUSED,
        message,
        meta.generation,
    ));
    crate::status::write_endpoint_status(ctx, meta, rv, stored, next).await?;
    Ok(())
}
