//! `managementPolicy: Observe`: report whether the endpoint exists and matches the spec; never
//! write to Elasticsearch, never delete, read no Secret. `look` reads, `judge` decides.

use super::{
    pass::{Observation, Pass},
    read::fetch,
};
use crate::{
    cluster::Cluster,
    conditions::{Outcome, reason},
    crd::InferenceEndpointSpec,
    desired::diff,
    error::Result,
    model::{EndpointConfig, Version},
};

/// Read the endpoint: the shared snapshot, or afresh on a reconcile request.
pub(super) async fn look(pass: &Pass<'_>, cluster: &Cluster) -> Result<Observation> {
    if pass.forced {
        return fetch(cluster, &pass.id).await;
    }
    let snapshot = cluster.snapshot(pass.ctx.settings.resync).await?;
    Ok(Observation::Listed(snapshot.get(&pass.id)?))
}

/// Whether the endpoint exists and matches the spec.
pub(super) fn judge(
    spec: &InferenceEndpointSpec,
    id: &str,
    observed: Option<&EndpointConfig>,
    version: Version,
) -> Outcome {
    let Some(ep) = observed else {
        return Outcome::stalled(
            reason::NOT_FOUND,
            format!(
                "Elasticsearch has no inference endpoint {id:?} (managementPolicy: Observe: it is only watched, never created)"
            ),
        );
    };
    let mut differs: Vec<String> = Vec::new();
    if ep.service != spec.service {
        differs.push("service".into());
    }
    if ep.task_type != spec.task_type.as_str() {
        differs.push("task_type".into());
    }
    differs.extend(diff(spec, ep, version).into_iter().map(|d| d.field));
    differs.dedup();
    if differs.is_empty() {
        Outcome::ready(format!(
            "inference endpoint {id:?} exists and matches the spec (observed, not managed)"
        ))
        .with_reason(Some(reason::OBSERVED.into()))
    } else {
        Outcome::stalled(
            reason::DRIFT_DETECTED,
            format!(
                "inference endpoint {id:?} differs from the spec in {} (observed, not managed: nothing is changed)",
                differs.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InferenceEndpointSpec {
        serde_json::from_value(serde_json::json!({
            "service": "openai",
            "taskType": "text_embedding",
            "serviceSettings": {"model_id": "text-embedding-3-small"},
            "managementPolicy": "Observe"
        }))
        .expect("spec")
    }

    fn ep(service: &str, model: &str) -> EndpointConfig {
        serde_json::from_value(serde_json::json!({
            "inference_id": "a", "task_type": "text_embedding", "service": service,
            "service_settings": {"model_id": model}, "task_settings": {}
        }))
        .expect("endpoint")
    }

    fn v() -> Version {
        Version::parse("9.1.0").expect("version")
    }

    #[test]
    fn a_missing_endpoint_is_not_found_and_never_created() {
        let o = judge(&spec(), "a", None, v());
        assert_eq!(o.reason, reason::NOT_FOUND);
        assert!(o.message.contains("never created"), "{}", o.message);
    }

    #[test]
    fn a_matching_endpoint_is_observed_and_a_different_one_drifted() {
        let o = judge(
            &spec(),
            "a",
            Some(&ep("openai", "text-embedding-3-small")),
            v(),
        );
        assert!(o.is_ready());
        assert_eq!(o.reason, reason::OBSERVED);
        let o = judge(
            &spec(),
            "a",
            Some(&ep("cohere", "text-embedding-3-large")),
            v(),
        );
        assert_eq!(o.reason, reason::DRIFT_DETECTED);
        assert!(o.message.contains("service"), "{}", o.message);
        assert!(o.message.contains("model_id"), "{}", o.message);
    }
}
