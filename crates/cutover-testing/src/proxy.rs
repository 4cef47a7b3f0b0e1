//! A forwarding HTTP proxy on loopback, for tests in which the network
//! between a sender and a receiver misbehaves: a byte flipped in transit,
//! an answer lost after the receiver acted on it, a gateway that refuses
//! some requests or rewrites what the receiver offers.
//!
//! Every request goes to the target with its headers (`Host` included, as
//! a reverse proxy that keeps it does, so a receiver's absolute upload URLs
//! name the proxy); a [`Meddler`] sees each request before it is sent and
//! each answer before it is returned.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! struct Refuses;
//! impl cutover_testing::proxy::Meddler for Refuses {
//!     fn request(
//!         &self,
//!         parts: &axum::http::request::Parts,
//!         _body: &mut Vec<u8>,
//!     ) -> Option<axum::http::StatusCode> {
//!         (parts.method == axum::http::Method::DELETE).then_some(axum::http::StatusCode::FORBIDDEN)
//!     }
//! }
//! let proxy = cutover_testing::proxy::Proxy::start("http://127.0.0.1:1080", Arc::new(Refuses)).await;
//! // proxy.url is http://127.0.0.1:PORT; DELETEs are answered 403 there.
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, StatusCode, request};

/// What the target answered, as the proxy will return it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// Replaces the answer by an empty one of `status`, as if the target's
    /// answer had been lost on the way back (the target acted on it).
    pub fn lose(&mut self, status: StatusCode) {
        self.status = status;
        self.headers.clear();
        self.body.clear();
    }
}

/// What a test does to the traffic; both hooks default to passing it on.
pub trait Meddler: Send + Sync + 'static {
    /// Sees (and may change) a request's body before it is forwarded;
    /// `Some(status)` answers it with that status instead, and the target
    /// never sees it.
    fn request(&self, _parts: &request::Parts, _body: &mut Vec<u8>) -> Option<StatusCode> {
        None
    }

    /// Sees (and may change) the target's answer to a forwarded request.
    fn answer(&self, _parts: &request::Parts, _answer: &mut Answer) {}
}

/// A running proxy; it serves until the test's runtime ends.
#[derive(Debug)]
pub struct Proxy {
    /// The proxy's origin: `http://127.0.0.1:PORT`.
    pub url: String,
    target: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `target` (an
    /// origin, `http://host:port`, with no path).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(target: &str, meddler: Arc<dyn Meddler>) -> Proxy {
        let target = Arc::new(Mutex::new(target.trim_end_matches('/').to_owned()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the proxy's address")
        );
        let state = (target.clone(), meddler, reqwest::Client::new());
        let router = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Proxy { url, target }
    }

    /// Sends what comes next to another target (a receiver restarted on
    /// another port).
    pub fn retarget(&self, target: &str) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) =
            target.trim_end_matches('/').to_owned();
    }
}

type State = (Arc<Mutex<String>>, Arc<dyn Meddler>, reqwest::Client);

async fn forward(
    axum::extract::State((target, meddler, client)): axum::extract::State<State>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let mut body = body.to_vec();
    if let Some(status) = meddler.request(&parts, &mut body) {
        return empty(status);
    }
    let target = target
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = client
        .request(parts.method.clone(), format!("{target}{path}"))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(sent) = outgoing.send().await else {
        return empty(StatusCode::BAD_GATEWAY);
    };
    let status = sent.status();
    let mut headers = sent.headers().clone();
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    let Ok(body) = sent.bytes().await else {
        return empty(StatusCode::BAD_GATEWAY);
    };
    let mut answer = Answer {
        status,
        headers,
        body: body.to_vec(),
    };
    meddler.answer(&parts, &mut answer);
    let mut response = axum::response::Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

fn empty(status: StatusCode) -> axum::response::Response {
    let mut response = axum::response::Response::default();
    *response.status_mut() = status;
    response
}
