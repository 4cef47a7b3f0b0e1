//! Concatenation, as a sender uses it: a large file as parallel partial
//! uploads made one by a final upload, made before the parts are sent
//! where the server offers concatenation-unfinished.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    FileDigest, Protocol, Range, SendError, UploadError, Uploader, connection_failure, header_u64,
};
use crate::auth::AuthError;

impl Uploader {
    /// Sends each file of at least `parts` chunks as `parts` partial
    /// uploads at once, concatenated into one, where the server offers
    /// concatenation.
    pub fn with_parallel_parts(mut self, parts: usize) -> Uploader {
        self.parts = parts.max(1);
        self
    }

    /// How many parts a file of `size` bytes is sent as here: 1 unless
    /// parallel parts were asked for, the file holds a chunk per part, and
    /// the server offers concatenation.
    pub async fn parts_for(&self, size: u64) -> usize {
        if self.parts <= 1
            || self.protocol == Protocol::Ietf
            || size < (self.parts * self.chunk_size) as u64
        {
            return 1;
        }
        if self.offers("concatenation").await {
            self.parts
        } else {
            1
        }
    }

    /// Creates a partial upload of `length` bytes (concatenation); returns
    /// its URL.
    pub async fn create_partial(&self, length: u64) -> Result<String, UploadError> {
        Ok(self
            .create_inner(
                Some(length),
                &BTreeMap::new(),
                None,
                Some("partial".to_owned()),
            )
            .await?
            .url)
    }

    /// Creates the final upload made of the partial uploads at `parts`, in
    /// order, with the file's `metadata`; returns its URL.
    pub async fn create_final(
        &self,
        parts: &[String],
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, UploadError> {
        let concat = format!("final;{}", parts.join(" "));
        Ok(self
            .create_inner(None, metadata, None, Some(concat))
            .await?
            .url)
    }

    /// Sends the bytes `start .. start + length` of `path` to the partial
    /// upload at `url`, from the server's offset (resuming one a previous
    /// run began); `on_position` gets the part's offset.
    pub async fn send_part(
        &self,
        url: &str,
        path: &Path,
        start: u64,
        length: u64,
        on_position: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Option<String>, UploadError> {
        let offset = self.offset(url).await?.ok_or_else(|| {
            UploadError::Server("the server no longer has a partial upload".into())
        })?;
        self.send_range(
            url,
            path,
            Range {
                base: start,
                length,
            },
            offset,
            &mut FileDigest::off(),
            on_position,
        )
        .await
    }

    /// What the server says of the final upload at `url`: `Some(true)`
    /// once it is finished (its offset is its length), `Some(false)` while
    /// its partial uploads are still coming, `None` when the server no
    /// longer has it or it is not a final upload.
    pub async fn final_state(&self, url: &str) -> Result<Option<bool>, UploadError> {
        let answer = match self.call(self.request(reqwest::Method::HEAD, url)).await {
            Ok(answer) => answer,
            Err(SendError::Auth(error)) => return Err(UploadError::Auth(error)),
            Err(SendError::Http(error)) => {
                return Err(UploadError::Server(format!(
                    "asking for the final upload: {}",
                    connection_failure(&error)
                )));
            }
        };
        if self.auth.refused(&answer) {
            return Err(UploadError::Auth(AuthError::Unauthorized));
        }
        let concat = answer
            .headers()
            .get("upload-concat")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        match answer.status().as_u16() {
            200 | 204 if concat.starts_with("final;") => {
                let offset = header_u64(&answer, "upload-offset");
                let length = header_u64(&answer, "upload-length");
                Ok(Some(offset.is_some() && offset == length))
            }
            200 | 204 | 404 | 410 => Ok(None),
            status => Err(UploadError::Server(format!(
                "asking for the final upload: status {status}"
            ))),
        }
    }
}
