//! Errors from Elasticsearch, classified by type (never by matching message text the operator
//! wrote itself). Messages never contain secret values: the client scrubs them before an error
//! leaves `es`. `EsConfigError`: settings a client cannot be built with.

use std::time::Duration;

/// What kind of transport failure happened, from the error's type chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP connect failed: refused, unreachable, DNS.
    Connect,
    /// The TLS handshake failed, e.g. a certificate the operator does not trust.
    Tls,
    /// The connection broke during the exchange (reset, closed without an answer).
    Other,
}

/// The hint of a 403: which privileges the identity needs (`privileges::REQUIRED`).
static MISSING_PRIVILEGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "the operator's Elasticsearch identity lacks a cluster privilege: it needs {}",
        super::privileges::sentence()
    )
});

/// Errors from Elasticsearch, classified for retrying.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EsError {
    #[error("cannot reach Elasticsearch: {message}")]
    Transport {
        kind: TransportKind,
        message: String,
    },
    #[error("Elasticsearch did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Elasticsearch answered {status}: {}", .kind.as_deref().map(|k| format!("{k}: {}", .reason)).unwrap_or_else(|| .reason.clone()))]
    Status {
        status: u16,
        /// Elasticsearch's error type, e.g. `status_exception`.
        kind: Option<String>,
        /// Elasticsearch's reason, verbatim but for secrets, with `caused_by` reasons appended.
        reason: String,
        /// `Retry-After`, capped by the client.
        retry_after: Option<Duration>,
    },
    #[error("unexpected response from Elasticsearch: {0}")]
    Decode(String),
    #[error(
        "the response of Elasticsearch is larger than the limit of {limit} bytes (--elasticsearch-max-response-bytes)"
    )]
    TooLarge { limit: usize },
    #[error(
        "Elasticsearch has not recovered its cluster state yet (GET / answers cluster_uuid {uuid:?})"
    )]
    NotRecovered { uuid: String },
}

impl EsError {
    /// Transient errors are retried with backoff; the rest are reported and wait for a change.
    pub fn is_transient(&self) -> bool {
        match self {
            EsError::Transport { .. } | EsError::Timeout(_) | EsError::NotRecovered { .. } => true,
            EsError::Status { status, reason, .. } => {
                *status == 429
                    || *status >= 500
                    // A provider outage during create validation comes back as a 400 whose cause
                    // is the provider's 429 or 5xx: that is not the user's fault.
                    || (*status == 400
                        && (reason.contains("Received a rate limit status code")
                            || reason.contains("Received a server error status code")))
            }
            EsError::Decode(_) | EsError::TooLarge { .. } => false,
        }
    }

    /// The cluster could not be used at all (unreachable, timing out, refusing the operator's
    /// credentials, not recovered): a problem of the connection, shared by every resource on it.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            EsError::Transport { .. } | EsError::Timeout(_) | EsError::NotRecovered { .. }
        ) || self.status() == Some(401)
    }

    /// A connection failure that will not go away by itself: refused credentials or an
    /// untrusted certificate.
    pub fn needs_a_person(&self) -> bool {
        self.status() == Some(401)
            || matches!(
                self,
                EsError::Transport {
                    kind: TransportKind::Tls,
                    ..
                }
            )
    }

    /// The create was refused for an id that already exists.
    pub fn is_already_exists(&self) -> bool {
        self.kind() == Some("resource_already_exists_exception")
    }

    /// A hint for a person, when the failure has a usual cause.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            EsError::Transport {
                kind: TransportKind::Tls,
                ..
            } => Some(
                "the server's TLS certificate is not trusted: give the connection the CA that signed it (tls.ca, or --elasticsearch-ca-file)",
            ),
            EsError::Transport { .. } | EsError::Timeout(_) => Some(
                "check the URL, DNS and network policies between the operator and Elasticsearch",
            ),
            EsError::Status { status: 401, .. } => Some(
                "the credentials were refused: check the API key (or username and password) in the referenced Secret",
            ),
            EsError::Status { status: 403, .. } => Some(MISSING_PRIVILEGE.as_str()),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EsError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<&str> {
        match self {
            EsError::Status { kind, .. } => kind.as_deref(),
            _ => None,
        }
    }

    /// The reason text alone, without a final full stop, for embedding in a sentence.
    pub fn reason_text(&self) -> String {
        let text = match self {
            EsError::Status { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        text.trim_end().trim_end_matches('.').to_string()
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EsError::Transport { .. } => "transport",
            EsError::Timeout(_) => "timeout",
            EsError::Status { status, .. } if *status >= 500 => "5xx",
            EsError::Status { status: 429, .. } => "429",
            EsError::Status { status: 401, .. } | EsError::Status { status: 403, .. } => "auth",
            EsError::Status { .. } => "4xx",
            EsError::Decode(_) => "decode",
            EsError::TooLarge { .. } => "too_large",
            EsError::NotRecovered { .. } => "not_recovered",
        }
    }

    /// The error with every secret value replaced (see `Scrubber`).
    pub fn scrubbed(self, scrubber: &super::scrub::Scrubber) -> Self {
        match self {
            EsError::Status {
                status,
                kind,
                reason,
                retry_after,
            } => EsError::Status {
                status,
                kind,
                reason: scrubber.scrub(&reason),
                retry_after,
            },
            EsError::Transport { kind, message } => EsError::Transport {
                kind,
                message: scrubber.scrub(&message),
            },
            EsError::Decode(m) => EsError::Decode(scrubber.scrub(&m)),
            other => other,
        }
    }
}

/// A cluster setting the client cannot be built with (URL, CA bundle, credentials).
#[derive(Debug, thiserror::Error)]
pub enum EsConfigError {
    #[error("invalid Elasticsearch URL {0:?}: it must start with http:// or https://")]
    Url(String),
    #[error(
        "the Elasticsearch URL must not contain credentials (user:password@): use the API key or username/password settings"
    )]
    CredentialsInUrl,
    #[error(
        "the Elasticsearch URL must not contain a query string or fragment: give only scheme, host, port and an optional path prefix"
    )]
    QueryInUrl,
    #[error("invalid CA bundle: {0}")]
    Ca(String),
    #[error("invalid Elasticsearch credentials: {0}")]
    Credentials(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: u16, reason: &str) -> EsError {
        EsError::Status {
            status,
            kind: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    #[test]
    fn classification() {
        assert!(st(503, "x").is_transient());
        assert!(st(429, "x").is_transient());
        assert!(!st(400, "Unknown service [foo]").is_transient());
        assert!(
            st(
                400,
                "Could not complete... Caused by: Received a server error status code for request"
            )
            .is_transient()
        );
        assert!(!st(401, "x").is_transient());
        assert!(st(401, "x").is_connection_failure() && st(401, "x").needs_a_person());
        let refused = EsError::Transport {
            kind: TransportKind::Connect,
            message: "refused".into(),
        };
        assert!(refused.is_transient() && refused.is_connection_failure());
        assert!(!refused.needs_a_person());
        let tls = EsError::Transport {
            kind: TransportKind::Tls,
            message: "UnknownIssuer".into(),
        };
        assert!(tls.needs_a_person() && tls.hint().is_some_and(|h| h.contains("CA")));
        assert!(EsError::Timeout(Duration::from_secs(1)).is_connection_failure());
        let na = EsError::NotRecovered {
            uuid: "_na_".into(),
        };
        assert!(na.is_transient() && na.is_connection_failure() && !na.needs_a_person());
        assert!(!st(500, "x").is_connection_failure());
    }

    #[test]
    fn a_refused_action_names_every_privilege_the_operator_needs() {
        let refused = st(
            403,
            "action [cluster:monitor/main] is unauthorized for API key id [k] of user [u]",
        );
        let hint = refused.hint().expect("a hint");
        for p in crate::es::privileges::REQUIRED {
            assert!(hint.contains(p.name), "{hint}");
        }
        assert!(!refused.is_transient() && !refused.is_connection_failure());
    }
}
