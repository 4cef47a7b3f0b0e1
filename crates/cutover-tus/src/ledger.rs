//! The sender's durable ledger (SQLite, WAL, synchronous FULL): one row per
//! file with its size, modification time, SHA-256 (of what was sent, known
//! once it was), metadata, upload URL and attempts, and a state machine
//! `queued → uploading → acknowledged → verified`, with `missing →
//! replayed`, `undelivered` (held by the receiver, never delivered onwards)
//! and `failed` branches; every transition is kept with its time and the
//! upload URL it came with. Each change is one committed transaction, so the ledger
//! survives a kill at any point and a rerun continues from it.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// A file's delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Known, not sent yet.
    Queued,
    /// An upload exists; sending.
    Uploading,
    /// The server took every byte (its own answer; not yet proof).
    Acknowledged,
    /// Read back from the receiver and found whole.
    Verified,
    /// A check could not find it on the receiver.
    Missing,
    /// Sent again as a new upload after it went missing.
    Replayed,
    /// The receiver holds it whole, but never delivered it onwards within
    /// the settling time: not lost, not verified.
    Undelivered,
    /// Gave up (the reason is in the transitions).
    Failed,
}

impl State {
    /// The state's name in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Uploading => "uploading",
            State::Acknowledged => "acknowledged",
            State::Verified => "verified",
            State::Missing => "missing",
            State::Replayed => "replayed",
            State::Undelivered => "undelivered",
            State::Failed => "failed",
        }
    }

    /// Every state, in the order of the state machine.
    pub const ALL: [State; 8] = [
        State::Queued,
        State::Uploading,
        State::Acknowledged,
        State::Verified,
        State::Missing,
        State::Replayed,
        State::Undelivered,
        State::Failed,
    ];

    /// Whether a file in this state needs someone's attention (exit 1).
    pub fn is_problem(self) -> bool {
        matches!(self, State::Missing | State::Undelivered | State::Failed)
    }

    fn parse(name: &str) -> State {
        match name {
            "uploading" => State::Uploading,
            "acknowledged" => State::Acknowledged,
            "verified" => State::Verified,
            "missing" => State::Missing,
            "replayed" => State::Replayed,
            "undelivered" => State::Undelivered,
            "failed" => State::Failed,
            _ => State::Queued,
        }
    }
}

/// One file as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file's path, as given to the sender.
    pub path: String,
    /// Its size in bytes when recorded.
    pub size: u64,
    /// The SHA-256 of what was sent, hex (empty until known).
    pub sha256: String,
    /// The upload metadata (always with `filename`).
    pub metadata: BTreeMap<String, String>,
    /// The latest upload's URL.
    pub upload_url: Option<String>,
    /// Its state.
    pub state: State,
    /// How many times it was replayed.
    pub replays: u32,
    /// When its state last changed (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub updated_at: String,
}

#[cfg(test)]
impl Entry {
    /// An acknowledged file of 42 bytes, `a b.xml`, uploaded to `url`.
    pub(crate) fn sample(url: &str) -> Entry {
        Entry {
            path: "out/a.xml".into(),
            size: 42,
            sha256: "ab".repeat(32),
            metadata: [("filename".to_owned(), "a b.xml".to_owned())].into(),
            upload_url: Some(url.to_owned()),
            state: State::Acknowledged,
            replays: 0,
            updated_at: String::new(),
        }
    }
}

/// A state change to record.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The file.
    pub path: String,
    /// The new state.
    pub state: State,
    /// A new upload URL, if the change comes with one.
    pub upload_url: Option<String>,
    /// Why, in words (never file content).
    pub detail: Option<String>,
    /// The SHA-256 of what was sent, once known.
    pub sha256: Option<String>,
}

/// A file to record before it is sent.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The file's path, as given to the sender.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time (nanoseconds since the epoch).
    pub mtime: i64,
    /// The upload metadata as a JSON object.
    pub metadata: String,
}

/// An upload the ledger knows a file by (its current one, or one a replay
/// or a new send replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownUpload {
    /// The upload id (the last segment of its URL).
    pub upload_id: String,
    /// The file.
    pub path: String,
    /// Whether it is the file's current upload.
    pub current: bool,
    /// The file's state.
    pub state: String,
    /// The day (UTC) the upload was first recorded, `YYYY-MM-DD`.
    pub day: String,
}

/// The delivery ledger's format (`cutover_format`): 1 since formats have
/// versions; 2 adds the `parts` of files sent as parallel partial uploads
/// (a format 1 ledger gains the table when it is opened for writing).
pub const LEDGER_FORMAT: i64 = 2;

/// One partial upload of a file sent in parallel parts: the file's bytes
/// `start .. start + length`, at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The byte of the file it starts at.
    pub start: u64,
    /// Its length in bytes.
    pub length: u64,
    /// Its upload URL.
    pub url: String,
}

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
#[error("ledger {path}: {message}")]
pub struct LedgerError {
    path: String,
    message: String,
}

/// The ledger file.
#[derive(Debug)]
pub struct Ledger {
    path: String,
    connection: Connection,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Ledger {
    /// Opens (or creates) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let error = |error: rusqlite::Error| LedgerError {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let connection = Connection::open(path).map_err(error)?;
        let format = |message: String| LedgerError {
            path: path.display().to_string(),
            message,
        };
        cutover_format::check_sqlite(&connection, path, "delivery ledger", LEDGER_FORMAT)
            .map_err(format)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS files (
                     path TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
                     metadata TEXT NOT NULL, upload_url TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                     state TEXT NOT NULL, updated_at TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS transitions (
                     path TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL, detail TEXT);
                 CREATE INDEX IF NOT EXISTS transitions_by_path ON transitions (path, state);
                 CREATE TABLE IF NOT EXISTS parts (
                     path TEXT NOT NULL, part INTEGER NOT NULL, start INTEGER NOT NULL,
                     length INTEGER NOT NULL, url TEXT NOT NULL, PRIMARY KEY (path, part));",
            )
            .map_err(error)?;
        // Columns later versions added to ledgers written before them.
        for (table, column, kind) in [
            ("files", "mtime", "INTEGER"),
            ("transitions", "upload_url", "TEXT"),
        ] {
            let present = connection
                .prepare(&format!("SELECT {column} FROM {table} LIMIT 0"))
                .is_ok();
            if !present {
                connection
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                    .map_err(error)?;
            }
        }
        cutover_format::stamp_sqlite(&connection, path, LEDGER_FORMAT).map_err(format)?;
        Ok(Ledger {
            path: path.display().to_string(),
            connection,
        })
    }

    /// Opens a ledger that exists, read-only, for a reader beside a running
    /// sender (the console); a newer format is refused.
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        let error = |message: String| LedgerError {
            path: path.display().to_string(),
            message,
        };
        let connection =
            cutover_format::open_existing_sqlite(path, "delivery ledger", LEDGER_FORMAT, true)
                .map_err(error)?;
        Ok(Ledger {
            path: path.display().to_string(),
            connection,
        })
    }

    fn error(&self, error: rusqlite::Error) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    /// Records files to send, all in one synced transaction; returns each
    /// one's state and upload URL. A file already recorded with the same
    /// size and modification time keeps its state; one that changed starts
    /// again as queued.
    pub fn enqueue(
        &mut self,
        files: &[Queued],
    ) -> Result<Vec<(State, Option<String>)>, LedgerError> {
        let at = now();
        let path_text = self.path.clone();
        let error = |error: rusqlite::Error| LedgerError {
            path: path_text.clone(),
            message: error.to_string(),
        };
        let transaction = self.connection.transaction().map_err(error)?;
        let mut states = Vec::with_capacity(files.len());
        {
            let mut known = transaction
                .prepare_cached("SELECT size, mtime, state, upload_url FROM files WHERE path = ?1")
                .map_err(error)?;
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO files (path, size, mtime, sha256, metadata, state, updated_at)
                     VALUES (?1, ?2, ?3, '', ?4, 'queued', ?5)
                     ON CONFLICT (path) DO UPDATE SET size = ?2, mtime = ?3, sha256 = '', metadata = ?4,
                       upload_url = NULL, attempts = 0, state = 'queued', updated_at = ?5",
                )
                .map_err(error)?;
            let mut queued = transaction
                .prepare_cached(
                    "INSERT INTO transitions (path, state, at) VALUES (?1, 'queued', ?2)",
                )
                .map_err(error)?;
            for file in files {
                let row: Option<(i64, Option<i64>, String, Option<String>)> = known
                    .query_row(params![file.path], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()
                    .map_err(error)?;
                match row {
                    Some((size, Some(mtime), state, url))
                        if size as u64 == file.size && mtime == file.mtime =>
                    {
                        states.push((State::parse(&state), url));
                    }
                    _ => {
                        upsert
                            .execute(params![
                                file.path,
                                file.size as i64,
                                file.mtime,
                                file.metadata,
                                at
                            ])
                            .map_err(error)?;
                        queued.execute(params![file.path, at]).map_err(error)?;
                        states.push((State::Queued, None));
                    }
                }
            }
        }
        transaction.commit().map_err(error)?;
        Ok(states)
    }

    /// The partial uploads recorded for `path` (sent in parallel parts and
    /// not yet concatenated), in order.
    pub fn parts(&self, path: &str) -> Result<Vec<Part>, LedgerError> {
        let error = |error: rusqlite::Error| self.error(error);
        let mut statement = self
            .connection
            .prepare_cached("SELECT start, length, url FROM parts WHERE path = ?1 ORDER BY part")
            .map_err(error)?;
        let rows = statement
            .query_map([path], |row| {
                Ok(Part {
                    start: row.get::<_, i64>(0)?.try_into().unwrap_or_default(),
                    length: row.get::<_, i64>(1)?.try_into().unwrap_or_default(),
                    url: row.get(2)?,
                })
            })
            .map_err(error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(error)
    }

    /// Replaces the partial uploads recorded for `path` (none: the file is
    /// not, or no longer, in parts), in one synced transaction.
    pub fn set_parts(&mut self, path: &str, parts: &[Part]) -> Result<(), LedgerError> {
        let path_text = self.path.clone();
        let error = |error: rusqlite::Error| LedgerError {
            path: path_text.clone(),
            message: error.to_string(),
        };
        let transaction = self.connection.transaction().map_err(error)?;
        transaction
            .execute("DELETE FROM parts WHERE path = ?1", [path])
            .map_err(error)?;
        for (index, part) in parts.iter().enumerate() {
            transaction
                .execute(
                    "INSERT INTO parts (path, part, start, length, url) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        path,
                        i64::try_from(index).unwrap_or(i64::MAX),
                        i64::try_from(part.start).unwrap_or(i64::MAX),
                        i64::try_from(part.length).unwrap_or(i64::MAX),
                        part.url
                    ],
                )
                .map_err(error)?;
        }
        transaction.commit().map_err(error)
    }

    /// Moves a file to `state` (with its upload URL when it has a new one),
    /// counting an attempt when it starts uploading.
    pub fn transition(
        &mut self,
        path: &str,
        state: State,
        upload_url: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.record(&[Transition {
            path: path.to_owned(),
            state,
            upload_url: upload_url.map(str::to_owned),
            detail: detail.map(str::to_owned),
            sha256: None,
        }])
    }

    /// Records several state changes in one synced transaction: all or none.
    pub fn record(&mut self, transitions: &[Transition]) -> Result<(), LedgerError> {
        let at = now();
        let path_text = self.path.clone();
        let error = |error: rusqlite::Error| LedgerError {
            path: path_text.clone(),
            message: error.to_string(),
        };
        let transaction = self.connection.transaction().map_err(error)?;
        {
            let mut update = transaction
                .prepare_cached(
                    "UPDATE files SET state = ?2, upload_url = coalesce(?3, upload_url),
                       attempts = attempts + (?2 IN ('uploading', 'replayed') AND ?3 IS NOT NULL), updated_at = ?4,
                       sha256 = coalesce(?5, sha256)
                     WHERE path = ?1",
                )
                .map_err(error)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO transitions (path, state, at, detail, upload_url) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(error)?;
            for change in transitions {
                let name = change.state.name();
                update
                    .execute(params![
                        change.path,
                        name,
                        change.upload_url,
                        at,
                        change.sha256
                    ])
                    .map_err(error)?;
                insert
                    .execute(params![
                        change.path,
                        name,
                        at,
                        change.detail,
                        change.upload_url
                    ])
                    .map_err(error)?;
            }
        }
        transaction.commit().map_err(error)
    }

    /// The files in any of `states`, in path order.
    pub fn entries(&self, states: &[State]) -> Result<Vec<Entry>, LedgerError> {
        let names: Vec<&str> = states.iter().map(|state| state.name()).collect();
        let mut statement = self
            .connection
            .prepare(
                "SELECT f.path, f.size, f.sha256, f.metadata, f.upload_url, f.state,
                   (SELECT count(*) FROM transitions t WHERE t.path = f.path AND t.state = 'replayed'),
                   f.updated_at
                 FROM files f WHERE f.state IN (SELECT value FROM json_each(?1)) ORDER BY f.path",
            )
            .map_err(|error| self.error(error))?;
        let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
        let rows = statement
            .query_map(params![names], |row| {
                let metadata: String = row.get(3)?;
                Ok(Entry {
                    path: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    sha256: row.get(2)?,
                    metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                    upload_url: row.get(4)?,
                    state: State::parse(&row.get::<_, String>(5)?),
                    replays: row.get::<_, i64>(6)? as u32,
                    updated_at: row.get(7)?,
                })
            })
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    /// Files per day (the day each was first recorded, UTC), data stream
    /// (the `data_stream` or `data_stream_id` metadata value, or empty) and state, in that order.
    pub fn report(&self) -> Result<Vec<(String, String, String, u64)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT substr(first.at, 1, 10),
                   coalesce(json_extract(f.metadata, '$.data_stream'), json_extract(f.metadata, '$.data_stream_id'), ''),
                   f.state, count(*)
                 FROM files f JOIN (SELECT path, min(at) AS at FROM transitions GROUP BY path) first USING (path)
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            )
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    /// Every upload the ledger knows for files of one data stream and
    /// route (`data_stream_id`, `data_stream_route` metadata).
    pub fn uploads(&self, stream: &str, route: &str) -> Result<Vec<KnownUpload>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT t.upload_url, f.path, t.upload_url = coalesce(f.upload_url, ''), f.state, substr(min(t.at), 1, 10)
                 FROM transitions t JOIN files f USING (path)
                 WHERE t.upload_url IS NOT NULL
                   AND json_extract(f.metadata, '$.data_stream_id') = ?1
                   AND json_extract(f.metadata, '$.data_stream_route') = ?2
                 GROUP BY t.upload_url, f.path
                 UNION ALL
                 SELECT f.upload_url, f.path, 1, f.state, substr(f.updated_at, 1, 10)
                 FROM files f
                 WHERE f.upload_url IS NOT NULL
                   AND json_extract(f.metadata, '$.data_stream_id') = ?1
                   AND json_extract(f.metadata, '$.data_stream_route') = ?2
                   AND NOT EXISTS (SELECT 1 FROM transitions t WHERE t.path = f.path AND t.upload_url = f.upload_url)",
            )
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map(params![stream, route], |row| {
                let url: String = row.get(0)?;
                Ok(KnownUpload {
                    upload_id: crate::verify::upload_id(&url).to_owned(),
                    path: row.get(1)?,
                    current: row.get(2)?,
                    state: row.get(3)?,
                    day: row.get(4)?,
                })
            })
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    /// Files per state.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare("SELECT state, count(*) FROM files GROUP BY state ORDER BY state")
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }
}
