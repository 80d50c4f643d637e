//! The binary as a person starts it: what `--help` says, and the start-up checks that refuse a
//! default cluster before anything connects (no Kubernetes and no Elasticsearch needed: every
//! run here stops at the first check that fails, or at the Kubernetes client, which finds no
//! configuration in the empty environment the tests give it).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn operator() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_es-inference-operator"));
    // Nothing from the developer's or CI's environment (ELASTICSEARCH_*, KUBECONFIG, ...).
    cmd.env_clear();
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn help(args: &[&str]) -> String {
    let out = operator().args(args).output().expect("run the binary");
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The names in `std::env::var("NAME")` / `var_os("NAME")` calls of the operator's source.
fn variables_read_by_the_code() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut names = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read source");
        for call in ["env::var(\"", "env::var_os(\""] {
            for (at, _) in source.match_indices(call) {
                let rest = &source[at + call.len()..];
                let name = &rest[..rest.find('"').expect("closing quote")];
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// `--help` and `run --help` name every environment variable the binary reads: the ones its code
/// reads directly (found in src/ here, so a new one fails this test until it is documented), the
/// ones its libraries read (RUST_LOG, KUBECONFIG, the proxies), and every flag's own variable.
#[test]
fn help_documents_every_environment_variable() {
    let read = variables_read_by_the_code();
    for expected in ["POD_NAME", "POD_NAMESPACE", "HOSTNAME"] {
        assert!(
            read.iter().any(|n| n == expected),
            "the scan finds {expected} in src/ (found {read:?})"
        );
    }
    let libraries = [
        "RUST_LOG",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "HTTPS_PROXY",
        "NO_PROXY",
    ];
    for args in [&["--help"][..], &["run", "--help"]] {
        let help = help(args);
        for name in read.iter().map(String::as_str).chain(libraries) {
            assert!(help.contains(name), "{args:?} does not mention {name}");
        }
    }

    // Every flag with an environment variable shows it (`[env: NAME=...]`).
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
            .expect("config.rs");
    let flags: Vec<&str> = config
        .match_indices("env = \"")
        .map(|(at, _)| {
            let rest = &config[at + 7..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect();
    assert!(flags.len() > 20, "flags with a variable: {flags:?}");
    let run = help(&["run", "--help"]);
    let import = help(&["import", "--help"]);
    for name in flags {
        let shown = format!("[env: {name}");
        assert!(
            run.contains(&shown) || import.contains(&shown),
            "no help shows {shown}"
        );
    }
}

/// Runs `run` with `args` in an empty environment and returns its exit status and output.
fn start(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = operator()
        .arg("run")
        .args(args)
        // No cluster to reach: the Kubernetes client fails right after the default cluster's
        // checks.
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("RUST_LOG", "info")
        .output()
        .expect("run the binary");
    (out.status.success(), text(&out))
}

const KUBERNETES_STEP: &str = "cannot configure the Kubernetes client";

/// The default cluster follows the rule of ElasticsearchConnections: `http://` is refused at
/// start unless plaintext is allowed, and the refusal names the flag, never the URL.
#[test]
fn a_plaintext_default_cluster_is_refused_at_start_unless_allowed() {
    let url = "http://es-plain.example.invalid:9200";
    let (ok, out) = start(&["--elasticsearch-url", url]);
    assert!(!ok, "{out}");
    assert!(out.contains("--allow-plaintext-elasticsearch"), "{out}");
    assert!(out.contains("--elasticsearch-url"), "{out}");
    assert!(
        !out.contains("es-plain.example.invalid"),
        "the URL is not quoted: {out}"
    );
    assert!(
        !out.contains(KUBERNETES_STEP),
        "refused before Kubernetes: {out}"
    );

    // The same through the environment, as the chart sets it.
    let out = operator()
        .args(["run"])
        .env("ELASTICSEARCH_URL", url)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(text(&out).contains("--allow-plaintext-elasticsearch"));

    for allow in [
        &["--allow-plaintext-elasticsearch", "true"][..],
        &["--allow-plaintext-elasticsearch=true"],
    ] {
        let mut args = vec!["--elasticsearch-url", url];
        args.extend_from_slice(allow);
        let (ok, out) = start(&args);
        assert!(!ok, "no Kubernetes here: {out}");
        assert!(out.contains(KUBERNETES_STEP), "allowed: {out}");
        assert!(out.contains("plaintext HTTP"), "with a warning: {out}");
    }

    // https:// needs nothing.
    let (_, out) = start(&["--elasticsearch-url", "https://es.example.invalid:9200"]);
    assert!(out.contains(KUBERNETES_STEP), "{out}");
    assert!(!out.contains("plaintext"), "{out}");
}

/// A CA file that cannot be read stops the start, naming the flag.
#[test]
fn an_unreadable_ca_file_stops_the_start() {
    let (ok, out) = start(&[
        "--elasticsearch-url",
        "https://es.example.invalid:9200",
        "--elasticsearch-ca-file",
        "/nonexistent/ca.crt",
    ]);
    assert!(!ok);
    assert!(out.contains("CA file"), "{out}");
    assert!(!out.contains(KUBERNETES_STEP), "{out}");
}
