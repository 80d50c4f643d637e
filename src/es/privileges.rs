//! The cluster privileges the operator's Elasticsearch identity needs, as data with their
//! sources. Messages (403 outcomes, the connection hint) are made from this list; the README,
//! the chart and the e2e scripts are checked against it (tests/docs.rs).

/// One cluster privilege (a named privilege, or an action name, which a role may also list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privilege {
    pub name: &'static str,
    /// What the operator does with it.
    pub why: &'static str,
}

/// What every identity of the operator needs.
pub const REQUIRED: &[Privilege] = &[
    // x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/security/authz/privilege/
    // ClusterPrivilegeResolver.java: MANAGE_INFERENCE_PATTERN = "cluster:admin/xpack/inference/*",
    // "cluster:monitor/xpack/inference*", …
    Privilege {
        name: "manage_inference",
        why: "create, _update and delete inference endpoints",
    },
    // ClusterPrivilegeResolver.java: MONITOR_INFERENCE_PATTERN = "cluster:monitor/xpack/inference*"
    // (also within manage_inference; kept so a role written for reading alone still reads).
    Privilege {
        name: "monitor_inference",
        why: "read inference endpoints",
    },
    // `GET /` is the action cluster:monitor/main (server: org.elasticsearch.rest.root
    // TransportMainAction), which neither inference privilege covers: only `monitor`
    // ("cluster:monitor/*") does. ClusterPrivilegeResolver.resolve accepts an action name as a
    // cluster privilege (`isClusterAction`), so the narrowest grant is the action itself; ECK
    // grants its APM Server user the same (cloud-on-k8s, ApmUserRoleV80).
    Privilege {
        name: "cluster:monitor/main",
        why: "GET / (the cluster's version and cluster_uuid)",
    },
];

/// What built-in model services (`elasticsearch`, `elser`) need besides: `GET
/// _ml/trained_models/<id>/_stats` is cluster:monitor/xpack/ml/trained_models/stats, outside
/// MONITOR_INFERENCE_PATTERN (ClusterPrivilegeResolver.java: MONITOR_ML_PATTERN =
/// "cluster:monitor/xpack/ml/*").
pub const FOR_BUILT_IN_MODELS: Privilege = Privilege {
    name: "monitor_ml",
    why: "read the trained-model deployment of built-in model endpoints",
};

/// The required privileges in a sentence: `a, b and c`.
pub fn sentence() -> String {
    let names: Vec<&str> = REQUIRED.iter().map(|p| p.name).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The required privileges as the `cluster` array of a role descriptor.
pub fn role_cluster_json() -> String {
    serde_json::to_string(&REQUIRED.iter().map(|p| p.name).collect::<Vec<_>>()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_as_a_sentence_and_as_a_role() {
        assert_eq!(
            sentence(),
            "manage_inference, monitor_inference and cluster:monitor/main"
        );
        assert_eq!(
            role_cluster_json(),
            r#"["manage_inference","monitor_inference","cluster:monitor/main"]"#
        );
    }
}
