//! Status of `ElasticsearchConnection`s: whether the cluster answers with these settings, which
//! cluster it is, and how many InferenceEndpoints use it.

use std::sync::Arc;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{ResourceExt, runtime::controller::Action};
use tracing::{Instrument, info, info_span, warn};

pub use crate::plan::connection::{CLOUD_CONNECT, INSECURE, PLAINTEXT};
use crate::{
    cluster::Cluster,
    conditions::{Outcome, READY, reason},
    connection::{
        TargetProblem, connection_namespace, resolve_connection, same_namespace,
        secret_value_and_version,
    },
    context::Context,
    crd::{CloudConnectStatus, ElasticsearchConnection, ElasticsearchConnectionStatus},
    error::{Error, Result},
    es::{Scrubber, SecretBody},
    metrics::KIND_CONNECTION,
    plan::connection::{
        CloudConnectState, CloudConnectStep, cloud_connect_disable, cloud_connect_refusal,
        cloud_connect_step, connection_conditions,
    },
    status::{Note, report},
};

/// How many InferenceEndpoints in `namespace` refer to the connection `name`.
pub fn users(ctx: &Context, namespace: &str, name: &str) -> i32 {
    let n = ctx
        .peers_where(|w| {
            w.endpoint().is_some_and(|ie| {
                connection_namespace(&ie).as_deref() == Some(namespace)
                    && ie
                        .spec
                        .elasticsearch_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
            })
        })
        .len();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A short id that ties together the log lines of one connection check (`c` and a counter, apart
/// from the ids of InferenceEndpoint reconciles).
fn reconcile_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "c{:x}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Check one connection and write its status when it changed. The last successful check is
/// refreshed at most once per resync interval, so a healthy connection costs one status write per
/// interval.
pub async fn reconcile(conn: Arc<ElasticsearchConnection>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = conn.namespace().unwrap_or_default();
    let name = conn.name_any();
    let span = info_span!(
        "reconcile_connection",
        object = %format!("{namespace}/{name}"),
        namespace = %namespace,
        name = %name,
        reconcile_id = %reconcile_id()
    );
    let timer = ctx.metrics.reconcile_started(KIND_CONNECTION);
    let result = check(conn, &ctx).instrument(span).await;
    timer.finish(result.is_ok());
    result
}

async fn check(conn: Arc<ElasticsearchConnection>, ctx: &Context) -> Result<Action> {
    let ns = conn.namespace().ok_or(Error::MissingNamespace)?;
    let name = conn.name_any();
    let prev = conn.status.clone().unwrap_or_default();
    let mut next = ElasticsearchConnectionStatus {
        observed_generation: conn.metadata.generation,
        endpoints: Some(users(ctx, &ns, &name)),
        ..prev.clone()
    };
    let (outcome, mut result, cluster) = probe(ctx, &conn, &prev, &mut next).await?;
    let now = Time(Timestamp::now());
    let insecure = conn
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.insecure_skip_verify)
        .unwrap_or(false);
    next.conditions = connection_conditions(
        &prev.conditions,
        &outcome,
        conn.metadata.generation,
        insecure,
        conn.spec.url.starts_with("http://"),
        &now,
    );
    let mut notes = Vec::new();
    // Cloud Connect only on a cluster that answered; otherwise its condition stays as it was.
    let kept = || {
        prev.condition(CLOUD_CONNECT)
            .cloned()
            .map(CloudConnectState::Kept)
    };
    let cc = match &cluster {
        Some(cluster) => match cloud_connect(ctx, &conn, cluster, &prev, &mut next).await {
            Ok((cc, said)) => {
                notes.extend(said);
                cc
            }
            Err(e) => {
                result = result.and(Err(e));
                kept()
            }
        },
        None => kept(),
    };
    if let Some(cc) = cc {
        next.conditions
            .push(cc.condition(&prev.conditions, conn.metadata.generation, &now));
    }
    notes.extend(ready_note(&prev, &outcome, &format!("{ns}/{name}")));
    let mut rv = conn.metadata.resource_version.clone();
    report(ctx, &conn.metadata, &mut rv, &prev, next, notes).await?;
    if result.is_ok() {
        ctx.reset_connection_backoff(&format!("{ns}/{name}"));
    }
    result.map(|()| Action::requeue(ctx.settings.resync))
}

/// The Event of a new Ready reason: Normal when connected, Warning otherwise.
fn ready_note(
    prev: &ElasticsearchConnectionStatus,
    outcome: &Outcome,
    connection: &str,
) -> Option<Note> {
    if prev.condition(READY).map(|c| c.reason.as_str()) == Some(outcome.reason.as_str()) {
        return None;
    }
    info!(connection = %connection, reason = %outcome.reason, "{}", outcome.message);
    let note = if outcome.is_ready() {
        Note::normal
    } else {
        Note::warning
    };
    Some(note(&outcome.reason, "Check", outcome.message.clone()))
}

/// Resolve the connection and ask the cluster who it is; fills `next` with what it says.
/// Returns the outcome for status and whether the check is retried with backoff.
async fn probe(
    ctx: &Context,
    conn: &ElasticsearchConnection,
    prev: &ElasticsearchConnectionStatus,
    next: &mut ElasticsearchConnectionStatus,
) -> Result<(Outcome, Result<()>, Option<Arc<Cluster>>)> {
    let ns = conn.namespace().unwrap_or_default();
    let name = conn.name_any();
    let target =
        match resolve_connection(&ctx.client, &ns, &name, &conn.spec, &ctx.settings.rules).await {
            Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
            Err(problem) => {
                let o = Outcome::stalled(problem.reason(), problem.to_string());
                return Ok((o, Ok(()), None));
            }
            Ok(t) => t,
        };
    let cluster = match ctx.clusters.get(&target) {
        Ok(c) => c,
        Err(e) => {
            let o = Outcome::stalled(
                reason::CONNECTION_FAILED,
                format!("cannot build a client for {}: {e}", target.url),
            );
            return Ok((o, Ok(()), None));
        }
    };
    match cluster.identity().await {
        Ok(info) => {
            let stale = prev.last_successful_check.as_ref().is_none_or(|t| {
                Timestamp::now().duration_since(t.0).unsigned_abs() >= ctx.settings.resync
            });
            if stale || prev.observed_generation != conn.metadata.generation {
                next.last_successful_check = Some(Time(Timestamp::now()));
            }
            next.version = Some(info.version.to_string());
            next.cluster_name = Some(info.name.clone());
            next.cluster_uuid = Some(info.uuid.clone());
            let o = Outcome::ready(format!(
                "connected to Elasticsearch {} (cluster {:?}, uuid {})",
                info.version, info.name, info.uuid
            ))
            .with_reason(Some("Connected".into()));
            Ok((o, Ok(()), Some(cluster)))
        }
        Err(e) => {
            let hint = e
                .es()
                .and_then(|es| es.hint())
                .map(|h| format!(". Likely cause: {h}"))
                .unwrap_or_default();
            let o = Outcome::progressing(reason::CONNECTION_FAILED, format!("{e}{hint}"));
            Ok((o, Err(e), None))
        }
    }
}

/// Cloud Connect (`_inference/_ccm`) as `spec.cloudConnect` asks, with the rotation model of
/// endpoint keys: the key is sent when its Secret has a new version (or Elasticsearch reports
/// Cloud Connect off), never to check; a refusal waits for a change of the spec or the Secret.
/// Removing `spec.cloudConnect` disables Cloud Connect only if this operator enabled it.
/// `Err` for transient failures (retried with the connection's backoff).
async fn cloud_connect(
    ctx: &Context,
    conn: &ElasticsearchConnection,
    cluster: &Cluster,
    prev: &ElasticsearchConnectionStatus,
    next: &mut ElasticsearchConnectionStatus,
) -> Result<(Option<CloudConnectState>, Option<Note>)> {
    let ns = conn.namespace().unwrap_or_default();
    let was = prev.cloud_connect.clone().unwrap_or_default();
    let Some(cc) = &conn.spec.cloud_connect else {
        let note = if cloud_connect_disable(&was) {
            Some(disable_cloud_connect(cluster).await?)
        } else {
            None
        };
        next.cloud_connect = None;
        return Ok((None, note));
    };
    let r = &cc.api_key_secret_ref;
    let read = match same_namespace(r, &ns, "cloudConnect.apiKeySecretRef") {
        Ok(()) => {
            secret_value_and_version(
                &ctx.client,
                &ns,
                &r.name,
                &r.key,
                "cloudConnect.apiKeySecretRef",
            )
            .await
        }
        Err(p) => Err(p),
    };
    let (key, version) = match read {
        Ok(v) => v,
        Err(TargetProblem::Unreadable(e)) => return Err(Error::Unavailable(e)),
        Err(problem) => {
            let failed = CloudConnectState::Failed(
                reason::SECRET_NOT_FOUND,
                format!("{problem}; Cloud Connect was left as it is"),
            );
            return Ok((Some(failed), None));
        }
    };
    let previous = prev.condition(CLOUD_CONNECT);
    let same_generation = prev.observed_generation == conn.metadata.generation;
    let rotation = match cloud_connect_step(&was, &version, same_generation, previous) {
        CloudConnectStep::KeepRefusal => {
            return Ok((previous.cloned().map(CloudConnectState::Kept), None));
        }
        CloudConnectStep::CheckEnabled => {
            if cluster.ccm_enabled().await? {
                let enabled = CloudConnectState::Enabled(format!(
                    "Cloud Connect is enabled with the key from Secret {ns}/{} ({version})",
                    r.name
                ));
                return Ok((Some(enabled), None));
            }
            warn!(connection = %format!("{ns}/{}", conn.name_any()), "Cloud Connect was disabled outside the operator; enabling it again");
            false
        }
        CloudConnectStep::Send { rotation } => rotation,
    };
    let secret = format!("{ns}/{}", r.name);
    send_cloud_connect_key(cluster, key, version, rotation, next, &secret).await
}

/// Disable Cloud Connect, which this operator enabled (`spec.cloudConnect` was removed).
async fn disable_cloud_connect(cluster: &Cluster) -> Result<Note> {
    let off = SecretBody {
        body: serde_json::json!({"enabled": false}),
        scrubber: Scrubber::default(),
    };
    match cluster.ccm_put(off).await {
        Ok(_) => {}
        // Not allowed here any more: nothing of ours is left to undo.
        Err(Error::Es(e)) if matches!(e.status(), Some(403 | 404)) => {}
        Err(e) => return Err(e),
    }
    Ok(Note::normal(
        "CloudConnectDisabled",
        "Disable",
        "spec.cloudConnect was removed: Cloud Connect, which this operator enabled, is disabled",
    ))
}

/// Send the Cloud Connect key, `version` of the Secret `secret` (`namespace/name`): the state it
/// ends in and its Event, `Err` for transient failures.
async fn send_cloud_connect_key(
    cluster: &Cluster,
    key: secrecy::SecretString,
    version: String,
    rotation: bool,
    next: &mut ElasticsearchConnectionStatus,
    secret: &str,
) -> Result<(Option<CloudConnectState>, Option<Note>)> {
    let body = SecretBody {
        body: serde_json::json!({"api_key": secrecy::ExposeSecret::expose_secret(&key)}),
        scrubber: Scrubber::new([&key]),
    };
    match cluster.ccm_put(body).await {
        Ok(enabled) => {
            next.cloud_connect = Some(CloudConnectStatus {
                enabled: Some(enabled),
                secret_versions: Some(version.clone()),
            });
            let (reason, what) = if rotation {
                (
                    "CloudConnectKeyRotated",
                    "the rotated Cloud Connect key was sent",
                )
            } else {
                ("CloudConnectEnabled", "Cloud Connect was enabled")
            };
            let note = Note::normal(
                reason,
                "Enable",
                format!("{what} (Secret {secret}, {version})"),
            );
            let enabled = CloudConnectState::Enabled(format!(
                "Cloud Connect is enabled with the key from Secret {secret} ({version})"
            ));
            Ok((Some(enabled), Some(note)))
        }
        Err(Error::Es(e)) if cloud_connect_refusal(e.status()).is_some() => {
            next.cloud_connect = Some(CloudConnectStatus {
                enabled: Some(false),
                secret_versions: Some(version),
            });
            let reason = cloud_connect_refusal(e.status()).unwrap_or("Rejected");
            let note = Note::warning(
                reason,
                "Enable",
                format!("Elasticsearch refused Cloud Connect: {e}"),
            );
            let failed = CloudConnectState::Failed(
                reason,
                format!(
                    "Elasticsearch refused Cloud Connect: {e}. It needs an Enterprise licence (or trial) on a self-managed or ECK cluster and a valid Elastic Cloud API key; fix that, or rotate the Secret, and it is tried again"
                ),
            );
            Ok((Some(failed), Some(note)))
        }
        Err(e) => Err(e),
    }
}

pub fn error_policy(conn: Arc<ElasticsearchConnection>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_error(KIND_CONNECTION, err.metric_label());
    let key = format!(
        "{}/{}",
        conn.namespace().unwrap_or_default(),
        conn.name_any()
    );
    match err {
        Error::ConnectionDown { until, .. } => ctx.requeue_at(*until),
        Error::NotLeader => Action::await_change(),
        _ => {
            let delay = ctx.next_connection_backoff(&key, err.retry_after());
            warn!(
                connection = %key,
                namespace = %conn.namespace().unwrap_or_default(),
                name = %conn.name_any(),
                error = %err,
                retry_in = ?delay,
                "connection check failed"
            );
            Action::requeue(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;

    fn with_ready(reason: &str) -> ElasticsearchConnectionStatus {
        ElasticsearchConnectionStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: "False".into(),
                reason: reason.into(),
                message: "m".into(),
                last_transition_time: Time(Timestamp::now()),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_new_ready_reason_raises_one_event_normal_when_connected() {
        let failed = Outcome::progressing(reason::CONNECTION_FAILED, "refused");
        let note = ready_note(&with_ready("Connected"), &failed, "ns/c").expect("a note");
        assert_eq!(note.type_, kube::runtime::events::EventType::Warning);
        assert_eq!(
            (note.reason.as_str(), note.action),
            (reason::CONNECTION_FAILED, "Check")
        );
        assert!(ready_note(&with_ready(reason::CONNECTION_FAILED), &failed, "ns/c").is_none());
        let connected = Outcome::ready("up").with_reason(Some("Connected".into()));
        let note = ready_note(&with_ready(reason::CONNECTION_FAILED), &connected, "ns/c");
        assert_eq!(
            note.map(|n| n.type_),
            Some(kube::runtime::events::EventType::Normal)
        );
    }
}
