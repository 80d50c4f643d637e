//! The OpenAI-compatible mock provider (tests/support/mock_provider.rs) as a server of its own,
//! for end-to-end runs against a real Elasticsearch: point the `openai` service's `url` setting
//! at it (`http://ADDR/v1/chat/completions`, `http://ADDR/v1/embeddings`), and Elasticsearch's
//! calls to the provider on create and `_update` succeed with any non-empty key.
//!
//!   cargo run --example mock-provider -- --listen 0.0.0.0:8089
//!
//! It serves until interrupted. It is not OpenAI: the answers are deterministic placeholders.

#[path = "../support/mock_provider.rs"]
mod mock_provider;

use std::net::SocketAddr;

use mock_provider::MockProvider;

fn usage() -> ! {
    eprintln!("usage: mock-provider [--listen ADDR]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8089".parse().expect("default address");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let provider = match MockProvider::start_on(listen).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mock-provider: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    println!("mock-provider listening on {}", provider.url());
    let _ = tokio::signal::ctrl_c().await;
}
