//! PURE: what Elasticsearch reports, as data: versions and the features they gate, the cluster's
//! identity, endpoints and model deployments. The HTTP client (`es`) produces these; the pure core
//! (`plan`, `desired`) reads them without depending on the client.

use serde::Deserialize;
use serde_json::{Map, Value};

/// An Elasticsearch version, as reported by `GET /`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(Self::new(
            it.next()??,
            it.next()??,
            it.next().flatten().unwrap_or(0),
        ))
    }

    /// Oldest supported version: `_update` appeared in 8.17 (elastic/elasticsearch#114457;
    /// specification `inference.update` `since=8.17.0`).
    pub const MIN_SUPPORTED: Version = Version::new(8, 17, 0);
    // What each version accepts is data in `catalog` (`Version::put_accepts_timeout`, …).
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What `GET /` says about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub uuid: String,
    pub name: String,
    pub version: Version,
}

impl ClusterInfo {
    /// Elasticsearch answers `cluster_uuid: "_na_"` while it has not recovered its cluster state
    /// (node start-up, no elected master): not an identity. Anything that is not a plausible
    /// uuid is treated the same way, so it can never look like another cluster.
    pub fn has_identity(&self) -> bool {
        let u = self.uuid.as_str();
        u.len() >= 8
            && u != "_na_"
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// An inference endpoint as Elasticsearch returns it (never with secrets).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct EndpointConfig {
    /// `inference_id` since 8.15, `model_id` before.
    #[serde(alias = "model_id")]
    pub inference_id: String,
    pub task_type: String,
    pub service: String,
    #[serde(default)]
    pub service_settings: Map<String, Value>,
    #[serde(default)]
    pub task_settings: Map<String, Value>,
    #[serde(default)]
    pub chunking_settings: Option<Map<String, Value>>,
    /// Set by Elasticsearch on EIS endpoints (model display data, lifecycle heuristics, regions).
    /// Parsed leniently, never compared, never sent back.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A trained-model deployment as `GET _ml/trained_models/<id>/_stats` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentStats {
    pub deployment_id: String,
    pub model_id: String,
    /// `starting`, `started`, `stopping`, `failed`.
    pub state: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    pub allocations: Option<u64>,
    pub target_allocations: Option<u64>,
    /// `starting`, `started`, `fully_allocated`.
    pub allocation_state: Option<String>,
}

/// The result of a DELETE that Elasticsearch accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// 404: already gone.
    AlreadyGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_features() {
        let v = Version::parse("9.1.3").expect("parses");
        assert_eq!(v, Version::new(9, 1, 3));
        assert_eq!(
            Version::parse("8.19.0-SNAPSHOT"),
            Some(Version::new(8, 19, 0))
        );
        assert_eq!(Version::parse("garbage"), None);
        assert!(Version::new(8, 19, 0).put_accepts_timeout());
        assert!(!Version::new(9, 0, 4).put_accepts_timeout());
        assert!(Version::new(9, 1, 0).put_accepts_timeout());
        assert!(!Version::new(8, 18, 2).put_accepts_timeout());
        assert!(Version::new(8, 16, 0) < Version::MIN_SUPPORTED);
        assert!(Version::new(9, 2, 0).update_resets_chunking());
        assert!(!Version::new(9, 3, 1).update_resets_chunking());
    }

    #[test]
    fn na_is_not_an_identity() {
        let info = |uuid: &str| ClusterInfo {
            uuid: uuid.into(),
            name: "c".into(),
            version: Version::new(9, 1, 0),
        };
        assert!(info("Xq3dGv8yT2uO7lM5nB1c4w").has_identity());
        assert!(!info("_na_").has_identity());
        assert!(!info("").has_identity());
        assert!(!info("n/a").has_identity());
    }
}
