//! The tus sender: creates an upload (with its first chunk where the server
//! offers creation-with-upload), sends the file in PATCHes carrying a
//! checksum each, and resumes from the server's offset after any
//! interruption. The file is read once: the whole file's SHA-256 is computed
//! from the chunks as they are read ([`FileDigest`]), and the next chunk is
//! read while the current one is in flight. A completed upload URL is never
//! resumed to "replay" a file: that sends nothing; a replay is always a new
//! upload.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::auth::{Auth, AuthError, SendError};

mod chunk;
mod concat;

use chunk::{Chunk, Range, base64, read_chunk};
pub use chunk::{ChunkChecksum, FileDigest};

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server refused or failed, after the retries.
    #[error("{0}")]
    Server(String),
    /// The server refused the upload's manifest (its reasons); retrying cannot help.
    #[error("the receiver refused the manifest: {}", .0.join("; "))]
    Rejected(Vec<String>),
    /// No token could be had, or a renewed one was refused: nothing more can be sent.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// The upload protocol a sender speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// tus 1.0 (`Tus-Resumable: 1.0.0`) with the extensions the server offers.
    #[default]
    Tus,
    /// The IETF "Resumable Uploads for HTTP" draft, interop version 8
    /// (draft -11): an empty creation, then appends of
    /// `application/partial-upload`, the last one with `Upload-Complete: ?1`.
    Ietf,
}

/// The interop version the sender speaks the IETF draft at.
const INTEROP_VERSION: &str = "8";

/// A created upload.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its URL.
    pub url: String,
    /// The server's offset: the bytes it took with the creation.
    pub offset: u64,
    /// Where the creation completed the upload and the server said what it
    /// stored (`Repr-Digest`): that SHA-256, hex.
    pub stored_sha256: Option<String>,
}

/// An upload's state on the server (`HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    offset: u64,
    /// The draft's `Upload-Complete`; tus does not say.
    complete: Option<bool>,
}

/// The SHA-256 (hex) in a `Repr-Digest` answer (`sha-256=:base64:`).
fn stored_sha256(headers: &reqwest::header::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get("repr-digest")?.to_str().ok()?;
    value.split(',').find_map(|member| {
        let (key, item) = member.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let encoded = item.trim().strip_prefix(':')?.split(':').next()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        (bytes.len() == 32).then(|| bytes.iter().map(|byte| format!("{byte:02x}")).collect())
    })
}

fn header_u64(answer: &reqwest::Response, name: &str) -> Option<u64> {
    answer
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn said_complete(answer: &reqwest::Response) -> Option<bool> {
    match answer
        .headers()
        .get("upload-complete")?
        .to_str()
        .ok()?
        .trim()
    {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

/// Sends files to one tus endpoint.
#[derive(Debug, Clone)]
pub struct Uploader {
    http: reqwest::Client,
    endpoint: String,
    auth: Auth,
    chunk_size: usize,
    retries: u32,
    protocol: Protocol,
    /// How many partial uploads a large file is sent as, at once, where the
    /// server offers concatenation (1: one stream).
    parts: usize,
    /// What the server offers, asked once.
    discovery: std::sync::Arc<tokio::sync::OnceCell<Discovery>>,
}

/// The server's answer to `OPTIONS`.
#[derive(Debug, Default)]
struct Discovery {
    extensions: Vec<String>,
    algorithms: Vec<String>,
}

/// `Upload-Metadata`: `key base64,key base64`.
fn metadata_header(metadata: &BTreeMap<String, String>) -> String {
    metadata
        .iter()
        .map(|(key, value)| format!("{key} {}", base64(value.as_bytes())))
        .collect::<Vec<_>>()
        .join(",")
}

/// 100 ms, doubling, at most 10 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(7)).min(10_000))
}

/// A service's own words (an error code, a status, a target's name) for a
/// message: on one line, at most `limit` characters.
pub(crate) fn clip(text: &str, limit: usize) -> String {
    let line: String = text
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .take(limit)
        .collect();
    line.trim().to_owned()
}

/// A connection failure in words, without the URL (it may carry credentials).
pub(crate) fn connection_failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "the receiver is unreachable".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// A 400 at creation: the receiver's `validation_errors` where it lists
/// them (the data-exchange service does), else the status.
async fn rejection(answer: reqwest::Response) -> UploadError {
    let reasons: Vec<String> = answer
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| {
            let errors = body.get("validation_errors")?.as_array()?.clone();
            Some(
                errors
                    .iter()
                    .map(|reason| match reason {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        UploadError::Server(
            "creating the upload: status 400 (the receiver refused the request)".to_owned(),
        )
    } else {
        UploadError::Rejected(reasons)
    }
}

type ChunkTask = tokio::task::JoinHandle<std::io::Result<(Chunk, FileDigest)>>;

impl Uploader {
    fn read_ahead(
        &self,
        path: &Path,
        range: Range,
        offset: u64,
        checksum: ChunkChecksum,
        digest: FileDigest,
    ) -> ChunkTask {
        let (path, chunk_size) = (path.to_owned(), self.chunk_size);
        tokio::task::spawn_blocking(move || {
            read_chunk(&path, range, offset, chunk_size, checksum, digest)
        })
    }

    /// What the server offers (asked once per uploader).
    async fn discovery(&self) -> &Discovery {
        self.discovery
            .get_or_init(|| async {
                // OPTIONS needs no token (the data-exchange gateway says so).
                let Ok(answer) = self
                    .request(reqwest::Method::OPTIONS, &self.endpoint)
                    .send()
                    .await
                else {
                    return Discovery::default();
                };
                let list = |name: &str| -> Vec<String> {
                    answer
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(|value| {
                            value
                                .split(',')
                                .map(|item| item.trim().to_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                if !answer.status().is_success() {
                    return Discovery::default();
                }
                Discovery {
                    extensions: list("tus-extension"),
                    algorithms: list("tus-checksum-algorithm"),
                }
            })
            .await
    }

    /// The checksum chunks to this server carry (none in the IETF draft,
    /// where the whole file is held to the server's `Repr-Digest`).
    pub async fn chunk_checksum(&self) -> ChunkChecksum {
        if self.protocol == Protocol::Ietf {
            return ChunkChecksum::None;
        }
        ChunkChecksum::choose(self.discovery().await)
    }

    /// An uploader for `endpoint` (e.g. `https://host/files`), authorized by `auth`.
    pub fn new(
        endpoint: &str,
        auth: impl Into<Auth>,
        chunk_size: usize,
    ) -> Result<Uploader, UploadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|error| UploadError::Server(format!("the HTTP client: {error}")))?;
        Ok(Uploader {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            auth: auth.into(),
            chunk_size: chunk_size.max(1),
            retries: 5,
            protocol: Protocol::Tus,
            parts: 1,
            discovery: std::sync::Arc::default(),
        })
    }

    /// The creation URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The same uploader (client, token, chunk size) for another endpoint.
    pub fn at(&self, endpoint: &str) -> Uploader {
        Uploader {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            discovery: std::sync::Arc::default(),
            ..self.clone()
        }
    }

    /// Sets how many times a failed call is retried (with backoff).
    pub fn with_retries(mut self, retries: u32) -> Uploader {
        self.retries = retries;
        self
    }

    /// Speaks `protocol` to the server.
    pub fn with_protocol(mut self, protocol: Protocol) -> Uploader {
        self.protocol = protocol;
        self
    }

    /// Asks the server to drop an upload (tus termination); best effort.
    pub async fn terminate(&self, url: &str) {
        let _ = self.call(self.request(reqwest::Method::DELETE, url)).await;
    }

    /// A request of the protocol, without authorization (see [`Uploader::call`]).
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match self.protocol {
            Protocol::Tus => request.header("Tus-Resumable", "1.0.0"),
            Protocol::Ietf => request.header("Upload-Draft-Interop-Version", INTEROP_VERSION),
        }
    }

    /// Sends a request with the bearer token, renewed and sent once more
    /// after a 401.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        self.auth.send(&self.http, request).await
    }

    /// Creates an upload of `length` bytes; returns its URL. A failed
    /// connection or a 5xx is retried with backoff; a refusal is not.
    pub async fn create(
        &self,
        length: u64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, UploadError> {
        Ok(self
            .create_inner(Some(length), metadata, None, None)
            .await?
            .url)
    }

    /// Whether the server offers the tus extension `name` (from its OPTIONS).
    pub async fn offers(&self, name: &str) -> bool {
        self.discovery()
            .await
            .extensions
            .iter()
            .any(|offered| offered == name)
    }

    /// Creates an upload of the file at `path` (`length` bytes) and, where
    /// the server offers creation-with-upload (or speaks the IETF draft),
    /// sends its first chunk in the same request: a file of one chunk is
    /// sent whole with its creation.
    pub async fn create_with_data(
        &self,
        path: &Path,
        length: u64,
        metadata: &BTreeMap<String, String>,
        digest: &mut FileDigest,
    ) -> Result<Created, UploadError> {
        let discovery = self.discovery().await;
        let with_data = length > 0
            && (self.protocol == Protocol::Ietf
                || discovery
                    .extensions
                    .iter()
                    .any(|name| name == "creation-with-upload"));
        if !with_data {
            return self.create_inner(Some(length), metadata, None, None).await;
        }
        let checksum = self.chunk_checksum().await;
        let ((_, chunk, header), absorbed) = read_chunk(
            path,
            Range { base: 0, length },
            0,
            self.chunk_size,
            checksum,
            std::mem::take(digest),
        )
        .map_err(|source| UploadError::File {
            path: path.display().to_string(),
            source,
        })?;
        *digest = absorbed;
        self.create_inner(Some(length), metadata, Some((chunk, header)), None)
            .await
    }

    /// POSTs a creation: of `length` bytes (none for a final upload), with
    /// `metadata`, the first chunk `data` where given, and `Upload-Concat`.
    async fn create_inner(
        &self,
        length: Option<u64>,
        metadata: &BTreeMap<String, String>,
        mut data: Option<(Vec<u8>, String)>,
        concat: Option<String>,
    ) -> Result<Created, UploadError> {
        let mut failures = 0;
        let answer = loop {
            let mut request = self.request(reqwest::Method::POST, &self.endpoint);
            if self.protocol == Protocol::Ietf {
                let sent = data.as_ref().map_or(0, |(chunk, _)| chunk.len() as u64);
                let whole = length == Some(sent);
                request = request
                    .header("Upload-Complete", if whole { "?1" } else { "?0" })
                    .header("Want-Repr-Digest", "sha-256=10");
                if let Some(name) = metadata.get("filename") {
                    let quoted: String = name
                        .chars()
                        .filter(|character| !character.is_control() && *character != '"')
                        .collect();
                    request = request.header(
                        "Content-Disposition",
                        format!("inline; filename=\"{quoted}\""),
                    );
                }
            }
            if let Some(length) = length {
                request = request.header("Upload-Length", length.to_string());
            }
            if !metadata.is_empty() {
                request = request.header("Upload-Metadata", metadata_header(metadata));
            }
            if let Some(concat) = &concat {
                request = request.header("Upload-Concat", concat.as_str());
            }
            if let Some((chunk, checksum)) = &data {
                let media = match self.protocol {
                    Protocol::Tus => "application/offset+octet-stream",
                    Protocol::Ietf => "application/octet-stream",
                };
                request = request.header("Content-Type", media).body(chunk.clone());
                if !checksum.is_empty() {
                    request = request.header("Upload-Checksum", checksum.as_str());
                }
            }
            let reason = match self.call(request).await {
                Ok(answer) if answer.status().as_u16() == 201 => break answer,
                Ok(answer) if self.protocol == Protocol::Ietf && answer.status().is_success() => {
                    break answer;
                }
                Ok(answer) if answer.status().as_u16() == 400 => {
                    return Err(rejection(answer).await);
                }
                Ok(answer) if self.auth.refused(&answer) => {
                    return Err(UploadError::Auth(AuthError::Unauthorized));
                }
                // Created, but the data was refused (a checksum mismatch in
                // transit): the upload exists; the data goes again by PATCH.
                Ok(answer)
                    if matches!(answer.status().as_u16(), 409 | 417 | 460)
                        && answer.headers().contains_key("location") =>
                {
                    break answer;
                }
                Ok(answer) if answer.status().is_server_error() => {
                    format!("status {}", answer.status().as_u16())
                }
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let hint = match status {
                        401 | 403 => " (check the token)",
                        404 | 405 => " (is this a tus creation URL?)",
                        413 => " (the file is larger than the receiver accepts)",
                        _ => "",
                    };
                    return Err(UploadError::Server(format!(
                        "creating the upload: status {status}{hint}"
                    )));
                }
                Err(SendError::Auth(error)) => return Err(UploadError::Auth(error)),
                Err(SendError::Http(error)) => connection_failure(&error),
            };
            failures += 1;
            if failures > self.retries {
                return Err(UploadError::Server(format!(
                    "creating the upload: {reason}"
                )));
            }
            // After a failure, create without data: the data then goes by
            // PATCH, where an interrupted or refused chunk is resumable.
            data = None;
            tokio::time::sleep(backoff(failures)).await;
        };
        let offset = if answer.status().is_success() {
            header_u64(&answer, "upload-offset").unwrap_or(0)
        } else {
            0
        };
        let location = answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| UploadError::Server("the server gave no Location".into()))?;
        Ok(Created {
            url: self.resolve(location),
            offset,
            stored_sha256: stored_sha256(answer.headers()),
        })
    }

    /// An absolute URL for a Location header.
    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            return location.to_owned();
        }
        let origin = self
            .endpoint
            .find("://")
            .and_then(|scheme| {
                self.endpoint[scheme + 3..]
                    .find('/')
                    .map(|path| scheme + 3 + path)
            })
            .map_or(self.endpoint.as_str(), |path| &self.endpoint[..path]);
        format!("{origin}{location}")
    }

    /// The server's offset for an upload; `None` when it no longer has it.
    pub async fn offset(&self, url: &str) -> Result<Option<u64>, UploadError> {
        Ok(self.progress(url).await?.map(|progress| progress.offset))
    }

    /// The server's offset for an upload and, in the draft, whether it is
    /// complete; `None` when it no longer has the upload.
    async fn progress(&self, url: &str) -> Result<Option<Progress>, UploadError> {
        let answer = match self.call(self.request(reqwest::Method::HEAD, url)).await {
            Ok(answer) => answer,
            Err(SendError::Auth(error)) => return Err(UploadError::Auth(error)),
            Err(SendError::Http(error)) => {
                return Err(UploadError::Server(format!(
                    "asking for the offset: {}",
                    connection_failure(&error)
                )));
            }
        };
        if self.auth.refused(&answer) {
            return Err(UploadError::Auth(AuthError::Unauthorized));
        }
        match answer.status().as_u16() {
            200 | 204 => Ok(header_u64(&answer, "upload-offset").map(|offset| Progress {
                offset,
                complete: said_complete(&answer),
            })),
            404 | 410 => Ok(None),
            status => Err(UploadError::Server(format!(
                "asking for the offset: status {status}"
            ))),
        }
    }

    /// Sends `path` (of `length` bytes) to the upload at `url` from the
    /// server's offset to the end; retries a chunk after a checksum
    /// mismatch or a failed connection, resyncing the offset each time.
    /// Returns the SHA-256 (hex) the server said it stored, where it said
    /// (`Repr-Digest`).
    pub async fn send(
        &self,
        url: &str,
        path: &Path,
        length: u64,
        digest: &mut FileDigest,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Option<String>, UploadError> {
        let offset = self
            .offset(url)
            .await?
            .ok_or_else(|| UploadError::Server("the server no longer has the upload".into()))?;
        self.send_from(url, path, length, offset, digest, on_position)
            .await
    }

    /// Like [`Uploader::send`], from an offset the server just gave (a new
    /// upload's), without asking for it first.
    pub async fn send_from(
        &self,
        url: &str,
        path: &Path,
        length: u64,
        offset: u64,
        digest: &mut FileDigest,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Option<String>, UploadError> {
        self.send_range(
            url,
            path,
            Range { base: 0, length },
            offset,
            digest,
            on_position,
        )
        .await
    }

    /// Sends the upload's bytes (the file's `range`) from `offset` on; in
    /// the draft, the last append (or an empty one) completes the upload.
    async fn send_range(
        &self,
        url: &str,
        path: &Path,
        range: Range,
        mut offset: u64,
        digest: &mut FileDigest,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Option<String>, UploadError> {
        let length = range.length;
        let draft = self.protocol == Protocol::Ietf;
        let mut stored = None;
        let mut completed = false;
        on_position(offset);
        let checksum_kind = self.chunk_checksum().await;
        let file_error = |source| UploadError::File {
            path: path.display().to_string(),
            source,
        };
        let mut failures = 0;
        // The next chunk is read and hashed while the current one is in
        // flight; the digest travels with the reads, in file order.
        let mut ahead = (offset < length)
            .then(|| self.read_ahead(path, range, offset, checksum_kind, std::mem::take(digest)));
        while offset < length {
            let prepared = match ahead.take() {
                Some(task) => task
                    .await
                    .map_err(|_| UploadError::Server("reading the file stopped".into()))?,
                None => read_chunk(
                    path,
                    range,
                    offset,
                    self.chunk_size,
                    checksum_kind,
                    std::mem::take(digest),
                ),
            };
            let ((chunk_offset, chunk, checksum), absorbed) = match prepared {
                Ok(prepared) if prepared.0.0 == offset => prepared,
                // The server's offset moved elsewhere: read what it wants.
                Ok((_, absorbed)) => read_chunk(
                    path,
                    range,
                    offset,
                    self.chunk_size,
                    checksum_kind,
                    absorbed,
                )
                .map_err(file_error)?,
                Err(source) => return Err(file_error(source)),
            };
            let wanted = chunk.len();
            let following = chunk_offset + wanted as u64;
            if following < length {
                ahead = Some(self.read_ahead(path, range, following, checksum_kind, absorbed));
            } else {
                *digest = absorbed;
            }
            let mut request = self
                .request(reqwest::Method::PATCH, url)
                .header("Upload-Offset", offset.to_string())
                .body(chunk);
            request = if draft {
                request
                    .header("Content-Type", "application/partial-upload")
                    .header(
                        "Upload-Complete",
                        if following == length { "?1" } else { "?0" },
                    )
            } else {
                request.header("Content-Type", "application/offset+octet-stream")
            };
            if !checksum.is_empty() {
                request = request.header("Upload-Checksum", checksum);
            }
            let answer = self.call(request).await;
            if let Ok(answer) = &answer {
                if self.auth.refused(answer) {
                    return Err(UploadError::Auth(AuthError::Unauthorized));
                }
            }
            match answer {
                Ok(answer)
                    if answer.status().as_u16() == 204
                        || (draft && answer.status().is_success()) =>
                {
                    offset = header_u64(&answer, "upload-offset").unwrap_or(offset + wanted as u64);
                    completed = said_complete(&answer) == Some(true);
                    stored = stored_sha256(answer.headers());
                    on_position(offset);
                    failures = 0;
                }
                Ok(answer) if matches!(answer.status().as_u16(), 400..=403 | 413 | 415) => {
                    return Err(UploadError::Server(format!(
                        "the server refused a chunk: status {}",
                        answer.status().as_u16()
                    )));
                }
                other => {
                    failures += 1;
                    if failures > self.retries {
                        let reason = match other {
                            Ok(answer) => format!("status {}", answer.status().as_u16()),
                            Err(SendError::Auth(error)) => return Err(UploadError::Auth(error)),
                            Err(SendError::Http(error)) => connection_failure(&error),
                        };
                        return Err(UploadError::Server(format!(
                            "sending at offset {offset}: {reason}"
                        )));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    match self.progress(url).await {
                        Ok(Some(server)) => {
                            offset = server.offset;
                            completed = server.complete == Some(true);
                        }
                        Ok(None) => {
                            return Err(UploadError::Server(
                                "the server no longer has the upload (expired or terminated)"
                                    .into(),
                            ));
                        }
                        // Still unreachable: the next PATCH fails (and
                        // counts) or is answered with the right offset.
                        Err(_) => {}
                    }
                }
            }
        }
        if let Some(task) = ahead {
            // The server needed no more (its offset reached the end): keep
            // what the read-ahead hashed.
            if let Ok(Ok((_, absorbed))) = task.await {
                *digest = absorbed;
            }
        }
        if draft && !completed {
            stored = self.complete(url, length).await?;
        }
        Ok(stored)
    }

    /// Completes a draft upload whose data is all there but whose
    /// completion was not acknowledged: asks, and where it is still open,
    /// appends nothing with `Upload-Complete: ?1`. Returns the SHA-256 the
    /// server said it stored.
    async fn complete(&self, url: &str, length: u64) -> Result<Option<String>, UploadError> {
        let mut failures = 0;
        loop {
            let head = self.call(self.request(reqwest::Method::HEAD, url)).await;
            if let Ok(answer) = &head {
                if said_complete(answer) == Some(true) {
                    return Ok(stored_sha256(answer.headers()));
                }
            }
            let request = self
                .request(reqwest::Method::PATCH, url)
                .header("Content-Type", "application/partial-upload")
                .header("Upload-Offset", length.to_string())
                .header("Upload-Complete", "?1");
            let reason = match self.call(request).await {
                Ok(answer) if answer.status().is_success() => {
                    return Ok(stored_sha256(answer.headers()));
                }
                Ok(answer) if self.auth.refused(&answer) => {
                    return Err(UploadError::Auth(AuthError::Unauthorized));
                }
                Ok(answer) => format!("status {}", answer.status().as_u16()),
                Err(SendError::Auth(error)) => return Err(UploadError::Auth(error)),
                Err(SendError::Http(error)) => connection_failure(&error),
            };
            failures += 1;
            if failures > self.retries {
                return Err(UploadError::Server(format!(
                    "completing the upload: {reason}"
                )));
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    }
}
