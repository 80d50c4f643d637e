//! The list snapshot a cluster shares between passes: what `GET _inference/_all` said, per
//! inference id, as JSON text and a hash of the configuration; kept until the next list and
//! updated by the operator's own writes.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Mutex,
    time::Instant,
};

use crate::{
    error::{Error, Result},
    es::{EsError, RawEndpoint},
    model::EndpointConfig,
};

/// What a list said, per inference id: the endpoint as JSON text and a hash of its
/// configuration. Kept until the next list; our own writes update it.
pub struct Snapshot {
    pub taken: Instant,
    endpoints: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    json: Box<str>,
    hash: u64,
}

impl Snapshot {
    /// The hash of the endpoint's configuration, `None` when the list did not have it.
    pub fn hash(&self, id: &str) -> Option<u64> {
        self.lock().get(id).map(|e| e.hash)
    }

    /// The endpoint as listed, parsed.
    pub fn get(&self, id: &str) -> Result<Option<EndpointConfig>> {
        let json = self.lock().get(id).map(|e| e.json.clone());
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| Error::Es(EsError::Decode(e.to_string())))
        })
        .transpose()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of every endpoint, for comparing snapshots.
    pub fn hashes(&self) -> HashMap<String, u64> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.hash))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.endpoints.lock().expect("snapshot lock poisoned")
    }

    pub(super) fn remember(&self, id: &str, ep: Option<&EndpointConfig>) {
        let mut map = self.lock();
        match ep {
            Some(ep) => {
                map.insert(
                    id.to_string(),
                    Entry {
                        json: endpoint_json(ep).into(),
                        hash: endpoint_hash(ep),
                    },
                );
            }
            None => {
                map.remove(id);
            }
        }
    }
}

fn endpoint_json(ep: &EndpointConfig) -> String {
    serde_json::json!({
        "inference_id": ep.inference_id,
        "task_type": ep.task_type,
        "service": ep.service,
        "service_settings": ep.service_settings,
        "task_settings": ep.task_settings,
        "chunking_settings": ep.chunking_settings,
    })
    .to_string()
}

/// A hash of what an endpoint is configured to do (service, task type and settings; not EIS
/// metadata, which Elasticsearch changes on its own). Equal hashes mean "nothing to look at".
pub fn endpoint_hash(ep: &EndpointConfig) -> u64 {
    let canonical = serde_json::json!([
        ep.task_type,
        ep.service,
        ep.service_settings,
        ep.task_settings,
        ep.chunking_settings,
    ])
    .to_string();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut h);
    h.finish()
}

pub(super) fn build_snapshot(list: Vec<RawEndpoint>) -> Snapshot {
    let endpoints = list
        .into_iter()
        .filter_map(|raw| {
            // An endpoint that does not parse is left out: it is looked at with a GET if a
            // resource needs it.
            let ep = raw.parse().ok()?;
            let hash = endpoint_hash(&ep);
            // The list's own text is kept (moved, not copied).
            let RawEndpoint { inference_id, raw } = raw;
            Some((
                inference_id,
                Entry {
                    json: raw.into(),
                    hash,
                },
            ))
        })
        .collect();
    Snapshot {
        taken: Instant::now(),
        endpoints: Mutex::new(endpoints),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, value::RawValue};

    use super::*;

    fn raw(v: serde_json::Value) -> RawEndpoint {
        RawEndpoint {
            inference_id: v["inference_id"].as_str().unwrap_or("broken").to_string(),
            raw: RawValue::from_string(v.to_string()).expect("json"),
        }
    }

    fn endpoint(id: &str, model: &str) -> serde_json::Value {
        json!({
            "inference_id": id,
            "task_type": "completion",
            "service": "openai",
            "service_settings": {"model_id": model},
        })
    }

    fn parsed(v: serde_json::Value) -> EndpointConfig {
        serde_json::from_value(v).expect("endpoint")
    }

    #[test]
    fn a_snapshot_answers_by_id_and_leaves_out_what_does_not_parse() {
        let snap = build_snapshot(vec![
            raw(endpoint("a", "gpt-4o")),
            raw(json!({"inference_id": "broken", "task_type": 7})),
        ]);
        assert_eq!(snap.len(), 1);
        let a = snap.get("a").expect("parses").expect("listed");
        assert_eq!(a, parsed(endpoint("a", "gpt-4o")));
        assert_eq!(snap.hash("a"), Some(endpoint_hash(&a)));
        assert_eq!(snap.hash("broken"), None);
        assert!(snap.get("missing").expect("no error").is_none());
        assert_eq!(
            snap.hashes(),
            HashMap::from([("a".to_string(), endpoint_hash(&a))])
        );
    }

    #[test]
    fn own_writes_update_the_snapshot() {
        let snap = build_snapshot(vec![raw(endpoint("a", "gpt-4o"))]);
        let b = parsed(endpoint("b", "gpt-5"));
        snap.remember("b", Some(&b));
        assert_eq!(snap.get("b").expect("parses"), Some(b.clone()));
        assert_eq!(snap.hash("b"), Some(endpoint_hash(&b)));
        snap.remember("a", None);
        assert_eq!(snap.hash("a"), None);
        assert_eq!(snap.len(), 1);
    }

    #[test]
    fn the_hash_follows_the_configuration_only() {
        let a = parsed(endpoint("a", "gpt-4o"));
        // Another id, EIS metadata: the same configuration.
        let mut same = parsed(endpoint("other-id", "gpt-4o"));
        same.metadata = Some(json!({"display": {"name": "GPT"}}));
        assert_eq!(endpoint_hash(&a), endpoint_hash(&same));
        assert_eq!(endpoint_hash(&a), endpoint_hash(&a.clone()));
        let other_model = parsed(endpoint("a", "gpt-5"));
        assert_ne!(endpoint_hash(&a), endpoint_hash(&other_model));
        let mut chunked = a.clone();
        chunked.chunking_settings = Some(serde_json::Map::from_iter([(
            "strategy".to_string(),
            json!("word"),
        )]));
        assert_ne!(endpoint_hash(&a), endpoint_hash(&chunked));
    }
}
