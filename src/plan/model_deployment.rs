//! PURE: readiness of endpoints backed by a trained-model deployment inside Elasticsearch
//! (`elasticsearch`, `elser`).

use crate::{
    conditions::{Outcome, reason},
    crd::InferenceEndpointSpec,
    model::DeploymentStats,
};

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
    stats: Option<&DeploymentStats>,
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
