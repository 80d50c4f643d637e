//! The operational controls users set on a resource: pause, reconcile now; and what the
//! operator reports about EIS models.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use serde_json::Value;

use crate::{
    conditions::{MODEL_DEPRECATED, reason},
    crd::{InferenceEndpointStatus, ModelLifecycle},
    model::EndpointConfig,
    status::true_condition,
};

/// `es-inference.dev/paused: "true"`: nothing is sent to Elasticsearch for the resource.
pub const PAUSED: &str = "es-inference.dev/paused";
/// A new value reconciles the resource at once, with a fresh read of its endpoint.
pub const RECONCILE_REQUESTED_AT: &str = "es-inference.dev/reconcile-requested-at";
/// Flux's convention for the same request (set by tooling that follows Flux, e.g. a
/// Kustomization patch or `kubectl annotate`).
pub const FLUX_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn is_paused(meta: &ObjectMeta) -> bool {
    annotation(meta, PAUSED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The reconcile request on the object (ours, else Flux's).
pub fn requested_at(meta: &ObjectMeta) -> Option<String> {
    annotation(meta, RECONCILE_REQUESTED_AT)
        .or_else(|| annotation(meta, FLUX_REQUESTED_AT))
        .map(str::to_string)
}

/// The lifecycle of an EIS model from the endpoint's metadata (`heuristics.status`,
/// `heuristics.end_of_life_date`), parsed leniently: anything else is ignored.
pub fn model_lifecycle(ep: &EndpointConfig) -> Option<ModelLifecycle> {
    let h = ep.metadata.as_ref()?.get("heuristics")?;
    let text = |k: &str| h.get(k).and_then(Value::as_str).map(str::to_string);
    let l = ModelLifecycle {
        status: text("status"),
        end_of_life_date: text("end_of_life_date"),
    };
    (l.status.is_some() || l.end_of_life_date.is_some()).then_some(l)
}

/// Days from `now` to an ISO date (`2026-12-31` or a full timestamp); negative when past.
fn days_until(date: &str, now: Timestamp) -> Option<i64> {
    let ts: Timestamp = date
        .parse()
        .ok()
        .or_else(|| format!("{date}T00:00:00Z").parse().ok())?;
    Some(ts.duration_since(now).as_secs() / 86_400)
}

/// How close a model's end of life must be to warn.
const WARN_DAYS: i64 = 30;

/// A ModelDeprecated condition when the model is deprecated or its end of life is past or
/// within 30 days; `None` otherwise. Pure but for `now`.
pub fn lifecycle_warning(
    id: &str,
    l: &ModelLifecycle,
    prev: &InferenceEndpointStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let days = l
        .end_of_life_date
        .as_deref()
        .and_then(|d| days_until(d, now));
    let deprecated = l
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("deprecated"));
    let (r, message) = match (days, deprecated) {
        (Some(d), _) if d < 0 => (
            reason::MODEL_END_OF_LIFE,
            format!(
                "the EIS model of inference endpoint {id:?} reached its end of life on {}: requests to it fail; move to another model (there is no automatic migration)",
                l.end_of_life_date.as_deref().unwrap_or_default()
            ),
        ),
        (Some(d), _) if d <= WARN_DAYS => (
            reason::MODEL_END_OF_LIFE,
            format!(
                "the EIS model of inference endpoint {id:?} reaches its end of life on {} ({d} days): move to another model before then",
                l.end_of_life_date.as_deref().unwrap_or_default()
            ),
        ),
        (_, true) => (
            "ModelDeprecated",
            format!(
                "the EIS model of inference endpoint {id:?} is deprecated{}: plan a move to another model",
                l.end_of_life_date
                    .as_deref()
                    .map(|d| format!(" (end of life {d})"))
                    .unwrap_or_default()
            ),
        ),
        _ => return None,
    };
    Some(true_condition(
        prev,
        MODEL_DEPRECATED,
        r,
        message,
        generation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn pause_and_reconcile_requests_are_read_from_annotations() {
        assert!(is_paused(&meta(&[(PAUSED, "true")])));
        assert!(is_paused(&meta(&[(PAUSED, " TRUE ")])));
        assert!(!is_paused(&meta(&[(PAUSED, "false")])));
        assert!(!is_paused(&ObjectMeta::default()));
        assert_eq!(
            requested_at(&meta(&[(FLUX_REQUESTED_AT, "2026-11-30T10:00:00Z")])).as_deref(),
            Some("2026-11-30T10:00:00Z")
        );
        assert_eq!(
            requested_at(&meta(&[
                (FLUX_REQUESTED_AT, "a"),
                (RECONCILE_REQUESTED_AT, "b")
            ]))
            .as_deref(),
            Some("b")
        );
    }

    fn ep(metadata: serde_json::Value) -> EndpointConfig {
        serde_json::from_value(json!({
            "inference_id": ".jina", "task_type": "embedding", "service": "elastic",
            "service_settings": {"model_id": "jina"}, "metadata": metadata
        }))
        .expect("ep")
    }

    #[test]
    fn eis_metadata_is_parsed_leniently() {
        let l = model_lifecycle(&ep(json!({
            "heuristics": {"properties": ["multilingual"], "status": "deprecated",
                "release_date": "2025-01-01", "end_of_life_date": "2026-12-15", "new_key": {"x": 1}},
            "display": {"name": "Jina"}, "regions": ["us"]
        })))
        .expect("lifecycle");
        assert_eq!(l.status.as_deref(), Some("deprecated"));
        assert_eq!(l.end_of_life_date.as_deref(), Some("2026-12-15"));
        assert_eq!(
            model_lifecycle(&ep(json!({"display": {"name": "x"}}))),
            None
        );
        assert_eq!(model_lifecycle(&ep(json!("not an object"))), None);
    }

    #[test]
    fn warnings_for_deprecated_near_and_past_end_of_life() {
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().expect("ts");
        let prev = InferenceEndpointStatus::default();
        let w = |status: Option<&str>, eol: Option<&str>| {
            lifecycle_warning(
                "x",
                &ModelLifecycle {
                    status: status.map(str::to_string),
                    end_of_life_date: eol.map(str::to_string),
                },
                &prev,
                Some(1),
                now,
            )
        };
        assert_eq!(w(Some("ga"), Some("2027-06-01")), None);
        let past = w(Some("ga"), Some("2026-11-01")).expect("past");
        assert_eq!(past.reason, reason::MODEL_END_OF_LIFE);
        assert!(past.message.contains("reached"), "{}", past.message);
        let near = w(None, Some("2026-12-15")).expect("near");
        assert!(near.message.contains("15 days"), "{}", near.message);
        let dep = w(Some("deprecated"), None).expect("deprecated");
        assert_eq!(dep.reason, "ModelDeprecated");
        assert_eq!(dep.type_, MODEL_DEPRECATED);
    }
}
