//! Prometheus metrics (text format on `/metrics`).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EsRequestLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    es_requests: Family<EsRequestLabels, Counter>,
    es_request_duration: Family<RouteLabels, Histogram>,
    endpoints_by_reason: Family<ReasonLabels, Gauge>,
    drift_corrections: Counter,
    secret_rotations: Counter,
    /// The Ready reason of every object, so the gauge counts each object once.
    last_reason: Mutex<HashMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("es_inference_operator");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconcile passes run", reconciles.clone());
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile passes that ended in an error, by reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            reconcile_duration.clone(),
        );
        let es_requests = Family::<EsRequestLabels, Counter>::default();
        registry.register(
            "elasticsearch_requests",
            "Requests sent to Elasticsearch, by route, method and status",
            es_requests.clone(),
        );
        let es_request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "elasticsearch_request_duration_seconds",
            "Latency of Elasticsearch requests, by route",
            es_request_duration.clone(),
        );
        let endpoints_by_reason = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "endpoints",
            "InferenceEndpoints by the reason of their Ready condition",
            endpoints_by_reason.clone(),
        );
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Out-of-band changes corrected in Elasticsearch",
            drift_corrections.clone(),
        );
        let secret_rotations = Counter::default();
        registry.register(
            "secret_rotations",
            "Secret rotations applied to Elasticsearch",
            secret_rotations.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            es_requests,
            es_request_duration,
            endpoints_by_reason,
            drift_corrections,
            secret_rotations,
            last_reason: Mutex::default(),
        }
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn observe_es_request(&self, route: &str, method: &str, status: &str, took: Duration) {
        self.es_requests
            .get_or_create(&EsRequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.es_request_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    pub fn secret_rotated(&self) {
        self.secret_rotations.inc();
    }

    /// Record the Ready reason of `object`; `None` forgets it (the object is gone).
    pub fn set_endpoint_reason(&self, object: &str, reason: Option<&str>) {
        let mut last = self.last_reason.lock().expect("metrics lock poisoned");
        let previous = match reason {
            Some(r) => last.insert(object.to_string(), r.to_string()),
            None => last.remove(object),
        };
        if previous.as_deref() == reason {
            return;
        }
        if let Some(p) = previous {
            self.endpoints_by_reason
                .get_or_create(&ReasonLabels { reason: p })
                .dec();
        }
        if let Some(r) = reason {
            self.endpoints_by_reason
                .get_or_create(&ReasonLabels {
                    reason: r.to_string(),
                })
                .inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_gauge_counts_each_object_once() {
        let m = Metrics::new();
        m.set_endpoint_reason("ns/a", Some("InSync"));
        m.set_endpoint_reason("ns/a", Some("InSync"));
        m.set_endpoint_reason("ns/b", Some("SecretNotFound"));
        m.set_endpoint_reason("ns/b", Some("InSync"));
        let text = m.render();
        assert!(
            text.contains(r#"es_inference_operator_endpoints{reason="InSync"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"es_inference_operator_endpoints{reason="SecretNotFound"} 0"#));
        m.set_endpoint_reason("ns/a", None);
        assert!(
            m.render()
                .contains(r#"es_inference_operator_endpoints{reason="InSync"} 1"#)
        );
    }

    #[test]
    fn es_requests_are_labelled() {
        let m = Metrics::new();
        m.observe_es_request("create", "PUT", "400", Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(
            r#"es_inference_operator_elasticsearch_requests_total{route="create",method="PUT",status="400"} 1"#
        ), "{text}");
    }
}
