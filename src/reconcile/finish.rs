//! The end of an apply pass: one `report` (status when it changed, then the Events), what the
//! per-object memory keeps for the next pass, and what the controller does next. What goes
//! into the report is built by pure functions (`extras`, `with_notice`, `transition_notes`,
//! `resync_watch`).

use k8s_openapi::jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{
    controls,
    failure::failure_outcome,
    pass::{Learned, Pass, RECONCILE as ACTION},
};
use crate::{
    cluster::endpoint_hash,
    conditions::{self, Outcome, READY, reason},
    context::Context,
    crd::InferenceEndpointStatus,
    error::{Error, Result},
    guard::Watched,
    memory::LastSeen,
    model::Version,
    status::{Note, StatusExtras, build_status, outcome_note, report},
};

/// End the pass: one status write if anything changed, the Events it raised and those of its
/// transitions, the resync watch, and what the controller does next.
pub(super) async fn finish(
    pass: &Pass<'_>,
    mut rv: Option<String>,
    stored: &InferenceEndpointStatus,
    mut learned: Learned,
    result: Result<Outcome>,
) -> Result<Action> {
    let ctx = pass.ctx;
    let (outcome, ret) = match result {
        Err(Error::NotLeader) => return Err(Error::NotLeader),
        Ok(o) if o.reason == reason::MODEL_DEPLOYING => {
            (o, Ok(Action::requeue(ctx.memory.next_poll(&pass.uid))))
        }
        Ok(o) => {
            ctx.memory.reset_poll(&pass.uid);
            let next = if o.reason == reason::REPLACEMENT_BLOCKED {
                recheck_blocked(ctx)
            } else {
                Action::await_change()
            };
            (o, Ok(next))
        }
        Err(e) => (failure_outcome(&e), Err(e)),
    };
    // Events compare with the status the pass started from; the write with the one in effect
    // (a mark written by this pass included), whose transition times it keeps.
    let start = &pass.stored;
    let (outcome, notice) = with_notice(start, learned.notice.as_deref(), outcome);
    let extras = extras(pass, stored, &learned);
    let mut notes = std::mem::take(&mut learned.notes);
    notes.extend(notice);
    notes.extend(transition_notes(start, &extras));
    notes.extend(outcome_note(
        start.condition(READY).map(|c| c.reason.as_str()),
        &outcome,
        ACTION,
    ));
    let next = build_status(
        stored,
        &learned.progress.record,
        &outcome,
        &pass.ie.metadata,
        extras,
    );
    report(ctx, &pass.ie.metadata, &mut rv, stored, next, notes).await?;
    let (ns, name) = (pass.namespace(), pass.ie.name_any());
    ctx.metrics
        .set_endpoint_reason(&ns, &name, Some((&outcome.reason, outcome.is_ready())));
    if outcome.is_ready() {
        ctx.memory.open_gate(&pass.uid);
        // What Elasticsearch holds is the values in use now.
        ctx.memory.set_values_mac(&pass.uid, learned.values_mac);
    }
    match resync_watch(pass, &mut learned) {
        Some(mut w) => {
            w.in_sync = outcome.is_ready();
            ctx.memory.set_watch(&pass.uid, Some(w));
        }
        // Stopped before Elasticsearch (Secret, reference, conflict): nothing to watch there.
        None if ret.is_ok() => ctx.memory.set_watch(&pass.uid, None),
        None => {}
    }
    ret
}

/// How long to wait before retrying an outcome that only time can change (references that
/// block a replacement may be removed without any Kubernetes event).
fn recheck_blocked(ctx: &Context) -> Action {
    Action::requeue(ctx.settings.resync.min(std::time::Duration::from_secs(300)))
}

/// The outcome with what the table of services does not know of the spec, and a Warning the
/// first time it is reported.
pub(super) fn with_notice(
    stored: &InferenceEndpointStatus,
    notice: Option<&str>,
    mut outcome: Outcome,
) -> (Outcome, Option<Note>) {
    let Some(notice) = notice else {
        return (outcome, None);
    };
    let said = stored
        .condition(READY)
        .is_some_and(|c| c.message.contains(notice));
    let note = (!said).then(|| Note::warning("UnknownToOperator", ACTION, notice));
    // A gated outcome repeats the stored message, which has the note already.
    if !outcome.message.contains(notice) {
        outcome.message = format!("{}. Note: {notice}", outcome.message);
    }
    (outcome, note)
}

/// What status says besides the record and the outcome.
pub(super) fn extras(
    pass: &Pass<'_>,
    stored: &InferenceEndpointStatus,
    learned: &Learned,
) -> StatusExtras {
    // From the endpoint when this pass read it, else as last reported: a pass that did not look
    // keeps the warning.
    let lifecycle = match learned.progress.observation.endpoint() {
        Some(ep) => controls::model_lifecycle(ep),
        None => stored.model_lifecycle.clone(),
    };
    let warning = lifecycle.as_ref().and_then(|l| {
        controls::lifecycle_warning(
            &pass.id,
            l,
            stored,
            pass.ie.metadata.generation,
            Timestamp::now(),
        )
    });
    StatusExtras {
        version: learned.version.clone(),
        model: learned.model.clone(),
        deletion_policy: Some(pass.deletion_policy),
        last_handled_reconcile_at: pass
            .requested
            .clone()
            .or_else(|| stored.last_handled_reconcile_at.clone()),
        model_lifecycle: lifecycle,
        conditions: warning.into_iter().collect(),
    }
}

/// Events for the transitions that are not outcomes: resumed after a pause, an EIS model that
/// became deprecated.
pub(super) fn transition_notes(
    stored: &InferenceEndpointStatus,
    extras: &StatusExtras,
) -> Vec<Note> {
    let mut notes = Vec::new();
    if stored.condition(conditions::PAUSED).is_some() {
        notes.push(Note::normal(
            "Resumed",
            ACTION,
            format!(
                "the annotation {} is gone: reconciling again",
                controls::PAUSED
            ),
        ));
    }
    if let Some(c) = extras.conditions.first()
        && stored
            .condition(conditions::MODEL_DEPRECATED)
            .map(|p| &p.reason)
            != Some(&c.reason)
    {
        notes.push(Note::warning(&c.reason, ACTION, c.message.clone()));
    }
    notes
}

/// What the resync should compare: the endpoint as last observed, on the resolved cluster.
pub(super) fn resync_watch(pass: &Pass<'_>, learned: &mut Learned) -> Option<LastSeen> {
    if let Some(w) = learned.in_sync.take() {
        return Some(w);
    }
    let cluster = learned.cluster_key.clone()?;
    let observation = &learned.progress.observation;
    observation.is_known().then(|| LastSeen {
        object: ObjectRef::<Watched>::new(&pass.ie.name_any()).within(&pass.namespace()),
        cluster,
        inference_id: pass.id.clone(),
        endpoint: observation.endpoint().map(endpoint_hash),
        version: learned.version.as_deref().and_then(Version::parse),
        in_sync: false,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;

    fn ready_with(message: &str) -> InferenceEndpointStatus {
        InferenceEndpointStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: "True".into(),
                reason: reason::IN_SYNC.into(),
                message: message.into(),
                last_transition_time: Time(Timestamp::now()),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_notice_is_added_to_the_message_and_warned_of_once() {
        let fresh = InferenceEndpointStatus::default();
        let (o, note) = with_notice(&fresh, Some("service x is unknown"), Outcome::ready("ok"));
        assert_eq!(o.message, "ok. Note: service x is unknown");
        assert_eq!(note.map(|n| n.reason), Some("UnknownToOperator".into()));
        // Already said in status: no second Warning; a message that has it is left alone.
        let said = ready_with("ok. Note: service x is unknown");
        let (o, note) = with_notice(&said, Some("service x is unknown"), o);
        assert_eq!(o.message, "ok. Note: service x is unknown");
        assert!(note.is_none());
        // No notice: nothing changes.
        let (o, note) = with_notice(&fresh, None, Outcome::ready("ok"));
        assert_eq!((o.message.as_str(), note), ("ok", None));
    }

    #[test]
    fn resuming_and_a_new_deprecation_raise_events_once() {
        let extras = StatusExtras::default();
        assert!(transition_notes(&InferenceEndpointStatus::default(), &extras).is_empty());
        let paused = InferenceEndpointStatus {
            conditions: vec![Condition {
                type_: conditions::PAUSED.into(),
                status: "True".into(),
                reason: reason::PAUSED.into(),
                message: "paused".into(),
                last_transition_time: Time(Timestamp::now()),
                observed_generation: None,
            }],
            ..Default::default()
        };
        let notes = transition_notes(&paused, &extras);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "Resumed");
        let deprecated = Condition {
            type_: conditions::MODEL_DEPRECATED.into(),
            status: "True".into(),
            reason: "ModelDeprecated".into(),
            message: "m".into(),
            last_transition_time: Time(Timestamp::now()),
            observed_generation: None,
        };
        let with_warning = StatusExtras {
            conditions: vec![deprecated.clone()],
            ..StatusExtras::default()
        };
        let notes = transition_notes(&InferenceEndpointStatus::default(), &with_warning);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "ModelDeprecated");
        let already = InferenceEndpointStatus {
            conditions: vec![deprecated],
            ..Default::default()
        };
        assert!(transition_notes(&already, &with_warning).is_empty());
    }
}
