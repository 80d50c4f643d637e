#![allow(dead_code)]
//! A small OpenAI-compatible provider for runs against a real Elasticsearch: the `openai` service
//! pointed at it (its `url` setting) passes Elasticsearch's validation on create and the provider
//! call of every `_update`, which fake keys for a real provider cannot. It is not OpenAI: it
//! answers the two routes Elasticsearch calls for the `completion`, `chat_completion` and
//! `text_embedding` task types, with deterministic content.
//!
//! - `POST /v1/embeddings`: `{"input": string or [string], "model", "dimensions"?}` → one
//!   unit-length vector per input (16 dimensions unless `dimensions` is given), derived from the
//!   text, in OpenAI's list format.
//! - `POST /v1/chat/completions`: `{"model", "messages": [...], "stream"?}` → one assistant
//!   message, or the same as server-sent events (`chat.completion.chunk`s, then `[DONE]`) when
//!   `stream` is true.
//!
//! Every request needs `Authorization: Bearer <non-empty key>` (else 401, as OpenAI answers a
//! missing key); any key is accepted. A body that is not such a request is a 400 in OpenAI's
//! error format. The keys seen are kept in memory for tests (`requests`) and never printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Dimensions of an embedding when the request does not ask for a number.
pub const DEFAULT_DIMENSIONS: usize = 16;

/// One request the provider answered (or refused).
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub model: Option<String>,
    /// The bearer key (tests compare it; never printed).
    pub key: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
}

/// The running provider; dropping it stops the server.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// On 127.0.0.1, a free port.
    pub async fn start() -> MockProvider {
        Self::start_on((Ipv4Addr::LOCALHOST, 0).into())
            .await
            .expect("mock provider: cannot listen on 127.0.0.1:0")
    }

    /// On `listen` (e.g. `0.0.0.0:8089`, so that containers reach it).
    pub async fn start_on(listen: SocketAddr) -> std::io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockProvider {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://ADDR`, the base of both routes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("mock provider lock").clone()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {
            "message": message, "type": "invalid_request_error", "param": null, "code": code
        }})),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let key = bearer(&headers);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let model = parsed
        .as_ref()
        .and_then(|b| b["model"].as_str())
        .map(str::to_string);
    let response = match (&key, parsed) {
        (None, _) => error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key.",
            "invalid_api_key",
        ),
        (Some(_), None) => error(
            StatusCode::BAD_REQUEST,
            "The body is not JSON.",
            "invalid_json",
        ),
        (Some(_), Some(body)) => match path.as_str() {
            "/v1/embeddings" => embeddings(&body),
            "/v1/chat/completions" => chat(&body),
            _ => error(StatusCode::NOT_FOUND, "Unknown route.", "unknown_url"),
        },
    };
    shared.seen.lock().expect("mock provider lock").push(Seen {
        path,
        model,
        key,
        status: response.status().as_u16(),
    });
    response
}

/// A unit-length vector of `dims` numbers derived from `text` (FNV-1a, then a small LCG).
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn embeddings(body: &Value) -> Response {
    let inputs: Vec<&str> = match &body["input"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) if !items.is_empty() => {
            match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(v) => v,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "input must be a string or an array of strings.",
                        "invalid_input",
                    );
                }
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "input must be a string or an array of strings.",
                "invalid_input",
            );
        }
    };
    let Some(model) = body["model"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "missing_model",
        );
    };
    let dims = match &body["dimensions"] {
        Value::Null => DEFAULT_DIMENSIONS,
        d => match d.as_u64().filter(|n| (1..=4096).contains(n)) {
            Some(n) => n as usize,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "dimensions must be between 1 and 4096.",
                    "invalid_dimensions",
                );
            }
        },
    };
    let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embedding(text, dims)}))
        .collect();
    axum::Json(json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

fn chat(body: &Value) -> Response {
    let Some(model) = body["model"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "missing_model",
        );
    };
    let Some(last) = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .filter(|m| m["role"].is_string())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "messages must be a non-empty array of messages with a role.",
            "invalid_messages",
        );
    };
    let asked = match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let answer = format!("mock answer to: {asked}");
    let created = 1_700_000_000;
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": created,
                   "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let events = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": answer}), Value::Null),
            chunk(json!({}), json!("stop")),
        ];
        let mut text = String::new();
        for e in events {
            text.push_str(&format!("data: {e}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        return ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response();
    }
    axum::Json(json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    }))
    .into_response()
}
