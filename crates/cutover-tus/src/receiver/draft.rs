//! The IETF "Resumable Uploads for HTTP" draft, beside tus 1.0 on the same
//! endpoint: a request carrying `Upload-Draft-Interop-Version` (6, as
//! tus-js-client's and tusd's draft-05 speak it, through 8, draft -11) is
//! answered by the draft (version 6 as those implementations behave: an
//! upload whose offset reaches its announced length is complete). Its
//! uploads share tus's storage, durability and
//! receipts: an acknowledged `Upload-Offset` is synced data, and a
//! completed upload is persisted and receipted before its answer.
//!
//! Not sent: `104 (Upload Resumption Supported)` interim responses (the
//! HTTP server cannot send informational responses), which the draft
//! allows; a client learns the upload's URL from the creation's final
//! answer, so creating with an empty body, then appending (the draft's
//! careful creation), is what resumes from the first byte.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;

use super::append::{Checksum, Digest, commit, store_chunk};
use super::store::{Draft, Info, Shared, header, new_id, now, reply, reply_text, set, valid_id};
use super::{has_body, location, parse_metadata, terminate};

/// The interop versions answered.
pub(super) const VERSIONS: [u8; 3] = [6, 7, 8];
/// The media type of appended data.
const PARTIAL_UPLOAD: &str = "application/partial-upload";
const PROBLEMS: &str = "https://iana.org/assignments/http-problem-types#";

/// The request's interop version: `None` when it names no version answered here.
pub(super) fn version(value: &str) -> Option<u8> {
    let version = value.trim().parse::<u8>().ok()?;
    VERSIONS.contains(&version).then_some(version)
}

/// Answers a draft request to `/files/…` (`rest` is what follows `files`).
pub(super) async fn route(
    shared: &Shared,
    version: u8,
    method: &Method,
    rest: &[&str],
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match (method, rest) {
        // Ids are ours; anything else names no upload.
        (_, [id]) if !valid_id(id) => reply(StatusCode::NOT_FOUND),
        (&Method::POST, []) => create(shared, version, headers, body).await,
        (&Method::HEAD, [id]) => head(shared, version, id).await,
        (&Method::PATCH, [id]) => append_to(shared, id, headers, body).await,
        (&Method::DELETE, [id]) => terminate(shared, id).await,
        _ => reply(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// A Structured Field Boolean (`?1`, `?0`); anything else is no value.
fn boolean(headers: &HeaderMap, name: &str) -> Option<bool> {
    match header(headers, name)?.split(';').next()?.trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

/// A Structured Field Integer that is not negative; anything else is no value.
fn integer(headers: &HeaderMap, name: &str) -> Option<u64> {
    let value = header(headers, name)?.split(';').next()?.trim();
    (!value.is_empty() && value.len() <= 15 && value.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
}

/// The `sha-256` member of a digest field (`Repr-Digest`, `Content-Digest`):
/// `Ok(None)` without one, an error (the refusal's text) when it is not 32
/// bytes of base64.
fn sha256_member(headers: &HeaderMap, name: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(value) = header(headers, name) else {
        return Ok(None);
    };
    for member in value.split(',') {
        let Some((key, item)) = member.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let bytes = item
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .strip_prefix(':')
            .and_then(|item| item.strip_suffix(':'))
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .filter(|bytes| bytes.len() == 32);
        return match bytes {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(format!("{name}: sha-256 must be :base64: of 32 bytes")),
        };
    }
    Ok(None)
}

/// A file name from `Content-Disposition` (`filename="…"` or `filename=…`).
fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let value = header(headers, "content-disposition")?;
    value.split(';').find_map(|parameter| {
        let (key, name) = parameter.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let name = name.trim();
        let name = name
            .strip_prefix('"')
            .and_then(|name| name.strip_suffix('"'))
            .unwrap_or(name);
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// An RFC 9457 problem answer of one of the draft's problem types.
fn problem(status: StatusCode, kind: &str, title: &str, extra: serde_json::Value) -> Response {
    let mut document = serde_json::json!({ "type": format!("{PROBLEMS}{kind}"), "title": title });
    if let (Some(document), serde_json::Value::Object(extra)) = (document.as_object_mut(), extra) {
        document.extend(extra);
    }
    let mut response = reply(status);
    set(&mut response, "content-type", "application/problem+json");
    *response.body_mut() = Body::from(document.to_string());
    response
}

fn inconsistent_length() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "inconsistent-upload-length",
        "inconsistent length values for upload",
        serde_json::Value::Null,
    )
}

/// `Upload-Limit`: the largest upload, and the seconds the upload is kept
/// (`max-age`; `expires` in interop version 6).
fn limits(shared: &Shared, version: u8, seconds: i64) -> String {
    let age = if version <= 6 { "expires" } else { "max-age" };
    format!(
        "max-size={}, {age}={}",
        shared.config.max_size,
        seconds.max(0)
    )
}

/// `Repr-Digest` for a SHA-256 given in hex.
pub(super) fn repr_digest(sha256: &str) -> Option<String> {
    let bytes = (0..sha256.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(sha256.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

async fn create(shared: &Shared, version: u8, headers: &HeaderMap, body: Body) -> Response {
    let Some(complete) = boolean(headers, "upload-complete") else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Complete (?0 or ?1) is required to create a resumable upload",
        );
    };
    let content_length = integer(headers, "content-length");
    let announced = match (
        integer(headers, "upload-length"),
        content_length.filter(|_| complete),
    ) {
        (Some(given), Some(sent)) if given != sent => return inconsistent_length(),
        (given, sent) => given.or(sent),
    };
    if announced.is_some_and(|length| length > shared.config.max_size) {
        let mut response = reply_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the upload is larger than the receiver accepts",
        );
        set(
            &mut response,
            "upload-limit",
            limits(shared, version, shared.config.expire_after_seconds),
        );
        return response;
    }
    let repr_sha256 = match sha256_member(headers, "repr-digest") {
        Ok(bytes) => bytes.map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect()),
        Err(refusal) => return reply_text(StatusCode::BAD_REQUEST, &refusal),
    };
    let metadata_header = header(headers, "upload-metadata")
        .unwrap_or_default()
        .to_owned();
    let Some(mut metadata) = parse_metadata(&metadata_header) else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Metadata is not key base64 pairs",
        );
    };
    if let Some(name) = disposition_name(headers) {
        metadata.entry("filename".to_owned()).or_insert(name);
    }
    let Some(id) = new_id() else {
        return reply_text(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for an id");
    };
    let info = Info {
        id: id.clone(),
        length: None,
        offset: 0,
        metadata_header,
        metadata,
        expires_at: now() + shared.config.expire_after_seconds,
        partial: false,
        draft: Some(Draft {
            version,
            announced,
            repr_sha256,
        }),
        taken: None,
        parts: None,
    };
    if let Err(failed) = shared.open(&info, has_body(headers)).await {
        return failed;
    }
    let lock = shared.lock(&id);
    let _guard = lock.lock().await;
    let mut response = append(shared, info, (headers, body), complete, true).await;
    if response.status().is_success() {
        *response.status_mut() = StatusCode::CREATED;
    }
    set(&mut response, "location", location(shared, headers, &id));
    response
}

async fn head(shared: &Shared, version: u8, id: &str) -> Response {
    if let Some(receipt) = shared.receipt(id).await {
        let mut response = reply(StatusCode::NO_CONTENT);
        set(&mut response, "upload-complete", "?1");
        set(&mut response, "upload-offset", receipt.size);
        set(&mut response, "upload-length", receipt.size);
        if let Some(digest) = repr_digest(&receipt.sha256) {
            set(&mut response, "repr-digest", digest);
        }
        return response;
    }
    match shared.live(id).await {
        Err(refused) => refused,
        Ok(info) => {
            let mut response = reply(StatusCode::NO_CONTENT);
            set(&mut response, "upload-complete", "?0");
            set(&mut response, "upload-offset", info.offset);
            let length = info
                .draft
                .as_ref()
                .and_then(|draft| draft.announced)
                .or(info.length);
            if let Some(length) = length {
                set(&mut response, "upload-length", length);
            }
            set(
                &mut response,
                "upload-limit",
                limits(shared, version, info.expires_at - now()),
            );
            response
        }
    }
}

/// `PATCH` with `application/partial-upload`: appends at `Upload-Offset`.
async fn append_to(shared: &Shared, id: &str, headers: &HeaderMap, body: Body) -> Response {
    if header(headers, "content-type").map(|value| value.split(';').next().unwrap_or("").trim())
        != Some(PARTIAL_UPLOAD)
    {
        return reply_text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/partial-upload",
        );
    }
    let Some(offset) = integer(headers, "upload-offset") else {
        return reply_text(StatusCode::BAD_REQUEST, "Upload-Offset is required");
    };
    let Some(complete) = boolean(headers, "upload-complete") else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "Upload-Complete (?0 or ?1) is required",
        );
    };
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    if shared.receipt(id).await.is_some() {
        return if has_body(headers) {
            inconsistent_length()
        } else {
            problem(
                StatusCode::BAD_REQUEST,
                "completed-upload",
                "upload is already completed",
                serde_json::Value::Null,
            )
        };
    }
    let mut info = match shared.live(id).await {
        Ok(info) => info,
        Err(refused) => return refused,
    };
    let Some(draft) = info.draft.as_mut() else {
        return reply_text(
            StatusCode::BAD_REQUEST,
            "this upload was created with tus 1.0: continue it with tus",
        );
    };
    if offset != info.offset {
        let mut response = problem(
            StatusCode::CONFLICT,
            "mismatching-upload-offset",
            "offset from request does not match offset of resource",
            serde_json::json!({ "expected-offset": info.offset, "provided-offset": offset }),
        );
        set(&mut response, "upload-offset", info.offset);
        set(&mut response, "upload-complete", "?0");
        return response;
    }
    let sent_to = integer(headers, "content-length")
        .filter(|_| complete)
        .map(|length| offset + length);
    for length in [integer(headers, "upload-length"), sent_to]
        .into_iter()
        .flatten()
    {
        match draft.announced {
            Some(announced) if announced != length => return inconsistent_length(),
            _ if length < info.offset => return inconsistent_length(),
            _ if length > shared.config.max_size => {
                return reply_text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the upload is larger than the receiver accepts",
                );
            }
            _ => draft.announced = Some(length),
        }
    }
    append(shared, info, (headers, body), complete, false).await
}

/// Stores a body at the upload's offset; with `complete`, a body that
/// arrived whole completes the upload, which is persisted and receipted
/// before the answer (200 with the receipt, `Repr-Digest` of the file).
/// The caller holds the upload's lock.
async fn append(
    shared: &Shared,
    mut info: Info,
    (headers, body): (&HeaderMap, Body),
    complete: bool,
    creating: bool,
) -> Response {
    // `Content-Digest` holds this request's content to its SHA-256.
    let checksum = match sha256_member(headers, "content-digest") {
        Ok(Some(expected)) => match Digest::new("sha256") {
            Some(digest) => Checksum::Header(digest, expected),
            None => Checksum::None,
        },
        Ok(None) => Checksum::None,
        Err(refusal) => return reply_text(StatusCode::BAD_REQUEST, &refusal),
    };
    let draft = info.draft.clone().unwrap_or_default();
    let limit = draft.announced.unwrap_or(shared.config.max_size);
    let over = if draft.announced.is_some() {
        "the data goes past the upload's length"
    } else {
        "the data goes past the largest upload accepted"
    };
    let stored = match store_chunk(shared, &info, body, checksum, (limit, over), creating).await {
        Ok(stored) => stored,
        Err(refused) if refused.status().as_u16() == 460 => {
            return reply_text(
                StatusCode::BAD_REQUEST,
                "Content-Digest does not match the content: nothing of it was appended",
            );
        }
        Err(refused) => return refused,
    };
    let end = info.offset + stored.written;
    // Interop version 6 is spoken as tus-js-client and tusd speak it: an
    // upload whose offset reaches its announced length is complete (their
    // last append of a file need not say Upload-Complete: ?1). From
    // version 7 on, as the draft says, only the client completes it.
    let reached = draft.version <= 6 && draft.announced == Some(end);
    let completing = (complete || reached) && stored.whole;
    if completing {
        if draft.announced.is_some_and(|announced| announced != end) {
            return inconsistent_length();
        }
        info.length = Some(end);
    }
    let finished = match commit(shared, &mut info, stored).await {
        Ok(finished) => finished,
        Err(mut failed) => {
            if completing {
                set(&mut failed, "upload-complete", "?1");
            }
            return failed;
        }
    };
    match finished {
        Some(sha256) => {
            let mut response = reply(StatusCode::OK);
            set(&mut response, "upload-complete", "?1");
            set(&mut response, "upload-offset", info.offset);
            set(&mut response, "upload-length", info.offset);
            if let Some(digest) = repr_digest(&sha256) {
                set(&mut response, "repr-digest", digest);
            }
            if let Some(receipt) = shared.receipt(&info.id).await {
                if let Ok(json) = serde_json::to_vec(&receipt) {
                    set(&mut response, "content-type", "application/json");
                    *response.body_mut() = Body::from(json);
                }
            }
            response
        }
        None => {
            let mut response = reply(StatusCode::NO_CONTENT);
            set(&mut response, "upload-complete", "?0");
            set(&mut response, "upload-offset", info.offset);
            set(
                &mut response,
                "upload-limit",
                limits(shared, draft.version, info.expires_at - now()),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().expect("a header value"));
        }
        headers
    }

    #[test]
    fn structured_fields_are_read_as_the_draft_defines_them() {
        let given = headers(&[
            ("upload-complete", "?1"),
            ("upload-offset", "42"),
            ("upload-length", "-1"),
        ]);
        assert_eq!(boolean(&given, "upload-complete"), Some(true));
        assert_eq!(integer(&given, "upload-offset"), Some(42));
        // A value of another type makes the whole field ignored.
        assert_eq!(integer(&given, "upload-length"), None);
        assert_eq!(
            boolean(&headers(&[("upload-complete", "1")]), "upload-complete"),
            None
        );
    }

    #[test]
    fn digests_and_file_names_are_taken_from_their_fields() {
        let sha = [7u8; 32];
        let encoded = base64::engine::general_purpose::STANDARD.encode(sha);
        let given = headers(&[
            (
                "repr-digest",
                &format!("sha-512=:AAAA:, sha-256=:{encoded}:"),
            ),
            ("content-disposition", "inline; filename=\"lab report.csv\""),
        ]);
        assert_eq!(
            sha256_member(&given, "repr-digest").expect("a digest"),
            Some(sha.to_vec())
        );
        assert_eq!(disposition_name(&given).as_deref(), Some("lab report.csv"));
        let short = headers(&[("repr-digest", "sha-256=:AAAA:")]);
        assert!(sha256_member(&short, "repr-digest").is_err());
        let hex: String = sha.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(repr_digest(&hex), Some(format!("sha-256=:{encoded}:")));
    }
}
