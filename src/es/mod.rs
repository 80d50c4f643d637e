//! Elasticsearch over HTTP: the client for the inference lifecycle routes, its typed errors,
//! TLS, and the scrubbing of secret values from anything that comes back.

mod client;
mod error;
pub mod privileges;
mod response;
mod scrub;
mod tls;

pub use client::{EsAuth, EsClient, EsConfig, SecretBody, check_url, create_timeout_param};
pub use error::{EsConfigError, EsError, TransportKind};
pub use response::RawEndpoint;
pub use scrub::{REDACTED, Scrubber};
