//! PURE: the reconcile decision. Given the spec, what the Secrets and Elasticsearch look like
//! now, and what status remembers, say what to do next, or that nothing is left to do and how
//! the resource stands. The shell (`controller.rs`) performs the action, feeds the result back in,
//! and asks again, until the answer is `Done`.

use crate::{
    conditions::{Outcome, reason},
    crd::{
        DeletionPolicy, DriftPolicy, InferenceEndpoint, InferenceEndpointSpec,
        InferenceEndpointStatus, Ownership, ReplacementPolicy,
    },
    desired::{FieldDiff, config_hash, diff},
    es::{ClusterInfo, EndpointConfig, Version},
};

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub spec: &'a InferenceEndpointSpec,
    /// The effective inference id (spec.inferenceId or metadata.name).
    pub inference_id: &'a str,
    /// What status records (the working copy: the shell updates it as actions succeed).
    pub record: &'a Record,
    pub cluster: &'a ClusterInfo,
    /// Fingerprint of the resolved secret values; `None` when the spec has no secrets.
    pub fingerprint: Option<&'a str>,
    /// The endpoint as Elasticsearch has it, if it exists.
    pub observed: Option<&'a EndpointConfig>,
}

/// The part of status that remembers what this resource did in Elasticsearch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub inference_id: Option<String>,
    pub ownership: Option<Ownership>,
    pub cluster_uuid: Option<String>,
    pub secret_fingerprint: Option<String>,
    pub applied_config_hash: Option<String>,
}

impl Record {
    pub fn from_status(s: &InferenceEndpointStatus) -> Self {
        Self {
            inference_id: s.inference_id.clone(),
            ownership: s.ownership,
            cluster_uuid: s.cluster_uuid.clone(),
            secret_fingerprint: s.secret_fingerprint.clone(),
            applied_config_hash: s.applied_config_hash.clone(),
        }
    }

    /// The ownership recorded for `inference_id` on `cluster_uuid`, if any.
    pub fn ownership_of(&self, inference_id: &str, cluster_uuid: &str) -> Option<Ownership> {
        (self.inference_id.as_deref() == Some(inference_id)
            && self.cluster_uuid.as_deref() == Some(cluster_uuid))
        .then_some(self.ownership)
        .flatten()
    }

    /// Whether this resource has ever managed an endpoint (on any cluster).
    pub fn manages_something(&self) -> bool {
        matches!(
            self.ownership,
            Some(Ownership::Created | Ownership::Adopted)
        )
    }
}

/// Why an `_update` is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateCause {
    SpecChanged,
    SecretRotated,
    DriftCorrected,
    /// First sync of secrets after adopting: the values in Elasticsearch are unknown.
    Adopted,
}

/// One step for the shell to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `ownership: Creating` to status before creating, so that a create interrupted after
    /// Elasticsearch stored the endpoint is never orphaned.
    MarkCreating,
    /// `PUT` the endpoint.
    Create,
    /// Record ownership without calling Elasticsearch (adopt, or claim a create that landed).
    Claim(Ownership),
    /// `_update` with every secret, the task settings, and these mutable differences.
    Update {
        changed: Vec<FieldDiff>,
        cause: UpdateCause,
    },
    /// Delete and create again (replacementPolicy: Recreate).
    Replace { fields: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Act(Step),
    Done(Outcome),
}

fn fields(d: &[FieldDiff]) -> String {
    d.iter()
        .map(|d| d.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The next step, or the final outcome.
pub fn decide(f: &Facts<'_>) -> Decision {
    let spec = f.spec;
    let id = f.inference_id;
    let version = f.cluster.version;
    if version < Version::MIN_SUPPORTED {
        return Decision::Done(Outcome::stalled(
            reason::UNSUPPORTED_VERSION,
            format!(
                "Elasticsearch {version} is not supported: the operator needs {} or newer (the _update API)",
                Version::MIN_SUPPORTED
            ),
        ));
    }
    let ownership = f.record.ownership_of(id, &f.cluster.uuid);
    let Some(ep) = f.observed else {
        return Decision::Act(match ownership {
            None => Step::MarkCreating,
            Some(_) => Step::Create,
        });
    };
    let same_kind = ep.service == spec.service && ep.task_type == spec.task_type.as_str();
    match ownership {
        None => {
            if !spec.adopt {
                return Decision::Done(Outcome::stalled(
                    reason::ALREADY_EXISTS,
                    format!(
                        "Elasticsearch already has an inference endpoint {id:?} that this resource did not create; it was left untouched. Set spec.adopt: true to take it over, or choose another spec.inferenceId"
                    ),
                ));
            }
            if !same_kind {
                return Decision::Done(Outcome::stalled(
                    reason::ALREADY_EXISTS,
                    format!(
                        "cannot adopt inference endpoint {id:?}: it has service {:?} and task type {:?}, the spec asks for {:?} and {:?}; it was left untouched",
                        ep.service,
                        ep.task_type,
                        spec.service,
                        spec.task_type.as_str()
                    ),
                ));
            }
            Decision::Act(Step::Claim(Ownership::Adopted))
        }
        Some(Ownership::Creating) => {
            if same_kind {
                // Our create landed even though we did not see its answer.
                Decision::Act(Step::Claim(Ownership::Created))
            } else {
                Decision::Done(Outcome::stalled(
                    reason::ALREADY_EXISTS,
                    format!(
                        "Elasticsearch already has an inference endpoint {id:?} with service {:?} and task type {:?} that this resource did not create; it was left untouched",
                        ep.service, ep.task_type
                    ),
                ))
            }
        }
        Some(own @ (Ownership::Created | Ownership::Adopted)) => compare(f, ep, own),
    }
}

fn compare(f: &Facts<'_>, ep: &EndpointConfig, ownership: Ownership) -> Decision {
    let spec = f.spec;
    let version = f.cluster.version;
    let diffs = diff(spec, ep, version);
    let spec_changed = f.record.applied_config_hash.as_deref() != Some(config_hash(spec).as_str());
    let (immutable, mutable): (Vec<_>, Vec<_>) = diffs.into_iter().partition(|d| !d.mutable);
    let correct = spec_changed || spec.drift_policy == DriftPolicy::Correct;
    let report = !spec_changed && spec.drift_policy == DriftPolicy::Report;

    if !immutable.is_empty() {
        if correct {
            if spec.replacement_policy == ReplacementPolicy::Recreate {
                return Decision::Act(Step::Replace {
                    fields: immutable.iter().map(|d| d.field.clone()).collect(),
                });
            }
            let mut msg = format!(
                "Elasticsearch cannot change {} of endpoint {:?} in place{}. Revert the change, or set spec.replacementPolicy: Recreate to delete and create the endpoint (references by pipelines and semantic_text fields are respected unless forceDelete)",
                fields(&immutable),
                f.inference_id,
                if spec_changed {
                    ""
                } else {
                    " (it was changed outside Kubernetes)"
                },
            );
            if immutable.iter().any(|d| d.field == "chunking_settings")
                && version.update_resets_chunking()
            {
                msg.push_str(&format!(
                    ". Note: Elasticsearch {version} resets chunking_settings on every _update (elastic/elasticsearch#139574, fixed in 9.3)"
                ));
            }
            return Decision::Done(Outcome::stalled(reason::REQUIRES_REPLACEMENT, msg));
        }
        if report {
            return Decision::Done(Outcome::stalled(
                reason::DRIFT_DETECTED,
                format!(
                    "endpoint {:?} was changed outside Kubernetes: {} differ from the spec (driftPolicy: Report leaves them as they are)",
                    f.inference_id,
                    fields(&immutable)
                ),
            ));
        }
    }
    if !mutable.is_empty() {
        if correct {
            let cause = if spec_changed {
                UpdateCause::SpecChanged
            } else {
                UpdateCause::DriftCorrected
            };
            return Decision::Act(Step::Update {
                changed: mutable,
                cause,
            });
        }
        if report {
            return Decision::Done(Outcome::stalled(
                reason::DRIFT_DETECTED,
                format!(
                    "endpoint {:?} was changed outside Kubernetes: {} differ from the spec (driftPolicy: Report leaves them as they are)",
                    f.inference_id,
                    fields(&mutable)
                ),
            ));
        }
    }
    if let Some(fp) = f.fingerprint
        && f.record.secret_fingerprint.as_deref() != Some(fp)
    {
        let cause = if f.record.secret_fingerprint.is_none() && ownership == Ownership::Adopted {
            UpdateCause::Adopted
        } else {
            UpdateCause::SecretRotated
        };
        return Decision::Act(Step::Update {
            changed: Vec::new(),
            cause,
        });
    }
    Decision::Done(Outcome::ready(format!(
        "inference endpoint {:?} matches the spec",
        f.inference_id
    )))
}

/// Services whose endpoints run on a trained-model deployment inside Elasticsearch (§7.3).
pub fn uses_model_deployment(spec: &InferenceEndpointSpec) -> bool {
    matches!(spec.service.as_str(), "elasticsearch" | "elser")
}

/// The deployment behind a built-in model endpoint: the shared `deployment_id` when the spec
/// names one, else the deployment Elasticsearch named after the inference id.
pub fn deployment_id(spec: &InferenceEndpointSpec, inference_id: &str) -> String {
    spec.service_settings
        .get("deployment_id")
        .and_then(|v| v.as_str())
        .unwrap_or(inference_id)
        .to_string()
}

/// Whether a model-backed endpoint whose configuration is in sync is usable: its deployment has
/// started and is fully allocated (or scales on demand with adaptive allocations). `None` means
/// ready.
pub fn deployment_outcome(
    spec: &InferenceEndpointSpec,
    inference_id: &str,
    stats: Option<&crate::es::DeploymentStats>,
) -> Option<Outcome> {
    let id = deployment_id(spec, inference_id);
    let Some(d) = stats else {
        return Some(Outcome::stalled(
            reason::MODEL_DEPLOYMENT_FAILED,
            format!(
                "inference endpoint {inference_id:?} exists but no trained model deployment {id:?} is running; start it (POST _ml/trained_models/<model>/deployment/_start?deployment_id={id}) or delete and re-create the endpoint"
            ),
        ));
    };
    let adaptive = spec
        .service_settings
        .get("adaptive_allocations")
        .and_then(|a| a.get("enabled"))
        .and_then(|e| e.as_bool())
        .unwrap_or(false);
    let counts = format!(
        "{}/{} allocations",
        d.allocations.map_or("?".into(), |n| n.to_string()),
        d.target_allocations.map_or("?".into(), |n| n.to_string())
    );
    match d.state.as_str() {
        "failed" => Some(Outcome::stalled(
            reason::MODEL_DEPLOYMENT_FAILED,
            format!(
                "trained model deployment {id:?} failed: {}. The endpoint stays managed; fix the cause (model, ML memory, licence) and restart the deployment, or delete this resource",
                d.reason
                    .as_deref()
                    .unwrap_or("no reason given")
                    .trim_end_matches('.')
            ),
        )),
        "started" if adaptive || d.allocation_state.as_deref() == Some("fully_allocated") => None,
        state => Some(Outcome::progressing(
            reason::MODEL_DEPLOYING,
            format!(
                "trained model deployment {id:?} is {state} ({counts}, {}); the endpoint becomes Ready when it is started and fully allocated",
                d.allocation_state
                    .as_deref()
                    .unwrap_or("allocation unknown")
            ),
        )),
    }
}

/// The conflict rule: InferenceEndpoints that map to the same inference id on the same cluster
/// never fight. The oldest (by creation time, then namespace/name) owns the id; for any other,
/// this returns the owner's `namespace/name`. Peers are on the same cluster when they reference
/// it the same way (`target_key`) or their status records the same `cluster_uuid`.
pub fn conflict_owner<'a>(
    me: &InferenceEndpoint,
    my_target: &str,
    my_cluster_uuid: &str,
    peers: impl IntoIterator<Item = &'a InferenceEndpoint>,
) -> Option<String> {
    let id = me.inference_id();
    let order = |ie: &InferenceEndpoint| {
        (
            ie.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ie.metadata.namespace.clone().unwrap_or_default(),
            ie.metadata.name.clone().unwrap_or_default(),
        )
    };
    let mine = order(me);
    peers
        .into_iter()
        .filter(|p| match (&p.metadata.uid, &me.metadata.uid) {
            (Some(a), Some(b)) => a != b,
            _ => order(p) != mine,
        })
        .filter(|p| p.inference_id() == id)
        .filter(|p| {
            crate::connection::target_key(p) == my_target
                || p.status.as_ref().and_then(|s| s.cluster_uuid.as_deref())
                    == Some(my_cluster_uuid)
        })
        .map(order)
        .filter(|o| *o < mine)
        .min()
        .map(|(_, ns, name)| format!("{ns}/{name}"))
}

/// What to do when the resource is being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling Elasticsearch; the string says why (for the event).
    Release(String),
    /// `DELETE` the endpoint. `verify_first`: only a create was in flight, so delete only if what
    /// exists is what this resource would have created.
    Delete { force: bool, verify_first: bool },
}

/// Pure cleanup decision. It needs neither Secrets nor a valid spec beyond the policies, so a
/// missing Secret or a broken spec never blocks deletion.
pub fn decide_cleanup(
    spec: &InferenceEndpointSpec,
    record: &Record,
    inference_id: &str,
    cluster_uuid: &str,
) -> Cleanup {
    if spec.deletion_policy == DeletionPolicy::Retain {
        return Cleanup::Release(format!(
            "deletionPolicy is Retain: inference endpoint {inference_id:?} was left in Elasticsearch"
        ));
    }
    match record.ownership_of(inference_id, cluster_uuid) {
        Some(Ownership::Created | Ownership::Adopted) => Cleanup::Delete {
            force: spec.force_delete,
            verify_first: false,
        },
        Some(Ownership::Creating) => Cleanup::Delete {
            force: spec.force_delete,
            verify_first: true,
        },
        None if record.manages_something()
            && record.inference_id.as_deref() == Some(inference_id) =>
        {
            Cleanup::Release(format!(
                "inference endpoint {inference_id:?} was created on another Elasticsearch cluster ({}); nothing was deleted on this one",
                record.cluster_uuid.as_deref().unwrap_or("unknown")
            ))
        }
        None => Cleanup::Release(format!(
            "this resource never created or adopted inference endpoint {inference_id:?}; nothing was deleted"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Severity;
    use serde_json::json;

    fn spec(yaml: &str) -> InferenceEndpointSpec {
        serde_saphyr::from_str(yaml).expect("valid spec yaml")
    }

    const ANTHROPIC: &str = "taskType: completion\nservice: anthropic\nserviceSettings: {model_id: claude-sonnet-4-5}\n\
        secretSettings: {api_key: {secretKeyRef: {name: anthropic, key: api-key}}}\ntaskSettings: {max_tokens: 1024}\n";

    fn cluster(v: Version) -> ClusterInfo {
        ClusterInfo {
            uuid: "uuid-a".into(),
            name: "c".into(),
            version: v,
        }
    }

    /// Every round trip in testdata/elasticsearch/round-trips.json, as (name, the spec a user
    /// would write for that request, the endpoint Elasticsearch returns).
    fn examples() -> Vec<(String, InferenceEndpointSpec, EndpointConfig)> {
        let data: serde_json::Value = serde_json::from_str(include_str!(
            "../testdata/elasticsearch/round-trips.json"
        ))
        .expect("fixture json");
        let mut out = Vec::new();
        for case in data["cases"].as_array().expect("cases") {
            let file = case["name"].as_str().expect("name").to_string();
            let ep: EndpointConfig =
                serde_json::from_value(case["get_endpoint"].clone()).expect("endpoint");
            let body = &case["request_body"];
            let mut settings = body["service_settings"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut secrets = serde_json::Map::new();
            for k in crate::crd::SECRET_SETTING_KEYS {
                if settings.remove(*k).is_some() {
                    secrets.insert(
                        (*k).to_string(),
                        json!({"secretKeyRef": {"name": "s", "key": k}}),
                    );
                }
            }
            let chunking = body.get("chunking_settings").map(|c| {
                let mut m = serde_json::Map::new();
                for (k, v) in c.as_object().expect("object") {
                    let camel = match k.as_str() {
                        "max_chunk_size" => "maxChunkSize",
                        "sentence_overlap" => "sentenceOverlap",
                        "separator_group" => "separatorGroup",
                        other => other,
                    };
                    m.insert(camel.to_string(), v.clone());
                }
                serde_json::Value::Object(m)
            });
            let mut spec = json!({
                "taskType": ep.task_type,
                "service": body["service"],
                "serviceSettings": settings,
                "secretSettings": secrets,
            });
            if let Some(t) = body.get("task_settings") {
                spec["taskSettings"] = t.clone();
            }
            if let Some(c) = chunking {
                spec["chunkingSettings"] = c;
            }
            let spec: InferenceEndpointSpec =
                serde_json::from_value(spec).expect("spec from example");
            out.push((file, spec, ep));
        }
        assert!(
            out.len() >= 8,
            "expected the round-trip fixtures, found {}",
            out.len()
        );
        out
    }

    fn managed(spec: &InferenceEndpointSpec, fp: Option<&str>) -> Record {
        Record {
            inference_id: Some("x".into()),
            ownership: Some(Ownership::Created),
            cluster_uuid: Some("uuid-a".into()),
            secret_fingerprint: fp.map(str::to_string),
            applied_config_hash: Some(config_hash(spec)),
        }
    }

    fn observed(v: serde_json::Value) -> EndpointConfig {
        serde_json::from_value(v).expect("endpoint")
    }

    fn anthropic_ep(model: &str, max_tokens: u32) -> EndpointConfig {
        observed(json!({
            "inference_id": "x", "task_type": "completion", "service": "anthropic",
            "service_settings": {"model_id": model, "rate_limit": {"requests_per_minute": 50}},
            "task_settings": {"max_tokens": max_tokens}
        }))
    }

    fn run(
        spec: &InferenceEndpointSpec,
        record: &Record,
        fp: Option<&str>,
        ep: Option<&EndpointConfig>,
    ) -> Decision {
        decide(&Facts {
            spec,
            inference_id: "x",
            record,
            cluster: &cluster(Version::new(9, 1, 0)),
            fingerprint: fp,
            observed: ep,
        })
    }

    fn reason_of(d: &Decision) -> &str {
        match d {
            Decision::Done(o) => &o.reason,
            Decision::Act(s) => panic!("expected Done, got {s:?}"),
        }
    }

    #[test]
    fn absent_and_unknown_marks_then_creates() {
        let s = spec(ANTHROPIC);
        assert_eq!(
            run(&s, &Record::default(), Some("f"), None),
            Decision::Act(Step::MarkCreating)
        );
        let creating = Record {
            inference_id: Some("x".into()),
            ownership: Some(Ownership::Creating),
            cluster_uuid: Some("uuid-a".into()),
            ..Default::default()
        };
        assert_eq!(
            run(&s, &creating, Some("f"), None),
            Decision::Act(Step::Create)
        );
    }

    #[test]
    fn deleted_out_of_band_is_created_again_whatever_the_drift_policy() {
        for policy in ["Correct", "Report", "Ignore"] {
            let s = spec(&format!("{ANTHROPIC}driftPolicy: {policy}\n"));
            assert_eq!(
                run(&s, &managed(&s, Some("f")), Some("f"), None),
                Decision::Act(Step::Create)
            );
        }
    }

    #[test]
    fn in_sync_is_done_and_ready() {
        let s = spec(ANTHROPIC);
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        let d = run(&s, &managed(&s, Some("f")), Some("f"), Some(&ep));
        assert!(
            matches!(&d, Decision::Done(o) if o.severity == Severity::Ready),
            "{d:?}"
        );
    }

    #[test]
    fn real_get_bodies_with_server_defaults_are_in_sync() {
        // The request a user makes and the GET body ES returns for it (with rate_limit,
        // similarity, dimensions, chunking and platform model ids added) must not differ, or
        // every resync would write.
        for (file, s, ep) in examples() {
            for v in [
                Version::new(8, 17, 0),
                Version::new(9, 1, 0),
                Version::new(9, 5, 0),
            ] {
                let d = diff(&s, &ep, v);
                assert!(d.is_empty(), "{file} on {v}: perpetual diff {d:?}");
            }
            let fp = (!s.secret_settings.is_empty()).then_some("f");
            let decision = run(&s, &managed(&s, fp), fp, Some(&ep));
            assert!(
                matches!(decision, Decision::Done(ref o) if o.is_ready()),
                "{file}: {decision:?}"
            );
        }
    }

    #[test]
    fn rotation_updates_with_secrets() {
        let s = spec(ANTHROPIC);
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        let d = run(&s, &managed(&s, Some("old")), Some("new"), Some(&ep));
        assert_eq!(
            d,
            Decision::Act(Step::Update {
                changed: vec![],
                cause: UpdateCause::SecretRotated
            })
        );
    }

    #[test]
    fn spec_edit_of_task_settings_updates() {
        let mut s = spec(ANTHROPIC);
        let record = managed(&s, Some("f"));
        s.task_settings = Some(serde_json::from_value(json!({"max_tokens": 2048})).expect("map"));
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        match run(&s, &record, Some("f"), Some(&ep)) {
            Decision::Act(Step::Update { changed, cause }) => {
                assert_eq!(cause, UpdateCause::SpecChanged);
                assert_eq!(changed[0].field, "task_settings.max_tokens");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn model_change_requires_replacement_unless_recreate() {
        let mut s = spec(ANTHROPIC);
        let record = managed(&s, Some("f"));
        s.service_settings
            .insert("model_id".into(), json!("claude-opus-4"));
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        let d = run(&s, &record, Some("f"), Some(&ep));
        assert_eq!(reason_of(&d), reason::REQUIRES_REPLACEMENT);
        let Decision::Done(o) = &d else {
            unreachable!()
        };
        assert!(
            o.message.contains("service_settings.model_id"),
            "{}",
            o.message
        );
        s.replacement_policy = ReplacementPolicy::Recreate;
        assert_eq!(
            run(&s, &record, Some("f"), Some(&ep)),
            Decision::Act(Step::Replace {
                fields: vec!["service_settings.model_id".into()]
            })
        );
    }

    #[test]
    fn drift_follows_policy() {
        let base = spec(ANTHROPIC);
        let drifted = anthropic_ep("claude-sonnet-4-5", 99);
        let record = managed(&base, Some("f"));
        // Correct: mutable drift is corrected through _update.
        assert!(matches!(
            run(&base, &record, Some("f"), Some(&drifted)),
            Decision::Act(Step::Update {
                cause: UpdateCause::DriftCorrected,
                ..
            })
        ));
        // Report: reported, not touched.
        let mut report = base.clone();
        report.drift_policy = DriftPolicy::Report;
        let d = run(
            &report,
            &managed(&report, Some("f")),
            Some("f"),
            Some(&drifted),
        );
        assert_eq!(reason_of(&d), reason::DRIFT_DETECTED);
        // Ignore: ready.
        let mut ignore = base.clone();
        ignore.drift_policy = DriftPolicy::Ignore;
        let d = run(
            &ignore,
            &managed(&ignore, Some("f")),
            Some("f"),
            Some(&drifted),
        );
        assert!(matches!(d, Decision::Done(ref o) if o.is_ready()));
        // Immutable drift with Correct and no Recreate: RequiresReplacement, flagged as out of band.
        let other_model = anthropic_ep("claude-haiku", 1024);
        let d = run(&base, &record, Some("f"), Some(&other_model));
        let Decision::Done(o) = d else { panic!() };
        assert_eq!(o.reason, reason::REQUIRES_REPLACEMENT);
        assert!(o.message.contains("outside Kubernetes"));
    }

    #[test]
    fn spec_edits_apply_even_with_ignore_or_report() {
        let mut s = spec(&format!("{ANTHROPIC}driftPolicy: Ignore\n"));
        let record = managed(&s, Some("f"));
        s.task_settings = Some(serde_json::from_value(json!({"max_tokens": 5})).expect("map"));
        assert!(matches!(
            run(
                &s,
                &record,
                Some("f"),
                Some(&anthropic_ep("claude-sonnet-4-5", 1024))
            ),
            Decision::Act(Step::Update {
                cause: UpdateCause::SpecChanged,
                ..
            })
        ));
    }

    #[test]
    fn existing_unmanaged_endpoint_is_left_alone_unless_adopt() {
        let s = spec(ANTHROPIC);
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        assert_eq!(
            reason_of(&run(&s, &Record::default(), Some("f"), Some(&ep))),
            reason::ALREADY_EXISTS
        );
        let mut adopt = s.clone();
        adopt.adopt = true;
        assert_eq!(
            run(&adopt, &Record::default(), Some("f"), Some(&ep)),
            Decision::Act(Step::Claim(Ownership::Adopted))
        );
        // After claiming, secrets are pushed once because ES's values are unknown.
        let claimed = Record {
            inference_id: Some("x".into()),
            ownership: Some(Ownership::Adopted),
            cluster_uuid: Some("uuid-a".into()),
            ..Default::default()
        };
        assert!(matches!(
            run(&adopt, &claimed, Some("f"), Some(&ep)),
            Decision::Act(Step::Update {
                cause: UpdateCause::Adopted,
                ..
            })
        ));
        // A different service is never adopted.
        let mut other = adopt.clone();
        other.service = "openai".into();
        assert_eq!(
            reason_of(&run(&other, &Record::default(), Some("f"), Some(&ep))),
            reason::ALREADY_EXISTS
        );
    }

    #[test]
    fn a_create_that_landed_unseen_is_claimed() {
        let s = spec(ANTHROPIC);
        let creating = Record {
            inference_id: Some("x".into()),
            ownership: Some(Ownership::Creating),
            cluster_uuid: Some("uuid-a".into()),
            ..Default::default()
        };
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        assert_eq!(
            run(&s, &creating, Some("f"), Some(&ep)),
            Decision::Act(Step::Claim(Ownership::Created))
        );
    }

    #[test]
    fn record_on_another_cluster_does_not_count() {
        let s = spec(ANTHROPIC);
        let mut r = managed(&s, Some("f"));
        r.cluster_uuid = Some("uuid-other".into());
        let ep = anthropic_ep("claude-sonnet-4-5", 1024);
        assert_eq!(
            reason_of(&run(&s, &r, Some("f"), Some(&ep))),
            reason::ALREADY_EXISTS
        );
    }

    #[test]
    fn old_versions_are_unsupported() {
        let s = spec(ANTHROPIC);
        let d = decide(&Facts {
            spec: &s,
            inference_id: "x",
            record: &Record::default(),
            cluster: &cluster(Version::new(8, 16, 0)),
            fingerprint: None,
            observed: None,
        });
        assert_eq!(reason_of(&d), reason::UNSUPPORTED_VERSION);
    }

    #[test]
    fn cleanup_rules() {
        let s = spec(ANTHROPIC);
        let r = managed(&s, Some("f"));
        assert_eq!(
            decide_cleanup(&s, &r, "x", "uuid-a"),
            Cleanup::Delete {
                force: false,
                verify_first: false
            }
        );
        let mut forced = s.clone();
        forced.force_delete = true;
        assert_eq!(
            decide_cleanup(&forced, &r, "x", "uuid-a"),
            Cleanup::Delete {
                force: true,
                verify_first: false
            }
        );
        let mut retain = s.clone();
        retain.deletion_policy = DeletionPolicy::Retain;
        assert!(matches!(
            decide_cleanup(&retain, &r, "x", "uuid-a"),
            Cleanup::Release(_)
        ));
        assert!(matches!(
            decide_cleanup(&s, &Record::default(), "x", "uuid-a"),
            Cleanup::Release(_)
        ));
        assert!(
            matches!(decide_cleanup(&s, &r, "x", "uuid-b"), Cleanup::Release(m) if m.contains("another Elasticsearch cluster"))
        );
        let creating = Record {
            ownership: Some(Ownership::Creating),
            ..r.clone()
        };
        assert_eq!(
            decide_cleanup(&s, &creating, "x", "uuid-a"),
            Cleanup::Delete {
                force: false,
                verify_first: true
            }
        );
    }

    fn stats(
        state: &str,
        allocs: u64,
        target: u64,
        alloc_state: &str,
    ) -> crate::es::DeploymentStats {
        crate::es::DeploymentStats {
            deployment_id: "x".into(),
            model_id: ".elser_model_2_linux-x86_64".into(),
            state: state.into(),
            reason: None,
            allocations: Some(allocs),
            target_allocations: Some(target),
            allocation_state: Some(alloc_state.into()),
        }
    }

    #[test]
    fn model_deployment_readiness() {
        let fixed = spec(
            "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2, num_allocations: 2, num_threads: 1}\n",
        );
        let o = deployment_outcome(&fixed, "x", Some(&stats("starting", 0, 2, "starting")))
            .expect("not ready");
        assert_eq!(
            (o.reason.as_str(), o.severity),
            (reason::MODEL_DEPLOYING, Severity::Progressing)
        );
        assert!(o.message.contains("0/2 allocations"), "{}", o.message);
        let o = deployment_outcome(&fixed, "x", Some(&stats("started", 1, 2, "started")))
            .expect("partly allocated");
        assert_eq!(o.reason, reason::MODEL_DEPLOYING);
        assert_eq!(
            deployment_outcome(
                &fixed,
                "x",
                Some(&stats("started", 2, 2, "fully_allocated"))
            ),
            None
        );
        let mut failed = stats("failed", 0, 2, "starting");
        failed.reason = Some("not enough memory on node [ml-0].".into());
        let o = deployment_outcome(&fixed, "x", Some(&failed)).expect("failed");
        assert_eq!(
            (o.reason.as_str(), o.severity),
            (reason::MODEL_DEPLOYMENT_FAILED, Severity::Stalled)
        );
        assert!(
            o.message.contains("not enough memory on node [ml-0]:")
                || o.message.contains("not enough memory on node [ml-0]. "),
            "{}",
            o.message
        );
        let o = deployment_outcome(&fixed, "x", None).expect("missing");
        assert_eq!(o.reason, reason::MODEL_DEPLOYMENT_FAILED);
        // Adaptive allocations scale on demand (possibly to zero): started is usable.
        let adaptive = spec(
            "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {model_id: .elser_model_2, num_threads: 1, adaptive_allocations: {enabled: true, min_number_of_allocations: 0}}\n",
        );
        assert_eq!(
            deployment_outcome(&adaptive, "x", Some(&stats("started", 0, 0, "started"))),
            None
        );
        // A shared deployment is looked up by its own id.
        let shared = spec(
            "taskType: sparse_embedding\nservice: elasticsearch\nserviceSettings: {deployment_id: my-dep}\n",
        );
        assert_eq!(deployment_id(&shared, "x"), "my-dep");
        assert_eq!(deployment_id(&fixed, "x"), "x");
    }

    fn peer(
        ns: &str,
        name: &str,
        created: i64,
        id: &str,
        reference: Option<serde_json::Value>,
        uuid: Option<&str>,
    ) -> InferenceEndpoint {
        let mut spec = json!({"inferenceId": id, "taskType": "completion", "service": "anthropic"});
        if let Some(r) = reference {
            spec["elasticsearchRef"] = r;
        }
        let mut ie: InferenceEndpoint = serde_json::from_value(json!({
            "apiVersion": "es-inference.dev/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}"),
                "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).expect("ts").to_string()},
            "spec": spec,
        }))
        .expect("ie");
        if let Some(u) = uuid {
            ie.status = Some(InferenceEndpointStatus {
                cluster_uuid: Some(u.into()),
                ..Default::default()
            });
        }
        ie
    }

    #[test]
    fn conflict_rule_oldest_then_name_owns() {
        let me = peer("b", "mine", 200, "id", None, None);
        // A younger resource with the same id on the same cluster does not own it.
        let younger = peer("a", "young", 300, "id", None, None);
        assert_eq!(conflict_owner(&me, "default", "u1", [&me, &younger]), None);
        // An older one does.
        let older = peer("c", "old", 100, "id", None, None);
        assert_eq!(
            conflict_owner(&me, "default", "u1", [&me, &older, &younger]),
            Some("c/old".into())
        );
        // Same creation time: namespace, then name, decides.
        let tie = peer("a", "tie", 200, "id", None, None);
        assert_eq!(
            conflict_owner(&me, "default", "u1", [&tie]),
            Some("a/tie".into())
        );
        // Another id, or another cluster, is no conflict.
        let other_id = peer("c", "old", 100, "other", None, None);
        assert_eq!(conflict_owner(&me, "default", "u1", [&other_id]), None);
        let other_cluster = peer(
            "c",
            "old",
            100,
            "id",
            Some(json!({"name": "elsewhere"})),
            Some("u2"),
        );
        assert_eq!(conflict_owner(&me, "default", "u1", [&other_cluster]), None);
        // A different reference that reached the same cluster (by its recorded uuid) conflicts.
        let same_cluster = peer(
            "c",
            "old",
            100,
            "id",
            Some(json!({"name": "alias"})),
            Some("u1"),
        );
        assert_eq!(
            conflict_owner(&me, "default", "u1", [&same_cluster]),
            Some("c/old".into())
        );
    }
}
