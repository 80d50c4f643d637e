//! The Kubernetes permissions the operator's code uses, and nothing more. The Helm chart grants
//! exactly these (checked by `tests/rbac.rs` against the rendered manifests), and the reconciler
//! tests check that every request the code makes is covered by them.

/// Where a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide, or in each watched namespace when the operator watches only some.
    Watched,
    /// The operator's own namespace (leader election).
    OwnNamespace,
    /// Cluster-scoped resources: always cluster-wide, also when the operator watches only some
    /// namespaces.
    Cluster,
}

/// One RBAC rule: an API group, a resource (or `resource/subresource`) and verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    /// Only the operator's own object (`resourceNames`: the Lease it is configured with).
    pub own_object_only: bool,
}

/// Every permission the operator needs.
pub const RULES: &[Rule] = &[
    // The controller lists and watches InferenceEndpoints; the finalizer is added and removed
    // with a JSON patch of the object; the startup check lists one.
    Rule {
        api_group: "es-inference.dev",
        resource: "inferenceendpoints",
        verbs: &["list", "watch", "patch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // Status is written with server-side apply.
    Rule {
        api_group: "es-inference.dev",
        resource: "inferenceendpoints/status",
        verbs: &["patch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // Secrets are watched by metadata only and read (get) when a resource references them.
    // Never written.
    Rule {
        api_group: "",
        resource: "secrets",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // ElasticsearchConnections are watched, read when a resource references one, and get a
    // status.
    Rule {
        api_group: "es-inference.dev",
        resource: "elasticsearchconnections",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    Rule {
        api_group: "es-inference.dev",
        resource: "elasticsearchconnections/status",
        verbs: &["patch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // A connection's CA may come from a ConfigMap: watched by metadata only, read when used.
    Rule {
        api_group: "",
        resource: "configmaps",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // elasticsearchRef of kind Elasticsearch reads the ECK cluster's spec (TLS settings).
    Rule {
        api_group: "elasticsearch.k8s.elastic.co",
        resource: "elasticsearches",
        verbs: &["get"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // Events are created (never patched: each is published once, see Context::reporter).
    Rule {
        api_group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        scope: Scope::Watched,
        own_object_only: false,
    },
    // A resource's namespace: its labels (the tenancy selectors of a connection's policy) and
    // its es-inference.dev/deletion-policy annotation. Metadata only; cached for 30 s.
    Rule {
        api_group: "",
        resource: "namespaces",
        verbs: &["get"],
        scope: Scope::Cluster,
        own_object_only: false,
    },
    // Leader election: read and renew the one Lease the operator is configured with...
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "patch"],
        scope: Scope::OwnNamespace,
        own_object_only: true,
    },
    // ...and create it the first time (create cannot be limited to a name).
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create"],
        scope: Scope::OwnNamespace,
        own_object_only: false,
    },
];

/// Whether a request is covered by `RULES` (ignoring scope).
pub fn allows(api_group: &str, resource: &str, verb: &str) -> bool {
    RULES
        .iter()
        .any(|r| r.api_group == api_group && r.resource == resource && r.verbs.contains(&verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_what_they_say_and_no_secret_writes() {
        assert!(allows("", "secrets", "get"));
        for verb in ["create", "update", "patch", "delete"] {
            assert!(!allows("", "secrets", verb), "secrets {verb}");
        }
        assert!(allows(
            "es-inference.dev",
            "inferenceendpoints/status",
            "patch"
        ));
        assert!(!allows("es-inference.dev", "inferenceendpoints", "delete"));
    }
}
