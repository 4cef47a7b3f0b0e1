//! The receiver's storage: an open upload's state (`uploads/ID.json`), its
//! data (`uploads/ID.part`), the finished file and its receipt, each written
//! durably; and the small helpers every handler shares.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use super::{Receipt, ReceiverConfig, TUS_VERSION};

/// An open upload's state, `uploads/ID.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Info {
    pub(super) id: String,
    /// `None` while the length is deferred (creation-defer-length).
    pub(super) length: Option<u64>,
    pub(super) offset: u64,
    pub(super) metadata_header: String,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) expires_at: i64,
    /// A partial upload (concatenation): when complete it stays here,
    /// whole, until a final upload takes it; it is never a file of its own.
    #[serde(default)]
    pub(super) partial: bool,
    /// An upload made by the IETF resumable-upload draft, not by tus 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) draft: Option<Draft>,
    /// A partial upload taken by a final upload made before it finished
    /// (concatenation-unfinished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) taken: Option<Taken>,
    /// A final upload made before its partial uploads finished: their ids,
    /// in order. It is finished when the last of them is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) parts: Option<Vec<String>>,
}

/// Which final upload took a partial upload, and where the partial's
/// bytes are written: into the final's own file, at `at`, when the
/// partial had no data yet when it was taken (nothing is copied then);
/// otherwise in the partial's file, copied once when the final finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Taken {
    pub(super) by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) at: Option<u64>,
}

/// What a draft upload keeps beside tus's state. Its `length` stays unknown
/// until the client marks it complete (`Upload-Complete: ?1`): in the
/// draft, only the client ends an upload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Draft {
    /// The interop version it was created with.
    pub(super) version: u8,
    /// The length the client announced (`Upload-Length`, or `Content-Length`
    /// with `Upload-Complete: ?1`): the limit, and the length the
    /// completion must reach.
    pub(super) announced: Option<u64>,
    /// The SHA-256 the client gave in `Repr-Digest` at creation, hex: the
    /// finished file must have it, or it is not kept.
    pub(super) repr_sha256: Option<String>,
}

impl Info {
    /// Whether every byte has arrived.
    pub(super) fn complete(&self) -> bool {
        self.length == Some(self.offset)
    }
}

/// Group commit: a caller whose writes are done waits until the file
/// system has been synced (`syncfs`) by a sync that began after they were
/// done. Concurrent uploads share one sync instead of several each.
#[derive(Debug, Default)]
pub(super) struct Barrier {
    /// Tickets handed out, one per wait, after the caller's writes.
    tickets: std::sync::atomic::AtomicU64,
    /// The highest ticket a finished sync covers.
    covered: tokio::sync::Mutex<u64>,
}

impl Barrier {
    /// Returns once everything written before the call is on disk: the
    /// data and metadata of every file of `directory`'s file system.
    pub(super) async fn wait(&self, directory: &Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            // A sync that began after this caller's writes has finished.
            return Ok(());
        }
        // Every ticket handed out so far was taken after its writes, so
        // this sync covers all of them.
        let upto = self.tickets.load(Ordering::SeqCst);
        let directory = directory.to_owned();
        tokio::task::spawn_blocking(move || {
            let handle = std::fs::File::open(directory)?;
            rustix::fs::syncfs(&handle).map_err(std::io::Error::from)
        })
        .await
        .map_err(std::io::Error::other)??;
        *covered = upto;
        Ok(())
    }
}

pub(super) struct Shared {
    pub(super) config: ReceiverConfig,
    /// The group commit every finished upload waits on.
    pub(super) barrier: Barrier,
    pub(super) locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each open upload's SHA-256 so far and the offset it covers, so a
    /// finished file need not be read again for its receipt. In memory
    /// only: after a restart the file is read once at the end instead.
    pub(super) running: Mutex<HashMap<String, (u64, sha2::Sha256)>>,
}

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub(super) fn http_date(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

pub(super) fn reply(status: StatusCode) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

pub(super) fn reply_text(status: StatusCode, text: &str) -> Response {
    let mut response = reply(status);
    *response.body_mut() = Body::from(format!("{text}\n"));
    response
}

pub(super) fn set(response: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        response.headers_mut().insert(name, value);
    }
}

/// A fresh upload id: 128 random bits, hex.
pub(super) fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Ids are ours (32 hex digits); anything else names no upload.
pub(super) fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, directory fsync.
pub(super) async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = tokio::fs::File::create(&temporary).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temporary, path).await?;
    sync_directory(path.parent().unwrap_or(Path::new("."))).await
}

/// At start, before any request: removes what no client can ever resume,
/// left by a process that was killed: a data file without a state file
/// (a creation with data, or a final upload's concatenation, cut short
/// before its answer) and temporary files of atomic writes.
pub(super) async fn sweep(uploads: &Path) -> std::io::Result<()> {
    let mut entries = tokio::fs::read_dir(uploads).await?;
    let mut removed = false;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let orphan = match path.extension().and_then(|extension| extension.to_str()) {
            Some("part") => tokio::fs::metadata(path.with_extension("json"))
                .await
                .is_err(),
            Some("tmp") => true,
            _ => false,
        };
        if orphan {
            tokio::fs::remove_file(&path).await?;
            removed = true;
        }
    }
    if removed {
        sync_directory(uploads).await?;
    }
    Ok(())
}

pub(super) async fn sync_directory(directory: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(directory).await?.sync_all().await
}

impl Shared {
    pub(super) fn uploads(&self) -> PathBuf {
        self.config.directory.join("uploads")
    }

    pub(super) fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }

    /// Makes a new upload's (empty) data file. Without data to come in the
    /// same request, its state is saved too; with data, nothing is made
    /// durable until the data is: the client learns the upload's URL only
    /// from this request's answer, so a crash before it leaves nothing
    /// anyone could resume.
    pub(super) async fn open(&self, info: &Info, with_data: bool) -> Result<(), Response> {
        let part = self.uploads().join(format!("{}.part", info.id));
        let created = async {
            let file = tokio::fs::File::create(&part).await?;
            if !with_data {
                file.sync_all().await?;
                self.save(info).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        if created.await.is_err() {
            self.remove(&info.id).await;
            return Err(reply_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload could not be stored",
            ));
        }
        Ok(())
    }

    /// An open upload's state; 404 without one, and 410 (its files
    /// removed) once it has expired. A final upload waiting for its
    /// partials expires with them; a partial whose final upload is gone
    /// is gone too.
    pub(super) async fn live(&self, id: &str) -> Result<Info, Response> {
        let Some(info) = self.info(id).await else {
            return Err(reply(StatusCode::NOT_FOUND));
        };
        if info.expires_at < now() && info.parts.is_none() {
            self.remove(id).await;
            return Err(reply(StatusCode::GONE));
        }
        if let Some(taken) = &info.taken {
            if self.info(&taken.by).await.is_none() && self.receipt(&taken.by).await.is_none() {
                self.remove(id).await;
                return Err(reply(StatusCode::GONE));
            }
        }
        Ok(info)
    }

    /// Where an upload's bytes are: its own file, or (a partial taken into
    /// its final upload's file) the final's file and the partial's place
    /// in it.
    pub(super) fn data(&self, info: &Info) -> (PathBuf, Option<u64>) {
        match &info.taken {
            Some(Taken { by, at: Some(at) }) => {
                (self.uploads().join(format!("{by}.part")), Some(*at))
            }
            _ => (self.uploads().join(format!("{}.part", info.id)), None),
        }
    }

    pub(super) async fn info(&self, id: &str) -> Option<Info> {
        let text = tokio::fs::read(self.uploads().join(format!("{id}.json")))
            .await
            .ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub(super) async fn save(&self, info: &Info) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        write_atomically(&self.uploads().join(format!("{}.json", info.id)), &bytes).await
    }

    /// The receipt of a finished upload whose file is still stored whole.
    pub(super) async fn receipt(&self, id: &str) -> Option<Receipt> {
        let path = self
            .config
            .directory
            .join("receipts")
            .join(format!("{id}.json"));
        let receipt: Receipt = serde_json::from_slice(&tokio::fs::read(path).await.ok()?).ok()?;
        let stored = tokio::fs::metadata(self.config.directory.join("complete").join(id))
            .await
            .ok()?;
        (stored.len() == receipt.size).then_some(receipt)
    }

    /// Whether the lose-after-acknowledging fault applies to `id`.
    pub(super) fn loses(&self, id: &str) -> bool {
        self.config.lose_percent > 0
            && sha2::Sha256::digest(id.as_bytes())[0] % 100 < self.config.lose_percent
    }

    /// Takes the running SHA-256 of `id` if it covers exactly `offset` bytes.
    pub(super) fn take_running(&self, id: &str, offset: u64) -> Option<sha2::Sha256> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match running.remove(id) {
            Some((covered, hasher)) if covered == offset => Some(hasher),
            _ if offset == 0 => Some(sha2::Sha256::new()),
            _ => None,
        }
    }

    pub(super) fn keep_running(&self, id: &str, offset: u64, hasher: sha2::Sha256) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), (offset, hasher));
    }

    /// Frees a finished upload (termination): its file and receipt go,
    /// durably.
    pub(super) async fn forget(&self, id: &str) -> std::io::Result<bool> {
        let complete = self.config.directory.join("complete");
        let receipts = self.config.directory.join("receipts");
        let mut found = false;
        for path in [complete.join(id), receipts.join(format!("{id}.json"))] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => found = true,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        if found {
            sync_directory(&receipts).await?;
            sync_directory(&complete).await?;
        }
        Ok(found)
    }

    pub(super) async fn remove(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        for name in [format!("{id}.part"), format!("{id}.json")] {
            let _ = tokio::fs::remove_file(self.uploads().join(name)).await;
        }
    }
}

/// Moves the finished file into place and writes its receipt, durably;
/// returns its SHA-256 (hex). `running` is the file's SHA-256 when it was
/// hashed as it arrived; otherwise the file is read once more. A file whose
/// SHA-256 is not the one its client announced (a draft's `Repr-Digest`)
/// is removed, not kept: the error is `InvalidData`.
pub(super) async fn finish(
    shared: &Shared,
    info: &Info,
    running: Option<sha2::Sha256>,
    concat: Option<String>,
) -> std::io::Result<String> {
    let part = shared.uploads().join(format!("{}.part", info.id));
    let hasher = match running {
        Some(hasher) => hasher,
        None => {
            let mut hasher = sha2::Sha256::new();
            let mut file = tokio::fs::File::open(&part).await?;
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
            hasher
        }
    };
    let sha256: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let announced = info
        .draft
        .as_ref()
        .and_then(|draft| draft.repr_sha256.as_ref());
    if announced.is_some_and(|announced| *announced != sha256) {
        shared.remove(&info.id).await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the data's SHA-256 is not the one Repr-Digest announced",
        ));
    }
    if shared.loses(&info.id) {
        shared.remove(&info.id).await;
        return Ok(sha256);
    }
    let complete = shared.config.directory.join("complete").join(&info.id);
    tokio::fs::rename(&part, &complete).await?;
    // The file's data (its last chunk is not synced on its own) and its
    // move, on disk before the receipt is written.
    shared.barrier.wait(&shared.config.directory).await?;
    let receipt = Receipt {
        id: info.id.clone(),
        size: info.offset,
        sha256: sha256.clone(),
        stored_at: rfc3339(now()),
        metadata: info.metadata.clone(),
        concat,
    };
    let bytes = serde_json::to_vec_pretty(&receipt).map_err(std::io::Error::other)?;
    let path = shared
        .config
        .directory
        .join("receipts")
        .join(format!("{}.json", info.id));
    let temporary = path.with_extension("tmp");
    tokio::fs::write(&temporary, &bytes).await?;
    tokio::fs::rename(&temporary, &path).await?;
    // The receipt, on disk before the answer.
    shared.barrier.wait(&shared.config.directory).await?;
    let _ = tokio::fs::remove_file(shared.uploads().join(format!("{}.json", info.id))).await;
    Ok(sha256)
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
