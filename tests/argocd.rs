//! The Argo CD health checks, in the layout of Argo CD's own resource_customizations
//! (gitops/argocd/resource_customizations/es-inference.dev/<Kind>/health.lua, health_test.yaml and
//! testdata/), run by a real Lua 5.1 interpreter (the dialect of Argo CD's gopher-lua) on every
//! case of every check. Like Argo CD, the object is passed as the global `obj`, converted from
//! the resource's JSON, and the script returns `{status, message}`. The interpreter has only what
//! Argo CD gives scripts from argocd-cm: the base and table libraries and a safe `os` with `time`
//! and `date` (no string or math library).

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use mlua::{Function, Lua, LuaOptions, LuaSerdeExt, StdLib, Table, serde::SerializeOptions};
use serde::Deserialize;
use serde_json::{Value, json};

const GROUP: &str = "es-inference.dev";
/// Every kind with a health check.
const KINDS: &[&str] = &["InferenceEndpoint", "ElasticsearchConnection"];

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gitops/argocd")
}

/// resource_customizations/<group>/<kind>, where Argo CD keeps a kind's health check.
fn check_dir(kind: &str) -> PathBuf {
    argocd_dir()
        .join("resource_customizations")
        .join(GROUP)
        .join(kind)
}

/// The argocd-cm key of a kind's health check.
fn cm_key(kind: &str) -> String {
    format!("resource.customizations.health.{GROUP}_{kind}")
}

fn script(kind: &str) -> String {
    read(&check_dir(kind).join("health.lua"))
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

/// What `os.time()` returns to the script.
#[derive(Clone, Copy)]
enum Clock {
    /// The real clock, as in Argo CD.
    Real,
    /// A fixed time, in seconds since the epoch.
    At(i64),
    /// No `os` library at all.
    Absent,
}

/// Runs a health check on one object, the way Argo CD runs one from argocd-cm: a fresh
/// interpreter with the base and table libraries, Argo CD's safe `os` (time and date only), and
/// `obj` as a global table.
fn health_with(script: &str, obj: &Value, clock: Clock) -> Health {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::OS, LuaOptions::default()).expect("lua");
    let globals = lua.globals();
    let os: Table = globals.get("os").expect("os");
    let safe = lua.create_table().expect("table");
    match clock {
        Clock::Real => {
            safe.set("time", os.get::<Function>("time").expect("os.time"))
                .expect("set");
        }
        Clock::At(t) => {
            let time = lua.create_function(move |_, ()| Ok(t)).expect("function");
            safe.set("time", time).expect("set");
        }
        Clock::Absent => {}
    }
    if matches!(clock, Clock::Absent) {
        globals.set("os", mlua::Value::Nil).expect("unset os");
    } else {
        safe.set("date", os.get::<Function>("date").expect("os.date"))
            .expect("set");
        globals.set("os", safe).expect("set os");
    }
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false);
    let value = lua.to_value_with(obj, options).expect("object to Lua");
    globals.set("obj", value).expect("set obj");
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

fn health(script: &str, obj: &Value) -> Health {
    health_with(script, obj, Clock::Real)
}

fn cases(kind: &str) -> Vec<Case> {
    let file: TestFile =
        serde_saphyr::from_str(&read(&check_dir(kind).join("health_test.yaml"))).expect("yaml");
    file.tests
}

#[test]
fn layout_is_argo_cds_resource_customizations() {
    let group = argocd_dir().join("resource_customizations").join(GROUP);
    let mut found: Vec<String> = std::fs::read_dir(&group)
        .expect("resource_customizations/es-inference.dev")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    found.sort();
    let mut want: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "one directory per kind with a health check");
    for kind in KINDS {
        for file in ["health.lua", "health_test.yaml", "testdata"] {
            assert!(check_dir(kind).join(file).exists(), "{kind}/{file}");
        }
    }
    for old in ["health.lua", "health_test.yaml", "testdata"] {
        assert!(
            !argocd_dir().join(old).exists(),
            "gitops/argocd/{old} moved into resource_customizations/"
        );
    }
}

#[test]
fn health_checks_give_the_expected_status_and_message_for_every_case() {
    let mut failures = Vec::new();
    for kind in KINDS {
        let script = script(kind);
        let cases = cases(kind);
        assert!(
            cases.len() >= 8,
            "{kind}: health_test.yaml has too few cases"
        );
        for case in &cases {
            let path = check_dir(kind).join(&case.input_path);
            let obj: Value = serde_saphyr::from_str(&read(&path))
                .unwrap_or_else(|e| panic!("{kind}/{}: {e}", case.input_path));
            assert_eq!(obj["kind"], *kind, "{kind}/{}", case.input_path);
            let got = health(&script, &obj);
            if got != case.health_status {
                failures.push(format!(
                    "{kind}/{}: expected {:?}, got {:?}",
                    case.input_path, case.health_status, got
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cases_cover_every_status_and_every_testdata_file() {
    for kind in KINDS {
        let cases = cases(kind);
        for status in ["Healthy", "Progressing", "Degraded"] {
            assert!(
                cases.iter().any(|c| c.health_status.status == status),
                "{kind}: no case expects {status}"
            );
        }
        let listed: Vec<&str> = cases.iter().map(|c| c.input_path.as_str()).collect();
        for entry in std::fs::read_dir(check_dir(kind).join("testdata")).expect("testdata") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .to_string();
            let path = format!("testdata/{name}");
            assert!(
                listed.contains(&path.as_str()),
                "{kind}: {path} is not used by health_test.yaml"
            );
        }
    }
}

/// The rules of the InferenceEndpoint check, on objects built here rather than read from the test
/// data: a stale Ready never counts, and Stalled wins over nothing but Reconciling.
#[test]
fn inference_endpoint_rules_on_built_objects() {
    let script = script("InferenceEndpoint");
    let obj = |generation: i64, observed: i64, ready_observed: i64, conditions: Value| {
        let mut conditions = conditions;
        for c in conditions.as_array_mut().expect("array") {
            c["observedGeneration"] = ready_observed.into();
        }
        json!({
            "apiVersion": "es-inference.dev/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "x", "namespace": "y", "generation": generation},
            "status": {"observedGeneration": observed, "conditions": conditions},
        })
    };
    let ready_true = json!([
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

    let stalled = json!([
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
    let reconciling = json!([
        {"type": "Ready", "status": "False", "reason": "KubernetesError", "message": "retrying"},
        {"type": "Reconciling", "status": "True", "reason": "KubernetesError", "message": "retrying"}
    ]);
    assert_eq!(
        health(&script, &obj(1, 1, 1, reconciling)).status,
        "Progressing"
    );
    // A Ready condition with no message falls back to its reason.
    let bare = json!([{"type": "Ready", "status": "False", "reason": "Rejected"}]);
    assert_eq!(
        health(&script, &obj(1, 1, 1, bare)),
        Health {
            status: "Degraded".into(),
            message: "Rejected".into()
        }
    );
}

/// The rules of the ElasticsearchConnection check, with a fixed clock: a failing connection is
/// Progressing while the operator retries it, and Degraded once it has failed for five minutes
/// (to the second, also across a leap day and a new year); Stalled is Degraded at once; without
/// a clock a retried failure stays Progressing.
#[test]
fn connection_rules_on_built_objects() {
    let script = script("ElasticsearchConnection");
    let obj = |conditions: Value| {
        json!({
            "apiVersion": "es-inference.dev/v1alpha1",
            "kind": "ElasticsearchConnection",
            "metadata": {"name": "prod", "namespace": "search", "generation": 4},
            "spec": {"url": "https://es.example:9200"},
            "status": {"observedGeneration": 4, "conditions": conditions},
        })
    };
    let failing = |reason: &str, since: &str, retried: &str| {
        obj(json!([
            {"type": "Ready", "status": "False", "reason": reason, "message": "no answer",
             "observedGeneration": 4, "lastTransitionTime": since},
            {"type": retried, "status": "True", "reason": reason, "message": "no answer",
             "observedGeneration": 4, "lastTransitionTime": since},
        ]))
    };
    let epoch = |t: &str| t.parse::<Timestamp>().expect("timestamp").as_second();
    for since in [
        "2026-11-20T10:00:00Z",
        "2024-02-29T23:58:00Z",
        "2025-12-31T23:59:30Z",
        "2100-02-28T23:57:01Z",
    ] {
        let o = failing("ConnectionFailed", since, "Reconciling");
        let at = |t: i64| health_with(&script, &o, Clock::At(t));
        assert_eq!(
            at(epoch(since) + 299),
            Health {
                status: "Progressing".into(),
                message: "no answer".into()
            },
            "{since} + 299 s"
        );
        assert_eq!(
            at(epoch(since) + 300),
            Health {
                status: "Degraded".into(),
                message: format!("no answer (failing since {since})")
            },
            "{since} + 300 s"
        );
        assert_eq!(at(epoch(since) + 86_400 * 400).status, "Degraded");
        // Without a clock Argo CD would never call it Degraded while it is retried.
        assert_eq!(
            health_with(&script, &o, Clock::Absent).status,
            "Progressing"
        );
        // Stalled: Degraded at once.
        let stalled = failing("InvalidReference", since, "Stalled");
        assert_eq!(
            health_with(&script, &stalled, Clock::At(epoch(since))).status,
            "Degraded"
        );
        assert_eq!(
            health_with(&script, &stalled, Clock::Absent).status,
            "Degraded"
        );
    }

    let connected = |extra: Value| {
        let mut c = vec![json!(
            {"type": "Ready", "status": "True", "reason": "Connected", "message": "connected",
             "observedGeneration": 4, "lastTransitionTime": "2026-11-20T10:00:00Z"})];
        if !extra.is_null() {
            c.push(extra);
        }
        obj(Value::Array(c))
    };
    assert_eq!(
        health(&script, &connected(Value::Null)),
        Health {
            status: "Healthy".into(),
            message: "connected".into()
        }
    );
    // InsecureSkipVerify: still Healthy, and the message says so (its reason when it has no
    // message); a False one says nothing.
    let insecure = |status: &str| {
        json!({"type": "InsecureSkipVerify", "status": status, "reason": "InsecureSkipVerify",
               "observedGeneration": 4, "lastTransitionTime": "2026-11-20T10:00:00Z"})
    };
    assert_eq!(
        health(&script, &connected(insecure("True"))),
        Health {
            status: "Healthy".into(),
            message: "connected. Warning: InsecureSkipVerify".into()
        }
    );
    assert_eq!(
        health(&script, &connected(insecure("False"))).message,
        "connected"
    );
    // A Ready for an older generation is not Healthy yet.
    let mut stale = connected(Value::Null);
    stale["metadata"]["generation"] = 5.into();
    assert_eq!(health(&script, &stale).status, "Progressing");
}

/// argocd-cm.yaml carries exactly the tested scripts, one key per kind, so what people apply is
/// what is tested; the README names every key and where its script and tests are.
#[test]
fn argocd_cm_embeds_exactly_the_tested_scripts() {
    let cm: Value =
        serde_saphyr::from_str(&read(&argocd_dir().join("argocd-cm.yaml"))).expect("yaml");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let data = cm["data"].as_object().expect("data");
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut want: Vec<String> = KINDS.iter().map(|k| cm_key(k)).collect();
    want.sort();
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    for kind in KINDS {
        assert_eq!(
            data[&cm_key(kind)].as_str(),
            Some(script(kind).as_str()),
            "argocd-cm.yaml's {} differs from {kind}/health.lua",
            cm_key(kind)
        );
    }

    let readme = read(&argocd_dir().join("README.md"));
    for kind in KINDS {
        assert!(readme.contains(&cm_key(kind)), "README: {}", cm_key(kind));
        assert!(
            readme.contains(&format!("resource_customizations/{GROUP}/{kind}/")),
            "README: the path of {kind}'s check"
        );
    }
}
