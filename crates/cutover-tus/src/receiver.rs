//! The tus receiver (core, creation, creation-with-upload, checksum,
//! termination, expiration) and its receipts.
//!
//! Layout of the storage directory: `uploads/ID.part` and `uploads/ID.json`
//! while an upload is open; `complete/ID` and `receipts/ID.json` once done.
//! A file's name from the metadata is only ever data in the receipt, never
//! part of a path, so no metadata can reach outside the directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Info {
    id: String,
    length: u64,
    offset: u64,
    metadata_header: String,
    metadata: BTreeMap<String, String>,
    expires_at: i64,
}

struct Shared {
    config: ReceiverConfig,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each open upload's SHA-256 so far and the offset it covers, so a
    /// finished file need not be read again for its receipt. In memory
    /// only: after a restart the file is read once at the end instead.
    running: Mutex<HashMap<String, (u64, sha2::Sha256)>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn http_date(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn reply(status: StatusCode) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

fn reply_text(status: StatusCode, text: &str) -> Response {
    let mut response = reply(status);
    *response.body_mut() = Body::from(format!("{text}\n"));
    response
}

fn set(response: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        response.headers_mut().insert(name, value);
    }
}

/// A fresh upload id: 128 random bits, hex.
fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Ids are ours (32 hex digits); anything else names no upload.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, directory fsync.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = tokio::fs::File::create(&temporary).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temporary, path).await?;
    sync_directory(path.parent().unwrap_or(Path::new("."))).await
}

async fn sync_directory(directory: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(directory).await?.sync_all().await
}

impl Shared {
    fn uploads(&self) -> PathBuf {
        self.config.directory.join("uploads")
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }

    async fn info(&self, id: &str) -> Option<Info> {
        let text = tokio::fs::read(self.uploads().join(format!("{id}.json")))
            .await
            .ok()?;
        serde_json::from_slice(&text).ok()
    }

    async fn save(&self, info: &Info) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        write_atomically(&self.uploads().join(format!("{}.json", info.id)), &bytes).await
    }

    /// The receipt of a finished upload whose file is still stored whole.
    async fn receipt(&self, id: &str) -> Option<Receipt> {
        let path = self
            .config
            .directory
            .join("receipts")
            .join(format!("{id}.json"));
        let receipt: Receipt = serde_json::from_slice(&tokio::fs::read(path).await.ok()?).ok()?;
        let stored = tokio::fs::metadata(self.config.directory.join("complete").join(id))
            .await
            .ok()?;
        (stored.len() == receipt.size).then_some(receipt)
    }

    /// Whether the lose-after-acknowledging fault applies to `id`.
    fn loses(&self, id: &str) -> bool {
        self.config.lose_percent > 0
            && sha2::Sha256::digest(id.as_bytes())[0] % 100 < self.config.lose_percent
    }

    /// Takes the running SHA-256 of `id` if it covers exactly `offset` bytes.
    fn take_running(&self, id: &str, offset: u64) -> Option<sha2::Sha256> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match running.remove(id) {
            Some((covered, hasher)) if covered == offset => Some(hasher),
            _ if offset == 0 => Some(sha2::Sha256::new()),
            _ => None,
        }
    }

    fn keep_running(&self, id: &str, offset: u64, hasher: sha2::Sha256) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), (offset, hasher));
    }

    async fn remove(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        for name in [format!("{id}.part"), format!("{id}.json")] {
            let _ = tokio::fs::remove_file(self.uploads().join(name)).await;
        }
    }
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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
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

enum Checksum {
    Crc32(crc32fast::Hasher, Vec<u8>),
    Sha256(sha2::Sha256, Vec<u8>),
    Sha1(sha1::Sha1, Vec<u8>),
}

/// Appends a request body at the upload's offset: streamed to the file,
/// checked against `Upload-Checksum`, synced, then the offset advanced; the
/// final chunk also finishes the upload. The caller holds the upload's lock.
/// `saved`: whether the upload's state is on disk yet (not for a creation
/// with data, which saves it only if the upload stays open).
async fn append(
    shared: &Shared,
    mut info: Info,
    headers: &HeaderMap,
    body: Body,
    saved: bool,
) -> Response {
    if let Some(offset) = header(headers, "upload-offset") {
        if offset.parse::<u64>().ok() != Some(info.offset) {
            let mut response = reply_text(
                StatusCode::CONFLICT,
                "Upload-Offset does not match the upload's offset",
            );
            set(&mut response, "upload-offset", info.offset);
            return response;
        }
    } else if info.offset != 0 || headers.get("upload-length").is_none() {
        return reply_text(StatusCode::BAD_REQUEST, "Upload-Offset is required");
    }
    let mut checksum = match header(headers, "upload-checksum").map(|value| value.split_once(' ')) {
        None => None,
        Some(Some((algorithm, encoded))) => {
            let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(encoded.trim())
            else {
                return reply_text(
                    StatusCode::BAD_REQUEST,
                    "Upload-Checksum is not algorithm base64",
                );
            };
            match algorithm {
                "crc32" => Some(Checksum::Crc32(crc32fast::Hasher::new(), expected)),
                "sha256" => Some(Checksum::Sha256(sha2::Sha256::new(), expected)),
                "sha1" => Some(Checksum::Sha1(sha1::Sha1::new(), expected)),
                _ => {
                    return reply_text(
                        StatusCode::BAD_REQUEST,
                        "Upload-Checksum algorithm must be crc32, sha256 or sha1",
                    );
                }
            }
        }
        Some(None) => {
            return reply_text(
                StatusCode::BAD_REQUEST,
                "Upload-Checksum is not algorithm base64",
            );
        }
    };
    let part = shared.uploads().join(format!("{}.part", info.id));
    let start = info.offset;
    let mut running = shared.take_running(&info.id, start);
    // Bytes past the recorded offset (a write cut short by a crash) are not
    // the upload's: cut them before writing at the offset.
    let opened = async {
        // A crash while finishing can leave the file moved to complete/
        // without its receipt: it is still this upload's, so it comes back.
        let complete = shared.config.directory.join("complete").join(&info.id);
        if tokio::fs::metadata(&part).await.is_err() && tokio::fs::metadata(&complete).await.is_ok()
        {
            tokio::fs::rename(&complete, &part).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .await?;
        file.set_len(start).await?;
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(start)).await?;
        Ok::<_, std::io::Error>(file)
    };
    let Ok(mut file) = opened.await else {
        return reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload could not be opened",
        );
    };
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    let mut failure = None;
    // Body frames are small; the file gets writes of up to WRITE_BUFFER bytes.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // The client went away: keep what arrived whole (it is resumable).
            break;
        };
        if start + written + chunk.len() as u64 > info.length {
            failure = Some(reply_text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the data goes past Upload-Length",
            ));
            break;
        }
        match &mut checksum {
            Some(Checksum::Crc32(hasher, _)) => hasher.update(&chunk),
            Some(Checksum::Sha256(hasher, _)) => hasher.update(&chunk),
            Some(Checksum::Sha1(hasher, _)) => hasher.update(&chunk),
            None => {}
        }
        if let Some(hasher) = &mut running {
            hasher.update(&chunk);
        }
        pending.extend_from_slice(&chunk);
        written += chunk.len() as u64;
        if pending.len() >= WRITE_BUFFER {
            if file.write_all(&pending).await.is_err() {
                failure = Some(reply_text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the data could not be written",
                ));
                break;
            }
            pending.clear();
        }
    }
    if failure.is_none() && !pending.is_empty() && file.write_all(&pending).await.is_err() {
        failure = Some(reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the data could not be written",
        ));
    }
    drop(pending);
    let checksum_failed = failure.is_none()
        && match checksum {
            Some(Checksum::Crc32(hasher, expected)) => {
                hasher.finalize().to_be_bytes().as_slice() != expected.as_slice()
            }
            Some(Checksum::Sha256(hasher, expected)) => {
                hasher.finalize().as_slice() != expected.as_slice()
            }
            Some(Checksum::Sha1(hasher, expected)) => {
                hasher.finalize().as_slice() != expected.as_slice()
            }
            None => false,
        };
    if checksum_failed {
        failure = Some(reply_text(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            "checksum mismatch",
        ));
    }
    if let Some(failure) = failure {
        // The chunk is discarded: the offset stays where it was.
        let _ = file.set_len(start).await;
        let _ = file.sync_data().await;
        if !saved && shared.save(&info).await.is_err() {
            return reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload state could not be saved",
            );
        }
        return failure;
    }
    // Durable before the offset moves.
    if file.sync_data().await.is_err() {
        return reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the data could not be synced",
        );
    }
    drop(file);
    info.offset = start + written;
    if info.offset < info.length {
        if let Some(hasher) = running.take() {
            shared.keep_running(&info.id, info.offset, hasher);
        }
    }
    info.expires_at = now() + shared.config.expire_after_seconds;
    // A finished upload's state is not saved: the receipt replaces it. If
    // finishing is cut short, the saved offset is behind the data, and a
    // resend from it truncates and rewrites the tail.
    if info.offset < info.length && shared.save(&info).await.is_err() {
        return reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload state could not be saved",
        );
    }
    if info.offset == info.length {
        // The persistence step runs before the answer, never after.
        if let Err(error) = finish(shared, &info, running).await {
            return reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the upload could not be finished: {error}"),
            );
        }
    }
    let mut response = reply(StatusCode::NO_CONTENT);
    set(&mut response, "upload-offset", info.offset);
    if info.offset < info.length {
        set(&mut response, "upload-expires", http_date(info.expires_at));
    }
    response
}

/// Moves the finished file into place and writes its receipt, durably.
/// `running` is the file's SHA-256 when it was hashed as it arrived;
/// otherwise the file is read once more.
async fn finish(
    shared: &Shared,
    info: &Info,
    running: Option<sha2::Sha256>,
) -> std::io::Result<()> {
    let part = shared.uploads().join(format!("{}.part", info.id));
    let hasher = match running {
        Some(hasher) => hasher,
        None => {
            let mut hasher = sha2::Sha256::new();
            let mut file = tokio::fs::File::open(&part).await?;
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
            hasher
        }
    };
    if shared.loses(&info.id) {
        shared.remove(&info.id).await;
        return Ok(());
    }
    let complete = shared.config.directory.join("complete").join(&info.id);
    tokio::fs::rename(&part, &complete).await?;
    sync_directory(&shared.config.directory.join("complete")).await?;
    sync_directory(&shared.uploads()).await?;
    let receipt = Receipt {
        id: info.id.clone(),
        size: info.length,
        sha256: hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
        stored_at: rfc3339(now()),
        metadata: info.metadata.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&receipt).map_err(std::io::Error::other)?;
    write_atomically(
        &shared
            .config
            .directory
            .join("receipts")
            .join(format!("{}.json", info.id)),
        &bytes,
    )
    .await?;
    let _ = tokio::fs::remove_file(shared.uploads().join(format!("{}.json", info.id))).await;
    Ok(())
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
