//! The chart grants exactly the permissions the code declares in `rbac::RULES` (which the
//! reconciler tests check against every request the code makes): no less, no more.
//!
//! The committed plain manifests (`deploy/`, rendered from the chart with default values) are
//! always checked. With a real helm (`HELM` or `helm` on PATH; CI installs one), the chart is
//! also rendered with leader election and with `watchNamespaces`, and checked the same way.

use std::collections::BTreeSet;

use es_inference_operator::rbac::{RULES, Scope};
use serde_json::Value;

type Grant = (String, String, String); // (api group, resource, verb)

fn declared(scope: Scope) -> BTreeSet<Grant> {
    RULES
        .iter()
        .filter(|r| r.scope == scope)
        .flat_map(|r| {
            r.verbs.iter().map(|v| {
                (
                    r.api_group.to_string(),
                    r.resource.to_string(),
                    v.to_string(),
                )
            })
        })
        .collect()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("manifests parse")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Whether `role` is a ClusterRole for people (rbac.aggregateToDefaultRoles): aggregated into the
/// default view/edit/admin roles, never bound to the operator.
fn for_people(role: &Value) -> bool {
    role["metadata"]["labels"].as_object().is_some_and(|l| {
        l.keys()
            .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
    })
}

/// Every grant of the operator's roles of `kind` (ClusterRole or Role), by namespace ("" for
/// cluster).
fn granted(docs: &[Value], kind: &str) -> Vec<(String, BTreeSet<Grant>)> {
    docs.iter()
        .filter(|d| d["kind"] == kind && !for_people(d))
        .map(|d| {
            let ns = d["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut grants = BTreeSet::new();
            for rule in d["rules"].as_array().into_iter().flatten() {
                let strs = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                };
                assert!(
                    rule.get("resourceNames").is_none() || kind == "Role",
                    "unexpected resourceNames"
                );
                for g in strs(&rule["apiGroups"]) {
                    for r in strs(&rule["resources"]) {
                        for v in strs(&rule["verbs"]) {
                            assert_ne!(v, "*", "wildcard verb in {kind}");
                            assert_ne!(r, "*", "wildcard resource in {kind}");
                            grants.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
            (ns, grants)
        })
        .collect()
}

#[test]
fn plain_manifests_grant_exactly_what_the_code_uses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/es-inference-operator.yaml"
    ))
    .expect("deploy/es-inference-operator.yaml");
    let docs = docs(&text);
    let cluster = granted(&docs, "ClusterRole");
    assert_eq!(cluster.len(), 2, "two ClusterRoles by default");
    assert_eq!(
        cluster[0].1,
        declared(Scope::Watched),
        "ClusterRole differs from rbac::RULES"
    );
    assert_eq!(
        cluster[1].1,
        declared(Scope::Cluster),
        "namespaces: get only"
    );
    assert!(
        granted(&docs, "Role").is_empty(),
        "no leader election Role with one replica"
    );
    assert!(docs.iter().any(|d| d["kind"] == "ClusterRoleBinding"));
}

fn helm() -> Option<String> {
    if let Ok(h) = std::env::var("HELM")
        && !h.is_empty()
    {
        return Some(h);
    }
    std::process::Command::new("helm")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "helm".to_string())
}

fn render(helm: &str, sets: &[&str]) -> Vec<Value> {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/es-inference-operator");
    let mut cmd = std::process::Command::new(helm);
    cmd.args([
        "template",
        "es-inference-operator",
        chart,
        "--namespace",
        "es-inference-system",
    ])
    .args([
        "--set",
        "elasticsearch.url=https://elasticsearch.example:9200",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    docs(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn chart_grants_exactly_what_the_code_uses_in_every_mode() {
    let Some(helm) = helm() else {
        // CI installs helm (.ci/install-tools.sh): there, a missing helm is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide helm (HELM)"
        );
        return;
    };
    // Leader election: the lease Role, only in the release namespace.
    let docs = render(&helm, &["replicaCount=2"]);
    let roles = granted(&docs, "Role");
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0].0, "es-inference-system");
    assert_eq!(roles[0].1, declared(Scope::OwnNamespace));
    assert_eq!(granted(&docs, "ClusterRole")[0].1, declared(Scope::Watched));
    // Only the operator's own Lease may be read and renewed; create cannot be named.
    let lease_role = docs.iter().find(|d| d["kind"] == "Role").expect("Role");
    for rule in lease_role["rules"].as_array().expect("rules") {
        let names = rule["resourceNames"].as_array();
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if verbs.contains(&"create") {
            assert_eq!(verbs, ["create"], "create alone in the unnamed rule");
        } else {
            assert_eq!(
                names.map(|n| n.as_slice()),
                Some([Value::from("es-inference-operator")].as_slice()),
                "{rule}"
            );
        }
    }

    // watchNamespaces: Roles in those namespaces only, nothing cluster-wide.
    let docs = render(&helm, &["watchNamespaces={team-a,team-b}"]);
    let cluster = granted(&docs, "ClusterRole");
    assert_eq!(cluster.len(), 1, "{cluster:?}");
    assert_eq!(
        cluster[0].1,
        declared(Scope::Cluster),
        "nothing cluster-wide but namespace metadata"
    );
    let roles = granted(&docs, "Role");
    let namespaces: BTreeSet<_> = roles.iter().map(|(ns, _)| ns.as_str()).collect();
    assert_eq!(namespaces, BTreeSet::from(["team-a", "team-b"]));
    for (_, grants) in &roles {
        assert_eq!(*grants, declared(Scope::Watched));
    }
}
