//! How failures read in status: which are retried on their own (Reconciling) and which need a
//! person (Stalled), each with what to do.

use crate::{
    conditions::{Outcome, reason},
    error::{Error, Result},
    es::{EsError, privileges},
};

/// Classify an Elasticsearch error from a write. Transient errors come back as `Err` so the
/// error policy retries them; permanent ones as a stalled outcome.
pub fn write_failure(what: &str, id: &str, e: Error) -> Result<Outcome> {
    let es = match e {
        Error::Es(es) if !es.is_transient() && !es.is_connection_failure() => es,
        other => return Err(other),
    };
    let status = es.status().unwrap_or_default();
    if status == 403 {
        return Ok(Outcome::stalled(
            reason::UNAUTHORIZED,
            format!(
                "Elasticsearch refused to {what} inference endpoint {id:?} ({status}): {}. The operator's Elasticsearch credentials need the cluster privileges {} (and a licence that allows the service)",
                es.reason_text(),
                privileges::sentence()
            ),
        ));
    }
    Ok(Outcome::stalled(
        reason::REJECTED,
        format!(
            "Elasticsearch rejected the request to {what} inference endpoint {id:?} ({}): {}. Fix the spec or the referenced Secret; the operator tries again when either changes",
            describe_status(&es),
            es.reason_text()
        ),
    ))
}

fn describe_status(e: &EsError) -> String {
    match e.status() {
        Some(s) => s.to_string(),
        None => e.label().to_string(),
    }
}

/// The status outcome of a pass that failed with `e` (it is retried with backoff, unless it needs
/// a person).
pub fn failure_outcome(e: &Error) -> Outcome {
    match e {
        Error::ConnectionDown { cause, .. } => connection_outcome(cause),
        Error::Es(es) if es.is_connection_failure() => connection_outcome(es),
        Error::Es(es) if es.status() == Some(403) => Outcome::stalled(
            reason::UNAUTHORIZED,
            format!(
                "Elasticsearch refused the operator's request (403): {}. The operator's credentials need the cluster privileges {} (and {} for built-in models)",
                es.reason_text(),
                privileges::sentence(),
                privileges::FOR_BUILT_IN_MODELS.name
            ),
        ),
        Error::Es(es) => Outcome::progressing(
            reason::ELASTICSEARCH_UNAVAILABLE,
            format!("{es}; retrying with backoff"),
        ),
        Error::Kube(k) => Outcome::progressing(
            reason::KUBERNETES_ERROR,
            format!("{k}; retrying with backoff (check the operator's RBAC if this persists)"),
        ),
        Error::DeletionBlocked(m) => Outcome::stalled(reason::DELETION_BLOCKED, m.clone()),
        other => Outcome::progressing(
            reason::ELASTICSEARCH_UNAVAILABLE,
            format!("{other}; retrying with backoff"),
        ),
    }
}

fn connection_outcome(es: &EsError) -> Outcome {
    let hint = es
        .hint()
        .map(|h| format!(". Likely cause: {h}"))
        .unwrap_or_default();
    let message =
        format!("cannot use the Elasticsearch connection: {es}{hint}; retrying with backoff");
    // Refused credentials and untrusted certificates need a person; an unreachable cluster may
    // come back by itself.
    if es.needs_a_person() {
        Outcome::stalled(reason::CONNECTION_FAILED, message)
    } else {
        Outcome::progressing(reason::CONNECTION_FAILED, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{conditions::Severity, es::TransportKind};
    use std::time::{Duration, Instant};

    fn st(status: u16) -> EsError {
        EsError::Status {
            status,
            kind: Some("status_exception".into()),
            reason: "nope".into(),
            retry_after: None,
        }
    }

    #[test]
    fn permanent_write_failures_are_stalled_transient_ones_retried() {
        let o = write_failure("create", "x", Error::Es(st(400))).expect("permanent");
        assert_eq!(
            (o.reason.as_str(), o.severity),
            (reason::REJECTED, Severity::Stalled)
        );
        let o = write_failure("create", "x", Error::Es(st(403))).expect("permanent");
        assert_eq!(o.reason, reason::UNAUTHORIZED);
        assert!(write_failure("create", "x", Error::Es(st(503))).is_err());
        assert!(write_failure("create", "x", Error::Es(st(401))).is_err());
        assert!(write_failure("create", "x", Error::NotLeader).is_err());
    }

    #[test]
    fn connection_outcomes_say_whether_a_person_is_needed() {
        let down = |cause| Error::ConnectionDown {
            until: Instant::now(),
            cause,
        };
        let refused = failure_outcome(&down(EsError::Transport {
            kind: TransportKind::Connect,
            message: "refused".into(),
        }));
        assert_eq!(
            (refused.reason.as_str(), refused.severity),
            (reason::CONNECTION_FAILED, Severity::Progressing)
        );
        let bad_key = failure_outcome(&down(st(401)));
        assert_eq!(bad_key.severity, Severity::Stalled);
        assert!(
            bad_key.message.contains("credentials"),
            "{}",
            bad_key.message
        );
        let timeout = failure_outcome(&down(EsError::Timeout(Duration::from_secs(1))));
        assert_eq!(timeout.severity, Severity::Progressing);
    }
}
