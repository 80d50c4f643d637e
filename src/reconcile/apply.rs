//! One apply pass: read the inputs (Secrets, the cluster reference), read the endpoint as
//! cheaply as the situation allows, then ask the pure core for steps until it says `Done`.

use std::sync::Arc;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use tracing::debug;

use super::{
    controls,
    failure::failure_outcome,
    recheck_blocked,
    steps::{Effect, StepInputs},
};
use crate::{
    catalog,
    cluster::{Cluster, endpoint_hash},
    conditions::{self, Outcome, READY, Severity, reason},
    connection::{Target, TargetProblem},
    context::{Context, LastSeen},
    crd::{
        DeletionPolicy, InferenceEndpoint, InferenceEndpointStatus, ManagementPolicy,
        ModelDeploymentStatus, Ownership, TenancyPolicy,
    },
    desired::{SecretValues, config_hash, validate},
    error::{Error, Result},
    guard::Watched,
    model::{ClusterInfo, EndpointConfig, Version},
    plan::{Decision, Facts, Record, Step, conflict_owner, decide},
    policy::{self, NamespaceInfo},
    secrets::{
        SecretProblem, legacy_fingerprint, referenced_secrets, resolve, values_mac, versions,
    },
    status::{StatusExtras, build_status, ensure_finalizer, publish, write_endpoint_status},
};

/// Most steps one pass may take before it is considered stuck (a bug, reported not looped).
const MAX_STEPS: usize = 10;

/// The working state of one pass.
pub(super) struct Pass<'a> {
    pub ctx: &'a Context,
    pub ie: &'a InferenceEndpoint,
    pub uid: String,
    pub id: String,
    /// The object's resourceVersion as of our last write.
    pub rv: Option<String>,
    /// The status in effect (updated by intermediate writes).
    pub stored: InferenceEndpointStatus,
    /// The reason of Ready when the pass started (Events fire on changes).
    pub previous_reason: Option<String>,
    pub record: Record,
    pub version: Option<String>,
    pub model: Option<ModelDeploymentStatus>,
    /// The endpoint as last observed, and whether that came from Elasticsearch just now.
    pub observed: Option<EndpointConfig>,
    pub fresh: bool,
    /// Whether `observed` says what Elasticsearch has (the pass got that far).
    pub observed_known: bool,
    /// The cluster reference the pass resolved.
    pub cluster_key: Option<String>,
    /// What the resync should watch, when the quiet path found it unchanged.
    pub watch: Option<LastSeen>,
    /// A `Creating` mark was written by this pass (its first create needs no new mark).
    pub marked_this_pass: bool,
    /// The mark replaced a record of an endpoint this resource had (a re-creation).
    pub recreating: bool,
    /// This pass deleted the endpoint to replace it.
    pub replaced: bool,
    /// The MAC of the values in use (see `recognise_unchanged_values`).
    pub values_mac: Option<[u8; 16]>,
    /// The reconcile request on the object, and whether it is new (then nothing is read from
    /// the shared snapshot).
    pub requested: Option<String>,
    pub forced: bool,
    /// The deletion policy in effect (for status).
    pub deletion_policy: DeletionPolicy,
    /// The namespace's labels and annotations, when they could be read.
    pub ns_info: Option<NamespaceInfo>,
    /// What the table of Elasticsearch services does not know of the spec (sent as written):
    /// added to the Ready message, and a Warning Event when it first appears.
    pub notice: Option<String>,
}

pub async fn run(ctx: &Context, ie: &InferenceEndpoint) -> Result<Action> {
    let uid = ie.metadata.uid.clone().unwrap_or_default();
    let mut rv = ie.metadata.resource_version.clone();
    let observe_only = ie.spec.management_policy == ManagementPolicy::Observe;
    if !observe_only && !controls::is_paused(&ie.metadata) {
        // The finalizer comes first: nothing is sent to Elasticsearch for an object that could
        // be deleted without cleanup.
        ensure_finalizer(ctx, &ie.metadata, &mut rv).await?;
    }
    let stored = ctx.memory.effective_status(
        &uid,
        ie.metadata.resource_version.as_deref(),
        ie.status.as_ref(),
    );
    if controls::is_paused(&ie.metadata) {
        return paused(ctx, ie, &stored, rv).await;
    }
    let requested = controls::requested_at(&ie.metadata);
    let forced = requested.is_some() && requested != stored.last_handled_reconcile_at;
    if forced {
        // Asked to look again: a permanent failure is tried again too.
        ctx.memory.open_gate(&uid);
    }
    let ns_info = ctx
        .namespace_info(&ie.namespace().unwrap_or_default())
        .await;
    if let Some(bad) = ns_info.as_ref().and_then(policy::invalid_annotation) {
        tracing::warn!(
            annotation = policy::NAMESPACE_DELETION_POLICY,
            value = bad,
            "ignoring the namespace's deletion policy: it is neither Delete nor Retain, so the operator's default applies"
        );
    }
    let deletion_policy = policy::deletion_policy(
        &ie.spec,
        ns_info.as_ref(),
        ctx.settings.default_deletion_policy,
    );
    let mut pass = Pass {
        ctx,
        ie,
        id: ie.inference_id(),
        rv,
        previous_reason: stored.condition(READY).map(|c| c.reason.clone()),
        record: Record::from_status(&stored, &uid),
        version: stored.elasticsearch_version.clone(),
        model: stored.model_deployment.clone(),
        stored,
        uid,
        observed: None,
        fresh: false,
        observed_known: false,
        cluster_key: None,
        watch: None,
        marked_this_pass: false,
        recreating: false,
        replaced: false,
        values_mac: None,
        requested,
        forced,
        deletion_policy,
        ns_info,
        notice: None,
    };
    let result = if observe_only {
        pass.observe_only().await
    } else {
        pass.sync().await
    };
    pass.finish(result).await
}

/// Paused: nothing is sent to Elasticsearch; Ready keeps its last value (GitOps health does not
/// flap) and a Paused condition says why.
async fn paused(
    ctx: &Context,
    ie: &InferenceEndpoint,
    stored: &InferenceEndpointStatus,
    mut rv: Option<String>,
) -> Result<Action> {
    let message = format!(
        "paused by the annotation {}: nothing is sent to Elasticsearch for this resource until it is removed",
        controls::PAUSED
    );
    super::write_paused(ctx, &ie.metadata, &mut rv, stored, message.clone()).await?;
    if stored.condition(conditions::PAUSED).is_none() {
        publish(
            ctx,
            &ie.object_ref(&()),
            EventType::Normal,
            reason::PAUSED,
            "Pause",
            message,
        )
        .await;
    }
    Ok(Action::await_change())
}

impl Pass<'_> {
    /// The pass up to its outcome. `Err` only for problems that are retried.
    async fn sync(&mut self) -> Result<Outcome> {
        let spec = &self.ie.spec;
        if let Err(problem) = validate(spec) {
            return Ok(Outcome::stalled(
                reason::INVALID_SPEC,
                format!("{problem}; nothing was sent to Elasticsearch"),
            ));
        }
        if let Err(problem) = catalog::check_secrets(spec) {
            return Ok(Outcome::stalled(
                reason::INVALID_SPEC,
                format!("{problem}; nothing was sent to Elasticsearch"),
            ));
        }
        // The Secret watch says which versions are current: when Elasticsearch holds those, no
        // value is read unless a step sends it (then `load_values`).
        let ns = self.ie.namespace().unwrap_or_default();
        let names = referenced_secrets(spec);
        let known = self.ctx.secret_reads.versions(&ns, &names).await;
        let (values, current) = match known {
            Some(v) if self.record.secrets_applied.as_deref() == Some(v.as_str()) => {
                (None, Some(v))
            }
            _ => match self.load_secrets().await? {
                Ok((values, current)) => {
                    self.values_mac = Some(values_mac(self.ctx.process_key(), &values));
                    self.recognise_unchanged_values(&values, current.as_deref());
                    (Some(values), current)
                }
                Err(problem) => return Ok(secret_outcome(&problem)),
            },
        };
        let (target, cluster, info) =
            match self.reach("; nothing was sent to Elasticsearch").await? {
                Ok(reached) => reached,
                Err(outcome) => return Ok(outcome),
            };
        if let Some(owner) = self.conflict(&target, &info) {
            return Ok(Outcome::stalled(
                reason::CONFLICT,
                format!(
                    "InferenceEndpoint {owner} owns inference endpoint {:?} on this cluster; this resource sends nothing to Elasticsearch. Choose another spec.inferenceId, or delete one of the two",
                    self.id
                ),
            ));
        }
        self.warn_if_cluster_changed(&info).await;
        let unsupported = match catalog::check_version(spec, info.version) {
            Ok(unknown) => {
                self.notice = (!unknown.is_empty()).then(|| unknown.join("; "));
                None
            }
            Err(u) => Some(u),
        };
        let mut inputs = StepInputs {
            unsupported,
            cluster: &cluster,
            info: &info,
            values,
            secrets: current,
            desired_hash: config_hash(spec),
        };
        if let Some(done) = self.read_endpoint(&inputs).await? {
            return Ok(done);
        }
        self.steps(&mut inputs).await
    }

    /// Read the Secrets' values for a step that sends them (the pass started without them):
    /// `Some` outcome when they cannot be read. The versions read may be newer than the watch
    /// said; the core is asked again with them.
    async fn load_values(&mut self, inputs: &mut StepInputs<'_>) -> Result<Option<Outcome>> {
        match self.load_secrets().await? {
            Ok((values, current)) => {
                self.values_mac = Some(values_mac(self.ctx.process_key(), &values));
                self.recognise_unchanged_values(&values, current.as_deref());
                inputs.values = Some(values);
                inputs.secrets = current;
                Ok(None)
            }
            Err(problem) => Ok(Some(secret_outcome(&problem))),
        }
    }

    /// The cluster of this pass: the reference resolved (and allowed by the tenancy rules), its
    /// client and its identity; `Err` with the outcome to report when the user must change
    /// something first (`suffix` ends its message).
    pub(super) async fn reach(
        &mut self,
        suffix: &str,
    ) -> Result<std::result::Result<(Target, Arc<Cluster>, ClusterInfo), Outcome>> {
        let target = match self.target().await {
            Ok(t) => t,
            Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
            Err(problem) => {
                return Ok(Err(Outcome::stalled(
                    problem.reason(),
                    format!("{problem}{suffix}"),
                )));
            }
        };
        if let Some(violation) = self.policy_violation(&target)? {
            return Ok(Err(violation));
        }
        let cluster = match self.ctx.clusters.get(&target) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(Outcome::stalled(
                    reason::CONNECTION_FAILED,
                    format!("cannot build a client for {}: {e}", target.url),
                )));
            }
        };
        self.cluster_key = Some(cluster.key().to_string());
        let info = cluster.identity().await?;
        self.version = Some(info.version.to_string());
        Ok(Ok((target, cluster, info)))
    }

    /// Ask the pure core for steps until it is done.
    async fn steps(&mut self, inputs: &mut StepInputs<'_>) -> Result<Outcome> {
        let mut last_update = None;
        for _ in 0..MAX_STEPS {
            let decision = decide(&Facts {
                spec: &self.ie.spec,
                inference_id: &self.id,
                record: &self.record,
                cluster: inputs.info,
                secrets: inputs.secrets.as_deref(),
                observed: self.observed.as_ref(),
            });
            let step = match decision {
                Decision::Done(o) if o.is_ready() => return self.ready(inputs, o).await,
                // A problem seen on the shared snapshot is confirmed on a fresh read.
                Decision::Done(_) if !self.fresh => {
                    self.refresh(inputs.cluster).await?;
                    continue;
                }
                Decision::Done(o) => return Ok(o),
                Decision::Act(step) if step.needs_fresh_observation() && !self.fresh => {
                    self.refresh(inputs.cluster).await?;
                    continue;
                }
                Decision::Act(step) => step,
            };
            if step.sends_request()
                && let Some(u) = &inputs.unsupported
            {
                return Ok(Outcome::stalled(
                    reason::UNSUPPORTED_BY_CLUSTER,
                    format!("{u}; nothing was sent to Elasticsearch"),
                ));
            }
            if step.sends_secrets() && inputs.values.is_none() {
                match self.load_values(inputs).await? {
                    Some(outcome) => return Ok(outcome),
                    None => continue,
                }
            }
            // The same write, with the same inputs, against the same endpoint. A create's mark
            // counts as the create: a refused create is not marked again.
            let family = match &step {
                Step::MarkCreating => "create",
                other => other.name(),
            };
            let attempt = format!(
                "{family}/{}/{}/{:?}",
                inputs.desired_hash,
                inputs.secrets.as_deref().unwrap_or("-"),
                self.observed.as_ref().map(endpoint_hash)
            );
            if self.ctx.memory.gate_closed(&self.uid, &attempt) {
                debug!(attempt, "not repeating a write that failed permanently");
                return Ok(self.gated_outcome());
            }
            match self.execute(step, inputs, &mut last_update).await? {
                Effect::Continue => {}
                Effect::Finish(outcome) => return Ok(outcome),
                Effect::Refused(outcome) => {
                    self.ctx.memory.close_gate(&self.uid, attempt);
                    return Ok(outcome);
                }
            }
        }
        Err(Error::Unsettled(format!(
            "reconcile of {:?} did not settle after {MAX_STEPS} steps",
            self.id
        )))
    }

    /// The configuration is in sync. A model-backed endpoint is usable only once its deployment
    /// has started.
    async fn ready(&mut self, inputs: &StepInputs<'_>, o: Outcome) -> Result<Outcome> {
        self.record.applied_config_hash = Some(inputs.desired_hash.clone());
        let spec = &self.ie.spec;
        if !crate::plan::uses_model_deployment(spec) {
            return Ok(o);
        }
        let dep = crate::plan::deployment_id(spec, &self.id);
        let stats = inputs.cluster.deployment_stats(&dep).await?;
        self.model = stats.as_ref().map(|d| ModelDeploymentStatus {
            deployment_id: d.deployment_id.clone(),
            model_id: d.model_id.clone(),
            state: d.state.clone(),
            allocations: d.allocations.and_then(|n| i64::try_from(n).ok()),
            target_allocations: d.target_allocations.and_then(|n| i64::try_from(n).ok()),
            allocation_state: d.allocation_state.clone(),
        });
        Ok(crate::plan::deployment_outcome(spec, &self.id, stats.as_ref()).unwrap_or(o))
    }

    fn gated_outcome(&self) -> Outcome {
        let c = self.stored.condition(READY);
        Outcome::stalled(
            reason::REJECTED,
            c.map(|c| c.message.clone())
                .unwrap_or_else(|| "the last request was rejected".into()),
        )
        .with_reason(c.map(|c| c.reason.clone()))
    }

    /// Read the endpoint afresh.
    pub(super) async fn refresh(&mut self, cluster: &Cluster) -> Result<()> {
        self.observed = cluster.get(&self.id).await?;
        self.fresh = true;
        self.observed_known = true;
        Ok(())
    }

    /// Read the endpoint as cheaply as the situation allows. Returns an outcome when the
    /// resource is known to be in sync without any per-object work.
    ///
    /// - A resource in sync whose inputs did not change reads the shared list snapshot (one list
    ///   per cluster per resync interval); if the endpoint there is exactly what it was when the
    ///   resource was last in sync, there is nothing to do.
    /// - A resource that never sent a create looks its id up in the snapshot (a create on an id
    ///   that exists after all is refused by Elasticsearch, never overwrites it); one that may
    ///   have sent one, or that means to adopt, reads the endpoint instead.
    /// - Anything else uses the snapshot's view when it is the one last seen, and otherwise reads
    ///   the endpoint; steps that change ownership or destroy always read it first.
    async fn read_endpoint(&mut self, inputs: &StepInputs<'_>) -> Result<Option<Outcome>> {
        let cluster = inputs.cluster;
        if self.forced {
            // A reconcile request reads the endpoint itself, never the shared snapshot.
            self.refresh(cluster).await?;
            return Ok(None);
        }
        let ownership = self.record.ownership_of(&self.id, &inputs.info.uuid);
        let snapshot = cluster.snapshot(self.ctx.settings.resync).await?;
        let listed = snapshot.hash(&self.id);
        let watch = self
            .ctx
            .memory
            .watch_of(&self.uid)
            .filter(|w| w.cluster == cluster.key() && w.inference_id == self.id);
        let quiet = self.stored.condition(READY).map(|c| c.reason.as_str())
            == Some(reason::IN_SYNC)
            && self.stored.observed_generation == self.ie.metadata.generation
            && self.record.secrets_applied.as_deref() == inputs.secrets.as_deref()
            && self.record.applied_config_hash.as_deref() == Some(inputs.desired_hash.as_str())
            && matches!(ownership, Some(Ownership::Created | Ownership::Adopted));
        let unchanged = watch
            .as_ref()
            .is_some_and(|w| w.endpoint == listed && listed.is_some());
        if quiet && unchanged && watch.as_ref().is_some_and(|w| w.in_sync) {
            debug!("in sync (the shared snapshot shows the endpoint as last seen)");
            // Decided on this version now: an upgrade triggers one pass, not one per resync.
            self.watch = watch.map(|w| LastSeen {
                version: Some(inputs.info.version),
                ..w
            });
            return Ok(Some(Outcome::ready(format!(
                "inference endpoint {:?} matches the spec",
                self.id
            ))));
        }
        // A create may have been sent under a `Creating` mark: look afresh before sending another.
        // `adopt: true` expects the endpoint to exist: a snapshot older than it would turn the
        // adoption into a create attempt, so it is read afresh too.
        let never_sent = ownership.is_none();
        let trust_absence = never_sent && !self.ie.spec.adopt;
        if listed.is_some() && (unchanged || quiet) || listed.is_none() && trust_absence {
            self.observed = snapshot.get(&self.id)?;
            self.fresh = false;
            self.observed_known = true;
        } else {
            self.refresh(cluster).await?;
        }
        Ok(None)
    }

    /// End the pass: one status write if anything changed, Events on transitions, the resync
    /// watch, and what the controller does next.
    async fn finish(mut self, result: Result<Outcome>) -> Result<Action> {
        let ns = self.ie.namespace().unwrap_or_default();
        let name = self.ie.name_any();
        let (outcome, ret) = match result {
            Err(Error::NotLeader) => return Err(Error::NotLeader),
            Ok(o) if o.reason == reason::MODEL_DEPLOYING => {
                let next = Action::requeue(self.ctx.memory.next_poll(&self.uid));
                (o, Ok(next))
            }
            Ok(o) => {
                self.ctx.memory.reset_poll(&self.uid);
                let next = if o.reason == reason::REPLACEMENT_BLOCKED {
                    recheck_blocked(self.ctx)
                } else {
                    Action::await_change()
                };
                (o, Ok(next))
            }
            Err(e) => (failure_outcome(&e), Err(e)),
        };
        let outcome = self.with_notice(outcome).await;
        let next = build_status(
            &self.stored,
            &self.record,
            &outcome,
            &self.ie.metadata,
            self.extras(),
        );
        write_endpoint_status(
            self.ctx,
            &self.ie.metadata,
            &mut self.rv,
            &self.stored,
            next,
        )
        .await?;
        self.transition_events().await;
        self.ctx.metrics.set_endpoint_reason(
            &ns,
            &name,
            Some((&outcome.reason, outcome.is_ready())),
        );
        if outcome.severity != Severity::Ready
            && self.previous_reason.as_deref() != Some(outcome.reason.as_str())
        {
            self.event(
                EventType::Warning,
                &outcome.reason.clone(),
                outcome.message.clone(),
            )
            .await;
        }
        if outcome.is_ready() {
            self.ctx.memory.open_gate(&self.uid);
            // What Elasticsearch holds is the values in use now.
            self.ctx.memory.set_values_mac(&self.uid, self.values_mac);
        }
        match self.resync_watch() {
            Some(mut w) => {
                w.in_sync = outcome.is_ready();
                self.ctx.memory.set_watch(&self.uid, Some(w));
            }
            // Stopped before Elasticsearch (Secret, reference, conflict): nothing to watch there.
            None if ret.is_ok() => self.ctx.memory.set_watch(&self.uid, None),
            None => {}
        }
        ret
    }

    /// The outcome with what the table of services does not know of the spec; a Warning Event
    /// the first time it is reported.
    async fn with_notice(&self, mut outcome: Outcome) -> Outcome {
        let Some(notice) = &self.notice else {
            return outcome;
        };
        let said = self
            .stored
            .condition(READY)
            .is_some_and(|c| c.message.contains(notice.as_str()));
        if !said {
            self.event(EventType::Warning, "UnknownToOperator", notice.clone())
                .await;
        }
        // A gated outcome repeats the stored message, which has the note already.
        if !outcome.message.contains(notice.as_str()) {
            outcome.message = format!("{}. Note: {notice}", outcome.message);
        }
        outcome
    }

    /// What the resync should compare: the endpoint as last observed, on the resolved cluster.
    fn resync_watch(&mut self) -> Option<LastSeen> {
        if let Some(w) = self.watch.take() {
            return Some(w);
        }
        let cluster = self.cluster_key.clone()?;
        self.observed_known.then(|| LastSeen {
            object: ObjectRef::<Watched>::new(&self.ie.name_any())
                .within(&self.ie.namespace().unwrap_or_default()),
            cluster,
            inference_id: self.id.clone(),
            endpoint: self.observed.as_ref().map(endpoint_hash),
            version: self.version.as_deref().and_then(Version::parse),
            in_sync: false,
        })
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, note: String) {
        publish(
            self.ctx,
            &self.ie.object_ref(&()),
            type_,
            reason,
            "Reconcile",
            note,
        )
        .await;
    }

    /// What status says besides the record and the outcome.
    fn extras(&self) -> StatusExtras {
        // From the endpoint when this pass read it, else as last reported: a pass that did
        // not look keeps the warning.
        let lifecycle = match &self.observed {
            Some(ep) => controls::model_lifecycle(ep),
            None => self.stored.model_lifecycle.clone(),
        };
        let mut conditions = Vec::new();
        if let Some(l) = &lifecycle
            && let Some(c) = controls::lifecycle_warning(
                &self.id,
                l,
                &self.stored,
                self.ie.metadata.generation,
                Timestamp::now(),
            )
        {
            conditions.push(c);
        }
        StatusExtras {
            version: self.version.clone(),
            model: self.model.clone(),
            deletion_policy: Some(self.deletion_policy),
            last_handled_reconcile_at: self
                .requested
                .clone()
                .or_else(|| self.stored.last_handled_reconcile_at.clone()),
            model_lifecycle: lifecycle,
            conditions,
        }
    }

    /// Events for the transitions that are not outcomes: resumed after a pause, an EIS model
    /// that became deprecated.
    async fn transition_events(&self) {
        if self.stored.condition(conditions::PAUSED).is_some() {
            self.event(
                EventType::Normal,
                "Resumed",
                format!(
                    "the annotation {} is gone: reconciling again",
                    controls::PAUSED
                ),
            )
            .await;
        }
        let warning = self.extras().conditions.into_iter().next();
        if let Some(c) = warning
            && self
                .stored
                .condition(conditions::MODEL_DEPRECATED)
                .map(|p| &p.reason)
                != Some(&c.reason)
        {
            self.event(EventType::Warning, &c.reason, c.message).await;
        }
    }

    /// Write the status in effect now (intermediate writes, e.g. the `Creating` mark).
    pub(super) async fn write_now(&mut self, outcome: &Outcome) -> Result<()> {
        let next = build_status(
            &self.stored,
            &self.record,
            outcome,
            &self.ie.metadata,
            self.extras(),
        );
        self.stored = write_endpoint_status(
            self.ctx,
            &self.ie.metadata,
            &mut self.rv,
            &self.stored,
            next,
        )
        .await?;
        Ok(())
    }

    /// When the Secrets' versions moved but the values Elasticsearch holds are still the ones
    /// in use (another key of the Secret changed, or status comes from 0.1), record the new
    /// versions instead of sending the same values again. In memory: the MAC of the values last
    /// sent, under the process's own key; from 0.1: its UID-keyed fingerprint, once.
    fn recognise_unchanged_values(&mut self, values: &SecretValues, current: Option<&str>) {
        let Some(current) = current else { return };
        if self.record.secrets_applied.as_deref() == Some(current) {
            return;
        }
        let mac = values_mac(self.ctx.process_key(), values);
        let same_in_memory = self.record.secrets_applied.is_some()
            && self.ctx.memory.values_mac_of(&self.uid) == Some(mac);
        let same_as_legacy = self.record.secrets_applied.is_none()
            && self.record.manages_something()
            && self.stored.secret_fingerprint.is_some()
            && self.stored.secret_fingerprint == legacy_fingerprint(&self.uid, values);
        if same_in_memory || same_as_legacy {
            self.record.secrets_applied = Some(current.to_string());
        }
    }

    /// Load the referenced Secrets: the values for secretSettings, and which versions they are.
    async fn load_secrets(
        &self,
    ) -> Result<std::result::Result<(SecretValues, Option<String>), SecretProblem>> {
        let ns = self.ie.namespace().unwrap_or_default();
        if let Err(p) = crate::secrets::check_references(&self.ie.spec, &ns) {
            return Ok(Err(p));
        }
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        let names = referenced_secrets(&self.ie.spec);
        let metrics = &self.ctx.metrics;
        let fetched = self
            .ctx
            .secret_reads
            .read(&api, &ns, &names, || metrics.secret_read())
            .await?;
        Ok(resolve(&self.ie.spec, &ns, &fetched)
            .map(|values| (values, versions(&self.ie.spec, &fetched))))
    }

    /// The cluster this resource's endpoint lives on.
    pub(super) async fn target(&self) -> std::result::Result<Target, TargetProblem> {
        let ns = self.ie.namespace().unwrap_or_default();
        self.ctx
            .target_for(&ns, self.ie.spec.elasticsearch_ref.as_ref())
            .await
    }

    /// A rule of the cluster's tenancy policy this resource breaks, as an outcome.
    /// The cluster's tenancy rule this resource breaks, if any. An error while the labels
    /// the rules need cannot be read: never judged on guessed labels.
    pub(super) fn policy_violation(&self, target: &Target) -> Result<Option<Outcome>> {
        let ns = self.ie.namespace().unwrap_or_default();
        let own = target.home_namespace.as_deref().is_none_or(|h| h == ns);
        // A connection without a policy serves its own namespace only.
        let no_policy = TenancyPolicy::default();
        let policy = match (target.policy.as_ref(), own) {
            (Some(p), _) => p,
            (None, true) => return Ok(None),
            (None, false) => &no_policy,
        };
        let info = match &self.ns_info {
            Some(info) => info.clone(),
            None if policy.uses_labels() => {
                return Err(Error::Unavailable(format!(
                    "cannot read namespace {ns:?}, whose labels this cluster's policy needs"
                )));
            }
            None => NamespaceInfo::default(),
        };
        Ok(
            policy::check(&self.ie.spec, &self.id, &ns, &info, own, policy)
                .err()
                .map(|v| {
                    Outcome::stalled(
                        reason::POLICY_VIOLATION,
                        format!("{v}; nothing was sent to Elasticsearch"),
                    )
                }),
        )
    }

    fn conflict(&self, target: &Target, info: &ClusterInfo) -> Option<String> {
        let peers = self.ctx.peers_with_id(&self.id);
        conflict_owner(self.ie, &target.key, &info.uuid, &peers)
    }

    async fn warn_if_cluster_changed(&self, info: &ClusterInfo) {
        let r = &self.record;
        if r.manages_something()
            && r.inference_id.as_deref() == Some(self.id.as_str())
            && r.cluster_uuid.as_deref().is_some_and(|u| u != info.uuid)
        {
            self.event(EventType::Warning, "ClusterChanged", format!(
                "the Elasticsearch cluster behind this resource changed (cluster_uuid {} is now {}): inference endpoint {:?} is created on the new cluster",
                r.cluster_uuid.as_deref().unwrap_or_default(), info.uuid, self.id
            )).await;
        }
    }
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
