//! The client strategy: cutover reads and hashes every row of both sides
//! into bucket digests, then reads them again keeping only the rows of
//! mismatching buckets, spilled to disk and compared in bucket order.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cutover_db::{ConnectOptions, Value, canonical};

use crate::compare::Shared;
use crate::digests::{BucketDigests, compare_digests};
use crate::engine::{Layout, PartitionStats};
use crate::error::{Error, Result};
use crate::plan::{Opened, SidePlan};
use crate::spill::{SpillSender, spill_and_compare};

/// Key hash and row hash of a row as the client strategy computes them.
fn client_hashes(shared: &Shared, row: &[Value], buffer: &mut Vec<u8>) -> (u64, u64) {
    let plan = &shared.plan;
    buffer.clear();
    for value in &row[..plan.key_len] {
        canonical::encode_into(&shared.options.normalise.for_hash(value), buffer);
    }
    let key_hash = xxhash_rust::xxh3::xxh3_64(buffer);
    for value in &row[plan.key_len..plan.key_len + plan.compared] {
        canonical::encode_into(&shared.options.normalise.for_hash(value), buffer);
    }
    (key_hash, xxhash_rust::xxh3::xxh3_64(buffer))
}

/// One partition with the client strategy: each side read and hashed by
/// cutover into bucket digests, then read again keeping only the rows of
/// mismatching buckets, which are spilled to disk and compared in bucket order.
pub(crate) async fn client_partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    partition: i64,
    rows_read: &Arc<AtomicU64>,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let started = std::time::Instant::now();
    let (source_db, target_db) =
        tokio::try_join!(plan.source.open(connect), plan.target.open(connect))?;
    // Above some millions of rows a bucket holds many rows, and the rows of
    // every mismatching bucket would be read again: compare each row's hashes instead.
    let rows = plan
        .source
        .row_estimate
        .max(plan.target.row_estimate)
        .unwrap_or_default();
    if let (Some(source), Some(target), true) = (
        crate::columnar::columnar_file(shared, &source_db),
        crate::columnar::columnar_file(shared, &target_db),
        rows > shared.options.pairs_above_rows,
    ) {
        return crate::columnar::both_files(shared, (source, target), layout, partition, rows_read)
            .await;
    }
    let source_db = Arc::new(source_db);
    let target_db = Arc::new(target_db);
    let key_len = plan.key_len;
    let digest_side = |side: SidePlan, opened: Arc<Opened>| {
        let shared = shared.clone();
        let rows_read = rows_read.clone();
        tokio::spawn(async move {
            if let Some(file) = crate::columnar::columnar_file(&shared, &opened) {
                return crate::columnar::digests(
                    &shared, &side, file, layout, partition, &rows_read,
                )
                .await;
            }
            let mut rows = side.rows(&opened, key_len).await?;
            let mut digests = BucketDigests::new(layout);
            let mut buffer = Vec::with_capacity(256);
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    digests.null_keys += 1;
                    continue;
                }
                let (key_hash, row_hash) = client_hashes(&shared, &row, &mut buffer);
                if layout.partition_of(key_hash) != partition {
                    continue;
                }
                digests.add(layout, key_hash, row_hash, &rows_read);
            }
            digests.flush_progress(&rows_read);
            Ok::<_, Error>(digests)
        })
    };
    let joined = |handle: tokio::task::JoinHandle<Result<BucketDigests>>| async move {
        handle
            .await
            .map_err(|error| Error::Internal(format!("hashing task: {error}")))?
    };
    let (source_digests, target_digests) = tokio::try_join!(
        joined(digest_side(plan.source.clone(), source_db.clone())),
        joined(digest_side(plan.target.clone(), target_db.clone()))
    )?;
    let (mut stats, mismatched) = compare_digests(&source_digests, &target_digests);
    tracing::debug!(
        partition,
        mismatched = mismatched.iter().filter(|mismatch| **mismatch).count(),
        elapsed = ?started.elapsed(),
        "bucket digests compared"
    );
    stats.source_null_keys = source_digests.null_keys;
    stats.target_null_keys = target_digests.null_keys;
    drop((source_digests, target_digests));
    if !mismatched.iter().any(|mismatch| *mismatch) {
        return Ok(stats);
    }
    let mismatched = Arc::new(mismatched);
    let spill_side = |side: SidePlan, opened: Arc<Opened>, sender: SpillSender| {
        let shared = shared.clone();
        let mismatched = mismatched.clone();
        tokio::spawn(async move {
            if let Some(file) = crate::columnar::columnar_file(&shared, &opened) {
                let keep: crate::columnar::KeyFilter =
                    Arc::new(move |key_hash| mismatched[layout.bucket_of(key_hash) as usize]);
                return crate::columnar::candidates(
                    &shared, &side, file, layout, partition, keep, &sender,
                )
                .await;
            }
            let mut rows = side.rows(&opened, key_len).await?;
            let mut buffer = Vec::with_capacity(256);
            let mut batch = Vec::with_capacity(1_024);
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    continue;
                }
                let (key_hash, _) = client_hashes(&shared, &row, &mut buffer);
                if layout.partition_of(key_hash) != partition {
                    continue;
                }
                let bucket = layout.bucket_of(key_hash);
                if !mismatched[bucket as usize] {
                    continue;
                }
                let mut encoded = Vec::with_capacity(128);
                canonical::encode_row_into(&row, &mut encoded);
                batch.push((bucket, encoded));
                if batch.len() == 1_024 && sender.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
            if !batch.is_empty() {
                let _ = sender.send(batch).await;
            }
            Ok(())
        })
    };
    let joined = |handle: tokio::task::JoinHandle<Result<()>>| async move {
        handle
            .await
            .map_err(|error| Error::Internal(format!("spill task: {error}")))?
    };
    let compared = spill_and_compare(shared, partition, |source, target| async move {
        tokio::try_join!(
            joined(spill_side(plan.source.clone(), source_db, source)),
            joined(spill_side(plan.target.clone(), target_db, target))
        )?;
        Ok(())
    })
    .await?;
    stats.matched += compared.matched;
    tracing::debug!(partition, elapsed = ?started.elapsed(), "mismatching buckets compared");
    Ok(stats)
}
