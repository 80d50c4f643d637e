//! ARCHITECTURE.md stays true to the code: every module under src/ has its row in the module
//! table (named as a path relative to src/, e.g. `reconcile/apply.rs`), and every row names a
//! file that exists. And src/ stays readable in pieces (issue 19): no file over 600 lines before
//! its tests, no function over 80 lines, no two files that depend on each other (directly or
//! through others).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use proc_macro2::{Span, TokenStream, TokenTree};
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

/// A file of src/: its path relative to src/, its module path (`["es", "client"]`) and its syntax.
struct Source {
    rel: String,
    module: Vec<String>,
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
        out.push(Source {
            rel,
            module,
            text,
            file,
        });
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

// ---- module dependencies ---------------------------------------------------------------------
//
// A file depends on another when it names a path into it: `use crate::…`, `use super::…`, a
// child named in a `use` (`pub use client::EsClient` in es/mod.rs), and `crate::…`/`super::…`
// paths in code and in macro arguments. A path depends on the file of the longest module it
// names: re-exports are not followed (`crate::es::EsClient` depends on es/mod.rs, which depends
// on es/client.rs), so a file under a module names the sibling that defines what it uses, not
// its parent's re-export. `mod x;` is not a dependency. What the syntax does not show is not
// seen: a method called on a type whose `impl` is in another file.

/// The paths one file names outside its test code, each made absolute (`["es", "client",
/// "EsClient"]`): `use` trees, and paths in code, in macro arguments and in attributes that start
/// with `crate`, `super` or `self`.
struct Paths<'a> {
    /// The module the visitor is in (the file's, then any inline module's).
    module: Vec<String>,
    /// Names of the modules a `use` can start with besides `crate`, `super` and `self` (children
    /// of the file's module).
    children: &'a BTreeSet<Vec<String>>,
    found: Vec<Vec<String>>,
}

impl Paths<'_> {
    /// `segments` relative to the current module, or `None` when it is not a path of this crate.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" | "es_inference_operator" => Vec::new(),
            "self" => self.module.clone(),
            "super" => {
                let mut m = self.module.clone();
                m.pop()?;
                m
            }
            _ => {
                let mut m = self.module.clone();
                m.push(first.clone());
                if !self.children.contains(&m) {
                    return None;
                }
                m
            }
        };
        let mut rest = rest;
        while let Some(("super", r)) = rest.split_first().map(|(f, r)| (f.as_str(), r)) {
            base.pop()?;
            rest = r;
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn add(&mut self, segments: Vec<String>) {
        if let Some(p) = self.absolute(&segments) {
            self.found.push(p);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut p = prefix.clone();
                if n.ident != "self" {
                    p.push(n.ident.to_string());
                }
                self.add(p);
            }
            syn::UseTree::Rename(r) => {
                let mut p = prefix.clone();
                if r.ident != "self" {
                    p.push(r.ident.to_string());
                }
                self.add(p);
            }
            syn::UseTree::Glob(_) => self.add(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// `crate::a::b`, `super::a` and `self::a` in a macro's tokens.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                // `#[serde(with = "crate::a::b")]` and the like.
                TokenTree::Literal(l) => {
                    let text = l.to_string();
                    let path = text.trim_matches('"');
                    if ["crate::", "super::", "self::"]
                        .iter()
                        .any(|p| path.starts_with(p))
                    {
                        self.add(path.split("::").map(str::to_string).collect());
                    }
                }
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&&*id.to_string()) => {
                    let mut segments = vec![id.to_string()];
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(n)),
                    ) = (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(n.to_string());
                        i += 3;
                    }
                    if segments.len() > 1 {
                        self.add(segments);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let test = match item {
            syn::Item::Fn(i) => is_cfg_test(&i.attrs),
            syn::Item::Impl(i) => is_cfg_test(&i.attrs),
            syn::Item::Mod(i) => is_cfg_test(&i.attrs),
            syn::Item::Use(i) => is_cfg_test(&i.attrs),
            syn::Item::Const(i) => is_cfg_test(&i.attrs),
            syn::Item::Static(i) => is_cfg_test(&i.attrs),
            syn::Item::Struct(i) => is_cfg_test(&i.attrs),
            syn::Item::Enum(i) => is_cfg_test(&i.attrs),
            syn::Item::Trait(i) => is_cfg_test(&i.attrs),
            _ => false,
        };
        if !test {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // `mod x;` names a child, which is not a dependency; an inline module is a scope.
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    /// `pub(super)` and `pub(in crate::a)` say who may use an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments
            .first()
            .is_some_and(|f| ["crate", "super", "self"].contains(&f.as_str()))
        {
            self.add(segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &a.meta {
            self.tokens(list.tokens.clone());
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The module dependency graph between files: `from` → `to` → one path that makes the edge.
/// A path depends on the file of the longest module it starts with (`crate::es::EsClient`: the
/// file of `es`, which re-exports it).
fn dependencies(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .filter(|s| s.rel != "main.rs")
        .map(|s| (s.module.clone(), s.rel.clone()))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in sources {
        let mut paths = Paths {
            module: source.module.clone(),
            children: &modules,
            found: Vec::new(),
        };
        paths.visit_file(&source.file);
        let edges = graph.entry(source.rel.clone()).or_default();
        for path in paths.found {
            let target = (0..=path.len())
                .rev()
                .find_map(|n| files.get(&path[..n]))
                .expect("the crate root");
            if *target != source.rel && target != "lib.rs" {
                edges
                    .entry(target.clone())
                    .or_insert_with(|| path.join("::"));
            }
        }
    }
    graph
}

/// The strongly connected components of more than one file (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn connect<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                connect(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            connect(&mut state, v);
        }
    }
    state.out.sort();
    state.out
}

/// A component as text: its files and the edges among them, each with a path that makes it.
fn describe(graph: &BTreeMap<String, BTreeMap<String, String>>, component: &[String]) -> String {
    let mut text = component.join(" ↔ ");
    for from in component {
        for (to, path) in &graph[from] {
            if component.contains(to) {
                text.push_str(&format!("\n    {from} → {to} ({path})"));
            }
        }
    }
    text
}

#[test]
fn no_dependency_cycle_between_files_of_src() {
    let graph = dependencies(&sources());
    // The graph is read, not empty: a few edges every version of src/ has.
    assert!(graph.len() > 30, "files: {:?}", graph.keys());
    for (from, to) in [
        ("run.rs", "cluster.rs"),
        ("cluster.rs", "cluster/snapshot.rs"),
    ] {
        assert!(graph[from].contains_key(to), "{from} → {to} not found");
    }
    let problems: Vec<String> = cycles(&graph).iter().map(|c| describe(&graph, c)).collect();
    assert!(
        problems.is_empty(),
        "files of src/ that depend on each other (a → b: a names b, with one path that does), \
         to be broken, e.g. by moving what both need into a file of its own:\n{}",
        problems.join("\n")
    );
}
