//! The tus receiver (core and every tus 1.0 extension: creation,
//! creation-with-upload, creation-defer-length, concatenation, checksum,
//! checksum-trailer, termination, expiration), the IETF resumable-upload
//! draft beside it on the same endpoint, and the receipts.
//!
//! Layout of the storage directory: `uploads/ID.part` and `uploads/ID.json`
//! while an upload is open (and while a finished partial upload waits to be
//! concatenated); `complete/ID` and `receipts/ID.json` once done.
//! A file's name from the metadata is only ever data in the receipt, never
//! part of a path, so no metadata can reach outside the directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

mod append;
mod concat;
mod draft;
mod early;
mod store;

use append::append;
use store::{
    Info, Shared, finish, header, http_date, new_id, now, reply, reply_text, set, valid_id,
    write_atomically,
};

const TUS_VERSION: &str = "1.0.0";
/// The most body bytes gathered before one write to the upload's file.
const WRITE_BUFFER: usize = 1 << 20;
const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,concatenation,\
                          concatenation-unfinished,checksum,checksum-trailer,termination,\
                          expiration";

/// How the receiver runs.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The storage directory.
    pub directory: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_size: u64,
    /// The bearer token every call must carry; `None`: no authentication.
    pub token: Option<String>,
    /// Seconds an unfinished upload is kept.
    pub expire_after_seconds: i64,
    /// A fault for testing senders: this percentage of completed uploads
    /// (chosen by id) is acknowledged and then not kept, as a lying receiver
    /// does. 0 in every real use.
    pub lose_percent: u8,
    /// The receiver's address as clients reach it (`https://host/prefix`):
    /// upload URLs are this followed by `/files/ID`. Without it they are
    /// made from the request's `Host`.
    pub public_url: Option<String>,
    /// Behind a reverse proxy: upload URLs are made from
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` when the request has them.
    pub trust_proxy: bool,
}

/// What the receiver keeps of a finished upload, served at `GET /receipts/ID`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    /// The upload id.
    pub id: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
    /// When the file was persisted (RFC 3339, UTC).
    pub stored_at: String,
    /// The upload's metadata (values decoded; not used as paths).
    pub metadata: BTreeMap<String, String>,
    /// For a file concatenated from partial uploads, the `Upload-Concat`
    /// that made it (`final;/files/A /files/B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<String>,
}

/// Serves the receiver on `listener` until the process ends. Creates the
/// storage layout first and refuses a directory it cannot write.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ReceiverConfig,
) -> std::io::Result<()> {
    for sub in ["uploads", "complete", "receipts"] {
        tokio::fs::create_dir_all(config.directory.join(sub)).await?;
    }
    let probe = config.directory.join("uploads").join(".probe");
    write_atomically(&probe, b"probe").await?;
    tokio::fs::remove_file(&probe).await?;
    store::sweep(&config.directory.join("uploads")).await?;
    let shared = Arc::new(Shared {
        config,
        barrier: store::Barrier::default(),
        locks: Mutex::default(),
        running: Mutex::default(),
    });
    early::recover(&shared).await?;
    let router = Router::new().fallback(handle).with_state(shared);
    axum::serve(listener, router).await
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(token) = &shared.config.token {
        let presented = parts
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            return reply_text(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        }
    }
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::OPTIONS, ["files", ..]) => options(&shared),
        (&Method::GET, ["receipts", id]) => receipt(&shared, id).await,
        (&Method::GET, ["receipts"]) => listing(&shared, parts.uri.query()).await,
        (method, ["files", rest @ ..]) => {
            let draft = header(&parts.headers, "upload-draft-interop-version");
            if let (Some(value), false) = (draft, parts.headers.contains_key("tus-resumable")) {
                return match draft::version(value) {
                    Some(version) => {
                        draft::route(&shared, version, method, rest, &parts.headers, body).await
                    }
                    None => {
                        let mut response = reply_text(
                            StatusCode::PRECONDITION_FAILED,
                            "Upload-Draft-Interop-Version must be 6, 7 or 8 \
                             (or use tus with Tus-Resumable: 1.0.0)",
                        );
                        set(&mut response, "tus-version", TUS_VERSION);
                        response
                    }
                };
            }
            if parts
                .headers
                .get("tus-resumable")
                .and_then(|value| value.to_str().ok())
                != Some(TUS_VERSION)
            {
                let mut response = reply_text(
                    StatusCode::PRECONDITION_FAILED,
                    "Tus-Resumable: 1.0.0 is required",
                );
                set(&mut response, "tus-version", TUS_VERSION);
                return response;
            }
            match (method, rest) {
                (&Method::POST, []) => create(&shared, &parts.headers, body).await,
                (&Method::HEAD, [id]) => head(&shared, id).await,
                (&Method::PATCH, [id]) => patch(&shared, id, &parts.headers, body).await,
                (&Method::DELETE, [id]) => terminate(&shared, id).await,
                _ => reply(StatusCode::METHOD_NOT_ALLOWED),
            }
        }
        _ => reply(StatusCode::NOT_FOUND),
    }
}

fn options(shared: &Shared) -> Response {
    let mut response = reply(StatusCode::NO_CONTENT);
    set(&mut response, "tus-version", TUS_VERSION);
    set(&mut response, "tus-extension", EXTENSIONS);
    set(&mut response, "tus-max-size", shared.config.max_size);
    set(&mut response, "tus-checksum-algorithm", "crc32,sha256,sha1");
    // The IETF draft's discovery: appends are accepted, within these limits.
    set(&mut response, "accept-patch", "application/partial-upload");
    set(
        &mut response,
        "upload-limit",
        format!(
            "max-size={}, max-age={}",
            shared.config.max_size, shared.config.expire_after_seconds
        ),
    );
    response
}

/// Parses `Upload-Metadata`: `key base64, key base64, key`.
fn parse_metadata(header: &str) -> Option<BTreeMap<String, String>> {
    let mut metadata = BTreeMap::new();
    for pair in header
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let mut parts = pair.split(' ');
        let key = parts.next()?.to_owned();
        let value = match parts.next() {
            Some(encoded) => String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()?,
            )
            .into_owned(),
            None => String::new(),
        };
        if key.is_empty() || parts.next().is_some() {
            return None;
        }
        metadata.insert(key, value);
    }
    Some(metadata)
}

/// The media type of upload data.
const OCTETS: &str = "application/offset+octet-stream";

/// Whether a request carries a body (a length over zero, or chunks).
fn has_body(headers: &HeaderMap) -> bool {
    header(headers, "content-length")
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > 0)
        || headers.contains_key("transfer-encoding")
}

/// The upload's URL, absolute: the configured public URL, else the proxy's
/// forwarded host and scheme (with `trust_proxy`), else the request's
/// `Host`; relative only when none names a plausible host.
fn location(shared: &Shared, headers: &HeaderMap, id: &str) -> String {
    let path = format!("/files/{id}");
    if let Some(base) = &shared.config.public_url {
        return format!("{}{path}", base.trim_end_matches('/'));
    }
    let first = |name: &str| {
        header(headers, name)
            .and_then(|value| value.split(',').next())
            .map(|value| value.trim().to_owned())
    };
    let forwarded = if shared.config.trust_proxy {
        first("x-forwarded-host").map(|host| {
            let scheme = first("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
            (scheme.to_ascii_lowercase(), host)
        })
    } else {
        None
    };
    let Some((scheme, host)) = forwarded
        .or_else(|| header(headers, "host").map(|host| ("http".to_owned(), host.to_owned())))
    else {
        return path;
    };
    let plausible = !host.is_empty()
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]_".contains(&byte));
    if !plausible || !matches!(scheme.as_str(), "http" | "https") {
        return path;
    }
    format!("{scheme}://{host}{path}")
}

async fn create(shared: &Shared, headers: &HeaderMap, body: Body) -> Response {
    let concat = header(headers, "upload-concat");
    if let Some(list) = concat.and_then(|value| value.strip_prefix("final;")) {
        if has_body(headers) {
            return reply_text(
                StatusCode::FORBIDDEN,
                "a final upload takes no data: it is the concatenation of its partial uploads",
            );
        }
        let (mut response, id) = concat::create_final(shared, headers, list).await;
        if let Some(id) = id {
            set(&mut response, "location", location(shared, headers, &id));
        }
        return response;
    }
    if concat.is_some_and(|value| value != "partial") {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Concat must be partial, or final; followed by the partial uploads' URLs",
        );
    }
    let deferred = match header(headers, "upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return reply_text(StatusCode::BAD_REQUEST, "Upload-Defer-Length must be 1"),
    };
    let length = match (header(headers, "upload-length"), deferred) {
        (Some(value), false) => match value.parse::<u64>() {
            Ok(length) => Some(length),
            Err(_) => return reply_text(StatusCode::BAD_REQUEST, "Upload-Length is not a number"),
        },
        (None, true) => None,
        (Some(_), true) => {
            return reply_text(
                StatusCode::BAD_REQUEST,
                "Upload-Length and Upload-Defer-Length cannot both be given",
            );
        }
        (None, false) => {
            return reply_text(
                StatusCode::BAD_REQUEST,
                "Upload-Length (or Upload-Defer-Length: 1) is required",
            );
        }
    };
    if length.is_some_and(|length| length > shared.config.max_size) {
        return reply_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Upload-Length is over Tus-Max-Size",
        );
    }
    if has_body(headers) && header(headers, "content-type") != Some(OCTETS) {
        return reply_text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "data sent with the creation must be application/offset+octet-stream",
        );
    }
    let metadata_header = header(headers, "upload-metadata")
        .unwrap_or_default()
        .to_owned();
    let Some(metadata) = parse_metadata(&metadata_header) else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Metadata is not key base64 pairs",
        );
    };
    let Some(id) = new_id() else {
        return reply_text(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for an id");
    };
    let info = Info {
        id: id.clone(),
        length,
        offset: 0,
        metadata_header,
        metadata,
        expires_at: now() + shared.config.expire_after_seconds,
        partial: concat.is_some(),
        draft: None,
        taken: None,
        parts: None,
    };
    let with_data = has_body(headers) && length != Some(0);
    if let Err(failed) = shared.open(&info, with_data).await {
        return failed;
    }
    if info.complete() && !info.partial {
        // Nothing to wait for: an empty file is complete, and persisted, before the answer.
        if finish(shared, &info, Some(sha2::Sha256::new()), None)
            .await
            .is_err()
        {
            return reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload could not be finished",
            );
        }
        let mut response = reply(StatusCode::CREATED);
        set(&mut response, "location", location(shared, headers, &id));
        set(&mut response, "upload-offset", 0);
        return response;
    }
    let mut response = if with_data {
        let lock = shared.lock(&id);
        let _guard = lock.lock().await;
        let mut response = append(shared, info.clone(), headers, body, true).await;
        if response.status() == StatusCode::NO_CONTENT {
            *response.status_mut() = StatusCode::CREATED;
        }
        response
    } else {
        let mut response = reply(StatusCode::CREATED);
        set(&mut response, "upload-expires", http_date(info.expires_at));
        response
    };
    set(&mut response, "location", location(shared, headers, &id));
    response
}

async fn head(shared: &Shared, id: &str) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    // A final upload made before its partials finished: finished here if
    // they all are (a restart may have left it so), else described
    // without an offset, which the protocol leaves undefined until then.
    if let Some(info) = shared.info(id).await.filter(|info| info.parts.is_some()) {
        match early::settle(shared, id).await {
            Ok(true) => {}
            Ok(false) => {
                let mut response = reply(StatusCode::OK);
                if let Some(length) = info.length {
                    set(&mut response, "upload-length", length);
                }
                if !info.metadata_header.is_empty() {
                    set(&mut response, "upload-metadata", &info.metadata_header);
                }
                let names = info.parts.iter().flatten();
                let urls: Vec<String> = names.map(|name| format!("/files/{name}")).collect();
                set(
                    &mut response,
                    "upload-concat",
                    format!("final;{}", urls.join(" ")),
                );
                return response;
            }
            Err(_) => return reply(StatusCode::GONE),
        }
    }
    if let Some(receipt) = shared.receipt(id).await {
        let mut response = reply(StatusCode::OK);
        set(&mut response, "upload-offset", receipt.size);
        set(&mut response, "upload-length", receipt.size);
        if let Some(concat) = &receipt.concat {
            set(&mut response, "upload-concat", concat);
        }
        return response;
    }
    match shared.live(id).await {
        Err(refused) => refused,
        Ok(info) => {
            let mut response = reply(StatusCode::OK);
            set(&mut response, "upload-offset", info.offset);
            match info.length {
                Some(length) => set(&mut response, "upload-length", length),
                None => set(&mut response, "upload-defer-length", 1),
            }
            if !info.metadata_header.is_empty() {
                set(&mut response, "upload-metadata", &info.metadata_header);
            }
            if info.partial {
                set(&mut response, "upload-concat", "partial");
            }
            set(&mut response, "upload-expires", http_date(info.expires_at));
            response
        }
    }
}

async fn patch(shared: &Shared, id: &str, headers: &HeaderMap, body: Body) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    if header(headers, "content-type") != Some(OCTETS) {
        return reply_text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/offset+octet-stream",
        );
    }
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    if shared.receipt(id).await.is_some() {
        // Also a final upload, which is complete from its creation.
        return reply_text(StatusCode::FORBIDDEN, "the upload is complete");
    }
    let info = match shared.live(id).await {
        Ok(info) => info,
        Err(refused) => return refused,
    };
    if info.parts.is_some() {
        return reply_text(
            StatusCode::FORBIDDEN,
            "a final upload takes no data: it is the concatenation of its partial uploads",
        );
    }
    if info.complete() {
        return reply_text(StatusCode::FORBIDDEN, "the upload is complete");
    }
    append(shared, info, headers, body, false).await
}

/// Termination: an open upload, a partial one, or a finished file and its
/// receipt are freed.
async fn terminate(shared: &Shared, id: &str) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    if shared.info(id).await.is_some() {
        shared.remove(id).await;
        return reply(StatusCode::NO_CONTENT);
    }
    match shared.forget(id).await {
        Ok(true) => reply(StatusCode::NO_CONTENT),
        Ok(false) => reply(StatusCode::NOT_FOUND),
        Err(_) => reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload could not be removed",
        ),
    }
}

async fn receipt(shared: &Shared, id: &str) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    match shared.receipt(id).await {
        Some(receipt) => axum::Json(receipt).into_response(),
        None => reply(StatusCode::NOT_FOUND),
    }
}

/// `GET /receipts?day=YYYY-MM-DD`: the receipts of files stored that day
/// (UTC); `GET /receipts?sha256=HEX`: the receipts of files with that
/// content, so a sender can tell it already has a copy here.
async fn listing(shared: &Shared, query: Option<&str>) -> Response {
    let parameter = |name: &str| {
        query.and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
        })
    };
    let day = parameter("day").filter(|day| day.len() == 10);
    let sha256 = parameter("sha256").filter(|hex| hex.len() == 64);
    if day.is_none() && sha256.is_none() {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "name a day or a checksum: /receipts?day=YYYY-MM-DD or /receipts?sha256=HEX",
        );
    }
    let mut receipts = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(shared.config.directory.join("receipts")).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(bytes) = tokio::fs::read(entry.path()).await else {
                continue;
            };
            let Ok(receipt) = serde_json::from_slice::<Receipt>(&bytes) else {
                continue;
            };
            let wanted = day
                .as_ref()
                .is_none_or(|day| receipt.stored_at.starts_with(day))
                && sha256.as_ref().is_none_or(|hex| receipt.sha256 == *hex);
            // Only files still stored whole are listed.
            if wanted && shared.receipt(&receipt.id).await.is_some() {
                receipts.push(receipt);
            }
        }
    }
    receipts.sort_by(|a, b| a.stored_at.cmp(&b.stored_at).then_with(|| a.id.cmp(&b.id)));
    axum::Json(receipts).into_response()
}
