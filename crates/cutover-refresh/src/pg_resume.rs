//! What a PostgreSQL refresh has finished, journaled in its staging schema so
//! that a killed run can resume. Every step that changes the staging schema
//! (a definition, a column's type, a preserved table, one piece of a copy)
//! commits in the same transaction as its journal row, so the journal never
//! claims a step the schema does not hold. The journal's first row names the
//! plan (cutover's version, the policy, the source's definitions, the source,
//! the masking key's identity): a staging schema made under another plan is
//! never resumed. The journal is dropped before the swap.

use std::collections::{BTreeMap, HashSet};

use cutover_db::Database;
use cutover_db::schema::quote_identifier as quote;
use serde::Serialize;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::sql::{first_column, literal, texts};

/// The journal's table in the staging schema.
const JOURNAL: &str = "cutover_refresh_journal";

/// What `--resume` found and kept.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Resumed {
    /// When the killed run began (RFC 3339, UTC), if it was resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_run_started: Option<String>,
    /// Pieces of the copy (a table, a partition or a key range) kept.
    pub kept_pieces: usize,
    /// Their rows.
    pub kept_rows: u64,
    /// Other finished steps kept (definitions, constraints, indexes).
    pub kept_steps: usize,
    /// Pieces loaded by the killed run that were redone (their partition or
    /// table was not complete, or its count did not match the journal).
    pub redone_pieces: usize,
    /// Why nothing was resumed, when the run started over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_over: Option<String>,
}

impl Resumed {
    /// A resumed run of the one that began at `started`, with `kept_steps`
    /// of its steps finished.
    pub(crate) fn from_run(started: String, kept_steps: usize) -> Resumed {
        Resumed {
            from_run_started: Some(started),
            kept_pieces: 0,
            kept_rows: 0,
            kept_steps,
            redone_pieces: 0,
            started_over: None,
        }
    }

    /// One line saying what was kept, or why nothing was.
    pub fn summary(&self) -> String {
        match (&self.started_over, &self.from_run_started) {
            (Some(reason), _) => format!("nothing resumed: {reason}; started over"),
            (None, started) => format!(
                "resumed the run begun {}: {} copy pieces kept ({} rows), {} redone, {} other steps kept",
                started.as_deref().unwrap_or("earlier"),
                self.kept_pieces,
                self.kept_rows,
                self.redone_pieces,
                self.kept_steps
            ),
        }
    }

    /// Nothing resumed, for `reason`.
    pub(crate) fn started_over(reason: String) -> Resumed {
        Resumed {
            from_run_started: None,
            kept_pieces: 0,
            kept_rows: 0,
            kept_steps: 0,
            redone_pieces: 0,
            started_over: Some(reason),
        }
    }
}

/// One finished copy piece, as journaled.
#[derive(Debug, Clone)]
pub(crate) struct DonePiece {
    pub(crate) id: String,
    pub(crate) rows: u64,
}

/// The journal row a copy piece commits with.
#[derive(Debug, Clone)]
pub(crate) struct PieceRecord {
    table: String,
    id: String,
    relation: String,
}

impl PieceRecord {
    /// The statement that ends the piece's transaction: its journal row
    /// with the `rows` it loaded, and the commit.
    pub(crate) fn commit_sql(&self, rows: u64) -> String {
        format!(
            "INSERT INTO {} (step, relation, rows) VALUES ({}, {}, {rows}); COMMIT",
            self.table,
            literal(&self.id),
            literal(&self.relation)
        )
    }
}

/// The journal of one staging schema.
#[derive(Debug)]
pub(crate) struct Journal {
    /// `stage.journal`, quoted.
    table: String,
    /// Finished steps other than copy pieces.
    steps: HashSet<String>,
    /// Finished copy pieces, by staged relation.
    pieces: BTreeMap<String, Vec<DonePiece>>,
}

/// The plan's identity: a staging schema is resumed only under the same one.
pub(crate) fn plan_identity(parts: &[&str]) -> String {
    let mut digest = sha2::Sha256::new();
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest
        .finalize()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Journal {
    /// A new staging schema `stage` (any earlier one dropped) with an empty
    /// journal under `plan`.
    pub(crate) async fn fresh(target: &Database, stage: &str, plan: &str) -> Result<Journal> {
        let table = format!("{}.{}", quote(stage), quote(JOURNAL));
        target
            .execute_batch(&format!(
                "DROP SCHEMA IF EXISTS {stage} CASCADE; CREATE SCHEMA {stage}; \
                 CREATE TABLE {table} (step text PRIMARY KEY, relation text, \
                 rows bigint, at timestamptz NOT NULL DEFAULT now()); \
                 INSERT INTO {table} (step) VALUES ({})",
                literal(&format!("plan {plan}")),
                stage = quote(stage),
            ))
            .await?;
        Ok(Journal {
            table,
            steps: HashSet::new(),
            pieces: BTreeMap::new(),
        })
    }

    /// The journal of a killed run's staging schema `stage` made under
    /// `plan`, with when that run began; or why it cannot be resumed.
    pub(crate) async fn resume(
        target: &Database,
        stage: &str,
        plan: &str,
    ) -> Result<std::result::Result<(Journal, String), String>> {
        let table = format!("{}.{}", quote(stage), quote(JOURNAL));
        let exists = texts(
            target,
            &format!(
                "SELECT to_regclass({})::text",
                literal(&format!("{}.{}", quote(stage), quote(JOURNAL)))
            ),
            1,
            "the staging schema's journal",
        )
        .await?;
        if exists.first().is_none_or(|row| row[0].is_empty()) {
            return Ok(Err(format!(
                "no staging schema {stage} of a killed run was found"
            )));
        }
        let rows = texts(
            target,
            &format!(
                "SELECT step, coalesce(relation, ''), coalesce(rows, 0)::text, \
                 to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM {table} ORDER BY at, step"
            ),
            4,
            "the staging schema's journal",
        )
        .await?;
        let Some(started) = rows
            .iter()
            .find(|row| row[0].starts_with("plan "))
            .map(|row| (row[0].clone(), row[3].clone()))
        else {
            return Ok(Err(format!("the staging schema {stage} has no plan")));
        };
        if started.0 != format!("plan {plan}") {
            return Ok(Err(format!(
                "the staging schema {stage} was made under another plan \
                 (the policy, the source's schema, the masking secret or cutover's version changed)"
            )));
        }
        let mut journal = Journal {
            table,
            steps: HashSet::new(),
            pieces: BTreeMap::new(),
        };
        for row in rows.into_iter().filter(|row| !row[0].starts_with("plan ")) {
            if row[1].is_empty() {
                journal.steps.insert(row[0].clone());
            } else {
                journal
                    .pieces
                    .entry(row[1].clone())
                    .or_default()
                    .push(DonePiece {
                        id: row[0].clone(),
                        rows: row[2].parse().unwrap_or_default(),
                    });
            }
        }
        Ok(Ok((journal, started.1)))
    }

    /// Whether step `id` is finished.
    pub(crate) fn done(&self, id: &str) -> bool {
        self.steps.contains(id)
    }

    /// Finished steps other than copy pieces.
    pub(crate) fn steps_done(&self) -> usize {
        self.steps.len()
    }

    /// Runs `sql` as step `id` (with its journal row, in one transaction)
    /// unless it is finished.
    pub(crate) async fn step(&mut self, target: &Database, id: &str, sql: &str) -> Result<()> {
        if self.done(id) {
            return Ok(());
        }
        target.execute_batch(&self.step_sql(id, sql)).await?;
        self.steps.insert(id.to_owned());
        Ok(())
    }

    /// `sql` as step `id`: in one transaction with its journal row.
    pub(crate) fn step_sql(&self, id: &str, sql: &str) -> String {
        format!(
            "BEGIN; {sql}; INSERT INTO {} (step) VALUES ({}); COMMIT",
            self.table,
            literal(id)
        )
    }

    /// Records steps that ran elsewhere (their `step_sql` committed).
    pub(crate) fn ran(&mut self, ids: impl IntoIterator<Item = String>) {
        self.steps.extend(ids);
    }

    /// Runs the unfinished `steps` (id and SQL), each with its journal row in
    /// its own transaction, over `jobs` connections opened by `connect`, in
    /// any order: for steps that each touch one table. After a failure no
    /// step starts; the first failure is returned with its SQL.
    pub(crate) async fn steps_in_parallel<Connect, Connecting>(
        &mut self,
        connect: Connect,
        steps: Vec<(String, String)>,
        jobs: usize,
    ) -> std::result::Result<(), (String, Error)>
    where
        Connect: Fn() -> Connecting,
        Connecting: std::future::Future<Output = Result<Database>>,
    {
        let queue: std::sync::Mutex<std::collections::VecDeque<(String, String)>> = steps
            .into_iter()
            .filter(|(id, _)| !self.done(id))
            .collect::<std::collections::VecDeque<_>>()
            .into();
        let jobs = jobs.max(1).min(queue.lock().map_or(0, |queue| queue.len()));
        let failed = std::sync::atomic::AtomicBool::new(false);
        let journal = &*self;
        let worker = || async {
            let mut finished = Vec::new();
            let target = connect().await.map_err(|error| (String::new(), error))?;
            while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                let Some((id, sql)) = queue.lock().ok().and_then(|mut queue| queue.pop_front())
                else {
                    break;
                };
                let done = target.execute_batch(&journal.step_sql(&id, &sql)).await;
                if let Err(error) = done {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err((sql, error.into()));
                }
                finished.push(id);
            }
            Ok(finished)
        };
        let outcomes = futures_util::future::join_all((0..jobs).map(|_| worker())).await;
        let mut first_failure = None;
        for outcome in outcomes {
            match outcome {
                Ok(finished) => self.ran(finished),
                Err(failure) => {
                    first_failure.get_or_insert(failure);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Records step `id` as finished (for steps that are not SQL).
    pub(crate) async fn mark(&mut self, target: &Database, id: &str) -> Result<()> {
        self.step(target, id, "SELECT 1").await
    }

    /// The finished pieces that loaded `relation`.
    pub(crate) fn pieces(&self, relation: &str) -> &[DonePiece] {
        self.pieces.get(relation).map_or(&[], Vec::as_slice)
    }

    /// Forgets the pieces of `relation` (after emptying it).
    pub(crate) async fn forget(&mut self, target: &Database, relation: &str) -> Result<()> {
        target
            .execute_batch(&format!(
                "DELETE FROM {} WHERE relation = {}",
                self.table,
                literal(relation)
            ))
            .await?;
        self.pieces.remove(relation);
        Ok(())
    }

    /// The journal row of copy piece `id`, which loads `relation`.
    pub(crate) fn piece(&self, id: String, relation: &str) -> PieceRecord {
        PieceRecord {
            table: self.table.clone(),
            id,
            relation: relation.to_owned(),
        }
    }

    /// `error`, stopping the copy: when the connection or the server failed
    /// (the same data would load again) and pieces are loaded, the staging
    /// schema is to be kept for `--resume` ([`Error::Interrupted`]).
    pub(crate) async fn interrupted(&self, target: &Database, stage: &str, error: Error) -> Error {
        if !worth_resuming(&error) {
            return error;
        }
        let pieces = first_column(
            target,
            &format!(
                "SELECT count(*)::text FROM {} WHERE relation IS NOT NULL",
                self.table
            ),
            "the staging schema's journal",
        )
        .await
        .ok()
        .and_then(|rows| rows.first()?.parse().ok())
        .unwrap_or(0);
        if pieces == 0 {
            return error;
        }
        Error::Interrupted {
            cause: Box::new(error),
            stage: stage.to_owned(),
            pieces,
        }
    }

    /// Drops the journal (just before the swap).
    pub(crate) async fn drop_table(&self, target: &Database) -> Result<()> {
        target
            .execute_batch(&format!("DROP TABLE {}", self.table))
            .await?;
        Ok(())
    }
}

/// Whether a copy that stopped with `error` is worth resuming: the
/// connection or the server failed (the same data would load), not the
/// data or the SQL (which would fail again).
fn worth_resuming(error: &Error) -> bool {
    match error {
        Error::Database(cutover_db::Error::Postgres { code, .. }) => {
            code.as_deref().is_none_or(|code| {
                ["08", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
            })
        }
        Error::Database(cutover_db::Error::Io { .. }) => true,
        _ => false,
    }
}
