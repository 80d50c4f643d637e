//! Writing to Kubernetes on behalf of both controllers: status with server-side apply (only when
//! it says something new), the finalizer, and Events on transitions.

use std::fmt::Debug;

use k8s_openapi::{
    api::core::v1::ObjectReference,
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
    core::NamespaceResourceScope,
    runtime::{
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use tracing::warn;

use crate::{
    conditions::{Outcome, Severity, conditions_for, same_conditions},
    context::Context,
    crd::{
        DeletionPolicy, ElasticsearchConnection, ElasticsearchConnectionStatus, FIELD_MANAGER,
        FINALIZER, InferenceEndpointStatus, ModelDeploymentStatus, ModelLifecycle, Ownership,
    },
    error::{Error, Result},
    guard::Watched,
    plan::Record,
};

/// The Events API refuses notes over 1 KiB.
pub const MAX_EVENT_NOTE: usize = 1024;

/// Server-side apply of `status` to an object's status subresource.
pub async fn apply_status<K>(api: &Api<K>, name: &str, status: serde_json::Value) -> Result<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    Ok(api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?)
}

/// What status says besides the record and the outcome.
#[derive(Clone, Debug, Default)]
pub struct StatusExtras {
    pub version: Option<String>,
    pub model: Option<ModelDeploymentStatus>,
    /// The deletion policy in effect.
    pub deletion_policy: Option<DeletionPolicy>,
    /// The reconcile request handled (annotation value).
    pub last_handled_reconcile_at: Option<String>,
    pub model_lifecycle: Option<ModelLifecycle>,
    /// More conditions (Paused, ModelDeprecated), each kept with its transition time.
    pub conditions: Vec<Condition>,
}

impl StatusExtras {
    /// What `prev` already says (for writes that change only the outcome).
    pub fn from(prev: &InferenceEndpointStatus) -> Self {
        Self {
            version: prev.elasticsearch_version.clone(),
            model: prev.model_deployment.clone(),
            deletion_policy: prev.deletion_policy,
            last_handled_reconcile_at: prev.last_handled_reconcile_at.clone(),
            model_lifecycle: prev.model_lifecycle.clone(),
            conditions: prev
                .conditions
                .iter()
                .filter(|c| {
                    c.type_ == crate::conditions::PAUSED
                        || c.type_ == crate::conditions::MODEL_DEPRECATED
                })
                .cloned()
                .collect(),
        }
    }
}

/// A condition of `type_` that is True, keeping its transition time from `prev`.
pub fn true_condition(
    prev: &InferenceEndpointStatus,
    type_: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    crate::conditions::condition(
        &prev.conditions,
        type_,
        "True",
        reason,
        message,
        generation,
        &Time(Timestamp::now()),
    )
}

/// The status for `record` and `outcome` (pure but for the clock).
pub fn build_status(
    prev: &InferenceEndpointStatus,
    record: &Record,
    outcome: &Outcome,
    meta: &ObjectMeta,
    extras: StatusExtras,
) -> InferenceEndpointStatus {
    let now = Time(Timestamp::now());
    let generation = meta.generation;
    let mut conditions = conditions_for(&prev.conditions, outcome, generation, &now);
    conditions.extend(extras.conditions);
    InferenceEndpointStatus {
        observed_generation: generation,
        conditions,
        inference_id: record.inference_id.clone(),
        ownership: record.ownership,
        owner_uid: record.ownership.and(meta.uid.clone()),
        create_attempts: (record.ownership == Some(Ownership::Creating))
            .then(|| i32::try_from(record.create_attempts).unwrap_or(i32::MAX)),
        cluster_uuid: record.cluster_uuid.clone(),
        elasticsearch_version: extras
            .version
            .or_else(|| prev.elasticsearch_version.clone()),
        secret_versions: record.secrets_applied.clone(),
        secret_fingerprint: None,
        applied_config_hash: record.applied_config_hash.clone(),
        replaced_for: record.replaced_for.clone(),
        model_deployment: extras.model,
        deletion_policy: extras.deletion_policy,
        last_handled_reconcile_at: extras.last_handled_reconcile_at,
        model_lifecycle: extras.model_lifecycle,
    }
}

/// An Event a pass raises. Steps and checks return their notes; `report` publishes them, after
/// the status write, so every path of both controllers raises Events the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: String,
    /// What the controller was doing (`Reconcile`, `Delete`, `Check`, `Enable`, …).
    pub action: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &str, action: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason: reason.to_string(),
            action,
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, action: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            ..Self::normal(reason, action, message)
        }
    }
}

/// The Warning Event of an outcome that needs attention, when its reason is new (Events fire
/// on transitions, not on every pass).
pub fn outcome_note(
    previous_reason: Option<&str>,
    outcome: &Outcome,
    action: &'static str,
) -> Option<Note> {
    (outcome.severity != Severity::Ready && previous_reason != Some(outcome.reason.as_str()))
        .then(|| Note::warning(&outcome.reason, action, outcome.message.clone()))
}

/// A status the operator writes: equality that ignores condition times, and what is remembered
/// of an own write.
pub trait WrittenStatus: Serialize + Clone + PartialEq {
    type Kind: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug;

    fn conditions(&self) -> &[Condition];

    /// This status without its conditions.
    fn without_conditions(&self) -> Self;

    /// Equal but for condition transition times.
    fn same(&self, other: &Self) -> bool {
        same_conditions(self.conditions(), other.conditions())
            && self.without_conditions() == other.without_conditions()
    }

    /// Whether the watch of this kind tells the operator's own writes from others' (then each
    /// write is announced to memory before it is sent, see `Memory::writing`).
    const OWN_WRITES: bool = false;

    /// Remember the write, for passes that run on a cache that has not seen it yet; whether
    /// something the watch showed meanwhile needs a pass (see `Memory::wrote_status`).
    fn remember(
        _ctx: &Context,
        _uid: &str,
        _before: Option<&str>,
        _after: Option<&str>,
        _next: &Self,
    ) -> bool {
        false
    }
}

impl WrittenStatus for InferenceEndpointStatus {
    type Kind = Watched;

    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn without_conditions(&self) -> Self {
        Self {
            conditions: Vec::new(),
            ..self.clone()
        }
    }

    const OWN_WRITES: bool = true;

    fn remember(
        ctx: &Context,
        uid: &str,
        before: Option<&str>,
        after: Option<&str>,
        next: &Self,
    ) -> bool {
        ctx.memory.wrote_status(uid, before, after, next.clone())
    }
}

impl WrittenStatus for ElasticsearchConnectionStatus {
    type Kind = ElasticsearchConnection;

    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn without_conditions(&self) -> Self {
        Self {
            conditions: Vec::new(),
            ..self.clone()
        }
    }
}

/// The one way both controllers write to Kubernetes at the end of a pass (or at a mark within
/// it): the status when it says something new (server-side apply), then the Events. Returns the
/// status in effect; `rv` is the object's resourceVersion before the write, and after it on
/// return.
pub async fn report<S: WrittenStatus>(
    ctx: &Context,
    meta: &ObjectMeta,
    rv: &mut Option<String>,
    prev: &S,
    next: S,
    notes: Vec<Note>,
) -> Result<S> {
    let in_effect = if prev.same(&next) {
        prev.clone()
    } else {
        write_status(ctx, meta, rv, next).await?
    };
    // Only after the status that records them: a pass whose write failed raises nothing, and
    // the next pass, which finds the same status, raises them then (a lost create answer is
    // claimed and announced, an update is sent and announced again), so a failing write never
    // repeats Warnings at the rate of the backoff.
    publish(ctx, &reference::<S::Kind>(meta), notes).await;
    Ok(in_effect)
}

async fn write_status<S: WrittenStatus>(
    ctx: &Context,
    meta: &ObjectMeta,
    rv: &mut Option<String>,
    next: S,
) -> Result<S> {
    ctx.fence.check()?;
    let ns = meta.namespace.as_deref().ok_or(Error::MissingNamespace)?;
    let name = meta.name.as_deref().unwrap_or_default();
    let api: Api<S::Kind> = Api::namespaced(ctx.client.clone(), ns);
    let value = serde_json::to_value(&next).map_err(|e| Error::Unavailable(e.to_string()))?;
    let in_flight = S::OWN_WRITES.then(|| InFlight::begin(ctx, meta));
    let updated = apply_status(&api, name, value).await?;
    ctx.metrics.kubernetes_write("status");
    let new_rv = updated.meta().resource_version.clone();
    if let Some(uid) = meta.uid.as_deref()
        && S::remember(ctx, uid, rv.as_deref(), new_rv.as_deref(), &next)
    {
        retrigger(ctx, meta);
    }
    if let Some(w) = in_flight {
        w.answered();
    }
    *rv = new_rv;
    Ok(next)
}

/// An own write of an InferenceEndpoint on its way (`Memory::writing`). Dropped before its
/// answer is recorded (the write failed, or the pass was cancelled while it waited), it lets go
/// of what the watch showed meanwhile, as a trigger if anything was held: memory never stays
/// "in flight", so no change of the object is left without its pass.
struct InFlight<'a> {
    ctx: &'a Context,
    meta: &'a ObjectMeta,
    armed: bool,
}

impl<'a> InFlight<'a> {
    fn begin(ctx: &'a Context, meta: &'a ObjectMeta) -> Self {
        if let Some(uid) = meta.uid.as_deref() {
            ctx.memory.writing(uid);
        }
        Self {
            ctx,
            meta,
            armed: true,
        }
    }

    /// The answer was recorded (`wrote_status`, `wrote_object`), which judged what was held.
    fn answered(mut self) {
        self.armed = false;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(uid) = self.meta.uid.as_deref()
            && self.ctx.memory.write_failed(uid)
        {
            retrigger(self.ctx, self.meta);
        }
    }
}

/// Ask for a pass over the object: something the watch showed while an own write was in flight
/// was someone else's change.
fn retrigger(ctx: &Context, meta: &ObjectMeta) {
    let name = meta.name.as_deref().unwrap_or_default();
    let ns = meta.namespace.as_deref().unwrap_or_default();
    ctx.triggers
        .send(ObjectRef::<Watched>::new(name).within(ns));
}

/// The reference Events are about, for an object of kind `K` (what `Resource::object_ref`
/// builds, from the metadata alone).
pub fn reference<K: Resource<DynamicType = ()>>(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// Add the finalizer (server-side apply of this one list item: other finalizers are untouched,
/// no read-modify-write race). Returns whether it had to be added; `rv` as for status writes.
pub async fn ensure_finalizer(
    ctx: &Context,
    meta: &ObjectMeta,
    rv: &mut Option<String>,
) -> Result<bool> {
    if meta
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
        || meta.uid.as_deref().is_some_and(|uid| {
            // The cache still shows the object before our own write added it.
            ctx.memory.is_stale(uid, meta.resource_version.as_deref())
        })
    {
        return Ok(false);
    }
    ctx.fence.check()?;
    let ns = meta.namespace.as_deref().ok_or(Error::MissingNamespace)?;
    let name = meta.name.as_deref().unwrap_or_default();
    let api: Api<Watched> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": Watched::api_version(&()),
        "kind": Watched::kind(&()),
        "metadata": {"name": name, "finalizers": [FINALIZER]},
    });
    let in_flight = InFlight::begin(ctx, meta);
    let updated = api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.kubernetes_write("finalizer");
    let new_rv = updated.meta().resource_version.clone();
    if let Some(uid) = meta.uid.as_deref()
        && ctx
            .memory
            .wrote_object(uid, rv.as_deref(), new_rv.as_deref())
    {
        retrigger(ctx, meta);
    }
    in_flight.answered();
    *rv = new_rv;
    Ok(true)
}

/// Whether the object carries this operator's finalizer.
pub fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Status of a paused resource (apply or deletion alike): everything as it was, and a Paused
/// condition with `message`; Ready keeps its last value, so GitOps health does not flap.
pub async fn write_paused(
    ctx: &Context,
    meta: &ObjectMeta,
    rv: &mut Option<String>,
    stored: &InferenceEndpointStatus,
    message: String,
    note: Option<Note>,
) -> Result<()> {
    let mut next = stored.clone();
    next.conditions
        .retain(|c| c.type_ != crate::conditions::PAUSED);
    next.conditions.push(true_condition(
        stored,
        crate::conditions::PAUSED,
        crate::conditions::reason::PAUSED,
        message,
        meta.generation,
    ));
    report(ctx, meta, rv, stored, next, note.into_iter().collect()).await?;
    Ok(())
}

/// Remove the finalizer: a JSON patch that removes exactly our entry, guarded by a test of that
/// entry; on a stale view it reads the object once more.
pub async fn remove_finalizer(ctx: &Context, meta: &ObjectMeta) -> Result<()> {
    ctx.fence.check()?;
    let ns = meta.namespace.as_deref().ok_or(Error::MissingNamespace)?;
    let name = meta.name.as_deref().unwrap_or_default();
    let api: Api<Watched> = Api::namespaced(ctx.client.clone(), ns);
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    for attempt in 0..2 {
        let Some(i) = finalizers.iter().position(|f| f == FINALIZER) else {
            return Ok(());
        };
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]))
        .map_err(|e| Error::Unavailable(e.to_string()))?;
        let result = api
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await;
        ctx.metrics.kubernetes_write("finalizer");
        match result {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 422 && attempt == 0 => {
                match api.get_opt(name).await? {
                    Some(fresh) => finalizers = fresh.meta().finalizers.clone().unwrap_or_default(),
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Publish Events. Failures are logged, never fatal; notes are cut to what the API accepts.
pub async fn publish(ctx: &Context, reference: &ObjectReference, notes: Vec<Note>) {
    for note in notes {
        if ctx.fence.check().is_err() {
            return;
        }
        let ev = Event {
            type_: note.type_,
            reason: note.reason,
            note: Some(truncate(note.message, MAX_EVENT_NOTE)),
            action: note.action.into(),
            secondary: None,
        };
        ctx.metrics.kubernetes_write("event");
        if let Err(e) = ctx.recorder().publish(&ev, reference).await {
            warn!(error = %e, "could not publish event");
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary, marked with an ellipsis.
pub fn truncate(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let long = "é".repeat(600); // 1200 bytes
        let cut = truncate(long, MAX_EVENT_NOTE);
        assert!(cut.len() <= MAX_EVENT_NOTE, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }
}
