//! ARCHITECTURE.md stays true to the code: every module under src/ has its row in the module
//! table (named as a path relative to src/, e.g. `reconcile/apply.rs`), and every row names a
//! file that exists.

use std::path::Path;

fn modules(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            modules(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("under src/");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn every_module_has_its_row_and_every_row_its_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = Vec::new();
    modules(&root.join("src"), &root.join("src"), &mut files);
    assert!(files.len() > 30, "modules found: {files:?}");
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !text.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a row in ARCHITECTURE.md: {missing:?}"
    );
    // Rows: table lines whose first cell names `*.rs` files.
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for name in first.split('`').skip(1).step_by(2) {
            if name.ends_with(".rs") {
                assert!(
                    root.join("src").join(name).is_file(),
                    "ARCHITECTURE.md has a row for {name}, which is not a file under src/"
                );
            }
        }
    }
}
