//! Appending a request body to an upload: streamed to its file, checked
//! against `Upload-Checksum`, synced, and only then the offset advanced.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use super::WRITE_BUFFER;
use super::store::{Info, Shared, finish, header, http_date, now, reply, reply_text, set};

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
pub(super) async fn append(
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
