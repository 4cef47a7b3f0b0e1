//! Delivery as a whole: send files through the ledger (several at a time),
//! verify what was acknowledged, and replay what went missing as new
//! uploads, never creating a second copy where the receiver can show it has
//! one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;

use crate::auth::AuthError;
use crate::client::{Created, FileDigest, UploadError, Uploader};

/// Why a file the receiver said it stored is withdrawn.
const STORED_OTHERWISE: &str = "the receiver's Repr-Digest is not the SHA-256 of the file sent: \
                                the upload was withdrawn";
use crate::ledger::{Entry, Ledger, LedgerError, Queued, State, Transition};
use crate::verify::{Verdict, Verifier, upload_id};

/// Where a long delivery reports; the CLI draws bars from it.
pub trait DeliveryProgress: Send + Sync {
    /// A file starts (reading or sending), `size` bytes.
    fn file_started(&self, _path: &str, _size: u64) {}
    /// The receiver now holds `offset` bytes of the file.
    fn file_position(&self, _path: &str, _offset: u64) {}
    /// The file is done, whatever the outcome.
    fn file_finished(&self, _path: &str) {}
    /// Verification waits for `pending` files to settle, at most `left` more.
    fn settling(&self, _pending: usize, _left: Duration) {}
}

/// Reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeliveryProgress;

impl DeliveryProgress for NoDeliveryProgress {}

/// A file to send and its metadata (`filename` is added if absent).
#[derive(Debug, Clone)]
pub struct FileToSend {
    /// The file.
    pub path: PathBuf,
    /// `Upload-Metadata` pairs.
    pub metadata: BTreeMap<String, String>,
}

/// What became of one file in a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The receiver took every byte.
    Acknowledged,
    /// The ledger already has it as delivered (its state); nothing was sent.
    AlreadyDelivered(State),
    /// It could not be sent (why; never file content).
    Failed(String),
    /// The receiver's answer was lost after it may have taken the file
    /// (why): the file is left missing, for verification to look for the
    /// receiver's copy before anything is sent again.
    Unconfirmed(String),
}

/// Why a delivery stopped as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The ledger could not record a change: nothing after it is trusted.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// No token could be had, or the receiver refused a renewed one:
    /// nothing more is sent or decided.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A file's failure, or the whole delivery's when the sign-in failed.
pub(crate) fn failure(
    ledger: &Mutex<Ledger>,
    name: &str,
    error: UploadError,
) -> Result<Sent, DeliveryError> {
    match error {
        UploadError::Auth(error) => Err(DeliveryError::Auth(error)),
        error => fail(ledger, name, &error.to_string()),
    }
}

pub(crate) fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file's size and modification time.
fn stat(path: &Path) -> std::io::Result<(u64, Option<SystemTime>)> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((metadata.len(), metadata.modified().ok()))
}

/// A modification time as nanoseconds since the epoch (0 when unknown).
fn nanos(modified: Option<SystemTime>) -> i64 {
    modified
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

pub(crate) fn unchanged(path: &Path, size: u64, modified: Option<SystemTime>) -> bool {
    std::fs::metadata(path).is_ok_and(|now| now.len() == size && now.modified().ok() == modified)
}

/// The file's SHA-256 from its digest, reading whatever the send skipped.
async fn finish_digest(digest: FileDigest, path: &Path, size: u64) -> Result<String, String> {
    let path = path.to_owned();
    match tokio::task::spawn_blocking(move || digest.finish(&path, size)).await {
        Ok(Ok(sha256)) => Ok(sha256),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("reading the file stopped".to_owned()),
    }
}

/// A file ready to send: recorded in the ledger, with what it knew of it.
struct Recorded {
    path: PathBuf,
    name: String,
    size: u64,
    modified: Option<SystemTime>,
    metadata: BTreeMap<String, String>,
    state: State,
    known_url: Option<String>,
}

/// Sends `files`, `jobs` at a time, through `ledger`: all are recorded
/// first (path, size, modification time, metadata) in one synced
/// transaction; a file the ledger has as acknowledged, verified, missing or
/// replayed (and unchanged since) is not sent again; an unfinished upload
/// the receiver still has is resumed from its offset; anything else is a
/// new upload. Each file is read once: its SHA-256 is computed from the
/// chunks as they are sent and recorded when it is acknowledged. A file
/// that changes while it is sent fails alone. Returns each file's outcome
/// in the order given.
pub async fn send(
    uploader: &Uploader,
    ledger: &Mutex<Ledger>,
    files: Vec<FileToSend>,
    jobs: usize,
    progress: &dyn DeliveryProgress,
) -> Result<Vec<(String, Sent)>, DeliveryError> {
    let mut outcomes: Vec<(String, Option<Sent>)> = Vec::with_capacity(files.len());
    let mut recorded = Vec::new();
    let mut queued = Vec::new();
    for file in files {
        let name = file.path.display().to_string();
        let (size, modified) = match stat(&file.path) {
            Ok(stat) => stat,
            Err(error) => {
                outcomes.push((name, Some(Sent::Failed(error.to_string()))));
                continue;
            }
        };
        let mut metadata = file.metadata;
        if !metadata.contains_key("filename") {
            let filename = file
                .path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            metadata.insert("filename".to_owned(), filename);
        }
        queued.push(Queued {
            path: name.clone(),
            size,
            mtime: nanos(modified),
            metadata: serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".to_owned()),
        });
        recorded.push(Recorded {
            path: file.path,
            name: name.clone(),
            size,
            modified,
            metadata,
            state: State::Queued,
            known_url: None,
        });
        outcomes.push((name, None));
    }
    let states = lock(ledger).enqueue(&queued)?;
    for (file, (state, known_url)) in recorded.iter_mut().zip(states) {
        file.state = state;
        file.known_url = known_url;
    }
    let mut sent = futures_util::stream::iter(recorded.into_iter().map(|file| async move {
        let name = file.name.clone();
        let sent = send_one(uploader, ledger, file, progress).await?;
        progress.file_finished(&name);
        Ok::<_, DeliveryError>(sent)
    }))
    .buffered(jobs.max(1));
    for outcome in &mut outcomes {
        if outcome.1.is_none() {
            // The first error (the ledger, or the sign-in) stops the send:
            // the uploads in flight are dropped and resume on a rerun.
            if let Some(result) = sent.next().await {
                outcome.1 = Some(result?);
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|(name, sent)| (name, sent.unwrap_or(Sent::Failed("not sent".to_owned()))))
        .collect())
}

async fn send_one(
    uploader: &Uploader,
    ledger: &Mutex<Ledger>,
    file: Recorded,
    progress: &dyn DeliveryProgress,
) -> Result<Sent, DeliveryError> {
    let Recorded {
        path,
        name,
        size,
        modified,
        metadata,
        state,
        known_url,
    } = file;
    // Everything the receiver took (and a missing file, which verification
    // replays) is never sent again: an undelivered file is held by the
    // receiver, and a second upload would duplicate it downstream.
    if matches!(
        state,
        State::Acknowledged
            | State::Verified
            | State::Replayed
            | State::Missing
            | State::Undelivered
    ) {
        return Ok(Sent::AlreadyDelivered(state));
    }
    progress.file_started(&name, size);
    let count = uploader.parts_for(size).await;
    if count > 1 {
        let file = crate::parts::InParts {
            path: &path,
            name: &name,
            size,
            modified,
            metadata: &metadata,
            resuming: state == State::Uploading,
            known_url: known_url.as_deref(),
        };
        return crate::parts::send(uploader, ledger, file, count, progress).await;
    }
    // Resume an unfinished upload the receiver still has; otherwise a new one.
    let resumable = match (state, &known_url) {
        (State::Uploading, Some(url)) => match uploader.offset(url).await {
            Ok(Some(_)) => Some(url.clone()),
            _ => None,
        },
        _ => None,
    };
    let on_position = |offset| progress.file_position(&name, offset);
    let mut digest = FileDigest::default();
    // Whether the upload's URL still has to be recorded (with the outcome).
    let mut record_url = false;
    let (url, sent) = match resumable {
        Some(url) => {
            let sent = uploader
                .send(&url, &path, size, &mut digest, &on_position)
                .await;
            (url, sent)
        }
        None => match uploader
            .create_with_data(&path, size, &metadata, &mut digest)
            .await
        {
            Ok(created) if created.offset >= size => {
                // Sent whole with its creation: one ledger change records both.
                record_url = true;
                (created.url, Ok(created.stored_sha256))
            }
            Ok(Created { url, offset, .. }) => {
                lock(ledger).transition(&name, State::Uploading, Some(&url), None)?;
                let sent = uploader
                    .send_from(&url, &path, size, offset, &mut digest, &on_position)
                    .await;
                (url, sent)
            }
            Err(error) => return failure(ledger, &name, error),
        },
    };
    let stored = match sent {
        Ok(stored) => stored,
        Err(error) => return failure(ledger, &name, error),
    };
    let sha256 = match finish_digest(digest, &path, size).await {
        Ok(sha256) => sha256,
        Err(reason) => return fail(ledger, &name, &reason),
    };
    if !unchanged(&path, size, modified) {
        // What the receiver holds is not what the ledger recorded: withdraw it.
        uploader.terminate(&url).await;
        return fail(ledger, &name, "the file changed while it was sent");
    }
    if stored.is_some_and(|stored| stored != sha256) {
        // The receiver says it stored other bytes than were sent.
        uploader.terminate(&url).await;
        return fail(ledger, &name, STORED_OTHERWISE);
    }
    let mut changes = Vec::with_capacity(2);
    if record_url {
        changes.push(Transition {
            path: name.clone(),
            state: State::Uploading,
            upload_url: Some(url),
            detail: Some("sent whole with its creation".to_owned()),
            sha256: None,
        });
    }
    changes.push(Transition {
        path: name,
        state: State::Acknowledged,
        upload_url: None,
        detail: None,
        sha256: Some(sha256),
    });
    lock(ledger).record(&changes)?;
    Ok(Sent::Acknowledged)
}

pub(crate) fn fail(
    ledger: &Mutex<Ledger>,
    name: &str,
    reason: &str,
) -> Result<Sent, DeliveryError> {
    lock(ledger).transition(name, State::Failed, None, Some(reason))?;
    Ok(Sent::Failed(reason.to_owned()))
}

/// What one verification pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Files checked.
    pub checked: u64,
    /// Files read back whole: now `verified`.
    pub verified: u64,
    /// Files found missing (path, reason): now `missing`.
    pub missing: Vec<(String, String)>,
    /// Files the receiver holds whole but never delivered onwards within
    /// the settling time (path, reason): now `undelivered`.
    pub undelivered: Vec<(String, String)>,
    /// Files no decision could be made on (path, reason): unchanged.
    pub undecided: Vec<(String, String)>,
}

/// The first wait between checks of files that have not settled; it
/// doubles up to [`SETTLE_POLL_MAX`].
const SETTLE_POLL_FIRST: Duration = Duration::from_secs(1);
const SETTLE_POLL_MAX: Duration = Duration::from_secs(15);

/// When a file's settling time ends: `settle` after its last state change
/// (its acknowledgement or replay), as `Instant` from now.
fn settled_by(entry: &Entry, settle: Duration, now: Instant) -> Instant {
    let changed = chrono::DateTime::parse_from_rfc3339(&entry.updated_at)
        .map(|at| at.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let elapsed = (chrono::Utc::now() - changed).to_std().unwrap_or_default();
    now + settle.saturating_sub(elapsed)
}

/// Verifies every acknowledged, replayed or undelivered file, `jobs` at a
/// time, and records the verdicts in batches (one synced transaction per
/// batch). A file the receiver knows but has not settled (not complete, or
/// not delivered onwards yet) is asked again, with backoff, until `settle`
/// has passed since its acknowledgement; then one it still does not hold
/// whole is missing, and one it holds but never delivered is undelivered.
/// Stops at once when the receiver refuses the (renewed) token.
pub async fn verify(
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    jobs: usize,
    settle: Duration,
    progress: &dyn DeliveryProgress,
) -> Result<Pass, DeliveryError> {
    let entries =
        lock(ledger).entries(&[State::Acknowledged, State::Replayed, State::Undelivered])?;
    let started = Instant::now();
    let mut waiting: Vec<(Entry, Instant)> = entries
        .into_iter()
        .map(|entry| {
            let by = settled_by(&entry, settle, started);
            (entry, by)
        })
        .collect();
    let mut pass = Pass::default();
    let mut wait = SETTLE_POLL_FIRST;
    loop {
        let mut later = Vec::new();
        let mut verdicts =
            futures_util::stream::iter(waiting.into_iter().map(|(entry, by)| async move {
                let verdict = verifier.verify(&entry).await.map(|(verdict, _)| verdict);
                (entry, by, verdict)
            }))
            .buffer_unordered(jobs.max(1))
            .chunks(256);
        while let Some(batch) = verdicts.next().await {
            let mut transitions = Vec::with_capacity(batch.len());
            let now = Instant::now();
            for (entry, by, verdict) in batch {
                let (state, detail) = match verdict? {
                    Verdict::Pending { .. } if now < by => {
                        later.push((entry, by));
                        continue;
                    }
                    Verdict::Verified => (State::Verified, probe_names(verifier)),
                    Verdict::Missing(reason) => (State::Missing, reason),
                    // Settled: held whole but never delivered onwards, or never whole.
                    Verdict::Pending { held: true, reason } => (
                        State::Undelivered,
                        format!("undelivered after the settling time: {reason}"),
                    ),
                    Verdict::Pending {
                        held: false,
                        reason,
                    } => (
                        State::Missing,
                        format!("still not whole after the settling time: {reason}"),
                    ),
                    Verdict::Undecided(reason) => {
                        pass.checked += 1;
                        pass.undecided.push((entry.path, reason));
                        continue;
                    }
                };
                pass.checked += 1;
                match state {
                    State::Verified => pass.verified += 1,
                    State::Missing => pass.missing.push((entry.path.clone(), detail.clone())),
                    _ => pass.undelivered.push((entry.path.clone(), detail.clone())),
                }
                // A file already undelivered gains no second record of it.
                let unchanged = state == State::Undelivered && entry.state == State::Undelivered;
                if !unchanged {
                    transitions.push(Transition {
                        path: entry.path,
                        state,
                        upload_url: None,
                        detail: Some(detail),
                        sha256: None,
                    });
                }
            }
            lock(ledger).record(&transitions)?;
        }
        if later.is_empty() {
            break;
        }
        let now = Instant::now();
        let first = later.iter().map(|(_, by)| *by).min().unwrap_or(now);
        let last = later.iter().map(|(_, by)| *by).max().unwrap_or(now);
        progress.settling(later.len(), last.saturating_duration_since(now));
        // Ask again after the backoff, or right when the first file's time is up.
        let pause = wait
            .min(first.saturating_duration_since(now))
            .max(Duration::from_millis(100));
        tokio::time::sleep(pause).await;
        wait = (wait * 2).min(SETTLE_POLL_MAX);
        waiting = later;
    }
    progress.settling(0, Duration::ZERO);
    pass.missing.sort();
    pass.undelivered.sort();
    pass.undecided.sort();
    Ok(pass)
}

fn probe_names(verifier: &Verifier) -> String {
    let names: Vec<&str> = verifier.probes().iter().map(|probe| probe.name()).collect();
    format!("read back by {}", names.join(", "))
}

/// What became of one missing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Sent again as a new upload carrying `replay_of` (the new URL).
    Replayed(String),
    /// The receiver already holds a whole copy (its upload id): adopted, not sent again.
    Adopted(String),
    /// Replayed `max_replays` times and still missing: flagged as failed.
    GaveUp(u32),
    /// Could not be replayed (why).
    Failed(String),
}

/// Replays every missing file as a new upload (metadata `replay_of` = the
/// lost upload's id), up to `max_replays` times per file, then flags it as
/// failed. Before sending, asks the receiver (where it can tell) whether it
/// already holds a whole copy of the same content and name, and adopts that
/// copy instead of creating a second one.
pub async fn replay(
    uploader: &Uploader,
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    max_replays: u32,
    jobs: usize,
    progress: &dyn DeliveryProgress,
) -> Result<Vec<(String, Replay)>, DeliveryError> {
    let entries = lock(ledger).entries(&[State::Missing])?;
    let mut results = futures_util::stream::iter(entries.into_iter().map(|entry| async move {
        let outcome = replay_one(uploader, verifier, ledger, &entry, max_replays, progress).await?;
        progress.file_finished(&entry.path);
        Ok::<_, DeliveryError>((entry.path, outcome))
    }))
    .buffered(jobs.max(1));
    let mut replays = Vec::new();
    while let Some(result) = results.next().await {
        replays.push(result?);
    }
    Ok(replays)
}

async fn replay_one(
    uploader: &Uploader,
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    entry: &Entry,
    max_replays: u32,
    progress: &dyn DeliveryProgress,
) -> Result<Replay, DeliveryError> {
    if entry.replays >= max_replays {
        let plural = if entry.replays == 1 {
            "replay"
        } else {
            "replays"
        };
        let reason = format!("still missing after {} {plural}", entry.replays);
        lock(ledger).transition(&entry.path, State::Failed, None, Some(&reason))?;
        return Ok(Replay::GaveUp(entry.replays));
    }
    let endpoint = match &entry.upload_url {
        Some(url) => url[..url.len() - upload_id(url).len()]
            .trim_end_matches('/')
            .to_owned(),
        None => uploader.endpoint().to_owned(),
    };
    if let Some(url) = &entry.upload_url {
        if let Some(id) = verifier.find_copy(url, entry).await {
            let adopted = format!("{endpoint}/{id}");
            let detail = "the receiver holds a whole copy; adopted, not sent again";
            lock(ledger).transition(&entry.path, State::Verified, Some(&adopted), Some(detail))?;
            return Ok(Replay::Adopted(id));
        }
    }
    let path = PathBuf::from(&entry.path);
    let (size, modified) = match stat(&path) {
        Ok(stat) => stat,
        Err(error) => return replay_failed(ledger, entry, &error.to_string()),
    };
    if size != entry.size {
        return replay_failed(ledger, entry, "the file changed since it was sent");
    }
    progress.file_started(&entry.path, size);
    let mut metadata = entry.metadata.clone();
    if let Some(url) = &entry.upload_url {
        metadata.insert("replay_of".to_owned(), upload_id(url).to_owned());
    }
    let uploader = uploader.at(&endpoint);
    let mut digest = FileDigest::default();
    let Created {
        url,
        offset,
        stored_sha256,
    } = match uploader
        .create_with_data(&path, size, &metadata, &mut digest)
        .await
    {
        Ok(created) => created,
        Err(UploadError::Auth(error)) => return Err(DeliveryError::Auth(error)),
        Err(error) => return replay_failed(ledger, entry, &error.to_string()),
    };
    lock(ledger).transition(&entry.path, State::Replayed, Some(&url), None)?;
    let on_position = |offset| progress.file_position(&entry.path, offset);
    let sent = if offset >= size {
        Ok(stored_sha256)
    } else {
        uploader
            .send_from(&url, &path, size, offset, &mut digest, &on_position)
            .await
    };
    match sent {
        Ok(stored) => {
            let sha256 = finish_digest(digest, &path, size).await.ok();
            if sha256.is_some() && stored.is_some() && stored != sha256 {
                uploader.terminate(&url).await;
                return replay_failed(ledger, entry, STORED_OTHERWISE);
            }
            let same =
                sha256.is_some_and(|sha256| entry.sha256.is_empty() || sha256 == entry.sha256);
            if same && unchanged(&path, size, modified) {
                Ok(Replay::Replayed(url))
            } else {
                // Not the content first sent: withdraw it rather than deliver it as a replay.
                uploader.terminate(&url).await;
                replay_failed(ledger, entry, "the file changed since it was sent")
            }
        }
        Err(UploadError::Auth(error)) => Err(DeliveryError::Auth(error)),
        // The next verification finds the partial upload missing again.
        Err(error) => Ok(Replay::Failed(error.to_string())),
    }
}

fn replay_failed(
    ledger: &Mutex<Ledger>,
    entry: &Entry,
    reason: &str,
) -> Result<Replay, DeliveryError> {
    lock(ledger).transition(&entry.path, State::Failed, None, Some(reason))?;
    Ok(Replay::Failed(reason.to_owned()))
}
