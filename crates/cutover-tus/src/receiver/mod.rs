//! The tus receiver (core, creation, creation-with-upload, checksum,
//! termination, expiration) and its receipts.
//!
//! Layout of the storage directory: `uploads/ID.part` and `uploads/ID.json`
//! while an upload is open; `complete/ID` and `receipts/ID.json` once done.
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
mod store;

use append::append;
use store::{
    Info, Shared, finish, header, http_date, new_id, now, reply, reply_text, set, valid_id,
    write_atomically,
};

const TUS_VERSION: &str = "1.0.0";
/// The most body bytes gathered before one write to the upload's file.
const WRITE_BUFFER: usize = 1 << 20;
const EXTENSIONS: &str = "creation,creation-with-upload,checksum,termination,expiration";

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
    let shared = Arc::new(Shared {
        config,
        locks: Mutex::default(),
        running: Mutex::default(),
    });
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

async fn create(shared: &Shared, headers: &HeaderMap, body: Body) -> Response {
    let Some(length) = header(headers, "upload-length").and_then(|value| value.parse::<u64>().ok())
    else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Length is required (deferred lengths are not supported)",
        );
    };
    if length > shared.config.max_size {
        return reply_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Upload-Length is over Tus-Max-Size",
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
    };
    let part = shared.uploads().join(format!("{id}.part"));
    let with_data =
        length > 0 && header(headers, "content-type") == Some("application/offset+octet-stream");
    // With data, nothing is made durable until the data is: the client
    // learns the upload's URL only from this answer, so a crash before it
    // leaves nothing anyone could resume.
    let created = async {
        let file = tokio::fs::File::create(&part).await?;
        if !with_data {
            file.sync_all().await?;
            shared.save(&info).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    if created.await.is_err() {
        shared.remove(&id).await;
        return reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload could not be stored",
        );
    }
    if length == 0 {
        // Nothing to wait for: an empty file is complete, and persisted, before the answer.
        if finish(shared, &info, Some(sha2::Sha256::new()))
            .await
            .is_err()
        {
            return reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload could not be finished",
            );
        }
        let mut response = reply(StatusCode::CREATED);
        set(&mut response, "location", format!("/files/{id}"));
        set(&mut response, "upload-offset", 0);
        return response;
    }
    let mut response = if with_data {
        let lock = shared.lock(&id);
        let _guard = lock.lock().await;
        let mut response = append(shared, info.clone(), headers, body, false).await;
        if response.status() == StatusCode::NO_CONTENT {
            *response.status_mut() = StatusCode::CREATED;
        }
        response
    } else {
        let mut response = reply(StatusCode::CREATED);
        set(&mut response, "upload-expires", http_date(info.expires_at));
        response
    };
    set(&mut response, "location", format!("/files/{id}"));
    response
}

async fn head(shared: &Shared, id: &str) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    if let Some(receipt) = shared.receipt(id).await {
        let mut response = reply(StatusCode::OK);
        set(&mut response, "upload-offset", receipt.size);
        set(&mut response, "upload-length", receipt.size);
        return response;
    }
    match shared.info(id).await {
        Some(info) if info.expires_at < now() => {
            shared.remove(id).await;
            reply(StatusCode::GONE)
        }
        Some(info) => {
            let mut response = reply(StatusCode::OK);
            set(&mut response, "upload-offset", info.offset);
            set(&mut response, "upload-length", info.length);
            if !info.metadata_header.is_empty() {
                set(&mut response, "upload-metadata", &info.metadata_header);
            }
            set(&mut response, "upload-expires", http_date(info.expires_at));
            response
        }
        None => reply(StatusCode::NOT_FOUND),
    }
}

async fn patch(shared: &Shared, id: &str, headers: &HeaderMap, body: Body) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    if header(headers, "content-type") != Some("application/offset+octet-stream") {
        return reply_text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/offset+octet-stream",
        );
    }
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    if shared.receipt(id).await.is_some() {
        return reply_text(StatusCode::FORBIDDEN, "the upload is complete");
    }
    let Some(info) = shared.info(id).await else {
        return reply(StatusCode::NOT_FOUND);
    };
    if info.expires_at < now() {
        shared.remove(id).await;
        return reply(StatusCode::GONE);
    }
    append(shared, info, headers, body, true).await
}

async fn terminate(shared: &Shared, id: &str) -> Response {
    if !valid_id(id) {
        return reply(StatusCode::NOT_FOUND);
    }
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    if shared.info(id).await.is_none() {
        return reply(StatusCode::NOT_FOUND);
    }
    shared.remove(id).await;
    reply(StatusCode::NO_CONTENT)
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
