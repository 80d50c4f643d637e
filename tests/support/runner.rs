//! A minimal runner in libtest's output format for the async targets that have no libtest
//! (`harness = false`: `tests/e2e/`, `tests/es_contract.rs`), so that SKIPPED lines reach the
//! terminal instead of being captured. Each test runs on its own runtime, a panic is a failure,
//! a test that called `skipped` is reported as ignored, and the process exits non-zero when any
//! test failed. A first argument that is not a flag selects the tests whose names contain it.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
};

pub type AsyncTest = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// Set by `skipped`: the runner reports the test as ignored, not as passed.
static SKIPPED: AtomicBool = AtomicBool::new(false);

/// Say why the running test does nothing, and have it reported as ignored.
pub fn skipped(why: &str) {
    println!("SKIPPED: {why}");
    SKIPPED.store(true, Ordering::SeqCst);
}

pub fn run(tests: &[(&str, AsyncTest)]) {
    // The tests' own HTTP clients (reqwest with rustls) need a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = tests
        .iter()
        .filter(|(n, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    let filtered_out = tests.len() - selected.len();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for (name, test) in selected {
        SKIPPED.store(false, Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(test())));
        drop(rt);
        let verdict = match result {
            Ok(()) if SKIPPED.load(Ordering::SeqCst) => {
                ignored += 1;
                "ignored"
            }
            Ok(()) => {
                passed += 1;
                "ok"
            }
            Err(_) => {
                failed += 1;
                "FAILED"
            }
        };
        println!("test {name} ... {verdict}");
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered_out} filtered out\n"
    );
    if failed > 0 {
        std::process::exit(101);
    }
}
