//! Appending a request body to an upload: streamed to its file, checked
//! against `Upload-Checksum` (a header, or a trailer after the body),
//! synced, and only then the offset advanced.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use super::WRITE_BUFFER;
use super::store::{Info, Shared, finish, header, http_date, now, reply, reply_text, set};

/// One checksum algorithm's running state.
pub(super) enum Digest {
    Crc32(crc32fast::Hasher),
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
}

impl Digest {
    pub(super) fn new(algorithm: &str) -> Option<Digest> {
        match algorithm {
            "crc32" => Some(Digest::Crc32(crc32fast::Hasher::new())),
            "sha256" => Some(Digest::Sha256(sha2::Sha256::new())),
            "sha1" => Some(Digest::Sha1(sha1::Sha1::new())),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Digest::Crc32(_) => "crc32",
            Digest::Sha256(_) => "sha256",
            Digest::Sha1(_) => "sha1",
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Digest::Crc32(hasher) => hasher.update(bytes),
            Digest::Sha256(hasher) => hasher.update(bytes),
            Digest::Sha1(hasher) => hasher.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Digest::Crc32(hasher) => hasher.finalize().to_be_bytes().to_vec(),
            Digest::Sha256(hasher) => hasher.finalize().to_vec(),
            Digest::Sha1(hasher) => hasher.finalize().to_vec(),
        }
    }
}

/// What a chunk is held to.
pub(super) enum Checksum {
    None,
    /// `Upload-Checksum` in the headers: one algorithm, the expected digest.
    Header(Digest, Vec<u8>),
    /// Announced as a trailer (`Trailer: Upload-Checksum`): the algorithm is
    /// known only after the body, so every one is computed.
    Trailer(Vec<Digest>),
}

/// Why a chunk is refused: its status and the answer's text.
type Refusal = (StatusCode, &'static str);

fn refuse((status, text): Refusal) -> Response {
    reply_text(status, text)
}

const MALFORMED: Refusal = (
    StatusCode::BAD_REQUEST,
    "Upload-Checksum is not algorithm base64",
);

/// Parses `algorithm base64`.
fn parse_checksum(value: &str) -> Result<(Digest, Vec<u8>), Refusal> {
    let (algorithm, encoded) = value.trim().split_once(' ').ok_or(MALFORMED)?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| MALFORMED)?;
    let digest = Digest::new(algorithm).ok_or((
        StatusCode::BAD_REQUEST,
        "Upload-Checksum algorithm must be crc32, sha256 or sha1",
    ))?;
    Ok((digest, expected))
}

fn mismatch() -> Refusal {
    (
        StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
        "checksum mismatch",
    )
}

/// The chunk's verdict once the body (and its trailer, if any) is in.
fn verdict(checksum: Checksum, trailer: Option<&str>) -> Result<(), Refusal> {
    match checksum {
        Checksum::None if trailer.is_some() => Err((
            StatusCode::BAD_REQUEST,
            "an Upload-Checksum trailer must be announced with Trailer: Upload-Checksum",
        )),
        Checksum::None => Ok(()),
        Checksum::Header(digest, expected) => (digest.finish() == expected)
            .then_some(())
            .ok_or_else(mismatch),
        Checksum::Trailer(digests) => {
            let Some(trailer) = trailer else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the announced Upload-Checksum trailer did not arrive",
                ));
            };
            let (wanted, expected) = parse_checksum(trailer)?;
            let digest = digests
                .into_iter()
                .find(|digest| digest.name() == wanted.name())
                .ok_or_else(mismatch)?;
            (digest.finish() == expected)
                .then_some(())
                .ok_or_else(mismatch)
        }
    }
}

/// Appends a request body at the upload's offset (tus 1.0 PATCH, or the
/// data of a creation): held to `Upload-Offset` and `Upload-Checksum`,
/// stored by [`store_chunk`], then committed; the final chunk also
/// finishes the upload (a partial upload stays, whole, for its final
/// upload). The caller holds the upload's lock. `creating`: the data came
/// with the creation, so the upload's state is not on disk yet (it is
/// saved only if the upload stays open).
pub(super) async fn append(
    shared: &Shared,
    mut info: Info,
    headers: &HeaderMap,
    body: Body,
    creating: bool,
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
    } else if !creating {
        return reply_text(StatusCode::BAD_REQUEST, "Upload-Offset is required");
    }
    // A deferred length is set once, by a PATCH; repeating the same value
    // (a retried request) is harmless, another value is refused.
    if let (false, Some(value)) = (creating, header(headers, "upload-length")) {
        let Ok(length) = value.parse::<u64>() else {
            return reply_text(StatusCode::BAD_REQUEST, "Upload-Length is not a number");
        };
        match info.length {
            Some(known) if known == length => {}
            Some(_) => {
                return reply_text(
                    StatusCode::BAD_REQUEST,
                    "Upload-Length is already set and cannot change",
                );
            }
            None if length < info.offset => {
                return reply_text(
                    StatusCode::BAD_REQUEST,
                    "Upload-Length is below the upload's offset",
                );
            }
            None if length > shared.config.max_size => {
                return reply_text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Upload-Length is over Tus-Max-Size",
                );
            }
            None => info.length = Some(length),
        }
    }
    let checksum = match tus_checksum(headers) {
        Ok(checksum) => checksum,
        Err(refusal) => return refuse(refusal),
    };
    let limit = info.length.unwrap_or(shared.config.max_size);
    let over = if info.length.is_some() {
        "the data goes past Upload-Length"
    } else {
        "the data goes past Tus-Max-Size"
    };
    let stored = match store_chunk(shared, &info, body, checksum, (limit, over), creating).await {
        Ok(stored) => stored,
        Err(refused) => return refused,
    };
    let finished = match commit(shared, &mut info, stored).await {
        Ok(finished) => finished,
        Err(failed) => return failed,
    };
    let complete = finished.is_some();
    let mut response = reply(StatusCode::NO_CONTENT);
    set(&mut response, "upload-offset", info.offset);
    // What was stored, as RFC 9530 says it: the sender can hold it to
    // what it sent.
    if let Some(digest) = finished.as_deref().and_then(super::draft::repr_digest) {
        set(&mut response, "repr-digest", digest);
    }
    if !complete {
        set(&mut response, "upload-expires", http_date(info.expires_at));
    }
    response
}

/// The checksum a tus chunk is held to: `Upload-Checksum` in the headers,
/// or announced as a trailer.
fn tus_checksum(headers: &HeaderMap) -> Result<Checksum, Refusal> {
    let announced = header(headers, "trailer").is_some_and(|names| {
        names
            .split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("upload-checksum"))
    });
    Ok(match header(headers, "upload-checksum") {
        Some(value) => {
            let (digest, expected) = parse_checksum(value)?;
            Checksum::Header(digest, expected)
        }
        None if announced => Checksum::Trailer(
            ["crc32", "sha256", "sha1"]
                .into_iter()
                .filter_map(Digest::new)
                .collect(),
        ),
        None => Checksum::None,
    })
}

/// Cuts an upload's own file back to `offset`; a partial written in its
/// final upload's file (`place`) is left as it is.
async fn cut(file: &tokio::fs::File, place: Option<u64>, offset: u64) -> std::io::Result<()> {
    match place {
        None => file.set_len(offset).await,
        Some(_) => Ok(()),
    }
}

/// A chunk written, its upload's state not yet moved.
pub(super) struct Stored {
    /// Bytes written at the upload's offset.
    pub(super) written: u64,
    /// Whether the whole body arrived (not cut short by the client).
    pub(super) whole: bool,
    /// The upload's SHA-256 through this chunk, where it was kept running.
    running: Option<sha2::Sha256>,
    /// The upload's file, written and not yet synced.
    file: tokio::fs::File,
}

/// Streams `body` onto the upload's file at its offset, holding it to
/// `checksum` and to `limit` (the most bytes the upload may hold, and the
/// refusal's text past it); [`commit`] makes it durable. A refused chunk is discarded:
/// the file is cut back to the offset and the refusal returned. A body the
/// client cut short is kept as far as it arrived (it is resumable).
pub(super) async fn store_chunk(
    shared: &Shared,
    info: &Info,
    mut body: Body,
    mut checksum: Checksum,
    (limit, over): (u64, &'static str),
    creating: bool,
) -> Result<Stored, Response> {
    let (part, place) = shared.data(info);
    let start = info.offset;
    let mut running = shared.take_running(&info.id, start);
    // Bytes past the recorded offset (a write cut short by a crash) are not
    // the upload's: cut them before writing at the offset. A partial
    // written in its final upload's file has its own place there: what
    // lies past its offset is overwritten, never cut.
    let opened = async {
        // A crash while finishing can leave the file moved to complete/
        // without its receipt: it is still this upload's, so it comes back.
        let complete = shared.config.directory.join("complete").join(&info.id);
        if place.is_none()
            && tokio::fs::metadata(&part).await.is_err()
            && tokio::fs::metadata(&complete).await.is_ok()
        {
            tokio::fs::rename(&complete, &part).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .await?;
        cut(&file, place, start).await?;
        let at = place.unwrap_or(0) + start;
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(at)).await?;
        Ok::<_, std::io::Error>(file)
    };
    let Ok(mut file) = opened.await else {
        return Err(reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload could not be opened",
        ));
    };
    let mut written = 0u64;
    let mut whole = true;
    let mut failure = None;
    let mut trailer: Option<String> = None;
    // Body frames are small; the file gets writes of up to WRITE_BUFFER bytes.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client went away: keep what arrived whole (it is resumable).
            whole = false;
            break;
        };
        let chunk = match frame.into_data() {
            Ok(chunk) => chunk,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    trailer = header(&trailers, "upload-checksum").map(str::to_owned);
                }
                continue;
            }
        };
        if start + written + chunk.len() as u64 > limit {
            failure = Some(reply_text(StatusCode::PAYLOAD_TOO_LARGE, over));
            break;
        }
        match &mut checksum {
            Checksum::Header(digest, _) => digest.update(&chunk),
            Checksum::Trailer(digests) => {
                digests.iter_mut().for_each(|digest| digest.update(&chunk))
            }
            Checksum::None => {}
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
    if failure.is_none() && whole {
        failure = verdict(checksum, trailer.as_deref()).err().map(refuse);
    } else if failure.is_none() && !matches!(checksum, Checksum::None) {
        // Cut short, the chunk cannot be checked: none of it is kept.
        written = 0;
        let _ = cut(&file, place, start).await;
        running = None;
    }
    if let Some(failure) = failure {
        // The chunk is discarded: the offset stays where it was.
        let _ = cut(&file, place, start).await;
        let _ = file.sync_data().await;
        if creating && shared.save(info).await.is_err() {
            return Err(reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload state could not be saved",
            ));
        }
        return Err(failure);
    }
    Ok(Stored {
        written,
        whole,
        running,
        file,
    })
}

/// Moves the upload's offset past a stored chunk and saves its state; a
/// complete upload is finished (persisted and receipted) before this
/// returns. Returns the finished file's SHA-256 (hex), `None` while the
/// upload stays open.
pub(super) async fn commit(
    shared: &Shared,
    info: &mut Info,
    stored: Stored,
) -> Result<Option<String>, Response> {
    let Stored {
        written,
        mut running,
        file,
        ..
    } = stored;
    let complete = info.length == Some(info.offset + written);
    // Durable before the offset moves. The chunk that completes an upload
    // is made durable by the upload's finishing, with its move and receipt.
    if (!complete || info.partial) && file.sync_data().await.is_err() {
        return Err(reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the data could not be synced",
        ));
    }
    drop(file);
    info.offset += written;
    // A finished partial keeps its running SHA-256 too: the first part of
    // a final upload need not be read again.
    if !complete || info.partial {
        if let Some(hasher) = running.take() {
            shared.keep_running(&info.id, info.offset, hasher);
        }
    }
    info.expires_at = now() + shared.config.expire_after_seconds;
    // A finished upload's state is not saved: the receipt replaces it. If
    // finishing is cut short, the saved offset is behind the data, and a
    // resend from it truncates and rewrites the tail. A finished partial
    // upload's state is saved: it waits, whole, for its final upload.
    if (!complete || info.partial) && shared.save(info).await.is_err() {
        return Err(reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload state could not be saved",
        ));
    }
    if complete {
        if let Some(taken) = &info.taken {
            // The last partial to finish finishes its final upload, before
            // its answer.
            if super::early::settle(shared, &taken.by).await.is_err() {
                return Err(reply_text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the final upload could not be finished",
                ));
            }
        }
    }
    if !complete || info.partial {
        return Ok(None);
    }
    // The persistence step runs before the answer, never after.
    match finish(shared, info, running, None).await {
        Ok(sha256) => Ok(Some(sha256)),
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            Err(reply_text(StatusCode::BAD_REQUEST, &error.to_string()))
        }
        Err(error) => Err(reply_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the upload could not be finished: {error}"),
        )),
    }
}
