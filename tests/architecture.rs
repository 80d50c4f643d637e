//! ARCHITECTURE.md stays true to the code: every module under src/ has its row in the module
//! table (named as a path relative to src/, e.g. `reconcile/apply.rs`), and every row names a
//! file that exists. And src/ stays readable in pieces (issue 19): no file over 600 lines before
//! its tests, no function over 80 lines.

use std::path::Path;

use proc_macro2::Span;
use syn::{spanned::Spanned, visit::Visit};

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

// ---------------------------------------------------------------------------------------------
// src/ as Rust: the sources parsed with syn, test code (`#[cfg(test)]` items and the files they
// declare) left out.

/// A file of src/: its path relative to src/ and its syntax.
struct Source {
    rel: String,
    text: String,
    file: syn::File,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Every file of the library and the binary, by following `mod x;` from src/lib.rs and
/// src/main.rs; files declared under `#[cfg(test)]` are test code and left out.
fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut todo: Vec<(String, Vec<String>)> = vec![
        ("lib.rs".into(), Vec::new()),
        ("main.rs".into(), Vec::new()),
    ];
    while let Some((rel, module)) = todo.pop() {
        let text = std::fs::read_to_string(src.join(&rel)).expect("source file");
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        // Children of `a/mod.rs`, `lib.rs` and `main.rs` live beside it; those of `a.rs` in `a/`.
        let dir = match rel.rsplit_once('/') {
            _ if rel == "lib.rs" || rel == "main.rs" => String::new(),
            Some((d, "mod.rs")) => format!("{d}/"),
            _ => format!("{}/", rel.trim_end_matches(".rs")),
        };
        for item in &file.items {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
                && !is_cfg_test(&m.attrs)
            {
                let name = m.ident.to_string();
                let flat = format!("{dir}{name}.rs");
                let child = if src.join(&flat).is_file() {
                    flat
                } else {
                    format!("{dir}{name}/mod.rs")
                };
                let mut path = module.clone();
                path.push(name);
                todo.push((child, path));
            }
        }
        out.push(Source { rel, text, file });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

// ---- size ------------------------------------------------------------------------------------

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

/// Lines of a file before its trailing `#[cfg(test)] mod tests { … }` (all of them if it has
/// none).
fn non_test_lines(source: &Source) -> usize {
    match source.file.items.last() {
        Some(syn::Item::Mod(m)) if m.content.is_some() && is_cfg_test(&m.attrs) => {
            m.span().start().line - 1
        }
        _ => source.text.lines().count(),
    }
}

/// Every function with a body outside test code, as (name, lines from `fn` to its closing brace).
#[derive(Default)]
struct Functions {
    scope: Vec<String>,
    found: Vec<(String, usize)>,
}

impl Functions {
    fn record(&mut self, sig: &syn::Signature, close: Span) {
        let mut name = self.scope.clone();
        name.push(sig.ident.to_string());
        let lines = close.end().line - sig.fn_token.span.start().line + 1;
        self.found.push((name.join("::"), lines));
    }

    fn in_scope(&mut self, name: String, f: impl FnOnce(&mut Self)) {
        self.scope.push(name);
        f(self);
        self.scope.pop();
    }
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        syn::Type::Reference(r) => type_name(&r.elem),
        _ => "_".into(),
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig, f.block.brace_token.span.close());
        self.in_scope(f.sig.ident.to_string(), |v| syn::visit::visit_item_fn(v, f));
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        self.in_scope(type_name(&i.self_ty), |v| syn::visit::visit_item_impl(v, i));
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_cfg_test(&f.attrs) {
            return;
        }
        self.record(&f.sig, f.block.brace_token.span.close());
        self.in_scope(f.sig.ident.to_string(), |v| {
            syn::visit::visit_impl_item_fn(v, f)
        });
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.in_scope(t.ident.to_string(), |v| syn::visit::visit_item_trait(v, t));
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig, block.brace_token.span.close());
            self.in_scope(f.sig.ident.to_string(), |v| {
                syn::visit::visit_trait_item_fn(v, f)
            });
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.in_scope(m.ident.to_string(), |v| syn::visit::visit_item_mod(v, m));
    }
}

#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut over = Vec::new();
    for source in sources() {
        let lines = non_test_lines(&source);
        if lines > MAX_FILE_LINES {
            over.push(format!(
                "{}: {lines} lines before its tests (at most {MAX_FILE_LINES})",
                source.rel
            ));
        }
        let mut functions = Functions::default();
        functions.visit_file(&source.file);
        for (name, lines) in functions.found {
            if lines > MAX_FN_LINES {
                over.push(format!(
                    "{}: fn {name}: {lines} lines (at most {MAX_FN_LINES})",
                    source.rel
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over the size limits:\n{}",
        over.join("\n")
    );
}
