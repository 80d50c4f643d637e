//! The OpenAI-compatible mock provider (tests/support/mock_provider.rs) that the end-to-end runs
//! against a real Elasticsearch point the `openai` service at: it answers what Elasticsearch sends
//! for embeddings and chat completions, in OpenAI's formats, and refuses what OpenAI refuses.

mod support;

use serde_json::{Value, json};
use support::mock_provider::{DEFAULT_DIMENSIONS, MockProvider, embedding};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(p: &MockProvider, path: &str, key: Option<&str>, body: Value) -> (u16, String) {
    let mut req = client().post(format!("{}{path}", p.url())).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

fn norm(v: &Value) -> f64 {
    v.as_array()
        .expect("vector")
        .iter()
        .map(|x| x.as_f64().expect("number").powi(2))
        .sum::<f64>()
        .sqrt()
}

#[tokio::test]
async fn embeddings_are_unit_vectors_one_per_input_in_openais_format() {
    let p = MockProvider::start().await;
    let (status, body) = post(
        &p,
        "/v1/embeddings",
        Some("sk-e2e"),
        json!({"input": ["how big", "how small"], "model": "text-embedding-3-small"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        assert_eq!(d["object"], "embedding");
        assert_eq!(
            d["embedding"].as_array().expect("vector").len(),
            DEFAULT_DIMENSIONS
        );
        assert!((norm(&d["embedding"]) - 1.0).abs() < 1e-4);
    }
    assert_ne!(
        data[0]["embedding"], data[1]["embedding"],
        "one vector per text"
    );

    // A single string, and the dimensions asked for; the same text gives the same vector.
    let (status, body) = post(
        &p,
        "/v1/embeddings",
        Some("sk-e2e"),
        json!({"input": "how big", "model": "m", "dimensions": 8}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let vector = &v["data"][0]["embedding"];
    assert_eq!(vector.as_array().expect("vector").len(), 8);
    assert_eq!(*vector, json!(embedding("how big", 8)));
}

#[tokio::test]
async fn chat_completions_answer_plainly_or_as_server_sent_events() {
    let p = MockProvider::start().await;
    let request = json!({"model": "e2e-chat", "n": 1,
        "messages": [{"role": "user", "content": "how big"}]});
    let (status, body) = post(&p, "/v1/chat/completions", Some("sk-e2e"), request.clone()).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock answer to: how big"
    );

    let mut streamed = request;
    streamed["stream"] = json!(true);
    let (status, body) = post(&p, "/v1/chat/completions", Some("sk-e2e"), streamed).await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("an SSE data line"))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            let chunk: Value = serde_json::from_str(e).expect("chunk");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(content, "mock answer to: how big");
}

#[tokio::test]
async fn refuses_what_openai_refuses_and_records_the_key_it_was_given() {
    let p = MockProvider::start().await;
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let (status, body) = post(&p, "/v1/chat/completions", None, chat.clone()).await;
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (status, _) = post(&p, "/v1/chat/completions", Some(" "), chat.clone()).await;
    assert_eq!(status, 401, "an empty key is no key");
    for bad in [
        json!({"input": "x"}),
        json!({"input": [1, 2], "model": "m"}),
        json!({"input": [], "model": "m"}),
        json!({"input": "x", "model": "m", "dimensions": 0}),
    ] {
        let (status, body) = post(&p, "/v1/embeddings", Some("k"), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = post(&p, "/v1/chat/completions", Some("k"), json!({"model": "m"})).await;
    assert_eq!(status, 400, "no messages");
    let (status, _) = post(&p, "/v1/completions", Some("k"), chat.clone()).await;
    assert_eq!(status, 404);

    let (status, _) = post(&p, "/v1/chat/completions", Some("sk-rotated"), chat).await;
    assert_eq!(status, 200);
    let seen = p.requests();
    let last = seen.last().expect("a request");
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.model.as_deref(), Some("m"));
    assert_eq!(last.key.as_deref(), Some("sk-rotated"));
    assert_eq!(seen[0].status, 401);
    assert_eq!(seen[0].key, None);
}
