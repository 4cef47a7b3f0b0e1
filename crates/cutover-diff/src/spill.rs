//! Candidate rows spilled to a temporary SQLite file and read back in
//! bucket order, so that comparing them needs one bucket in memory at a time.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_db::{Row, canonical};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::compare::{Candidates, Compared, Shared, compare};
use crate::error::{Error, Result};

/// Where one side's candidates are sent: batches of (bucket, canonical row).
pub(crate) type SpillSender = mpsc::Sender<Vec<(i64, Vec<u8>)>>;

/// Spills each side's candidate rows, as `fill` sends them through the two
/// senders it is given (the source's first), to a temporary file of its own
/// as they come; then compares the two spills bucket by bucket. Every
/// strategy that reads candidates in no particular order ends here.
pub(crate) async fn spill_and_compare<F>(
    shared: &Arc<Shared>,
    partition: i64,
    fill: impl FnOnce(SpillSender, SpillSender) -> F,
) -> Result<Compared>
where
    F: Future<Output = Result<()>>,
{
    let directory = spill_directory()?;
    let source_path = directory.path().join("source.db");
    let target_path = directory.path().join("target.db");
    let writer = |path: &Path| {
        let (sender, receiver) = mpsc::channel(4);
        let path = path.to_path_buf();
        (
            sender,
            tokio::task::spawn_blocking(move || spill_write(&path, receiver)),
        )
    };
    let (source_sender, source_writer) = writer(&source_path);
    let (target_sender, target_writer) = writer(&target_path);
    // The senders go with `fill`: when it is done, the writers finish.
    let filled = fill(source_sender, target_sender).await;
    let mut written = Ok(());
    for writer in [source_writer, target_writer] {
        let result = writer
            .await
            .map_err(|error| Error::Internal(format!("spill writer: {error}")))
            .and_then(|result| result);
        written = written.and(result);
    }
    filled?;
    written?;
    compare(
        shared,
        partition,
        spill_read(source_path),
        spill_read(target_path),
    )
    .await
}

/// A temporary directory for one partition's spill files.
pub(crate) fn spill_directory() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("cutover-spill-")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir().display().to_string(),
            source,
        })
}

fn spill_connection(path: &Path) -> Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)
        .map_err(|error| Error::store(format!("opening spill file {}", path.display()), error))?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;",
        )
        .map_err(|error| Error::store("setting up a spill file", error))?;
    Ok(connection)
}

fn spill_write(path: &Path, mut receiver: mpsc::Receiver<Vec<(i64, Vec<u8>)>>) -> Result<()> {
    let mut connection = spill_connection(path)?;
    connection
        .execute_batch("CREATE TABLE candidate (bucket INTEGER NOT NULL, row BLOB NOT NULL)")
        .map_err(|error| Error::store("creating a spill file", error))?;
    let transaction = connection
        .transaction()
        .map_err(|error| Error::store("writing a spill file", error))?;
    {
        let mut insert = transaction
            .prepare("INSERT INTO candidate (bucket, row) VALUES (?1, ?2)")
            .map_err(|error| Error::store("writing a spill file", error))?;
        while let Some(batch) = receiver.blocking_recv() {
            for (bucket, row) in batch {
                insert
                    .execute(rusqlite::params![bucket, row])
                    .map_err(|error| Error::store("writing a spill file", error))?;
            }
        }
    }
    transaction
        .commit()
        .map_err(|error| Error::store("writing a spill file", error))
}

/// Reads spilled candidates back in bucket order.
fn spill_read(path: PathBuf) -> Candidates {
    let (sender, receiver) = mpsc::channel::<Result<Vec<(i64, Row)>>>(4);
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<()> {
            let connection = spill_connection(&path)?;
            let mut statement = connection
                .prepare("SELECT bucket, row FROM candidate ORDER BY bucket")
                .map_err(|error| Error::store("reading a spill file", error))?;
            let mut rows = statement
                .query([])
                .map_err(|error| Error::store("reading a spill file", error))?;
            let mut batch = Vec::with_capacity(1_024);
            while let Some(row) = rows
                .next()
                .map_err(|error| Error::store("reading a spill file", error))?
            {
                let bucket: i64 = row
                    .get(0)
                    .map_err(|error| Error::store("reading a spill file", error))?;
                let bytes: Vec<u8> = row
                    .get(1)
                    .map_err(|error| Error::store("reading a spill file", error))?;
                let values = canonical::decode_row(&bytes)
                    .ok_or_else(|| Error::Internal("spill file holds an undecodable row".into()))?;
                batch.push((bucket, values));
                if batch.len() == 1_024
                    && sender
                        .blocking_send(Ok(std::mem::take(&mut batch)))
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = sender.blocking_send(Ok(batch));
            }
            Ok(())
        })();
        if let Err(error) = result {
            let _ = sender.blocking_send(Err(error));
        }
    });
    cutover_db::from_batches(receiver).boxed()
}
