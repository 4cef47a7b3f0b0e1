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

impl Uploader {
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
        let mut failures = 0;
        let answer = loop {
            let reason = match self
                .request(reqwest::Method::POST, &self.endpoint)
                .header("Upload-Length", length.to_string())
                .header("Upload-Metadata", metadata_header(metadata))
                .send()
                .await
            {
                Ok(answer) if answer.status().as_u16() == 201 => break answer,
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
            tokio::time::sleep(backoff(failures)).await;
        };
        let location = answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| UploadError::Server("the server gave no Location".into()))?;
        Ok(self.resolve(location))
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
        let file_error = |source| UploadError::File {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(file_error)?;
        let mut offset = self
            .offset(url)
            .await?
            .ok_or_else(|| UploadError::Server("the server no longer has the upload".into()))?;
        let mut failures = 0;
        let mut buffer = vec![0u8; self.chunk_size];
        while offset < length {
            file.seek(SeekFrom::Start(offset)).map_err(file_error)?;
            let wanted = usize::try_from((length - offset).min(self.chunk_size as u64))
                .unwrap_or(self.chunk_size);
            file.read_exact(&mut buffer[..wanted]).map_err(file_error)?;
            let chunk = buffer[..wanted].to_vec();
            let checksum = format!("sha256 {}", base64(&sha2::Sha256::digest(&chunk)));
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
