//! One apply pass, as a pipeline of values: the controls give a `Pass`; the checks, the Secrets
//! (`inputs::load_secrets`) and the cluster (`inputs::reach`) give `StepInputs`; `read` gives an
//! `Observation`; then the pure core is asked for steps (`steps::execute` takes each) until it
//! says `Done`; `finish` writes status and the Events. Only this driver fills `Learned`.

use kube::runtime::controller::Action;
use tracing::debug;

use super::{
    controls,
    finish::{extras, finish},
    inputs::{self, Reached, Secrets},
    observe,
    pass::{Effect, Learned, Pass, Progress, StepInputs},
    read::{Read, fetch, read_endpoint},
    steps::{Subject, execute},
};
use crate::{
    catalog,
    cluster::{Cluster, endpoint_hash},
    conditions::{Outcome, READY, reason},
    context::Context,
    crd::{InferenceEndpoint, InferenceEndpointStatus, ManagementPolicy, ModelDeploymentStatus},
    desired::{config_hash, validate},
    error::{Error, Result},
    model::{DeploymentStats, EndpointConfig},
    plan::{Decision, Facts, Record, Step, decide, deployment_id, deployment_outcome},
    policy,
    secrets::referenced_secrets,
    status::{Note, build_status, ensure_finalizer, report},
};

/// Most steps one pass may take before it is considered stuck (a bug, reported not looped).
const MAX_STEPS: usize = 10;

/// Ends the message of every outcome reached before anything was sent.
const NOTHING_SENT: &str = "; nothing was sent to Elasticsearch";

/// The status in effect while the pass runs (marks write it), and the object's resourceVersion
/// after our last write.
struct Written {
    rv: Option<String>,
    stored: InferenceEndpointStatus,
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
    let pass = begin(ctx, ie, uid, stored).await;
    let mut learned = Learned {
        progress: Progress {
            record: Record::from_status(&pass.stored, &pass.uid),
            ..Progress::default()
        },
        version: pass.stored.elasticsearch_version.clone(),
        model: pass.stored.model_deployment.clone(),
        ..Learned::default()
    };
    let mut written = Written {
        rv,
        stored: pass.stored.clone(),
    };
    let result = if observe_only {
        observe(&pass, &mut learned).await
    } else {
        sync(&pass, &mut written, &mut learned).await
    };
    finish(&pass, written.rv, &written.stored, learned, result).await
}

/// The controls of a pass that is not paused: a new reconcile request (which reopens the
/// permanent-failure gate), the Namespace, the deletion policy in effect.
async fn begin<'a>(
    ctx: &'a Context,
    ie: &'a InferenceEndpoint,
    uid: String,
    stored: InferenceEndpointStatus,
) -> Pass<'a> {
    let requested = controls::requested_at(&ie.metadata);
    let forced = requested.is_some() && requested != stored.last_handled_reconcile_at;
    if forced {
        // Asked to look again: a permanent failure is tried again too.
        ctx.memory.open_gate(&uid);
    }
    let ns = ie.metadata.namespace.clone().unwrap_or_default();
    let ns_info = ctx.namespace_info(&ns).await;
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
    Pass {
        ctx,
        ie,
        id: ie.inference_id(),
        uid,
        stored,
        requested,
        forced,
        deletion_policy,
        ns_info,
    }
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
    let note = stored
        .condition(crate::conditions::PAUSED)
        .is_none()
        .then(|| Note::normal(reason::PAUSED, "Pause", message.clone()));
    crate::status::write_paused(ctx, &ie.metadata, &mut rv, stored, message, note).await?;
    Ok(Action::await_change())
}

/// `managementPolicy: Observe`: the cluster, a look at the endpoint, a judgement.
async fn observe(pass: &Pass<'_>, learned: &mut Learned) -> Result<Outcome> {
    let spec = &pass.ie.spec;
    if let Err(problem) = validate(spec) {
        return Ok(Outcome::stalled(reason::INVALID_SPEC, problem.to_string()));
    }
    let reached = match inputs::reach(pass, "").await? {
        Ok(reached) => reached,
        Err(outcome) => return Ok(outcome),
    };
    reached_cluster(learned, &reached);
    learned.progress.observation = observe::look(pass, &reached.cluster).await?;
    Ok(observe::judge(
        spec,
        &pass.id,
        learned.progress.observation.endpoint(),
        reached.info.version,
    ))
}

fn reached_cluster(learned: &mut Learned, reached: &Reached) {
    learned.cluster_key = Some(reached.cluster.key().to_string());
    learned.version = Some(reached.info.version.to_string());
}

/// What the spec itself breaks (bounds, what the service takes), before anything is read.
fn check(spec: &crate::crd::InferenceEndpointSpec) -> std::result::Result<(), Outcome> {
    validate(spec)
        .map_err(|p| p.to_string())
        .and_then(|()| catalog::check_secrets(spec).map_err(|p| p.to_string()))
        .map_err(|problem| {
            Outcome::stalled(reason::INVALID_SPEC, format!("{problem}{NOTHING_SENT}"))
        })
}

/// The pass up to its outcome. `Err` only for problems that are retried.
async fn sync(pass: &Pass<'_>, written: &mut Written, learned: &mut Learned) -> Result<Outcome> {
    let spec = &pass.ie.spec;
    if let Err(outcome) = check(spec) {
        return Ok(outcome);
    }
    // The Secret watch says which versions are current: when Elasticsearch holds those, no
    // value is read unless a step sends it (then `load_values`).
    let names = referenced_secrets(spec);
    let known = pass
        .ctx
        .secret_reads
        .versions(&pass.namespace(), &names)
        .await;
    let (values, current) = match known {
        Some(v) if learned.progress.record.secrets_applied.as_deref() == Some(v.as_str()) => {
            (None, Some(v))
        }
        _ => match load_values(pass, &written.stored, learned).await? {
            Ok(read) => (Some(read.values), read.current),
            Err(outcome) => return Ok(outcome),
        },
    };
    let reached = match inputs::reach(pass, NOTHING_SENT).await? {
        Ok(reached) => reached,
        Err(outcome) => return Ok(outcome),
    };
    reached_cluster(learned, &reached);
    if let Some(outcome) = inputs::conflict(pass, &reached) {
        return Ok(outcome);
    }
    let record = &learned.progress.record;
    learned
        .notes
        .extend(inputs::cluster_changed(record, &pass.id, &reached.info));
    let unsupported = match catalog::check_version(spec, reached.info.version) {
        Ok(unknown) => {
            learned.notice = (!unknown.is_empty()).then(|| unknown.join("; "));
            None
        }
        Err(u) => Some(u),
    };
    let mut inputs = StepInputs {
        info: &reached.info,
        values,
        secrets: current,
        desired_hash: config_hash(spec),
        unsupported,
        create_timeout: pass.ctx.settings.create_timeout,
    };
    match read_endpoint(pass, &learned.progress.record, &reached.cluster, &inputs).await? {
        Read::InSync(seen) => {
            learned.in_sync = Some(seen);
            return Ok(Outcome::ready(format!(
                "inference endpoint {:?} matches the spec",
                pass.id
            )));
        }
        Read::Observed(observation) => learned.progress.observation = observation,
    }
    steps(pass, written, learned, &reached.cluster, &mut inputs).await
}

/// Read the Secrets' values, and recognise values Elasticsearch already holds (then their new
/// versions are recorded instead of sending them again).
async fn load_values(
    pass: &Pass<'_>,
    stored: &InferenceEndpointStatus,
    learned: &mut Learned,
) -> Result<std::result::Result<Secrets, Outcome>> {
    let read = match inputs::load_secrets(pass).await? {
        Ok(read) => read,
        Err(outcome) => return Ok(Err(outcome)),
    };
    learned.values_mac = Some(read.mac);
    let last_mac = pass.ctx.memory.values_mac_of(&pass.uid);
    let record = &mut learned.progress.record;
    if let Some(current) = inputs::unchanged_values(record, stored, &pass.uid, last_mac, &read) {
        record.secrets_applied = Some(current);
    }
    Ok(Ok(read))
}

/// The same write, with the same inputs, against the same endpoint. A create's mark counts as
/// the create: a refused create is not marked again.
fn attempt(step: &Step, inputs: &StepInputs<'_>, observed: Option<&EndpointConfig>) -> String {
    let family = match step {
        Step::MarkCreating => "create",
        other => other.name(),
    };
    format!(
        "{family}/{}/{}/{:?}",
        inputs.desired_hash,
        inputs.secrets.as_deref().unwrap_or("-"),
        observed.map(endpoint_hash)
    )
}

/// What the driver does before a step: `Err(outcome)` when the pass ends instead; `Ok(false)`
/// when it must ask the core again (the values were read).
async fn prepare(
    pass: &Pass<'_>,
    written: &Written,
    learned: &mut Learned,
    step: &Step,
    inputs: &mut StepInputs<'_>,
) -> Result<std::result::Result<bool, Outcome>> {
    if step.sends_request()
        && let Some(u) = &inputs.unsupported
    {
        return Ok(Err(Outcome::stalled(
            reason::UNSUPPORTED_BY_CLUSTER,
            format!("{u}{NOTHING_SENT}"),
        )));
    }
    if step.sends_secrets() && inputs.values.is_none() {
        // The versions read may be newer than the watch said: the core is asked again.
        return Ok(match load_values(pass, &written.stored, learned).await? {
            Ok(read) => {
                inputs.values = Some(read.values);
                inputs.secrets = read.current;
                Ok(false)
            }
            Err(outcome) => Err(outcome),
        });
    }
    Ok(Ok(true))
}

/// Ask the pure core for steps until it is done.
async fn steps(
    pass: &Pass<'_>,
    written: &mut Written,
    learned: &mut Learned,
    cluster: &Cluster,
    inputs: &mut StepInputs<'_>,
) -> Result<Outcome> {
    let spec = &pass.ie.spec;
    let subject = Subject {
        spec,
        id: &pass.id,
        metrics: &pass.ctx.metrics,
    };
    for _ in 0..MAX_STEPS {
        let progress = &mut learned.progress;
        let decision = decide(&Facts {
            spec,
            inference_id: &pass.id,
            record: &progress.record,
            cluster: inputs.info,
            secrets: inputs.secrets.as_deref(),
            observed: progress.observation.endpoint(),
        });
        let fresh = progress.observation.is_fresh();
        let step = match decision {
            Decision::Done(o) if o.is_ready() => {
                return ready(pass, learned, cluster, inputs, o).await;
            }
            // A problem seen on the shared snapshot is confirmed on a fresh read; so is what a
            // step that changes ownership or destroys acts on.
            Decision::Done(_) if !fresh => {
                progress.observation = fetch(cluster, &pass.id).await?;
                continue;
            }
            Decision::Act(step) if step.needs_fresh_observation() && !fresh => {
                progress.observation = fetch(cluster, &pass.id).await?;
                continue;
            }
            Decision::Done(o) => return Ok(o),
            Decision::Act(step) => step,
        };
        match prepare(pass, written, learned, &step, inputs).await? {
            Err(outcome) => return Ok(outcome),
            Ok(false) => continue,
            Ok(true) => {}
        }
        let key = attempt(&step, inputs, learned.progress.observation.endpoint());
        if pass.ctx.memory.gate_closed(&pass.uid, &key) {
            debug!(
                attempt = key,
                "not repeating a write that failed permanently"
            );
            return Ok(gated_outcome(&written.stored));
        }
        let executed = execute(cluster, &subject, &mut learned.progress, step, inputs).await?;
        learned.notes.extend(executed.notes);
        match executed.effect {
            Effect::Continue => {}
            Effect::Mark(outcome) => {
                mark(pass, written, learned, &outcome).await?;
                learned.progress.marked_this_pass = true;
            }
            Effect::Finish(outcome) => return Ok(outcome),
            Effect::Refused(outcome) => {
                pass.ctx.memory.close_gate(&pass.uid, key);
                return Ok(outcome);
            }
        }
    }
    Err(Error::Unsettled(format!(
        "reconcile of {:?} did not settle after {MAX_STEPS} steps",
        pass.id
    )))
}

/// Write the status in effect now, before a create is sent (the `Creating` mark).
async fn mark(
    pass: &Pass<'_>,
    written: &mut Written,
    learned: &Learned,
    outcome: &Outcome,
) -> Result<()> {
    let next = build_status(
        &written.stored,
        &learned.progress.record,
        outcome,
        &pass.ie.metadata,
        extras(pass, &written.stored, learned),
    );
    let meta = &pass.ie.metadata;
    written.stored = report(
        pass.ctx,
        meta,
        &mut written.rv,
        &written.stored,
        next,
        vec![],
    )
    .await?;
    Ok(())
}

/// The configuration is in sync. A model-backed endpoint is usable only once its deployment
/// has started.
async fn ready(
    pass: &Pass<'_>,
    learned: &mut Learned,
    cluster: &Cluster,
    inputs: &StepInputs<'_>,
    o: Outcome,
) -> Result<Outcome> {
    learned.progress.record.applied_config_hash = Some(inputs.desired_hash.clone());
    let spec = &pass.ie.spec;
    if !crate::plan::uses_model_deployment(spec) {
        return Ok(o);
    }
    let stats = cluster
        .deployment_stats(&deployment_id(spec, &pass.id))
        .await?;
    learned.model = stats.as_ref().map(deployment_status);
    Ok(deployment_outcome(spec, &pass.id, stats.as_ref()).unwrap_or(o))
}

fn deployment_status(d: &DeploymentStats) -> ModelDeploymentStatus {
    ModelDeploymentStatus {
        deployment_id: d.deployment_id.clone(),
        model_id: d.model_id.clone(),
        state: d.state.clone(),
        allocations: d.allocations.and_then(|n| i64::try_from(n).ok()),
        target_allocations: d.target_allocations.and_then(|n| i64::try_from(n).ok()),
        allocation_state: d.allocation_state.clone(),
    }
}

/// The outcome of a write the permanent-failure gate holds back: what status says already.
fn gated_outcome(stored: &InferenceEndpointStatus) -> Outcome {
    let c = stored.condition(READY);
    Outcome::stalled(
        reason::REJECTED,
        c.map(|c| c.message.clone())
            .unwrap_or_else(|| "the last request was rejected".into()),
    )
    .with_reason(c.map(|c| c.reason.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterInfo, Version};

    fn inputs(secrets: Option<&str>) -> (ClusterInfo, Option<String>) {
        let info = ClusterInfo {
            uuid: "u".into(),
            name: "c".into(),
            version: Version::parse("9.1.0").expect("version"),
        };
        (info, secrets.map(str::to_string))
    }

    #[test]
    fn a_mark_counts_as_its_create_for_the_gate_and_every_input_makes_a_new_attempt() {
        let (info, secrets) = inputs(Some("s@1"));
        let at = |secrets: Option<String>, hash: &str| StepInputs {
            info: &info,
            values: None,
            secrets,
            desired_hash: hash.into(),
            unsupported: None,
            create_timeout: std::time::Duration::from_secs(1),
        };
        let base = at(secrets.clone(), "h1");
        assert_eq!(
            attempt(&Step::MarkCreating, &base, None),
            attempt(&Step::Create, &base, None)
        );
        let rotated = at(Some("s@2".into()), "h1");
        let edited = at(secrets, "h2");
        let create = attempt(&Step::Create, &base, None);
        assert_ne!(create, attempt(&Step::Create, &rotated, None));
        assert_ne!(create, attempt(&Step::Create, &edited, None));
        assert_ne!(
            attempt(&Step::Forget, &base, None),
            attempt(&Step::Create, &base, None)
        );
    }

    #[test]
    fn the_gate_repeats_what_status_says() {
        let stored = InferenceEndpointStatus::default();
        let o = gated_outcome(&stored);
        assert_eq!(o.reason, reason::REJECTED);
        assert_eq!(o.message, "the last request was rejected");
    }

    #[test]
    fn the_spec_is_checked_before_anything_is_read() {
        let spec: crate::crd::InferenceEndpointSpec = serde_json::from_value(serde_json::json!({
            "service": "amazonbedrock",
            "taskType": "text_embedding",
            "serviceSettings": {"provider": "amazontitan", "model": "m", "region": "us-east-1"},
            "secretSettings": {"access_key": {"secretKeyRef": {"name": "s", "key": "a"}}}
        }))
        .expect("spec");
        let o = check(&spec).expect_err("Bedrock needs both keys");
        assert_eq!(o.reason, reason::INVALID_SPEC);
        assert!(o.message.ends_with(NOTHING_SENT), "{}", o.message);
    }

    #[test]
    fn a_deployment_reports_its_allocations() {
        let d = DeploymentStats {
            deployment_id: "d".into(),
            model_id: "m".into(),
            state: "started".into(),
            allocations: Some(2),
            target_allocations: Some(3),
            ..DeploymentStats::default()
        };
        let s = deployment_status(&d);
        assert_eq!((s.allocations, s.target_allocations), (Some(2), Some(3)));
    }
}
