//! PURE: resolve `secretSettings` from Secrets, say which versions of them are in use, and map a
//! changed Secret to the resources that use it.
//!
//! What reaches status about secrets is only *which versions* of the referenced Secrets were
//! sent (`name@resourceVersion`): public metadata, nothing derived from a value. Whether the
//! values themselves changed is decided in memory, with a MAC keyed by a random key of the
//! operator process that never leaves it.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::{crd::InferenceEndpointSpec, desired::SecretValues};

/// Why `secretSettings` could not be resolved. Names Secrets and keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error(
        "secretSettings.{setting} refers to a Secret in namespace {other:?}, but Secrets must be in the resource's namespace {own:?}"
    )]
    CrossNamespace {
        setting: String,
        own: String,
        other: String,
    },
    #[error(
        "Secret {name:?} (for secretSettings.{setting}) does not exist in namespace {namespace:?}"
    )]
    SecretNotFound {
        setting: String,
        namespace: String,
        name: String,
    },
    #[error("Secret {name:?} has no key {key:?} (for secretSettings.{setting})")]
    KeyNotFound {
        setting: String,
        name: String,
        key: String,
    },
    #[error(
        "key {key:?} of Secret {name:?} (for secretSettings.{setting}) is empty or not UTF-8 text"
    )]
    Unusable {
        setting: String,
        name: String,
        key: String,
    },
}

impl SecretProblem {
    /// Cross-namespace references are a spec error; the rest wait for a Secret to change.
    pub fn is_spec_error(&self) -> bool {
        matches!(self, SecretProblem::CrossNamespace { .. })
    }
}

/// The Secret names a spec refers to (all in the resource's namespace).
pub fn referenced_secrets(spec: &InferenceEndpointSpec) -> BTreeSet<String> {
    spec.secret_settings
        .values()
        .map(|s| s.secret_key_ref.name.clone())
        .collect()
}

/// Check references before any Secret is read.
pub fn check_references(
    spec: &InferenceEndpointSpec,
    namespace: &str,
) -> Result<(), SecretProblem> {
    for (setting, source) in &spec.secret_settings {
        if let Some(other) = &source.secret_key_ref.namespace
            && other != namespace
        {
            return Err(SecretProblem::CrossNamespace {
                setting: setting.clone(),
                own: namespace.to_string(),
                other: other.clone(),
            });
        }
    }
    Ok(())
}

/// Pick the values out of the fetched Secrets (`None` = the Secret does not exist). Leading and
/// trailing whitespace is trimmed: a key saved from a file with a final newline is the usual
/// cause of "invalid API key" errors.
pub fn resolve(
    spec: &InferenceEndpointSpec,
    namespace: &str,
    secrets: &BTreeMap<String, Option<Secret>>,
) -> Result<SecretValues, SecretProblem> {
    check_references(spec, namespace)?;
    let mut values = BTreeMap::new();
    for (setting, source) in &spec.secret_settings {
        let r = &source.secret_key_ref;
        let Some(Some(secret)) = secrets.get(&r.name) else {
            return Err(SecretProblem::SecretNotFound {
                setting: setting.clone(),
                namespace: namespace.to_string(),
                name: r.name.clone(),
            });
        };
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&r.key)) else {
            return Err(SecretProblem::KeyNotFound {
                setting: setting.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
            });
        };
        let text = std::str::from_utf8(&bytes.0).ok().map(str::trim);
        match text {
            Some(t) if !t.is_empty() => {
                values.insert(setting.clone(), SecretString::from(t.to_string()));
            }
            _ => {
                return Err(SecretProblem::Unusable {
                    setting: setting.clone(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                });
            }
        }
    }
    Ok(SecretValues { values })
}

/// Which versions of the referenced Secrets the values come from: `name@resourceVersion`,
/// sorted, comma-separated. `None` when the spec has no secrets.
pub fn versions(
    spec: &InferenceEndpointSpec,
    secrets: &BTreeMap<String, Option<Secret>>,
) -> Option<String> {
    let names = referenced_secrets(spec);
    format_versions(names.iter().map(|n| {
        let rv = secrets
            .get(n)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.metadata.resource_version.as_deref());
        (n.as_str(), rv.unwrap_or_default())
    }))
}

/// `name@resourceVersion` of each (name, version), in the given (sorted) order, comma-separated:
/// the one form of `status.secretVersions`, whether the versions come from the Secrets read or
/// from the Secret watch (`secret_reads`). `None` for no Secrets.
pub fn format_versions<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let parts: Vec<String> = parts
        .into_iter()
        .map(|(name, rv)| format!("{name}@{rv}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// A MAC of the values under `key` (the operator process's own random key): tells, in memory,
/// whether values changed when a Secret's version moved. Never written anywhere.
pub fn values_mac(key: &[u8], values: &SecretValues) -> [u8; 16] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    feed(&mut mac, values);
    let out = mac.finalize().into_bytes();
    let mut first = [0u8; 16];
    first.copy_from_slice(&out[..16]);
    first
}

/// Every key and value, each prefixed by its length (so no two sets feed the same bytes).
fn feed(mac: &mut Hmac<Sha256>, values: &SecretValues) {
    for (k, v) in &values.values {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        let v = v.expose_secret();
        mac.update(&(v.len() as u64).to_be_bytes());
        mac.update(v.as_bytes());
    }
}

/// The fingerprint releases up to 0.1 wrote to status (an HMAC keyed by the object's UID, which
/// anyone who can read the object knows). Only read, once per object, to migrate to `versions`
/// without re-sending every secret; never written again.
pub fn legacy_fingerprint(salt: &str, values: &SecretValues) -> Option<String> {
    if values.values.is_empty() {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(
        format!("es-inference-operator/secret-fingerprint/v1/{salt}").as_bytes(),
    )
    .expect("HMAC accepts keys of any length");
    feed(&mut mac, values);
    let out = mac.finalize().into_bytes();
    Some(hex::encode(&out[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn spec(yaml: &str) -> InferenceEndpointSpec {
        serde_saphyr::from_str(yaml).expect("valid spec yaml")
    }

    fn secret(pairs: &[(&str, &[u8])]) -> Option<Secret> {
        Some(Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        })
    }

    const BEDROCK: &str = "taskType: text_embedding\nservice: amazonbedrock\nsecretSettings:\n  access_key: {secretKeyRef: {name: aws, key: id}}\n  secret_key: {secretKeyRef: {name: aws, key: secret}}\n";

    #[test]
    fn resolves_and_trims() {
        let s = spec(BEDROCK);
        let secrets = BTreeMap::from([(
            "aws".to_string(),
            secret(&[("id", b"AKIA\n"), ("secret", b" s3cr3t ")]),
        )]);
        let v = resolve(&s, "ns", &secrets).expect("resolves");
        assert_eq!(v.values["access_key"].expose_secret(), "AKIA");
        assert_eq!(v.values["secret_key"].expose_secret(), "s3cr3t");
    }

    #[test]
    fn problems_name_secret_and_key_but_not_values() {
        let s = spec(BEDROCK);
        let none = BTreeMap::from([("aws".to_string(), None)]);
        let e = resolve(&s, "ns", &none).expect_err("missing secret");
        assert!(e.to_string().contains("\"aws\""), "{e}");
        let partial = BTreeMap::from([("aws".to_string(), secret(&[("id", b"AKIA-VALUE")]))]);
        let e = resolve(&s, "ns", &partial).expect_err("missing key");
        assert_eq!(
            e,
            SecretProblem::KeyNotFound {
                setting: "secret_key".into(),
                name: "aws".into(),
                key: "secret".into()
            }
        );
        assert!(!e.to_string().contains("AKIA-VALUE"));
        let empty = BTreeMap::from([(
            "aws".to_string(),
            secret(&[("id", b"  "), ("secret", b"x")]),
        )]);
        assert!(matches!(
            resolve(&s, "ns", &empty),
            Err(SecretProblem::Unusable { .. })
        ));
    }

    #[test]
    fn cross_namespace_refused() {
        let s = spec(
            "taskType: completion\nservice: openai\nsecretSettings: {api_key: {secretKeyRef: {name: k, key: k, namespace: other}}}\n",
        );
        let e = resolve(&s, "mine", &BTreeMap::new()).expect_err("refused");
        assert!(e.is_spec_error());
        assert!(check_references(&s, "other").is_ok());
    }

    #[test]
    fn legacy_fingerprint_is_stable_for_migration() {
        let mut v = SecretValues::default();
        v.values.insert("api_key".into(), SecretString::from("one"));
        let a = legacy_fingerprint("uid-1", &v).expect("some");
        assert_eq!(a.len(), 16);
        assert_eq!(Some(a.clone()), legacy_fingerprint("uid-1", &v));
        assert_ne!(Some(a.clone()), legacy_fingerprint("uid-2", &v));
        v.values.insert("api_key".into(), SecretString::from("two"));
        assert_ne!(Some(a), legacy_fingerprint("uid-1", &v));
        assert_eq!(legacy_fingerprint("uid", &SecretValues::default()), None);
    }

    #[test]
    fn versions_name_secrets_and_versions_only() {
        let s = spec(BEDROCK);
        let mut secret = secret(&[("id", b"AKIA-VALUE"), ("secret", b"s3cr3t-VALUE")]);
        if let Some(s) = secret.as_mut() {
            s.metadata.resource_version = Some("42".into());
        }
        let fetched = BTreeMap::from([("aws".to_string(), secret)]);
        assert_eq!(versions(&s, &fetched).as_deref(), Some("aws@42"));
        let none = spec("taskType: completion\nservice: elastic\n");
        assert_eq!(versions(&none, &BTreeMap::new()), None);
    }

    #[test]
    fn the_values_mac_depends_on_the_process_key_and_the_values() {
        let mut v = SecretValues::default();
        v.values.insert("api_key".into(), SecretString::from("one"));
        let a = values_mac(b"key-a", &v);
        assert_eq!(a, values_mac(b"key-a", &v));
        assert_ne!(a, values_mac(b"key-b", &v));
        v.values.insert("api_key".into(), SecretString::from("two"));
        assert_ne!(a, values_mac(b"key-a", &v));
    }
}
