//! The reconciler's error type. Every variant's message is safe to log and to put in status:
//! none can carry a secret value.

use std::time::{Duration, Instant};

use crate::es::EsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Es(EsError),
    /// The cluster's connection failed recently and backs off until `until`: nothing is sent to
    /// it before then (one probe after the window decides whether it is back).
    #[error("{cause}")]
    ConnectionDown { until: Instant, cause: EsError },
    /// This replica does not hold the leader Lease (or its renew deadline passed): it writes
    /// nothing.
    #[error("not the leader: this replica does not write")]
    NotLeader,
    #[error("{0}")]
    DeletionBlocked(String),
    #[error("the resource has no namespace")]
    MissingNamespace,
    /// Something this pass needs could not be read now (a Kubernetes object behind a reference).
    #[error("{0}")]
    Unavailable(String),
    /// The pass did not settle within its step budget (a bug, reported rather than looped).
    #[error("{0}")]
    Unsettled(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Es(e) => e.label(),
            Error::ConnectionDown { .. } => "connection_down",
            Error::NotLeader => "not_leader",
            Error::DeletionBlocked(_) => "deletion_blocked",
            Error::MissingNamespace => "invalid_object",
            Error::Unavailable(_) => "unavailable",
            Error::Unsettled(_) => "unsettled",
        }
    }

    /// The least time to wait before the next attempt (`Retry-After`, already capped by the
    /// client).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Es(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The Elasticsearch error behind this one, if any.
    pub fn es(&self) -> Option<&EsError> {
        match self {
            Error::Es(e) | Error::ConnectionDown { cause: e, .. } => Some(e),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
