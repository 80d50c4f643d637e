//! The repository's Elasticsearch stand-in as a server of its own, for end-to-end runs that reach
//! Elasticsearch by URL (also from Pods, when it listens on the pod network's gateway) and for
//! the benchmark.
//!
//!   cargo run --example es-standin -- --listen 127.0.0.1:9200 [--latency 20ms]
//!       [--version 9.1.0] [--api-key KEY] [--cluster-uuid UUID]
//!
//! It serves until interrupted. It follows the Elasticsearch inference API as the tests'
//! stand-in does (see tests/support/es_standin.rs); it is not Elasticsearch.

#[path = "../support/es_standin.rs"]
mod es_standin;

use std::{net::SocketAddr, time::Duration};

use es_standin::{EsStandin, StandinConfig};

fn usage() -> ! {
    eprintln!(
        "usage: es-standin [--listen ADDR] [--latency DURATION] [--version X.Y.Z] [--api-key KEY] [--cluster-uuid UUID]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:9200".parse().expect("default address");
    let mut latency = Duration::ZERO;
    let mut cfg = StandinConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = value.parse().unwrap_or_else(|_| usage()),
            "--latency" => latency = humantime::parse_duration(&value).unwrap_or_else(|_| usage()),
            "--version" => cfg.version = value,
            "--api-key" => cfg.api_key = Some(value),
            "--cluster-uuid" => cfg.cluster_uuid = value,
            _ => usage(),
        }
    }
    let standin = match EsStandin::start_on(listen, cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("es-standin: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    standin.set_latency(latency);
    println!(
        "es-standin listening on {} (latency {latency:?})",
        standin.url()
    );
    let _ = tokio::signal::ctrl_c().await;
}
