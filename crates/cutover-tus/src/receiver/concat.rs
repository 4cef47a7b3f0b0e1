//! Concatenation: a final upload is the finished partial uploads it names,
//! in order, made into one file that is hashed and receipted like any
//! other before the creation is answered. A partial upload is never a file
//! of its own; once its final upload is durable it is removed, so no
//! partial can be taken by two final uploads.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::parse_metadata;
use super::store::{Info, Shared, finish, header, new_id, now, reply, reply_text, valid_id};

/// The upload ids an `Upload-Concat: final;…` list names: each URL (absolute
/// or a path) must end in `/files/ID`.
fn named(list: &str) -> Result<Vec<String>, &'static str> {
    let mut ids: Vec<String> = Vec::new();
    for url in list.split_whitespace() {
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => url,
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut segments = path.trim_end_matches('/').rsplit('/');
        let (Some(id), Some("files")) = (segments.next(), segments.next()) else {
            return Err("Upload-Concat names something that is not an upload of this receiver");
        };
        if !valid_id(id) {
            return Err("Upload-Concat names something that is not an upload of this receiver");
        }
        if ids.iter().any(|known| known == id) {
            return Err("Upload-Concat names one partial upload twice");
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() {
        return Err("Upload-Concat: final; names no partial uploads");
    }
    Ok(ids)
}

/// Creates the final upload of `list` (the text after `final;`): every
/// partial must exist, be partial and complete; the file is written,
/// synced, hashed and receipted before the answer. Returns the answer and,
/// on success, the new upload's id.
pub(super) async fn create_final(
    shared: &Shared,
    headers: &HeaderMap,
    list: &str,
) -> (Response, Option<String>) {
    let refuse = |text: String| (reply_text(StatusCode::BAD_REQUEST, &text), None);
    let ids = match named(list) {
        Ok(ids) => ids,
        Err(reason) => return refuse(reason.to_owned()),
    };
    let metadata_header = header(headers, "upload-metadata")
        .unwrap_or_default()
        .to_owned();
    let Some(metadata) = parse_metadata(&metadata_header) else {
        return refuse("Upload-Metadata is not key base64 pairs".to_owned());
    };
    // Every partial is locked, in one order, so that two final uploads
    // naming the same partial cannot both take it.
    let mut order = ids.clone();
    order.sort();
    let locks: Vec<_> = order.iter().map(|id| shared.lock(id)).collect();
    let mut guards = Vec::with_capacity(locks.len());
    for lock in &locks {
        guards.push(lock.lock().await);
    }
    let mut parts = Vec::with_capacity(ids.len());
    let mut total = 0u64;
    for (position, id) in ids.iter().enumerate() {
        let number = position + 1;
        let info = match shared.info(id).await {
            Some(info) if info.expires_at < now() => {
                shared.remove(id).await;
                None
            }
            found => found,
        };
        let Some(info) = info else {
            return refuse(format!(
                "partial upload {number} of Upload-Concat does not exist (expired, terminated, \
                 or already concatenated into another final upload)"
            ));
        };
        if !info.partial {
            return refuse(format!(
                "upload {number} of Upload-Concat was not created as a partial upload"
            ));
        }
        total += info.offset;
        parts.push(info);
    }
    let takers: Vec<Option<&str>> = parts
        .iter()
        .map(|part| part.taken.as_ref().map(|taken| taken.by.as_str()))
        .collect();
    if let Some(taker) = takers.iter().flatten().next() {
        // The same final upload asked for again (its answer was lost):
        // the one already made is the answer, never a second.
        let same = takers.iter().all(|by| *by == Some(*taker))
            && shared
                .info(taker)
                .await
                .is_some_and(|made| made.parts.as_deref() == Some(ids.as_slice()));
        if same {
            return (reply(StatusCode::CREATED), Some((*taker).to_owned()));
        }
        return refuse(
            "a partial upload of Upload-Concat is already taken by another final upload".to_owned(),
        );
    }
    if !parts.iter().all(Info::complete) {
        return super::early::create(shared, &ids, &mut parts, (metadata_header, metadata)).await;
    }
    if total > shared.config.max_size {
        return (
            reply_text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the partial uploads together are over Tus-Max-Size",
            ),
            None,
        );
    }
    let Some(id) = new_id() else {
        return (
            reply_text(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for an id"),
            None,
        );
    };
    let target = shared.uploads().join(format!("{id}.part"));
    let concatenated = async {
        let mut out = tokio::fs::File::create(&target).await?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        for part in &parts {
            // Only the recorded offset is the partial's (bytes past it are
            // a write cut short).
            let file =
                tokio::fs::File::open(shared.uploads().join(format!("{}.part", part.id))).await?;
            let mut input = file.take(part.offset);
            let mut copied = 0u64;
            loop {
                let read = input.read(&mut buffer).await?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
                out.write_all(&buffer[..read]).await?;
                copied += read as u64;
            }
            if copied != part.offset {
                return Err(std::io::Error::other(
                    "a partial upload is shorter than its offset",
                ));
            }
        }
        out.sync_all().await?;
        Ok::<_, std::io::Error>(hasher)
    };
    let hasher = match concatenated.await {
        Ok(hasher) => hasher,
        Err(_) => {
            let _ = tokio::fs::remove_file(&target).await;
            return (
                reply_text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the partial uploads could not be concatenated",
                ),
                None,
            );
        }
    };
    let info = Info {
        id: id.clone(),
        length: Some(total),
        offset: total,
        metadata_header,
        metadata,
        expires_at: now() + shared.config.expire_after_seconds,
        partial: false,
        draft: None,
        taken: None,
        parts: None,
    };
    let concat = format!(
        "final;{}",
        ids.iter()
            .map(|id| format!("/files/{id}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if finish(shared, &info, Some(hasher), Some(concat))
        .await
        .is_err()
    {
        let _ = tokio::fs::remove_file(&target).await;
        return (
            reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the final upload could not be stored",
            ),
            None,
        );
    }
    // The final upload is durable: its partials are no longer needed.
    for part in &parts {
        shared.remove(&part.id).await;
    }
    drop(guards);
    (reply(StatusCode::CREATED), Some(id))
}

#[cfg(test)]
mod tests {
    use super::named;

    #[test]
    fn a_final_names_uploads_by_url_or_path() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            named(&format!("/files/{a} https://r.example/tus/files/{b}")),
            Ok(vec![a.to_owned(), b.to_owned()])
        );
        assert!(named("").is_err());
        assert!(named(&format!("/files/{a} /files/{a}")).is_err());
        assert!(named(&format!("/receipts/{a}")).is_err());
        assert!(named("/files/../../etc/passwd").is_err());
    }
}
