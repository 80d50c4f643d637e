//! The Elasticsearch stand-in keeps the contracts of Elasticsearch (`tests/support/es_contracts.rs`,
//! with the facts of `testdata/elasticsearch/error-envelopes.json`): for every version the e2e
//! workflow runs, over plain HTTP and over TLS with its own CA and an API key. The same assertions
//! run against a real Elasticsearch when asked to:
//!
//!   E2E_ELASTICSEARCH_REAL=1 E2E_ELASTICSEARCH_URL=https://localhost:9200 \
//!     E2E_ELASTICSEARCH_API_KEY=… E2E_ELASTICSEARCH_CA_FILE=ca.crt \
//!     E2E_PROVIDER_URL=http://127.0.0.1:8089 cargo test --test es_contract
//!
//! `E2E_ELASTICSEARCH_URL` alone is not enough: the e2e suite also points it at the stand-in
//! (`standin`, or a stand-in served by `cargo run --example es-standin`). Credentials and CA are
//! the e2e suite's variables (`E2E_ELASTICSEARCH_API_KEY`, or `E2E_ELASTICSEARCH_USERNAME` and
//! `E2E_ELASTICSEARCH_PASSWORD`; `E2E_ELASTICSEARCH_CA_FILE`), and `E2E_PROVIDER_URL` the
//! OpenAI-compatible provider the cluster reaches, without which the contracts that create an
//! endpoint are skipped. `.ci/e2e-elasticsearch.sh` runs it for each version of
//! `.github/workflows/e2e-elasticsearch.yml`.
//!
//! This target has a small runner (`tests/support/runner.rs`, `harness = false` in Cargo.toml),
//! so that SKIPPED lines reach the terminal instead of being captured.

mod support;

use es_inference_operator::es::EsAuth;
use secrecy::SecretString;
use support::{
    es_contracts::{Target, es_contracts},
    es_standin::{EsStandin, StandinConfig},
    runner::{run, skipped},
};

/// The versions of the e2e workflow's matrix (.github/workflows/e2e-elasticsearch.yml).
const VERSIONS: [&str; 4] = ["8.17.10", "8.19.19", "9.1.5", "9.5.2"];

/// The stand-in never calls a provider (it simulates Elasticsearch's validation call), so its
/// endpoints may point at an address where nothing listens.
const NO_PROVIDER: &str = "http://127.0.0.1:9";

const STANDIN_KEY: &str = "Y29udHJhY3Q6c3RhbmRpbi1rZXk=";

fn main() {
    run(&[
        ("the_standin_keeps_the_contracts_of_each_version", || {
            Box::pin(the_standin_keeps_the_contracts_of_each_version())
        }),
        (
            "the_standin_keeps_the_contracts_over_tls_with_an_api_key",
            || Box::pin(the_standin_keeps_the_contracts_over_tls_with_an_api_key()),
        ),
        ("contracts_on_a_real_elasticsearch", || {
            Box::pin(contracts_on_a_real_elasticsearch())
        }),
    ]);
}

fn standin_config(version: &str) -> StandinConfig {
    StandinConfig {
        api_key: Some(STANDIN_KEY.into()),
        ..StandinConfig::for_version(version)
    }
}

async fn the_standin_keeps_the_contracts_of_each_version() {
    for version in VERSIONS {
        let standin = EsStandin::start(standin_config(version)).await;
        let target = Target {
            label: format!("the stand-in as {version}"),
            url: standin.url(),
            auth: EsAuth::ApiKey(SecretString::from(STANDIN_KEY)),
            ca_pem: None,
            provider: Some(NO_PROVIDER.into()),
        };
        let skipped = es_contracts(&target).await;
        assert!(
            skipped.is_empty(),
            "the stand-in runs every contract: {skipped:?}"
        );
        standin.shutdown().await;
    }
}

/// The path a real cluster takes: https, a CA of its own, an API key.
async fn the_standin_keeps_the_contracts_over_tls_with_an_api_key() {
    let version = VERSIONS[VERSIONS.len() - 1];
    let (standin, ca) = EsStandin::start_tls(standin_config(version)).await;
    let target = Target {
        label: format!("the stand-in as {version} over TLS"),
        url: standin.url(),
        auth: EsAuth::ApiKey(SecretString::from(STANDIN_KEY)),
        ca_pem: Some(ca.into_bytes()),
        provider: Some(NO_PROVIDER.into()),
    };
    let skipped = es_contracts(&target).await;
    assert!(
        skipped.is_empty(),
        "the stand-in runs every contract: {skipped:?}"
    );
    standin.shutdown().await;
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn contracts_on_a_real_elasticsearch() {
    let url = var("E2E_ELASTICSEARCH_URL").filter(|u| u != "standin");
    let real = var("E2E_ELASTICSEARCH_REAL").is_some_and(|v| v == "1" || v == "true");
    let url = match (url, real) {
        (Some(url), true) => url,
        (None, true) => panic!(
            "E2E_ELASTICSEARCH_REAL=1 asks for the contracts on a real Elasticsearch, but \
             E2E_ELASTICSEARCH_URL does not name one (unset, or `standin`)"
        ),
        (None, false) => {
            return skipped(
                "the contracts on a real Elasticsearch need E2E_ELASTICSEARCH_URL naming it and \
                 E2E_ELASTICSEARCH_REAL=1 (see README, End-to-end tests); the stand-in's \
                 contracts ran above",
            );
        }
        (Some(_), false) => {
            return skipped(
                "E2E_ELASTICSEARCH_URL is set but E2E_ELASTICSEARCH_REAL is not 1: the e2e suite \
                 also points that variable at the stand-in, whose contracts ran above; set \
                 E2E_ELASTICSEARCH_REAL=1 when it names a real Elasticsearch",
            );
        }
    };
    let auth = match (
        var("E2E_ELASTICSEARCH_API_KEY"),
        var("E2E_ELASTICSEARCH_USERNAME"),
        var("E2E_ELASTICSEARCH_PASSWORD"),
    ) {
        (Some(key), _, _) => EsAuth::ApiKey(SecretString::from(key)),
        (None, Some(username), Some(password)) => EsAuth::Basic {
            username,
            password: SecretString::from(password),
        },
        _ => EsAuth::None,
    };
    let ca_pem = var("E2E_ELASTICSEARCH_CA_FILE").map(|path| {
        std::fs::read(&path).unwrap_or_else(|e| panic!("E2E_ELASTICSEARCH_CA_FILE: {e}"))
    });
    let target = Target {
        label: "the real Elasticsearch of E2E_ELASTICSEARCH_URL".into(),
        url,
        auth,
        ca_pem,
        provider: var("E2E_PROVIDER_URL"),
    };
    let skipped = es_contracts(&target).await;
    if !skipped.is_empty() {
        // The contracts that ran held; say loudly which did not run.
        println!(
            "SKIPPED in part: on the real Elasticsearch, these contracts did not run (reasons \
             above): {}",
            skipped.join(", ")
        );
    }
}
