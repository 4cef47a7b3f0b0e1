//! One file sent as parallel partial uploads (tus concatenation), made one
//! upload by a final upload: the parts' URLs are in the ledger from their
//! creation, so a rerun resumes each part from the receiver's offset; the
//! file's SHA-256 is read in file order while the parts go; only the final
//! upload is the file's upload, and no part is ever a delivered file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::client::{FileDigest, UploadError, Uploader};
use crate::deliver::{DeliveryError, DeliveryProgress, Sent, fail, failure, lock, unchanged};
use crate::ledger::{Ledger, Part, State, Transition};

/// The byte ranges (start, length) of a file of `size` bytes in `parts`
/// nearly equal parts, in order.
pub(crate) fn plan(size: u64, parts: usize) -> Vec<(u64, u64)> {
    let count = parts.max(1) as u64;
    let (each, extra) = (size / count, size % count);
    let mut start = 0;
    (0..count)
        .map(|index| {
            let length = each + u64::from(index < extra);
            let range = (start, length);
            start += length;
            range
        })
        .collect()
}

/// The file to send in parts, as `deliver` knows it.
pub(crate) struct InParts<'a> {
    pub(crate) path: &'a Path,
    pub(crate) name: &'a str,
    pub(crate) size: u64,
    pub(crate) modified: Option<SystemTime>,
    pub(crate) metadata: &'a BTreeMap<String, String>,
    /// A previous run left it uploading: its recorded parts are resumed.
    pub(crate) resuming: bool,
    /// The upload URL the ledger has for it: a final upload made before
    /// its parts, when a previous run made one.
    pub(crate) known_url: Option<&'a str>,
}

/// Sends `file` as `count` partial uploads at once, then creates the final
/// upload; records the final's URL and the file's SHA-256 when it is
/// acknowledged.
pub(crate) async fn send(
    uploader: &Uploader,
    ledger: &Mutex<Ledger>,
    file: InParts<'_>,
    count: usize,
    progress: &dyn DeliveryProgress,
) -> Result<Sent, DeliveryError> {
    let name = file.name;
    let plan = plan(file.size, count);
    let recorded = lock(ledger).parts(name)?;
    let same_plan = recorded.len() == plan.len()
        && recorded
            .iter()
            .zip(&plan)
            .all(|(part, (start, length))| part.start == *start && part.length == *length);
    let mut parts = if file.resuming && same_plan {
        recorded
    } else {
        Vec::new()
    };
    // The whole file's SHA-256, read in file order while the parts go.
    let digest = {
        let (path, size) = (file.path.to_owned(), file.size);
        tokio::task::spawn_blocking(move || FileDigest::default().finish(&path, size))
    };
    if parts.is_empty() {
        for (start, length) in &plan {
            match uploader.create_partial(*length).await {
                Ok(url) => parts.push(Part {
                    start: *start,
                    length: *length,
                    url,
                }),
                Err(error) => return failure(ledger, name, error),
            }
        }
        let mut ledger = lock(ledger);
        ledger.set_parts(name, &parts)?;
        ledger.transition(
            name,
            State::Uploading,
            None,
            Some(&format!("sent as {} parallel parts", parts.len())),
        )?;
    }
    let urls: Vec<String> = parts.iter().map(|part| part.url.clone()).collect();
    let early = early_final(uploader, ledger, &file, &urls).await?;
    let done = match &early {
        Some(url) => matches!(uploader.final_state(url).await, Ok(Some(true))),
        None => false,
    };
    let positions: Vec<AtomicU64> = parts.iter().map(|_| AtomicU64::new(0)).collect();
    let sent = futures_util::future::join_all(parts.iter().enumerate().map(|(index, part)| {
        let positions = &positions;
        async move {
            if done {
                return Ok(());
            }
            let on_position = |offset: u64| {
                positions[index].store(offset, Ordering::Relaxed);
                let total = positions
                    .iter()
                    .map(|position| position.load(Ordering::Relaxed))
                    .sum();
                progress.file_position(name, total);
            };
            uploader
                .send_part(&part.url, file.path, part.start, part.length, &on_position)
                .await
                .map(drop)
        }
    }))
    .await;
    // A final made first is finished by its last part: an answer lost on
    // the way back changes nothing once the receiver says it is.
    let finished = match &early {
        Some(url) => finished(uploader, url).await,
        None => false,
    };
    if let Some(error) = sent.into_iter().find_map(Result::err).filter(|_| !finished) {
        // A part the receiver no longer has cannot be resumed: the next run
        // starts the file's parts over.
        let mut gone = false;
        for part in &parts {
            gone |= matches!(uploader.offset(&part.url).await, Ok(None));
        }
        if gone {
            lock(ledger).set_parts(name, &[])?;
        }
        return failure(ledger, name, error);
    }
    let made = match early {
        Some(url) if finished => Ok(url),
        Some(_) => {
            return failure(
                ledger,
                name,
                UploadError::Server(
                    "the receiver has every part but has not finished the final upload".into(),
                ),
            );
        }
        None => uploader.create_final(&urls, file.metadata).await,
    };
    let url = match made {
        Ok(url) => url,
        Err(error) => {
            // Every part gone means the receiver made the final upload and
            // its answer was lost (a retry then finds no parts): sending
            // again would store the file twice. The file is left missing,
            // and verification looks for the receiver's copy by checksum
            // before it replays anything.
            let mut all_gone = !parts.is_empty();
            for part in &parts {
                all_gone &= matches!(uploader.offset(&part.url).await, Ok(None));
            }
            let sha256 = match (all_gone, digest.await) {
                (true, Ok(Ok(sha256))) => sha256,
                _ => return failure(ledger, name, error),
            };
            let reason = "the answer to the final upload was lost and its parts are gone";
            let changes = [Transition {
                path: name.to_owned(),
                state: State::Missing,
                upload_url: parts.last().map(|part| part.url.clone()),
                detail: Some(format!(
                    "{reason}: verification looks for the receiver's copy before sending again"
                )),
                sha256: Some(sha256),
            }];
            let mut ledger = lock(ledger);
            ledger.record(&changes)?;
            ledger.set_parts(name, &[])?;
            return Ok(Sent::Unconfirmed(reason.to_owned()));
        }
    };
    let sha256 = match digest.await {
        Ok(Ok(sha256)) if unchanged(file.path, file.size, file.modified) => sha256,
        Ok(Ok(_)) => {
            // What the receiver holds is not what the ledger recorded: withdraw it.
            uploader.terminate(&url).await;
            lock(ledger).set_parts(name, &[])?;
            return fail(ledger, name, "the file changed while it was sent");
        }
        Ok(Err(error)) => return fail(ledger, name, &error.to_string()),
        Err(_) => return fail(ledger, name, "reading the file stopped"),
    };
    let changes = [
        Transition {
            path: name.to_owned(),
            state: State::Uploading,
            upload_url: Some(url),
            detail: Some(format!("{} parallel parts concatenated", parts.len())),
            sha256: None,
        },
        Transition {
            path: name.to_owned(),
            state: State::Acknowledged,
            upload_url: None,
            detail: None,
            sha256: Some(sha256),
        },
    ];
    let mut ledger = lock(ledger);
    ledger.record(&changes)?;
    ledger.set_parts(name, &[])?;
    Ok(Sent::Acknowledged)
}

/// Where the receiver offers concatenation-unfinished, the final upload is
/// made before the parts are sent, so each part goes straight into its
/// place in the final file; its URL is in the ledger from then on. A rerun
/// takes the final a previous run made (the ledger's URL, if the receiver
/// says it is a final upload); otherwise asks again, which a receiver
/// answers with the final it already made of these parts. `None`: the
/// final is made after the parts, as plain concatenation does.
async fn early_final(
    uploader: &Uploader,
    ledger: &Mutex<Ledger>,
    file: &InParts<'_>,
    urls: &[String],
) -> Result<Option<String>, DeliveryError> {
    if file.resuming {
        if let Some(known) = file.known_url {
            if let Ok(Some(_)) = uploader.final_state(known).await {
                return Ok(Some(known.to_owned()));
            }
        }
    }
    if !uploader.offers("concatenation-unfinished").await {
        return Ok(None);
    }
    // A refusal or a lost answer leaves the final to be made after the
    // parts (a receiver that made it answers that request with it).
    let Ok(url) = uploader.create_final(urls, file.metadata).await else {
        return Ok(None);
    };
    lock(ledger).transition(
        file.name,
        State::Uploading,
        Some(&url),
        Some("final upload made before its parts"),
    )?;
    Ok(Some(url))
}

/// Whether the final upload at `url` is finished: asked a few times, since
/// a receiver may finish it a moment after the last part's answer.
async fn finished(uploader: &Uploader, url: &str) -> bool {
    for attempt in 0..5u32 {
        match uploader.final_state(url).await {
            Ok(Some(true)) => return true,
            Ok(None) => return false,
            _ => tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn parts_cover_the_file_in_order() {
        assert_eq!(plan(10, 3), [(0, 4), (4, 3), (7, 3)]);
        assert_eq!(plan(8, 4), [(0, 2), (2, 2), (4, 2), (6, 2)]);
        assert_eq!(plan(5, 1), [(0, 5)]);
    }
}
