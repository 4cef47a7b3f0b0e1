//! The proxy: forward mode passes calls to the backend; hold mode journals
//! them and answers 202 once they are on disk. `/_cutover/mode` and
//! `/_cutover/status` are the admin calls, with a bearer token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};
use crate::journal::{Call, Journal};

/// What the proxy does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass it to the backend.
    Forward,
    /// Journal it and answer 202.
    Hold,
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    /// The current backend's base URL (forward mode).
    pub backend: String,
    /// The mode at start.
    pub mode: Mode,
    /// The admin token; `None` disables the admin calls.
    pub admin_token: Option<String>,
    /// Paths that are held in hold mode (others are forwarded); empty: all.
    pub paths: Vec<String>,
    /// The largest body accepted, in bytes (413 above it, nothing journaled).
    pub max_body: usize,
    /// Headers never journaled (lower case), besides hop-by-hop ones.
    pub strip_headers: Vec<String>,
}

struct Shared {
    config: HoldConfig,
    holding: AtomicBool,
    journal: Journal,
    client: reqwest::Client,
}

/// Headers that belong to one connection, never forwarded or journaled.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn kept(name: &HeaderName, strip: &[String]) -> bool {
    let name = name.as_str();
    !HOP_BY_HOP.contains(&name) && !strip.iter().any(|stripped| stripped == name)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Serves the proxy on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    journal: Journal,
    config: HoldConfig,
) -> Result<()> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|error| Error::Config(format!("the HTTP client: {error}")))?;
    let shared = Arc::new(Shared {
        holding: AtomicBool::new(config.mode == Mode::Hold),
        config,
        journal,
        client,
    });
    let router = Router::new().fallback(handle).with_state(shared);
    axum::serve(listener, router)
        .await
        .map_err(|error| Error::Serve(error.to_string()))
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    if parts.uri.path().starts_with("/_cutover/") {
        return admin(
            &shared,
            parts.method,
            parts.uri.path(),
            &parts.headers,
            body,
        )
        .await;
    }
    let body = match axum::body::to_bytes(body, shared.config.max_body).await {
        Ok(body) => body,
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({ "error": format!("the body is over {} bytes", shared.config.max_body) }),
            );
        }
    };
    let held_path = shared.config.paths.is_empty()
        || shared
            .config
            .paths
            .iter()
            .any(|held| held == parts.uri.path());
    if shared.holding.load(Ordering::SeqCst) && held_path {
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| kept(name, &shared.config.strip_headers))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        let call = Call {
            id: 0,
            received_at: now_micros(),
            method: parts.method.as_str().to_owned(),
            path,
            headers,
            body: body.to_vec(),
        };
        return match shared.journal.append(call).await {
            Ok(id) => {
                let mut response = json(StatusCode::ACCEPTED, serde_json::json!({ "hold_id": id }));
                if let Ok(value) = id.to_string().parse() {
                    response.headers_mut().insert("x-cutover-hold-id", value);
                }
                response
            }
            // Never answer success for a call that is not on disk.
            Err(error) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": error.to_string() }),
            ),
        };
    }
    forward(&shared, parts.method, &path, &parts.headers, body).await
}

async fn forward(
    shared: &Shared,
    method: axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let url = format!("{}{path}", shared.config.backend.trim_end_matches('/'));
    let mut outgoing = shared.client.request(method, url).body(body);
    for (name, value) in headers {
        if kept(name, &[]) {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = HeaderMap::new();
            for (name, value) in answer.headers() {
                if kept(name, &[]) {
                    headers.append(name.clone(), value.clone());
                }
            }
            match answer.bytes().await {
                Ok(body) => {
                    let mut response = Response::new(Body::from(body));
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    response
                }
                Err(_) => json(
                    StatusCode::BAD_GATEWAY,
                    serde_json::json!({ "error": "the backend's answer broke off" }),
                ),
            }
        }
        Err(_) => json(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({ "error": "the backend did not answer" }),
        ),
    }
}

async fn admin(
    shared: &Shared,
    method: axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let Some(token) = &shared.config.admin_token else {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": "the admin calls are disabled (no token configured)" }),
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented != Some(token.as_str()) {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "a valid bearer token is required" }),
        );
    }
    let status = |shared: &Shared| {
        serde_json::json!({
            "mode": if shared.holding.load(Ordering::SeqCst) { "hold" } else { "forward" },
            "held": shared.journal.held(),
        })
    };
    match (method.as_str(), path) {
        ("GET", "/_cutover/status") => json(StatusCode::OK, status(shared)),
        ("POST", "/_cutover/mode") => {
            let body = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
            match String::from_utf8_lossy(&body).trim().trim_matches('"') {
                "hold" => shared.holding.store(true, Ordering::SeqCst),
                "forward" => shared.holding.store(false, Ordering::SeqCst),
                _ => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": "the body is the mode: hold or forward" }),
                    );
                }
            }
            json(StatusCode::OK, status(shared))
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "admin calls: GET /_cutover/status, POST /_cutover/mode" }),
        ),
    }
}
