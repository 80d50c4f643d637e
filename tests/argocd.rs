//! The Argo CD health checks, in the layout of Argo CD's own resource_customizations
//! (gitops/argocd/resource_customizations/es-inference.dev/<Kind>/health.lua, health_test.yaml and
//! testdata/), run by a real Lua 5.1 interpreter (the dialect of Argo CD's gopher-lua) on every
//! case of every check. Like Argo CD, the object is passed as the global `obj`, converted from
//! the resource's JSON, and the script returns `{status, message}`. The interpreter is set up
//! like Argo CD's sandbox for argocd-cm scripts (argo-cd `util/lua/lua.go` and
//! `util/lua/oslib_safe.go`): the base, package and table libraries, no global `os`, and a safe
//! `os` with only `time` and `date` that a script gets from `require("os")`. No string or math
//! library.

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

/// What the safe `os.time()` returns to the script.
#[derive(Clone, Copy)]
enum Clock {
    /// The real clock, as in Argo CD.
    Real,
    /// A fixed time, in seconds since the epoch.
    At(i64),
}

/// The Lua state a script runs in.
#[derive(Clone, Copy)]
enum Sandbox {
    /// Argo CD's sandbox for an argocd-cm script (no `useOpenLibs`), as argo-cd's
    /// `util/lua/lua.go` builds it: gopher-lua without its standard libraries, then the package
    /// (`require`), base and table libraries and argo-cd's safe os (`util/lua/oslib_safe.go`).
    /// The safe os is not a global: argo-cd registers its functions into the `table` module
    /// (`table.time`, `table.date`) and preloads them as the module `os`, so a script gets
    /// `time` and `date` only through `require("os")`. No string, math, io or debug library.
    ArgoCd(Clock),
    /// Argo CD's sandbox with a `require` that finds no `os` module: no clock at all.
    NoClock,
    /// `resource.customizations.useOpenLibs.<group_kind>: "true"`: every standard library,
    /// including the global `os`.
    OpenLibs(Clock),
}

impl Sandbox {
    fn name(self) -> &'static str {
        match self {
            Sandbox::ArgoCd(_) => "Argo CD's sandbox",
            Sandbox::NoClock => "no clock",
            Sandbox::OpenLibs(_) => "useOpenLibs",
        }
    }
}

/// The globals of Argo CD's sandbox: gopher-lua's base library (`baseFuncs` plus `_G`,
/// `_VERSION`, `ipairs`, `pairs`), `package` and the `table` module.
const ARGOCD_GLOBALS: &[&str] = &[
    "_G",
    "_VERSION",
    "assert",
    "collectgarbage",
    "dofile",
    "error",
    "getfenv",
    "getmetatable",
    "ipairs",
    "load",
    "loadfile",
    "loadstring",
    "module",
    "next",
    "package",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawset",
    "require",
    "select",
    "setfenv",
    "setmetatable",
    "table",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
];

/// `os.time` that answers `clock` when called without arguments (as the scripts call it) and
/// the real `os.time(t)` otherwise.
fn time_function(lua: &Lua, real: Function, clock: Clock) -> Function {
    match clock {
        Clock::Real => real,
        Clock::At(t) => lua
            .create_function(move |_, args: mlua::MultiValue| {
                if args.is_empty() {
                    Ok(mlua::Value::Number(t as f64))
                } else {
                    real.call(args)
                }
            })
            .expect("function"),
    }
}

/// A Lua state set up as `sandbox` says, with nothing else in it yet.
fn lua_in(sandbox: Sandbox) -> Lua {
    match sandbox {
        Sandbox::OpenLibs(clock) => {
            let lua = Lua::new_with(StdLib::ALL_SAFE, LuaOptions::default()).expect("lua");
            let os: Table = lua.globals().get("os").expect("os");
            let real: Function = os.get("time").expect("os.time");
            os.set("time", time_function(&lua, real, clock))
                .expect("set");
            lua
        }
        Sandbox::ArgoCd(_) | Sandbox::NoClock => {
            let lua = Lua::new_with(
                StdLib::PACKAGE | StdLib::TABLE | StdLib::OS,
                LuaOptions::default(),
            )
            .expect("lua");
            let globals = lua.globals();
            let os: Table = globals.get("os").expect("os");
            let date: Function = os.get("date").expect("os.date");
            let real_time: Function = os.get("time").expect("os.time");
            // Keep only the globals Argo CD's sandbox has (this drops `os`, `coroutine`, ...).
            let names: Vec<String> = globals
                .pairs::<String, mlua::Value>()
                .map(|pair| pair.expect("global").0)
                .collect();
            for name in names {
                if !ARGOCD_GLOBALS.contains(&name.as_str()) {
                    globals.set(name, mlua::Value::Nil).expect("unset");
                }
            }
            let package: Table = globals.get("package").expect("package");
            let loaded: Table = package.get("loaded").expect("package.loaded");
            let preload: Table = package.get("preload").expect("package.preload");
            for name in ["os", "coroutine", "string", "math", "io", "debug"] {
                loaded.set(name, mlua::Value::Nil).expect("unload");
            }
            // Only `require` and the preload table: no search of package.path/cpath.
            let loaders = lua.create_table().expect("table");
            let by_preload = lua
                .create_function(|lua, name: String| {
                    let package: Table = lua.globals().get("package")?;
                    let preload: Table = package.get("preload")?;
                    match preload.get::<mlua::Value>(name.as_str())? {
                        mlua::Value::Nil => Ok(mlua::Value::String(
                            lua.create_string(format!("\n\tno field package.preload['{name}']"))?,
                        )),
                        loader => Ok(loader),
                    }
                })
                .expect("function");
            loaders.set(1, by_preload).expect("set");
            package.set("loaders", loaders).expect("set");
            package.set("path", "").expect("set");
            package.set("cpath", "").expect("set");
            if let Sandbox::ArgoCd(clock) = sandbox {
                let time = time_function(&lua, real_time, clock);
                let table: Table = globals.get("table").expect("table");
                table.set("time", time.clone()).expect("set");
                table.set("date", date.clone()).expect("set");
                // Like argo-cd's SafeOsLoader: a new table with time and date on each load.
                let loader = lua
                    .create_function(move |lua, _: mlua::MultiValue| {
                        let safe = lua.create_table()?;
                        safe.set("time", time.clone())?;
                        safe.set("date", date.clone())?;
                        Ok(safe)
                    })
                    .expect("function");
                preload.set("os", loader).expect("preload os");
            }
            drop(globals);
            lua
        }
    }
}

/// Runs a health check on one object, the way Argo CD runs one from argocd-cm: a fresh
/// interpreter set up as `sandbox` says, `obj` as a global table, and the script's returned
/// table read as `{status, message}`.
fn health_in(script: &str, obj: &Value, sandbox: Sandbox) -> Health {
    let lua = lua_in(sandbox);
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

fn health_with(script: &str, obj: &Value, clock: Clock) -> Health {
    health_in(script, obj, Sandbox::ArgoCd(clock))
}

fn health(script: &str, obj: &Value) -> Health {
    health_with(script, obj, Clock::Real)
}

fn cases(kind: &str) -> Vec<Case> {
    let file: TestFile =
        serde_saphyr::from_str(&read(&check_dir(kind).join("health_test.yaml"))).expect("yaml");
    file.tests
}

/// The connection check as it was before it took its clock from `require("os")`: it read the
/// global `os`, which Argo CD's sandbox does not have.
const CONNECTION_CHECK_WITH_GLOBAL_OS: &str =
    include_str!("fixtures/argocd/ElasticsearchConnection-health-global-os.lua");

/// The sandbox is Argo CD's: no global `os` (nor string, math, io, coroutine), a `require("os")`
/// with only `time` and `date`, and Argo CD's side effect of putting both into `table`.
#[test]
fn the_sandbox_is_argo_cds() {
    let lua = lua_in(Sandbox::ArgoCd(Clock::At(1_700_000_000)));
    let probe = |code: &str| -> mlua::Value {
        lua.load(code)
            .eval()
            .unwrap_or_else(|e| panic!("{code}: {e}"))
    };
    for absent in ["os", "string", "math", "io", "debug", "coroutine", "json"] {
        assert!(
            probe(&format!("return {absent}")).is_nil(),
            "global {absent} is absent in Argo CD"
        );
    }
    let mut globals: Vec<String> = lua
        .globals()
        .pairs::<String, mlua::Value>()
        .map(|pair| pair.expect("global").0)
        .collect();
    globals.sort();
    assert_eq!(globals, ARGOCD_GLOBALS, "exactly Argo CD's globals");
    let now: f64 = lua
        .load("return require('os').time()")
        .eval()
        .expect("require('os').time()");
    assert_eq!(now, 1_700_000_000.0);
    let mut safe: Vec<String> = probe("return require('os')")
        .as_table()
        .expect("a table")
        .pairs::<String, mlua::Value>()
        .map(|pair| pair.expect("field").0)
        .collect();
    safe.sort();
    assert_eq!(safe, ["date", "time"], "the safe os has time and date only");
    assert!(probe("return table.time ~= nil and table.date ~= nil").as_boolean() == Some(true));
    assert!(
        lua.load("return require('io')")
            .eval::<mlua::Value>()
            .is_err()
    );
    assert!(
        lua_in(Sandbox::NoClock)
            .load("return require('os')")
            .eval::<mlua::Value>()
            .is_err()
    );
}

/// The check that read the global `os` never turned a persisting failure Degraded under Argo
/// CD, only where a global `os` exists; today's check does in both.
#[test]
fn a_check_reading_the_global_os_never_degrades_in_argo_cds_sandbox() {
    let obj: Value = serde_saphyr::from_str(&read(
        &check_dir("ElasticsearchConnection").join("testdata/connection-failed-persisting.yaml"),
    ))
    .expect("yaml");
    let old = CONNECTION_CHECK_WITH_GLOBAL_OS;
    assert!(old.contains("os.time()") && !old.contains("require"));
    assert_eq!(health(old, &obj).status, "Progressing");
    assert_eq!(
        health_in(old, &obj, Sandbox::OpenLibs(Clock::Real)).status,
        "Degraded"
    );
    let today = script("ElasticsearchConnection");
    assert_eq!(health(&today, &obj).status, "Degraded");
    assert_eq!(
        health_in(&today, &obj, Sandbox::OpenLibs(Clock::Real)).status,
        "Degraded"
    );
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
            for sandbox in [Sandbox::ArgoCd(Clock::Real), Sandbox::OpenLibs(Clock::Real)] {
                let got = health_in(&script, &obj, sandbox);
                if got != case.health_status {
                    failures.push(format!(
                        "{kind}/{} ({}): expected {:?}, got {:?}",
                        case.input_path,
                        sandbox.name(),
                        case.health_status,
                        got
                    ));
                }
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
        // With useOpenLibs (a global `os`) the same.
        assert_eq!(
            health_in(
                &script,
                &o,
                Sandbox::OpenLibs(Clock::At(epoch(since) + 299))
            )
            .status,
            "Progressing"
        );
        assert_eq!(
            health_in(
                &script,
                &o,
                Sandbox::OpenLibs(Clock::At(epoch(since) + 300))
            )
            .status,
            "Degraded"
        );
        // Without any clock a retried failure stays Progressing.
        assert_eq!(
            health_in(&script, &o, Sandbox::NoClock).status,
            "Progressing"
        );
        // Stalled: Degraded at once.
        let stalled = failing("InvalidReference", since, "Stalled");
        assert_eq!(
            health_with(&script, &stalled, Clock::At(epoch(since))).status,
            "Degraded"
        );
        assert_eq!(
            health_in(&script, &stalled, Sandbox::NoClock).status,
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
