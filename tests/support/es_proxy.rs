#![allow(dead_code)]
//! An HTTP proxy in front of any Elasticsearch (a real one given by URL, or the stand-in) that
//! injects the faults the end-to-end scenarios need: an outage (every connection cut), lost
//! answers (the request reaches Elasticsearch, its answer never comes back), error statuses, and
//! a `GET /` that answers `cluster_uuid: "_na_"`. It records every request. Binds 127.0.0.1 only.

use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// A fault for the next matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyFault {
    /// Answer this status with an Elasticsearch error envelope; nothing is forwarded.
    Status(u16),
    /// Answer 400 with this Elasticsearch error (type, reason); nothing is forwarded.
    Refuse(&'static str, &'static str),
    /// Forward the request, then close the connection without the answer.
    LoseAnswer,
}

/// One request as the proxy saw it, with the status it answered (`None`: no answer), and
/// whether it reached Elasticsearch.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub forwarded: bool,
}

#[derive(Default)]
struct Inner {
    cut: bool,
    faults: VecDeque<(Option<Method>, ProxyFault)>,
    uuid: Option<String>,
    log: Vec<Logged>,
}

struct ProxyState {
    target: String,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

pub struct EsProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl EsProxy {
    /// A proxy to `target` (trusting `ca_pem` when given).
    pub async fn start(target: &str, ca_pem: Option<&[u8]>) -> EsProxy {
        let mut http = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA"));
        }
        let state = Arc::new(ProxyState {
            target: target.trim_end_matches('/').to_string(),
            http: http.build().expect("proxy client"),
            inner: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EsProxy { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.inner.lock().expect("proxy lock")
    }

    /// While on, every connection is cut without an answer (`GET /` included): an outage.
    pub fn set_cut(&self, on: bool) {
        self.lock().cut = on;
    }

    /// The next `times` requests with `method` (any method when `None`; never `GET /`) get
    /// `fault`.
    pub fn inject(&self, method: Option<&str>, fault: ProxyFault, times: usize) {
        let m = method.map(|m| Method::from_bytes(m.as_bytes()).expect("method"));
        let mut inner = self.lock();
        for _ in 0..times {
            inner.faults.push_back((m.clone(), fault.clone()));
        }
    }

    /// Answer `GET /` with this `cluster_uuid` (`None`: what Elasticsearch says).
    pub fn set_cluster_uuid(&self, uuid: Option<&str>) {
        self.lock().uuid = uuid.map(str::to_string);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Creates (`PUT /_inference/<task>/<id>`) of `id` that reached Elasticsearch.
    pub fn creates(&self, id: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.forwarded && l.method == "PUT" && l.path.ends_with(&format!("/{id}")))
            .count()
    }

    /// Writes (PUT, POST, DELETE) that reached Elasticsearch.
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .iter()
            .filter(|l| l.forwarded && matches!(l.method.as_str(), "PUT" | "POST" | "DELETE"))
            .map(|l| format!("{} {}", l.method, l.path))
            .collect()
    }
}

impl Drop for EsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn es_error(status: u16, kind: &str, reason: &str) -> Response {
    let body = json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status,
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn record(state: &ProxyState, method: &Method, uri: &Uri, status: Option<u16>, forwarded: bool) {
    state.inner.lock().expect("proxy lock").log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        status,
        forwarded,
    });
}

async fn handle(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_root = uri.path() == "/";
    let (cut, fault, uuid) = {
        let mut inner = state.inner.lock().expect("proxy lock");
        let i = inner
            .faults
            .iter()
            .position(|(m, _)| m.as_ref().is_none_or(|m| *m == method))
            .filter(|_| !is_root);
        let fault = i.and_then(|i| inner.faults.remove(i)).map(|(_, f)| f);
        (inner.cut, fault, inner.uuid.clone())
    };
    if cut {
        record(&state, &method, &uri, None, false);
        // Unwinding out of the handler aborts the connection: no answer at all.
        std::panic::resume_unwind(Box::new("proxy: cut"));
    }
    match fault {
        Some(ProxyFault::Status(code)) => {
            record(&state, &method, &uri, Some(code), false);
            return es_error(code, "status_exception", "injected by the e2e proxy");
        }
        Some(ProxyFault::Refuse(kind, reason)) => {
            record(&state, &method, &uri, Some(400), false);
            return es_error(400, kind, reason);
        }
        _ => {}
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = state
        .http
        .request(method.clone(), format!("{}{path_and_query}", state.target))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => {
            record(&state, &method, &uri, None, false);
            std::panic::resume_unwind(Box::new("proxy: upstream unreachable"));
        }
    };
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    record(
        &state,
        &method,
        &uri,
        fault.is_none().then_some(status),
        true,
    );
    if fault == Some(ProxyFault::LoseAnswer) {
        std::panic::resume_unwind(Box::new("proxy: answer lost"));
    }
    let bytes = match (is_root && method == Method::GET, uuid) {
        (true, Some(uuid)) => {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            v["cluster_uuid"] = json!(uuid);
            Bytes::from(v.to_string())
        }
        _ => bytes,
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}
