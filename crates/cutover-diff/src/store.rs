//! The work database: a SQLite file (the `--state` file, or a temporary one)
//! holding the findings and which partitions are finished. Findings of a
//! partition are committed together with its "done" mark, so a killed run
//! resumes from the last finished partition and nothing is counted twice.
//!
//! Row values are written here only when the caller keeps values (for
//! `--output`, `--into` or `--show-values`); otherwise only keys, column names
//! and group values are stored.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// The partition id of the whole-table checks (NULL keys, duplicate keys).
pub(crate) const CHECKS_PARTITION: i64 = -1;

/// The state file's format (`cutover_format`): 1 since formats have versions.
pub const STATE_FORMAT: i64 = 1;

/// Findings per transaction before a commit (a partition's end commits too).
const COMMIT_EVERY: usize = 20_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partition_done (partition INTEGER PRIMARY KEY, stats TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS finding (
    id INTEGER PRIMARY KEY,
    partition INTEGER NOT NULL,
    kind TEXT NOT NULL,
    side TEXT NOT NULL DEFAULT '',
    key_id BLOB NOT NULL,
    key TEXT NOT NULL,
    columns TEXT,
    groups TEXT,
    count INTEGER,
    source TEXT,
    target TEXT,
    UNIQUE (kind, side, key_id)
);
";

/// One finding as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredFinding {
    pub partition: i64,
    pub kind: &'static str,
    pub side: &'static str,
    pub key_id: Vec<u8>,
    pub key: String,
    pub columns: Option<String>,
    pub groups: Option<String>,
    pub count: Option<u64>,
    pub source: Option<String>,
    pub target: Option<String>,
}

enum Message {
    Finding(Box<StoredFinding>),
    Done { partition: i64, stats: String },
}

/// The open work database.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens (or creates) the work database. With an existing state file, the
    /// fingerprint must match; findings of unfinished partitions are dropped.
    /// Returns the store and the partitions already done.
    pub fn open(state: Option<&Path>, fingerprint: &str) -> Result<(Store, HashSet<i64>)> {
        let (path, temporary) = match state {
            Some(path) => (path.to_path_buf(), None),
            None => {
                let directory = tempfile::Builder::new()
                    .prefix("cutover-diff-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        path: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                (directory.path().join("work.db"), Some(directory))
            }
        };
        let connection = connect(&path)?;
        let format = |message: String| Error::Store {
            context: format!("state file {}", path.display()),
            message,
        };
        cutover_format::check_sqlite(&connection, &path, "diff state file", STATE_FORMAT)
            .map_err(format)?;
        connection
            .execute_batch(SCHEMA)
            .map_err(|error| Error::store(format!("creating {}", path.display()), error))?;
        cutover_format::stamp_sqlite(&connection, &path, STATE_FORMAT).map_err(format)?;
        let existing: Option<String> = connection
            .query_row(
                "SELECT value FROM meta WHERE name = 'fingerprint'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|error| Error::store(format!("reading {}", path.display()), error))?;
        match existing {
            Some(existing) if existing != fingerprint => {
                return Err(Error::StateMismatch {
                    path: path.display().to_string(),
                });
            }
            Some(_) => {}
            None => {
                connection
                    .execute(
                        "INSERT INTO meta (name, value) VALUES ('fingerprint', ?1)",
                        [fingerprint],
                    )
                    .map_err(|error| Error::store(format!("writing {}", path.display()), error))?;
            }
        }
        connection
            .execute(
                "DELETE FROM finding WHERE partition NOT IN (SELECT partition FROM partition_done)",
                [],
            )
            .map_err(|error| Error::store(format!("resuming {}", path.display()), error))?;
        let done = {
            let mut statement = connection
                .prepare("SELECT partition FROM partition_done")
                .map_err(|error| Error::store("reading finished partitions", error))?;
            statement
                .query_map([], |row| row.get::<_, i64>(0))
                .and_then(|rows| rows.collect::<std::result::Result<HashSet<i64>, _>>())
                .map_err(|error| Error::store("reading finished partitions", error))?
        };
        Ok((
            Store {
                path,
                _temporary: temporary,
            },
            done,
        ))
    }

    /// A connection for reading results.
    pub fn reader(&self) -> Result<Connection> {
        connect(&self.path)
    }

    /// Starts the single writer thread.
    pub fn writer(&self) -> Result<Writer> {
        let connection = connect(&self.path)?;
        let (sender, receiver) = mpsc::channel::<Message>(4_096);
        let handle = std::thread::Builder::new()
            .name("cutover-diff-store".into())
            .spawn(move || write_loop(connection, receiver))
            .map_err(|source| Error::Io {
                path: "store writer thread".into(),
                source,
            })?;
        Ok(Writer {
            sender: Some(sender),
            handle: Some(handle),
        })
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)
        .map_err(|error| Error::store(format!("opening {}", path.display()), error))?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000;",
        )
        .map_err(|error| Error::store(format!("opening {}", path.display()), error))?;
    Ok(connection)
}

fn write_loop(mut connection: Connection, mut receiver: mpsc::Receiver<Message>) -> Result<()> {
    let mut pending = 0usize;
    let mut transaction = connection
        .transaction()
        .map_err(|error| Error::store("writing findings", error))?;
    while let Some(message) = receiver.blocking_recv() {
        match message {
            Message::Finding(finding) => {
                transaction
                    .execute(
                        "INSERT OR IGNORE INTO finding (partition, kind, side, key_id, key, columns, groups, count, source, target) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            finding.partition,
                            finding.kind,
                            finding.side,
                            finding.key_id,
                            finding.key,
                            finding.columns,
                            finding.groups,
                            finding.count.map(|count| i64::try_from(count).unwrap_or(i64::MAX)),
                            finding.source,
                            finding.target,
                        ],
                    )
                    .map_err(|error| Error::store("writing a finding", error))?;
                pending += 1;
                if pending < COMMIT_EVERY {
                    continue;
                }
            }
            Message::Done { partition, stats } => {
                transaction
                    .execute(
                        "INSERT OR REPLACE INTO partition_done (partition, stats) VALUES (?1, ?2)",
                        params![partition, stats],
                    )
                    .map_err(|error| Error::store("recording a finished partition", error))?;
            }
        }
        transaction
            .commit()
            .map_err(|error| Error::store("committing findings", error))?;
        pending = 0;
        transaction = connection
            .transaction()
            .map_err(|error| Error::store("writing findings", error))?;
    }
    transaction
        .commit()
        .map_err(|error| Error::store("committing findings", error))
}

/// Sends findings to the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    sender: Option<mpsc::Sender<Message>>,
    handle: Option<std::thread::JoinHandle<Result<()>>>,
}

/// A cheap handle for sending findings from concurrent tasks.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    sender: mpsc::Sender<Message>,
}

impl Writer {
    pub fn handle(&self) -> Result<WriterHandle> {
        self.sender
            .clone()
            .map(|sender| WriterHandle { sender })
            .ok_or_else(|| Error::Internal("store writer already finished".into()))
    }

    /// Waits until everything sent is committed.
    pub async fn finish(mut self) -> Result<()> {
        drop(self.sender.take());
        let handle = self
            .handle
            .take()
            .ok_or_else(|| Error::Internal("store writer already finished".into()))?;
        tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|error| Error::Internal(format!("store writer: {error}")))?
            .map_err(|_| Error::Internal("store writer panicked".into()))?
    }
}

impl WriterHandle {
    pub async fn finding(&self, finding: StoredFinding) -> Result<()> {
        self.sender
            .send(Message::Finding(Box::new(finding)))
            .await
            .map_err(|_| Error::Internal("store writer stopped".into()))
    }

    pub async fn done(&self, partition: i64, stats: String) -> Result<()> {
        self.sender
            .send(Message::Done { partition, stats })
            .await
            .map_err(|_| Error::Internal("store writer stopped".into()))
    }
}
