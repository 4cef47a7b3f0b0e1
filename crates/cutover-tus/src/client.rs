//! The tus sender: creates an upload, sends the file in PATCHes carrying a
//! SHA-256 checksum each, and resumes from the server's offset after any
//! interruption. A completed upload URL is never resumed to "replay" a file:
//! that sends nothing; a replay is always a new upload.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use sha2::Digest as _;

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
}

/// Sends files to one tus endpoint.
#[derive(Debug, Clone)]
pub struct Uploader {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
    chunk_size: usize,
    retries: u32,
    /// The server's `Tus-Extension` list, asked once.
    extensions: std::sync::Arc<tokio::sync::OnceCell<Vec<String>>>,
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

/// A connection failure in words, without the URL (it may carry credentials).
fn connection_failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "the receiver is unreachable".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// Reads the chunk of at most `chunk_size` bytes at `offset` and its
/// `Upload-Checksum` value.
fn read_chunk(
    path: &Path,
    offset: u64,
    length: u64,
    chunk_size: usize,
) -> std::io::Result<(u64, Vec<u8>, String)> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let wanted = usize::try_from((length - offset).min(chunk_size as u64)).unwrap_or(chunk_size);
    let mut chunk = vec![0u8; wanted];
    file.read_exact(&mut chunk)?;
    let checksum = format!("sha256 {}", base64(&sha2::Sha256::digest(&chunk)));
    Ok((offset, chunk, checksum))
}

type ChunkTask = tokio::task::JoinHandle<std::io::Result<(u64, Vec<u8>, String)>>;

impl Uploader {
    fn read_ahead(&self, path: &Path, offset: u64, length: u64) -> ChunkTask {
        let (path, chunk_size) = (path.to_owned(), self.chunk_size);
        tokio::task::spawn_blocking(move || read_chunk(&path, offset, length, chunk_size))
    }

    /// An uploader for `endpoint` (e.g. `https://host/files`).
    pub fn new(
        endpoint: &str,
        token: Option<String>,
        chunk_size: usize,
    ) -> Result<Uploader, UploadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|error| UploadError::Server(format!("the HTTP client: {error}")))?;
        Ok(Uploader {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            chunk_size: chunk_size.max(1),
            retries: 5,
            extensions: std::sync::Arc::default(),
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
            extensions: std::sync::Arc::default(),
            ..self.clone()
        }
    }

    /// Sets how many times a failed call is retried (with backoff).
    pub fn with_retries(mut self, retries: u32) -> Uploader {
        self.retries = retries;
        self
    }

    /// Asks the server to drop an upload (tus termination); best effort.
    pub async fn terminate(&self, url: &str) {
        let _ = self.request(reqwest::Method::DELETE, url).send().await;
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header("Tus-Resumable", "1.0.0");
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Creates an upload of `length` bytes; returns its URL. A failed
    /// connection or a 5xx is retried with backoff; a refusal is not.
    pub async fn create(
        &self,
        length: u64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, UploadError> {
        Ok(self.create_inner(length, metadata, None).await?.0)
    }

    /// Creates an upload of the file at `path` (`length` bytes) and, where
    /// the server offers creation-with-upload, sends its first chunk in the
    /// same request. Returns the upload's URL and the server's offset.
    pub async fn create_with_data(
        &self,
        path: &Path,
        length: u64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(String, u64), UploadError> {
        if length == 0 || !self.offers("creation-with-upload").await {
            return Ok((self.create(length, metadata).await?, 0));
        }
        let (_, chunk, checksum) =
            read_chunk(path, 0, length, self.chunk_size).map_err(|source| UploadError::File {
                path: path.display().to_string(),
                source,
            })?;
        self.create_inner(length, metadata, Some((chunk, checksum)))
            .await
    }

    /// Whether the server lists `extension` in `Tus-Extension` (asked once).
    async fn offers(&self, extension: &str) -> bool {
        let extensions = self
            .extensions
            .get_or_init(|| async {
                match self
                    .request(reqwest::Method::OPTIONS, &self.endpoint)
                    .send()
                    .await
                {
                    Ok(answer) if answer.status().is_success() => answer
                        .headers()
                        .get("tus-extension")
                        .and_then(|value| value.to_str().ok())
                        .map(|value| {
                            value
                                .split(',')
                                .map(|name| name.trim().to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            })
            .await;
        extensions.iter().any(|name| name == extension)
    }

    async fn create_inner(
        &self,
        length: u64,
        metadata: &BTreeMap<String, String>,
        mut data: Option<(Vec<u8>, String)>,
    ) -> Result<(String, u64), UploadError> {
        let mut failures = 0;
        let answer = loop {
            let mut request = self
                .request(reqwest::Method::POST, &self.endpoint)
                .header("Upload-Length", length.to_string())
                .header("Upload-Metadata", metadata_header(metadata));
            if let Some((chunk, checksum)) = &data {
                request = request
                    .header("Content-Type", "application/offset+octet-stream")
                    .header("Upload-Checksum", checksum.as_str())
                    .body(chunk.clone());
            }
            let reason = match request.send().await {
                Ok(answer) if answer.status().as_u16() == 201 => break answer,
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
                Err(error) => connection_failure(&error),
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
        let offset = if answer.status().as_u16() == 201 {
            answer
                .headers()
                .get("upload-offset")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let location = answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| UploadError::Server("the server gave no Location".into()))?;
        Ok((self.resolve(location), offset))
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
        let answer = self
            .request(reqwest::Method::HEAD, url)
            .send()
            .await
            .map_err(|error| {
                UploadError::Server(format!(
                    "asking for the offset: {}",
                    connection_failure(&error)
                ))
            })?;
        match answer.status().as_u16() {
            200 | 204 => Ok(answer
                .headers()
                .get("upload-offset")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())),
            404 | 410 => Ok(None),
            status => Err(UploadError::Server(format!(
                "asking for the offset: status {status}"
            ))),
        }
    }

    /// Sends `path` (of `length` bytes) to the upload at `url` from the
    /// server's offset to the end; retries a chunk after a checksum
    /// mismatch or a failed connection, resyncing the offset each time.
    pub async fn send(
        &self,
        url: &str,
        path: &Path,
        length: u64,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), UploadError> {
        let offset = self
            .offset(url)
            .await?
            .ok_or_else(|| UploadError::Server("the server no longer has the upload".into()))?;
        self.send_from(url, path, length, offset, on_position).await
    }

    /// Like [`Uploader::send`], from an offset the server just gave (a new
    /// upload's), without asking for it first.
    pub async fn send_from(
        &self,
        url: &str,
        path: &Path,
        length: u64,
        mut offset: u64,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), UploadError> {
        on_position(offset);
        let mut failures = 0;
        // The next chunk is read and hashed while the current one is in flight.
        let mut ahead = (offset < length).then(|| self.read_ahead(path, offset, length));
        while offset < length {
            let prepared = match ahead.take() {
                Some(task) => task
                    .await
                    .map_err(|_| UploadError::Server("reading the file stopped".into()))?,
                None => read_chunk(path, offset, length, self.chunk_size),
            };
            let (chunk_offset, chunk, checksum) = match prepared {
                Ok(prepared) if prepared.0 == offset => Ok(prepared),
                // The server's offset moved elsewhere: read what it wants.
                Ok(_) => read_chunk(path, offset, length, self.chunk_size),
                Err(source) => Err(source),
            }
            .map_err(|source| UploadError::File {
                path: path.display().to_string(),
                source,
            })?;
            let wanted = chunk.len();
            let following = chunk_offset + wanted as u64;
            if following < length {
                ahead = Some(self.read_ahead(path, following, length));
            }
            let answer = self
                .request(reqwest::Method::PATCH, url)
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Checksum", checksum)
                .body(chunk)
                .send()
                .await;
            match answer {
                Ok(answer) if answer.status().as_u16() == 204 => {
                    offset = answer
                        .headers()
                        .get("upload-offset")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse().ok())
                        .unwrap_or(offset + wanted as u64);
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
                            Err(error) => connection_failure(&error),
                        };
                        return Err(UploadError::Server(format!(
                            "sending at offset {offset}: {reason}"
                        )));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    match self.offset(url).await {
                        Ok(Some(server)) => offset = server,
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
        Ok(())
    }
}
