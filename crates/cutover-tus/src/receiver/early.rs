//! concatenation-unfinished: a final upload made before its partial
//! uploads finished. The final's file is made at once, at its whole
//! length; a partial that had no data yet writes its bytes straight into
//! its place there, so a file sent as parallel parts is never copied
//! again. The last partial to finish finishes the final upload (hashed,
//! moved, receipted) before its own answer.
//!
//! State on disk: the final's `uploads/F.json` names its partials
//! (`parts`) and is saved before any partial is taken; each partial's
//! state names the final that took it (`taken`). After a crash,
//! [`recover`] settles every final left half-way: it finishes one whose
//! partials are all done, finishes the cleaning of one already
//! receipted, and undoes one whose making was cut short.

use axum::http::StatusCode;
use axum::response::Response;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::store::{Info, Shared, Taken, finish, new_id, now, reply, reply_text};

/// Why a final upload could not be made now; the answer to give.
type Refused = (Response, Option<String>);

/// Makes the final upload of `ids` (their states in `parts`, every one a
/// partial upload, locked by the caller, not every one finished). Returns
/// the answer and, on success, the final's id.
pub(super) async fn create(
    shared: &Shared,
    ids: &[String],
    parts: &mut [Info],
    (metadata_header, metadata): (String, std::collections::BTreeMap<String, String>),
) -> Refused {
    let refuse = |status: StatusCode, text: &str| (reply_text(status, text), None);
    let mut total = 0u64;
    for (position, part) in parts.iter().enumerate() {
        let Some(length) = part.length else {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "partial upload {} of Upload-Concat has no length yet: a final upload \
                     can be made of it once its Upload-Length is set",
                    position + 1
                ),
            );
        };
        total += length;
    }
    if total > shared.config.max_size {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the partial uploads together are over Tus-Max-Size",
        );
    }
    let Some(id) = new_id() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for an id");
    };
    let info = Info {
        id: id.clone(),
        length: Some(total),
        offset: 0,
        metadata_header,
        metadata,
        expires_at: now() + shared.config.expire_after_seconds,
        partial: false,
        draft: None,
        taken: None,
        parts: Some(ids.to_vec()),
    };
    let made = async {
        // The final's file at its whole length (sparse until written),
        // and its state, before any partial is taken.
        let file = tokio::fs::File::create(shared.uploads().join(format!("{id}.part"))).await?;
        file.set_len(total).await?;
        file.sync_all().await?;
        shared.save(&info).await?;
        let mut at = 0u64;
        for part in parts.iter_mut() {
            let length = part.length.unwrap_or_default();
            let empty = part.offset == 0;
            part.taken = Some(Taken {
                by: id.clone(),
                at: empty.then_some(at),
            });
            shared.save(part).await?;
            if empty {
                let _ = tokio::fs::remove_file(shared.uploads().join(format!("{}.part", part.id)))
                    .await;
            }
            at += length;
        }
        Ok::<_, std::io::Error>(())
    };
    if made.await.is_err() {
        undo(shared, &info).await;
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the final upload could not be stored",
        );
    }
    (reply(StatusCode::CREATED), Some(id))
}

/// Undoes a final upload whose making was cut short: its partials are
/// given back (one taken before any data came gets its empty file back)
/// and the final goes.
async fn undo(shared: &Shared, info: &Info) {
    for name in info.parts.iter().flatten() {
        let Some(mut part) = shared.info(name).await else {
            continue;
        };
        let Some(taken) = part.taken.take().filter(|taken| taken.by == info.id) else {
            continue;
        };
        if taken.at.is_some() {
            let own = shared.uploads().join(format!("{name}.part"));
            if tokio::fs::File::create(&own).await.is_err() {
                continue;
            }
            part.offset = 0;
        }
        let _ = shared.save(&part).await;
    }
    shared.remove(&info.id).await;
}

/// Finishes the final upload `id` if every partial it names is finished:
/// the partials not written in place are copied into its file, the file
/// is hashed, moved and receipted, and the partials are removed. Returns
/// whether the final is finished. A final with a partial gone (expired,
/// terminated) is removed with the rest of its partials: it can never
/// finish.
pub(super) async fn settle(shared: &Shared, id: &str) -> std::io::Result<bool> {
    let lock = shared.lock(id);
    let _guard = lock.lock().await;
    let Some(info) = shared.info(id).await else {
        return Ok(shared.receipt(id).await.is_some());
    };
    let Some(names) = info.parts.clone() else {
        return Ok(false);
    };
    let mut parts = Vec::with_capacity(names.len());
    for name in &names {
        match shared.info(name).await {
            Some(part) if part.taken.as_ref().is_some_and(|taken| taken.by == id) => {
                parts.push(part)
            }
            _ => {
                for part in &parts {
                    shared.remove(&part.id).await;
                }
                shared.remove(id).await;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a partial upload of the final upload is gone",
                ));
            }
        }
    }
    if !parts.iter().all(Info::complete) {
        return Ok(false);
    }
    let target = shared.uploads().join(format!("{id}.part"));
    // A crash while finishing can leave the file moved to complete/
    // without its receipt: it comes back.
    let complete = shared.config.directory.join("complete").join(id);
    if tokio::fs::metadata(&target).await.is_err() && tokio::fs::metadata(&complete).await.is_ok() {
        tokio::fs::rename(&complete, &target).await?;
    }
    let hasher = gather(shared, &target, &parts).await?;
    let total: u64 = parts.iter().map(|part| part.offset).sum();
    let finished = Info {
        offset: total,
        length: Some(total),
        ..info
    };
    let concat = format!(
        "final;{}",
        names
            .iter()
            .map(|name| format!("/files/{name}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    finish(shared, &finished, Some(hasher), Some(concat)).await?;
    for part in &parts {
        shared.remove(&part.id).await;
    }
    Ok(true)
}

/// Brings every partial's bytes into the final's file, in order, and
/// returns the file's SHA-256: a partial written in place is only read
/// (or, for the first, not even that while its running hash is kept); any
/// other is copied once.
async fn gather(
    shared: &Shared,
    target: &std::path::Path,
    parts: &[Info],
) -> std::io::Result<sha2::Sha256> {
    let mut out = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
        .await?;
    let total: u64 = parts.iter().map(|part| part.offset).sum();
    out.set_len(total).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut at = 0u64;
    for (index, part) in parts.iter().enumerate() {
        let in_place = part.taken.as_ref().and_then(|taken| taken.at) == Some(at);
        if index == 0 && in_place {
            if let Some(running) = shared.take_running(&part.id, part.offset) {
                hasher = running;
                at += part.offset;
                continue;
            }
        }
        let source = if in_place {
            target.to_owned()
        } else {
            shared.uploads().join(format!("{}.part", part.id))
        };
        let mut input = tokio::fs::File::open(&source).await?;
        input
            .seek(std::io::SeekFrom::Start(if in_place { at } else { 0 }))
            .await?;
        let mut input = input.take(part.offset);
        if !in_place {
            out.seek(std::io::SeekFrom::Start(at)).await?;
        }
        let mut moved = 0u64;
        loop {
            let read = input.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            if !in_place {
                out.write_all(&buffer[..read]).await?;
            }
            moved += read as u64;
        }
        if moved != part.offset {
            return Err(std::io::Error::other(
                "a partial upload is shorter than its offset",
            ));
        }
        at += part.offset;
    }
    // The copied bytes are made durable by the finishing's sync.
    out.flush().await?;
    Ok(hasher)
}

/// At start, before any request: every final upload left half-way by a
/// process that was killed is settled, and every partial whose final
/// upload is gone is removed.
pub(super) async fn recover(shared: &Shared) -> std::io::Result<()> {
    let mut finals = Vec::new();
    let mut taken = Vec::new();
    let mut entries = tokio::fs::read_dir(shared.uploads()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().and_then(|extension| extension.to_str()) != Some("json") {
            continue;
        }
        let Some(id) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let Some(info) = shared.info(id).await else {
            continue;
        };
        if info.parts.is_some() {
            finals.push(info);
        } else if info.taken.is_some() {
            taken.push(info);
        }
    }
    for info in finals {
        if shared.receipt(&info.id).await.is_some() {
            // Receipted, its cleaning cut short.
            for name in info.parts.iter().flatten() {
                shared.remove(name).await;
            }
            let _ =
                tokio::fs::remove_file(shared.uploads().join(format!("{}.json", info.id))).await;
            continue;
        }
        // A partial there but not taken by it: its making was cut short.
        let mut cut_short = false;
        for name in info.parts.iter().flatten() {
            if let Some(part) = shared.info(name).await {
                cut_short |= part.taken.is_none_or(|taken| taken.by != info.id);
            }
        }
        if cut_short {
            undo(shared, &info).await;
        } else {
            // Finished if its partials are (removed if one is gone); an
            // error leaves it for a HEAD to settle.
            let _ = settle(shared, &info.id).await;
        }
    }
    for part in taken {
        let Some(by) = part.taken.as_ref().map(|taken| taken.by.clone()) else {
            continue;
        };
        if shared.info(&by).await.is_none() {
            shared.remove(&part.id).await;
        }
    }
    Ok(())
}
