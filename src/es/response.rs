//! What comes back from Elasticsearch, read into types: an endpoint of a list kept as its JSON
//! text, deployment stats, the error envelope's type and reason, and transport failures by kind.
//! Nothing here sends a request.

use std::{error::Error as _, time::Duration};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use super::error::{EsError, TransportKind};
use crate::model::{DeploymentStats, EndpointConfig};

/// One endpoint of a list, kept as its JSON text (compact) and parsed on demand.
#[derive(Clone, Debug)]
pub struct RawEndpoint {
    pub inference_id: String,
    pub raw: Box<RawValue>,
}

impl RawEndpoint {
    pub fn parse(&self) -> Result<EndpointConfig, EsError> {
        serde_json::from_str(self.raw.get()).map_err(|e| EsError::Decode(e.to_string()))
    }
}

#[derive(Deserialize)]
pub(super) struct CcmState {
    pub(super) enabled: bool,
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, EsError> {
    serde_json::from_slice(bytes).map_err(|e| EsError::Decode(e.to_string()))
}

pub(super) fn transport_error(e: reqwest::Error, timeout: Duration, base: &str) -> EsError {
    if e.is_timeout() {
        return EsError::Timeout(timeout);
    }
    let kind = transport_kind(&e);
    // reqwest puts the whole request URL in its message; name only the (credential-free) base.
    let e = e.without_url();
    // reqwest's Display is terse; the source chain says what actually failed (DNS, TLS, refused).
    let mut message = format!("{base}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    EsError::Transport { kind, message }
}

/// The kind of a transport failure, from the types in the error's source chain. `io::Error`s
/// hide what they wrap from `source()`, so they are unwrapped with `get_ref`.
fn transport_kind(e: &reqwest::Error) -> TransportKind {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = next {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return TransportKind::Tls;
        }
        next = match s.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => io.source(),
            },
            None => s.source(),
        };
    }
    if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    }
}

/// Elasticsearch's error type and reason, with the `caused_by` chain appended, from its error
/// envelope; falls back to the status line for non-JSON bodies.
pub(super) fn error_reason(status: StatusCode, bytes: &[u8]) -> (Option<String>, String) {
    let fallback = || status.canonical_reason().unwrap_or("error").to_string();
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return (None, fallback());
    };
    let Some(err) = v.get("error") else {
        return (None, fallback());
    };
    if let Some(s) = err.as_str() {
        return (None, s.to_string());
    }
    let kind = err.get("type").and_then(Value::as_str).map(str::to_string);
    let mut reason = err
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut cause = err.get("caused_by");
    let mut depth = 0;
    while let Some(c) = cause {
        if let Some(r) = c.get("reason").and_then(Value::as_str)
            && !reason.contains(r)
        {
            reason.push_str(" Caused by: ");
            reason.push_str(r);
        }
        cause = c.get("caused_by");
        depth += 1;
        if depth > 5 {
            break;
        }
    }
    (kind, reason)
}

/// The endpoints of a GET or list answer (`endpoints`, or `models` before 8.15), each kept as
/// text. One unparsable endpoint (e.g. a new field shape) must not hide the others.
pub(super) fn parse_endpoints(bytes: &[u8]) -> Result<Vec<RawEndpoint>, EsError> {
    #[derive(Deserialize)]
    struct Endpoints {
        #[serde(alias = "models")]
        endpoints: Vec<Box<RawValue>>,
    }
    #[derive(Deserialize)]
    struct Id {
        #[serde(alias = "model_id")]
        inference_id: String,
    }
    let list: Endpoints = decode(bytes)?;
    Ok(list
        .endpoints
        .into_iter()
        .filter_map(|raw| {
            let id: Id = serde_json::from_str(raw.get()).ok()?;
            Some(RawEndpoint {
                inference_id: id.inference_id,
                raw,
            })
        })
        .collect())
}

pub(super) fn deployment_from_stats(v: &Value, deployment_id: &str) -> Option<DeploymentStats> {
    let d = v
        .get("trained_model_stats")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("deployment_stats"))
        .find(|d| d.get("deployment_id").and_then(Value::as_str) == Some(deployment_id))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let alloc = d.get("allocation_status");
    Some(DeploymentStats {
        deployment_id: deployment_id.to_string(),
        model_id: text(d.get("model_id")).unwrap_or_default(),
        state: text(d.get("state")).unwrap_or_default(),
        reason: text(d.get("reason")),
        allocations: alloc
            .and_then(|a| a.get("allocation_count"))
            .and_then(Value::as_u64),
        target_allocations: alloc
            .and_then(|a| a.get("target_allocation_count"))
            .and_then(Value::as_u64),
        allocation_state: text(alloc.and_then(|a| a.get("state"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_reason_includes_causes() {
        let body = serde_json::json!({
            "error": {
                "root_cause": [{"type": "status_exception", "reason": "inner"}],
                "type": "status_exception",
                "reason": "Could not complete inference endpoint creation as validation call to service threw an exception.",
                "caused_by": {"type": "status_exception", "reason": "Received a server error status code for request from inference entity id [x] status [503]"}
            },
            "status": 400
        });
        let (kind, reason) = error_reason(StatusCode::BAD_REQUEST, body.to_string().as_bytes());
        assert_eq!(kind.as_deref(), Some("status_exception"));
        assert!(reason.starts_with("Could not complete"));
        assert!(reason.contains("status [503]"));
        let e = EsError::Status {
            status: 400,
            kind,
            reason,
            retry_after: None,
        };
        assert!(e.is_transient(), "provider 5xx behind a 400 is transient");
    }

    #[test]
    fn list_keeps_each_endpoint_as_text_and_skips_broken_ones() {
        let body = serde_json::json!({"endpoints": [
            {"inference_id": "a", "task_type": "completion", "service": "anthropic", "service_settings": {"model_id": "m"}},
            {"no_id": true},
            {"model_id": "old", "task_type": "completion", "service": "openai"}
        ]});
        let list = parse_endpoints(body.to_string().as_bytes()).expect("list");
        let ids: Vec<_> = list.iter().map(|e| e.inference_id.as_str()).collect();
        assert_eq!(ids, ["a", "old"]);
        assert_eq!(
            list[0].parse().expect("parses").service_settings["model_id"],
            "m"
        );
    }
}
