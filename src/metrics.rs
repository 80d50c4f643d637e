//! Prometheus metrics, served on `/metrics` in the OpenMetrics text format.
//!
//! Labels are bounded: kinds, routes, methods, status classes, reasons and the cluster
//! references the operator uses. The one per-object series (`endpoint_ready`) is removed when its
//! object goes.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EsRequestLabels {
    pub cluster: String,
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EsLatencyLabels {
    pub cluster: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub write: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The kinds the operator reconciles, as metric labels.
pub const KIND_ENDPOINT: &str = "InferenceEndpoint";
pub const KIND_CONNECTION: &str = "ElasticsearchConnection";

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    in_flight: Family<KindLabels, Gauge>,
    es_requests: Family<EsRequestLabels, Counter>,
    es_request_duration: Family<EsLatencyLabels, Histogram>,
    connection_up: Family<ClusterLabels, Gauge>,
    endpoints_by_reason: Family<ReasonLabels, Gauge>,
    endpoint_ready: Family<ObjectLabels, Gauge>,
    drift_corrections: Counter,
    secret_rotations: Counter,
    secret_reads: Counter,
    leader: Gauge,
    kubernetes_writes: Family<WriteLabels, Counter>,
    /// The Ready reason of every object, so the gauges count each object once.
    last_reason: Mutex<HashMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Registering a metric made by `Make` under `name`: `r.add(name, help)`.
trait Add {
    fn add<M: Make + prometheus_client::registry::Metric + Clone>(
        &mut self,
        name: &str,
        help: &str,
    ) -> M;
}

impl Add for Registry {
    fn add<M: Make + prometheus_client::registry::Metric + Clone>(
        &mut self,
        name: &str,
        help: &str,
    ) -> M {
        let m = M::make();
        self.register(name, help, m.clone());
        m
    }
}

/// How each kind of metric the operator uses is built.
trait Make {
    fn make() -> Self;
}

impl Make for Counter {
    fn make() -> Self {
        Counter::default()
    }
}

impl Make for Gauge {
    fn make() -> Self {
        Gauge::default()
    }
}

impl<L: Clone + std::hash::Hash + Eq> Make for Family<L, Counter> {
    fn make() -> Self {
        Family::default()
    }
}

impl<L: Clone + std::hash::Hash + Eq> Make for Family<L, Gauge> {
    fn make() -> Self {
        Family::default()
    }
}

impl<L: Clone + std::hash::Hash + Eq> Make for Family<L, Histogram> {
    fn make() -> Self {
        Family::new_with_constructor(histogram)
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("es_inference_operator");
        r.register(
            "build",
            "Version of the operator",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        Self {
            reconciles: r.add("reconciles", "Reconcile passes run, by kind and result (ok, error)"),
            reconcile_errors: r.add(
                "reconcile_errors",
                "Reconcile passes that ended in an error, by kind and error class",
            ),
            reconcile_duration: r.add(
                "reconcile_duration_seconds",
                "Duration of reconcile passes, by kind",
            ),
            in_flight: r.add("reconciles_in_flight", "Reconcile passes running now, by kind"),
            es_requests: r.add(
                "elasticsearch_requests",
                "Requests sent to Elasticsearch, by cluster reference, route, method and status",
            ),
            es_request_duration: r.add(
                "elasticsearch_request_duration_seconds",
                "Latency of Elasticsearch requests, by cluster reference and route",
            ),
            connection_up: r.add(
                "elasticsearch_connection_up",
                "1 while the operator can use the cluster, 0 while it backs off after a connection failure",
            ),
            endpoints_by_reason: r.add(
                "endpoints",
                "InferenceEndpoints by the reason of their Ready condition",
            ),
            endpoint_ready: r.add(
                "endpoint_ready",
                "1 when the InferenceEndpoint is Ready, 0 otherwise",
            ),
            drift_corrections: r.add(
                "drift_corrections",
                "Out-of-band changes corrected in Elasticsearch",
            ),
            secret_rotations: r.add(
                "secret_rotations",
                "Secret rotations applied to Elasticsearch",
            ),
            secret_reads: r.add(
                "secret_reads",
                "Secrets read (GET) for their values: once per version and change, never on an idle resync",
            ),
            kubernetes_writes: r.add(
                "kubernetes_writes",
                "Writes to the Kubernetes API (status, finalizer, event)",
            ),
            leader: r.add(
                "leader",
                "1 while this replica may write (it holds the Lease, or leader election is off)",
            ),
            registry: r,
            last_reason: Mutex::default(),
        }
    }

    /// Count a reconcile pass as running until the guard is dropped, then record its duration
    /// and result.
    pub fn reconcile_started(&self, kind: &'static str) -> ReconcileTimer<'_> {
        let labels = KindLabels { kind: kind.into() };
        self.in_flight.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            kind,
            started: std::time::Instant::now(),
        }
    }

    pub fn reconcile_error(&self, kind: &str, error: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                error: error.to_string(),
            })
            .inc();
    }

    pub fn observe_es_request(
        &self,
        cluster: &str,
        route: &str,
        method: &str,
        status: &str,
        took: Duration,
    ) {
        self.es_requests
            .get_or_create(&EsRequestLabels {
                cluster: cluster.to_string(),
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.es_request_duration
            .get_or_create(&EsLatencyLabels {
                cluster: cluster.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn set_connection_up(&self, cluster: &str, up: bool) {
        self.connection_up
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .set(i64::from(up));
    }

    /// Forget a cluster reference the operator no longer uses.
    pub fn forget_connection(&self, cluster: &str) {
        self.connection_up.remove(&ClusterLabels {
            cluster: cluster.to_string(),
        });
    }

    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    pub fn secret_rotated(&self) {
        self.secret_rotations.inc();
    }

    /// Count one GET of a Secret for its values.
    pub fn secret_read(&self) {
        self.secret_reads.inc();
    }

    /// Count one write to the Kubernetes API (`status`, `finalizer`, `event`).
    pub fn kubernetes_write(&self, write: &str) {
        self.kubernetes_writes
            .get_or_create(&WriteLabels {
                write: write.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Record the Ready reason of `namespace/name`; `None` forgets the object (it is gone).
    pub fn set_endpoint_reason(&self, namespace: &str, name: &str, reason: Option<(&str, bool)>) {
        let key = (namespace.to_string(), name.to_string());
        let labels = ObjectLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let mut last = self.last_reason.lock().expect("metrics lock poisoned");
        let previous = match reason {
            Some((r, ready)) => {
                self.endpoint_ready
                    .get_or_create(&labels)
                    .set(i64::from(ready));
                last.insert(key, r.to_string())
            }
            None => {
                self.endpoint_ready.remove(&labels);
                last.remove(&key)
            }
        };
        if previous.as_deref() == reason.map(|(r, _)| r) {
            return;
        }
        if let Some(p) = previous {
            self.endpoints_by_reason
                .get_or_create(&ReasonLabels { reason: p })
                .dec();
        }
        if let Some((r, _)) = reason {
            self.endpoints_by_reason
                .get_or_create(&ReasonLabels {
                    reason: r.to_string(),
                })
                .inc();
        }
    }

    /// The objects the gauges know, for sweeping those that are gone.
    pub fn known_endpoints(&self) -> Vec<(String, String)> {
        self.last_reason
            .lock()
            .expect("metrics lock poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Records one reconcile pass when dropped (see `Metrics::reconcile_started`).
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: std::time::Instant,
}

impl ReconcileTimer<'_> {
    /// Record the pass as finished with `ok`.
    pub fn finish(self, ok: bool) {
        let m = self.metrics;
        m.reconciles
            .get_or_create(&ReconcileLabels {
                kind: self.kind.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        // Drop records the duration and the in-flight count.
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let labels = KindLabels {
            kind: self.kind.into(),
        };
        self.metrics.in_flight.get_or_create(&labels).dec();
        self.metrics
            .reconcile_duration
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_gauges_count_each_object_once_and_forget_it() {
        let m = Metrics::new();
        m.set_endpoint_reason("ns", "a", Some(("InSync", true)));
        m.set_endpoint_reason("ns", "a", Some(("InSync", true)));
        m.set_endpoint_reason("ns", "b", Some(("SecretNotFound", false)));
        m.set_endpoint_reason("ns", "b", Some(("InSync", true)));
        let text = m.render();
        assert!(
            text.contains(r#"es_inference_operator_endpoints{reason="InSync"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"es_inference_operator_endpoints{reason="SecretNotFound"} 0"#));
        assert!(
            text.contains(r#"es_inference_operator_endpoint_ready{namespace="ns",name="a"} 1"#),
            "{text}"
        );
        m.set_endpoint_reason("ns", "a", None);
        let text = m.render();
        assert!(text.contains(r#"es_inference_operator_endpoints{reason="InSync"} 1"#));
        assert!(!text.contains(r#"name="a""#), "{text}");
    }

    #[test]
    fn es_requests_are_labelled_by_cluster_route_method_and_status() {
        let m = Metrics::new();
        m.observe_es_request("default", "create", "PUT", "400", Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(
            r#"es_inference_operator_elasticsearch_requests_total{cluster="default",route="create",method="PUT",status="400"} 1"#
        ), "{text}");
        assert!(
            text.contains("es_inference_operator_build_info{version="),
            "{text}"
        );
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }

    #[test]
    fn reconcile_timer_counts_result_duration_and_in_flight() {
        let m = Metrics::new();
        let t = m.reconcile_started(KIND_ENDPOINT);
        assert!(
            m.render().contains(
                r#"es_inference_operator_reconciles_in_flight{kind="InferenceEndpoint"} 1"#
            )
        );
        t.finish(true);
        let text = m.render();
        assert!(
            text.contains(
                r#"es_inference_operator_reconciles_total{kind="InferenceEndpoint",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"es_inference_operator_reconcile_duration_seconds_count{kind="InferenceEndpoint"} 1"#
        ), "{text}");
        assert!(
            text.contains(
                r#"es_inference_operator_reconciles_in_flight{kind="InferenceEndpoint"} 0"#
            )
        );
    }
}
