//! The Argo CD health check (gitops/argocd/health.lua), run by a real Lua 5.1 interpreter (the
//! dialect of Argo CD's gopher-lua) on the cases of gitops/argocd/health_test.yaml, which uses
//! the layout of Argo CD's own resource_customizations tests. Like Argo CD, the object is passed
//! as the global `obj`, converted from the resource's JSON, and the script returns
//! `{status, message}`.

use std::path::{Path, PathBuf};

use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib, Table, serde::SerializeOptions};
use serde::Deserialize;
use serde_json::Value;

const HEALTH_CHECK_KEY: &str = "resource.customizations.health.es-inference.dev_InferenceEndpoint";

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gitops/argocd")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[derive(Deserialize)]
struct TestFile {
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    health_status: Health,
    input_path: String,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Health {
    status: String,
    message: String,
}

/// Runs the health check on one object, the way Argo CD does: a fresh interpreter with only the
/// base, table, string and math libraries, `obj` as a global table.
fn health(script: &str, obj: &Value) -> Health {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )
    .expect("lua");
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false);
    let value = lua.to_value_with(obj, options).expect("object to Lua");
    lua.globals().set("obj", value).expect("set obj");
    let hs: Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed: {e}"));
    Health {
        status: hs.get("status").expect("hs.status is a string"),
        message: hs.get("message").expect("hs.message is a string"),
    }
}

fn cases() -> Vec<Case> {
    let file: TestFile =
        serde_saphyr::from_str(&read(&argocd_dir().join("health_test.yaml"))).expect("yaml");
    file.tests
}

#[test]
fn health_check_gives_the_expected_status_and_message_for_every_case() {
    let script = read(&argocd_dir().join("health.lua"));
    let cases = cases();
    assert!(cases.len() >= 10, "health_test.yaml has too few cases");
    let mut failures = Vec::new();
    for case in &cases {
        let obj: Value = serde_saphyr::from_str(&read(&argocd_dir().join(&case.input_path)))
            .unwrap_or_else(|e| panic!("{}: {e}", case.input_path));
        let got = health(&script, &obj);
        if got != case.health_status {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.input_path, case.health_status, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cases_cover_every_status_and_every_testdata_file() {
    let cases = cases();
    for status in ["Healthy", "Progressing", "Degraded"] {
        assert!(
            cases.iter().any(|c| c.health_status.status == status),
            "no case expects {status}"
        );
    }
    let listed: Vec<&str> = cases.iter().map(|c| c.input_path.as_str()).collect();
    for entry in std::fs::read_dir(argocd_dir().join("testdata")).expect("testdata") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        let path = format!("testdata/{name}");
        assert!(
            listed.contains(&path.as_str()),
            "{path} is not used by health_test.yaml"
        );
    }
}

/// The rules the brief of the health check states, on objects built here rather than read from
/// the test data: a stale Ready never counts, and Stalled wins over nothing but Reconciling.
#[test]
fn health_check_rules_on_built_objects() {
    let script = read(&argocd_dir().join("health.lua"));
    let obj = |generation: i64, observed: i64, ready_observed: i64, conditions: Value| {
        let mut conditions = conditions;
        for c in conditions.as_array_mut().expect("array") {
            c["observedGeneration"] = ready_observed.into();
        }
        serde_json::json!({
            "apiVersion": "es-inference.dev/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "x", "namespace": "y", "generation": generation},
            "status": {"observedGeneration": observed, "conditions": conditions},
        })
    };
    let ready_true = serde_json::json!([
        {"type": "Ready", "status": "True", "reason": "InSync", "message": "in sync"}
    ]);
    assert_eq!(
        health(&script, &obj(2, 2, 2, ready_true.clone())).status,
        "Healthy"
    );
    assert_eq!(
        health(&script, &obj(2, 1, 2, ready_true.clone())).status,
        "Progressing"
    );
    assert_eq!(
        health(&script, &obj(2, 2, 1, ready_true.clone())).status,
        "Progressing"
    );

    let stalled = serde_json::json!([
        {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "bad spec"},
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "bad spec"}
    ]);
    assert_eq!(
        health(&script, &obj(5, 5, 5, stalled)),
        Health {
            status: "Degraded".into(),
            message: "bad spec".into()
        }
    );
    // Same precedence as kstatus: Reconciling=True means in progress.
    let reconciling = serde_json::json!([
        {"type": "Ready", "status": "False", "reason": "KubernetesError", "message": "retrying"},
        {"type": "Reconciling", "status": "True", "reason": "KubernetesError", "message": "retrying"}
    ]);
    assert_eq!(
        health(&script, &obj(1, 1, 1, reconciling)).status,
        "Progressing"
    );
    // A Ready condition with no message falls back to its reason.
    let bare = serde_json::json!([{"type": "Ready", "status": "False", "reason": "Rejected"}]);
    assert_eq!(
        health(&script, &obj(1, 1, 1, bare)),
        Health {
            status: "Degraded".into(),
            message: "Rejected".into()
        }
    );
}

/// argocd-cm.yaml and the README carry health.lua verbatim, so what people copy is what is tested.
#[test]
fn argocd_cm_and_readme_embed_the_tested_script() {
    let script = read(&argocd_dir().join("health.lua"));
    let cm: Value =
        serde_saphyr::from_str(&read(&argocd_dir().join("argocd-cm.yaml"))).expect("yaml");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(
        cm["data"][HEALTH_CHECK_KEY].as_str(),
        Some(script.as_str()),
        "argocd-cm.yaml's {HEALTH_CHECK_KEY} differs from health.lua"
    );

    let readme = read(&argocd_dir().join("README.md"));
    assert!(readme.contains(HEALTH_CHECK_KEY));
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "gitops/argocd/README.md does not embed health.lua verbatim (indented by 4 spaces)"
    );
}
