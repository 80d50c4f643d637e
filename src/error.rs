//! The reconciler's error type. Every variant's message is safe to log and to put in status:
//! none can carry a secret value.

use std::time::Duration;

use crate::es::EsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Es(EsError),
    #[error("{0}")]
    DeletionBlocked(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("the resource has no namespace")]
    MissingNamespace,
    #[error("{0}")]
    Unavailable(String),
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
            Error::DeletionBlocked(_) => "deletion_blocked",
            Error::Finalizer(_) => "finalizer",
            Error::MissingNamespace => "invalid_object",
            Error::Unavailable(_) => "unavailable",
        }
    }

    /// The least time to wait before the next attempt (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Es(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Flatten the finalizer helper's wrapper so labels and messages name the real cause.
    pub fn from_finalizer(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
            F::UnnamedObject => Error::Finalizer("object has no name".into()),
            F::InvalidFinalizer => Error::Finalizer("invalid finalizer name".into()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
