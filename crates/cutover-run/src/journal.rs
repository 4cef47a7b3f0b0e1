//! The run journal (SQLite, WAL, synchronous FULL): every run and every
//! event of its steps (started, finished, failed, approved, waiting,
//! skipped) with its time, outcome and evidence, appended before and after
//! each step runs. Each record carries the SHA-256 of the one before it and
//! its own, so changing, removing or reordering any record is detected by
//! [`Journal::verify`].

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest as _;

/// The run journal's format (`cutover_format`): 1 since formats have versions.
pub const JOURNAL_FORMAT: i64 = 1;

/// A journal failure.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {message}")]
pub struct JournalError {
    path: String,
    message: String,
}

/// One appended record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its position in the journal (from 1).
    pub seq: i64,
    /// The run it belongs to.
    pub run: String,
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The step, or empty for the run itself.
    pub step: String,
    /// What happened: run-started, step-started, step-finished, step-failed,
    /// approved, waiting, step-skipped, run-finished, run-stopped.
    pub event: String,
    /// Outcome, summary and evidence, as JSON.
    pub detail: serde_json::Value,
    /// The previous record's hash (hex; 64 zeros for the first).
    pub prev: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// A run as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// The run's id.
    pub id: String,
    /// The runbook's name.
    pub runbook: String,
    /// The runbook file.
    pub path: String,
    /// The run's directory (reports, outputs).
    pub dir: String,
    /// When it started.
    pub started_at: String,
    /// running, waiting, stopped, failed or finished.
    pub status: String,
}

/// Where a tampered journal first stops adding up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tampered {
    /// The first record that does not check out.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    path: String,
    connection: Connection,
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record's content chained to the previous hash.
fn chain(
    prev: &str,
    seq: i64,
    run: &str,
    at: &str,
    step: &str,
    event: &str,
    detail: &str,
) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in [prev, &seq.to_string(), run, at, step, event, detail] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let error = |error: rusqlite::Error| JournalError {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| JournalError {
                path: path.display().to_string(),
                message: source.to_string(),
            })?;
        }
        let connection = Connection::open(path).map_err(error)?;
        let format = |message: String| JournalError {
            path: path.display().to_string(),
            message,
        };
        cutover_format::check_sqlite(&connection, path, "run journal", JOURNAL_FORMAT)
            .map_err(format)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
                 CREATE TABLE IF NOT EXISTS runs (
                     id TEXT PRIMARY KEY, runbook TEXT NOT NULL, path TEXT NOT NULL, dir TEXT NOT NULL,
                     started_at TEXT NOT NULL, status TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS records (
                     seq INTEGER PRIMARY KEY, run TEXT NOT NULL, at TEXT NOT NULL, step TEXT NOT NULL,
                     event TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS records_by_run ON records (run, seq);",
            )
            .map_err(error)?;
        cutover_format::stamp_sqlite(&connection, path, JOURNAL_FORMAT).map_err(format)?;
        Ok(Journal {
            path: path.display().to_string(),
            connection,
        })
    }

    /// Opens a journal that exists, for a reader beside a running engine
    /// (the console): nothing is created or stamped; a newer format is
    /// refused.
    pub fn open_existing(path: &Path) -> Result<Journal, JournalError> {
        let error = |message: String| JournalError {
            path: path.display().to_string(),
            message,
        };
        let connection =
            cutover_format::open_existing_sqlite(path, "run journal", JOURNAL_FORMAT, false)
                .map_err(error)?;
        connection
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(|e| error(e.to_string()))?;
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('runs', 'records')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| error(e.to_string()))?;
        if tables != 2 {
            return Err(error("not a run journal".to_owned()));
        }
        Ok(Journal {
            path: path.display().to_string(),
            connection,
        })
    }

    /// A number that changes whenever another connection commits to the
    /// journal (SQLite's `data_version`): cheap enough to poll.
    pub fn data_version(&self) -> Result<i64, JournalError> {
        self.connection
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|error| self.error(error))
    }

    /// The last record's sequence number (0 for none).
    pub fn last_seq(&self) -> Result<i64, JournalError> {
        self.connection
            .query_row("SELECT coalesce(max(seq), 0) FROM records", [], |row| {
                row.get(0)
            })
            .map_err(|error| self.error(error))
    }

    /// The runs with records after `seq`.
    pub fn runs_changed_after(&self, seq: i64) -> Result<Vec<String>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT DISTINCT run FROM records WHERE seq > ?1")
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map(params![seq], |row| row.get(0))
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    fn error(&self, error: impl std::fmt::Display) -> JournalError {
        JournalError {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    /// Records a new run.
    pub fn create_run(&mut self, run: &RunInfo) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO runs (id, runbook, path, dir, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run.id, run.runbook, run.path, run.dir, run.started_at, run.status],
            )
            .map_err(|error| self.error(error))?;
        Ok(())
    }

    /// Sets a run's status.
    pub fn set_status(&mut self, run: &str, status: &str) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE runs SET status = ?2 WHERE id = ?1",
                params![run, status],
            )
            .map_err(|error| self.error(error))?;
        Ok(())
    }

    /// Appends a record, chained to the last one, in one synced transaction.
    pub fn append(
        &mut self,
        run: &str,
        step: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<Record, JournalError> {
        let path = self.path.clone();
        let error = |error: rusqlite::Error| JournalError {
            path: path.clone(),
            message: error.to_string(),
        };
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        let last: Option<(i64, String)> = transaction
            .query_row(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(error)?;
        let (seq, prev) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        let at = now();
        let detail_text = detail.to_string();
        let hash = chain(&prev, seq, run, &at, step, event, &detail_text);
        transaction
            .execute(
                "INSERT INTO records (seq, run, at, step, event, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![seq, run, at, step, event, detail_text, prev, hash],
            )
            .map_err(error)?;
        transaction.commit().map_err(error)?;
        Ok(Record {
            seq,
            run: run.to_owned(),
            at,
            step: step.to_owned(),
            event: event.to_owned(),
            detail: detail.clone(),
            prev,
            hash,
        })
    }

    fn read_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunInfo> {
        Ok(RunInfo {
            id: row.get(0)?,
            runbook: row.get(1)?,
            path: row.get(2)?,
            dir: row.get(3)?,
            started_at: row.get(4)?,
            status: row.get(5)?,
        })
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Result<Option<RunInfo>, JournalError> {
        self.connection
            .query_row(
                "SELECT id, runbook, path, dir, started_at, status FROM runs WHERE id = ?1",
                params![id],
                Journal::read_run,
            )
            .optional()
            .map_err(|error| self.error(error))
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>, JournalError> {
        let mut statement = self
            .connection
            .prepare("SELECT id, runbook, path, dir, started_at, status FROM runs ORDER BY started_at, id")
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map([], Journal::read_run)
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    /// The latest run of `runbook` that has not finished, if any.
    pub fn open_run(&self, runbook: &str) -> Result<Option<RunInfo>, JournalError> {
        Ok(self
            .runs()?
            .into_iter()
            .rfind(|run| run.runbook == runbook)
            .filter(|run| run.status != "finished"))
    }

    /// A run's records, in order.
    pub fn records(&self, run: &str) -> Result<Vec<Record>, JournalError> {
        let mut statement = self
            .connection
            .prepare("SELECT seq, run, at, step, event, detail, prev, hash FROM records WHERE run = ?1 ORDER BY seq")
            .map_err(|error| self.error(error))?;
        let rows = statement
            .query_map(params![run], |row| {
                let detail: String = row.get(5)?;
                Ok(Record {
                    seq: row.get(0)?,
                    run: row.get(1)?,
                    at: row.get(2)?,
                    step: row.get(3)?,
                    event: row.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    prev: row.get(6)?,
                    hash: row.get(7)?,
                })
            })
            .map_err(|error| self.error(error))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.error(error))
    }

    /// Checks the whole chain: each record's hash is its content's, and
    /// each names the one before it. The number of records, or where it breaks.
    pub fn verify(&self) -> Result<Result<u64, Tampered>, JournalError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT seq, run, at, step, event, detail, prev, hash FROM records ORDER BY seq",
            )
            .map_err(|error| self.error(error))?;
        let mut rows = statement.query([]).map_err(|error| self.error(error))?;
        let mut expected_prev = GENESIS.to_owned();
        let mut expected_seq = 1i64;
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(|error| self.error(error))? {
            let read = |index: usize| -> Result<String, JournalError> {
                row.get::<_, String>(index)
                    .map_err(|error| self.error(error))
            };
            let seq: i64 = row.get(0).map_err(|error| self.error(error))?;
            let (run, at, step, event, detail, prev, hash) = (
                read(1)?,
                read(2)?,
                read(3)?,
                read(4)?,
                read(5)?,
                read(6)?,
                read(7)?,
            );
            if seq != expected_seq {
                return Ok(Err(Tampered {
                    seq: expected_seq,
                    reason: format!("record {expected_seq} is missing"),
                }));
            }
            if prev != expected_prev {
                return Ok(Err(Tampered {
                    seq,
                    reason: "it does not follow the record before it".to_owned(),
                }));
            }
            if chain(&prev, seq, &run, &at, &step, &event, &detail) != hash {
                return Ok(Err(Tampered {
                    seq,
                    reason: "its content does not match its hash".to_owned(),
                }));
            }
            expected_prev = hash;
            expected_seq += 1;
            count += 1;
        }
        Ok(Ok(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_detects_a_changed_a_removed_and_a_forged_record() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("journal.db");
        let mut journal = Journal::open(&path).expect("journal");
        for step in ["a", "b", "c"] {
            journal
                .append(
                    "run-1",
                    step,
                    "step-finished",
                    &serde_json::json!({"outcome": "passed"}),
                )
                .expect("append");
        }
        assert_eq!(journal.verify().expect("verify"), Ok(3));

        let raw = Connection::open(&path).expect("raw");
        raw.execute(
            "UPDATE records SET detail = '{\"outcome\":\"failed\"}' WHERE seq = 2",
            [],
        )
        .expect("tamper");
        assert_eq!(journal.verify().expect("verify").map_err(|t| t.seq), Err(2));
        raw.execute(
            "UPDATE records SET detail = '{\"outcome\":\"passed\"}' WHERE seq = 2",
            [],
        )
        .expect("undo");
        assert_eq!(journal.verify().expect("verify"), Ok(3));
        raw.execute("DELETE FROM records WHERE seq = 2", [])
            .expect("remove");
        assert_eq!(journal.verify().expect("verify").map_err(|t| t.seq), Err(2));
    }
}
