//! PURE: the operator's controls on what a resource may do: tenancy rules of a cluster (id
//! prefix, who may adopt, force a delete, or recreate) and the deletion policy in effect.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::crd::{DeletionPolicy, InferenceEndpointSpec, ReplacementPolicy, TenancyPolicy};

/// Annotation on a Namespace: the deletion policy of its InferenceEndpoints that set none.
pub const NAMESPACE_DELETION_POLICY: &str = "es-inference.dev/deletion-policy";

/// What the operator knows of a namespace (labels for selectors, annotations for defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The deletion policy in effect: the spec's, else the namespace's annotation, else the
/// operator's default. An annotation with another value is ignored (see `invalid_annotation`).
pub fn deletion_policy(
    spec: &InferenceEndpointSpec,
    namespace: Option<&NamespaceInfo>,
    default: DeletionPolicy,
) -> DeletionPolicy {
    if let Some(p) = spec.deletion_policy {
        return p;
    }
    match namespace
        .and_then(|n| n.annotations.get(NAMESPACE_DELETION_POLICY))
        .map(String::as_str)
    {
        Some("Delete") => DeletionPolicy::Delete,
        Some("Retain") => DeletionPolicy::Retain,
        _ => default,
    }
}

/// The namespace's deletion-policy annotation when it is neither `Delete` nor `Retain`.
pub fn invalid_annotation(namespace: &NamespaceInfo) -> Option<&str> {
    namespace
        .annotations
        .get(NAMESPACE_DELETION_POLICY)
        .map(String::as_str)
        .filter(|v| !matches!(*v, "Delete" | "Retain"))
}

/// A rule a resource breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error(
        "inference ids on this cluster must start with {prefix:?} (policy inferenceIdPrefix); {id:?} does not"
    )]
    Prefix { prefix: String, id: String },
    #[error(
        "namespace {namespace:?} may not use this cluster's connection (policy namespaceSelector)"
    )]
    Namespace { namespace: String },
    #[error(
        "adopt: true is not allowed in namespace {namespace:?} on this cluster (policy adoptNamespaceSelector)"
    )]
    Adopt { namespace: String },
    #[error(
        "forceDelete: true is not allowed in namespace {namespace:?} on this cluster (policy forceDeleteNamespaceSelector)"
    )]
    ForceDelete { namespace: String },
    #[error(
        "replacementPolicy: Recreate is not allowed in namespace {namespace:?} on this cluster (policy recreateNamespaceSelector)"
    )]
    Recreate { namespace: String },
    #[error("the policy's {rule} is not a valid label selector: {error}")]
    Selector { rule: &'static str, error: String },
}

/// Whether `selector` (unset: everything) matches the namespace's labels.
fn selects(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
    rule: &'static str,
) -> Result<bool, Violation> {
    let Some(selector) = selector else {
        return Ok(true);
    };
    let s: Selector =
        selector
            .clone()
            .try_into()
            .map_err(|e: kube::core::ParseExpressionError| Violation::Selector {
                rule,
                error: e.to_string(),
            })?;
    Ok(s.matches(labels))
}

/// The `{namespace}` template of a prefix, filled in.
pub fn render_prefix(prefix: &str, namespace: &str) -> String {
    prefix.replace("{namespace}", namespace)
}

/// Check a resource against the policy of its cluster. `own_namespace`: whether the resource
/// is in the namespace of the connection (or uses the operator's default cluster).
pub fn check(
    spec: &InferenceEndpointSpec,
    inference_id: &str,
    namespace: &str,
    ns: &NamespaceInfo,
    own_namespace: bool,
    policy: &TenancyPolicy,
) -> Result<(), Violation> {
    let labels = &ns.labels;
    // Other namespaces only when a selector names them (no selector: none).
    let admitted = match &policy.namespace_selector {
        Some(sel) => selects(Some(sel), labels, "namespaceSelector")?,
        None => false,
    };
    if !own_namespace && !admitted {
        return Err(Violation::Namespace {
            namespace: namespace.to_string(),
        });
    }
    // Observing writes nothing: the rules that guard writes (ids, adoption, deletes,
    // replacement) do not apply, only who may use the cluster at all.
    if spec.management_policy == crate::crd::ManagementPolicy::Observe {
        return Ok(());
    }
    if let Some(prefix) = &policy.inference_id_prefix {
        let prefix = render_prefix(prefix, namespace);
        if !inference_id.starts_with(&prefix) {
            return Err(Violation::Prefix {
                prefix,
                id: inference_id.to_string(),
            });
        }
    }
    let namespace = namespace.to_string();
    if spec.adopt
        && !selects(
            policy.adopt_namespace_selector.as_ref(),
            labels,
            "adoptNamespaceSelector",
        )?
    {
        return Err(Violation::Adopt { namespace });
    }
    if spec.force_delete
        && !selects(
            policy.force_delete_namespace_selector.as_ref(),
            labels,
            "forceDeleteNamespaceSelector",
        )?
    {
        return Err(Violation::ForceDelete { namespace });
    }
    if spec.replacement_policy == ReplacementPolicy::Recreate
        && !selects(
            policy.recreate_namespace_selector.as_ref(),
            labels,
            "recreateNamespaceSelector",
        )?
    {
        return Err(Violation::Recreate { namespace });
    }
    Ok(())
}

/// Whether `forceDelete` may be used (cleanup: a forbidden force is ignored, not an error).
pub fn force_allowed(ns: &NamespaceInfo, policy: &TenancyPolicy) -> bool {
    selects(
        policy.force_delete_namespace_selector.as_ref(),
        &ns.labels,
        "forceDeleteNamespaceSelector",
    )
    .unwrap_or(false)
}

/// A label selector from a flag: `key=value,key2=value2` (matchLabels); empty: everything.
pub fn parse_selector(text: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=value"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> InferenceEndpointSpec {
        let mut v = json!({"taskType": "completion", "service": "anthropic"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).expect("spec")
    }

    fn ns(labels: &[(&str, &str)]) -> NamespaceInfo {
        NamespaceInfo {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn no_policy_allows_everything() {
        let p = TenancyPolicy::default();
        let s = spec(json!({"adopt": true, "forceDelete": true, "replacementPolicy": "Recreate"}));
        assert_eq!(check(&s, "anything", "team-a", &ns(&[]), true, &p), Ok(()));
    }

    #[test]
    fn prefix_and_namespaces() {
        let p = TenancyPolicy {
            inference_id_prefix: Some("{namespace}-".into()),
            namespace_selector: Some(parse_selector("tenant=true").expect("selector")),
            ..Default::default()
        };
        let s = spec(json!({}));
        assert_eq!(
            check(&s, "team-a-emb", "team-a", &ns(&[]), true, &p),
            Ok(())
        );
        let e = check(&s, "team-b-emb", "team-a", &ns(&[]), true, &p).expect_err("prefix");
        assert!(e.to_string().contains("\"team-a-\""), "{e}");
        // Another namespace needs the selector.
        assert!(matches!(
            check(&s, "team-c-x", "team-c", &ns(&[]), false, &p),
            Err(Violation::Namespace { .. })
        ));
        assert_eq!(
            check(
                &s,
                "team-c-x",
                "team-c",
                &ns(&[("tenant", "true")]),
                false,
                &p
            ),
            Ok(())
        );
        // Without a selector, only the connection's own namespace.
        let own_only = TenancyPolicy::default();
        assert!(check(&s, "x", "other", &ns(&[]), false, &own_only).is_err());
        // Observing writes nothing: any id (preconfigured ones too), but still only from
        // namespaces that may use the cluster.
        let observe = spec(json!({"managementPolicy": "Observe"}));
        assert_eq!(
            check(
                &observe,
                ".elser-2-elasticsearch",
                "team-a",
                &ns(&[]),
                true,
                &p
            ),
            Ok(())
        );
        assert!(matches!(
            check(&observe, "team-c-x", "team-c", &ns(&[]), false, &p),
            Err(Violation::Namespace { .. })
        ));
    }

    #[test]
    fn adopt_force_and_recreate_per_namespace() {
        let p = TenancyPolicy {
            adopt_namespace_selector: Some(parse_selector("platform=true").expect("s")),
            force_delete_namespace_selector: Some(parse_selector("platform=true").expect("s")),
            recreate_namespace_selector: Some(parse_selector("platform=true").expect("s")),
            ..Default::default()
        };
        let platform = ns(&[("platform", "true")]);
        for (field, value, want) in [
            ("adopt", json!(true), "adopt"),
            ("forceDelete", json!(true), "forceDelete"),
            ("replacementPolicy", json!("Recreate"), "Recreate"),
        ] {
            let s = spec(json!({ field: value }));
            let e = check(&s, "x", "team", &ns(&[]), true, &p).expect_err(field);
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(check(&s, "x", "team", &platform, true, &p), Ok(()));
        }
        assert!(force_allowed(&platform, &p));
        assert!(!force_allowed(&ns(&[]), &p));
    }

    #[test]
    fn deletion_policy_spec_then_namespace_then_default() {
        let mut n = ns(&[]);
        assert_eq!(
            deletion_policy(&spec(json!({})), Some(&n), DeletionPolicy::Retain),
            DeletionPolicy::Retain
        );
        n.annotations
            .insert(NAMESPACE_DELETION_POLICY.into(), "Delete".into());
        assert_eq!(
            deletion_policy(&spec(json!({})), Some(&n), DeletionPolicy::Retain),
            DeletionPolicy::Delete
        );
        assert_eq!(
            deletion_policy(
                &spec(json!({"deletionPolicy": "Retain"})),
                Some(&n),
                DeletionPolicy::Delete
            ),
            DeletionPolicy::Retain
        );
        // A value that is neither is ignored, and named.
        n.annotations
            .insert(NAMESPACE_DELETION_POLICY.into(), "Orphan".into());
        assert_eq!(
            deletion_policy(&spec(json!({})), Some(&n), DeletionPolicy::Retain),
            DeletionPolicy::Retain
        );
        assert_eq!(invalid_annotation(&n), Some("Orphan"));
        assert_eq!(invalid_annotation(&ns(&[])), None);
    }
}
