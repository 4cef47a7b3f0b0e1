//! The client strategy: cutover reads and hashes every row of both sides
//! into bucket digests, then reads them again keeping only the rows of
//! mismatching buckets, spilled to disk and compared in bucket order.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cutover_db::{ConnectOptions, Value, canonical};
use cutover_files::FileSource;

use crate::compare::Shared;
use crate::digests::{BucketDigests, compare_digests};
use crate::engine::{Layout, PartitionStats};
use crate::error::{Error, Result};
use crate::kept::KeptRows;
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
    // A file read by columns keeps its rows on disk in the first pass where
    // they fit the page cache, for the second pass to read back.
    let budget = shared
        .options
        .kept_bytes
        .unwrap_or_else(crate::kept::keep_budget)
        / 2;
    let source_file = crate::columnar::columnar_file(shared, &source_db).filter(|_| budget > 0);
    let target_file = crate::columnar::columnar_file(shared, &target_db).filter(|_| budget > 0);
    let directory = match source_file.or(target_file) {
        Some(_) => Some(crate::spill::spill_directory()?),
        None => None,
    };
    let kept = |side: &SidePlan, file: Option<&FileSource>| -> Result<Option<Arc<KeptRows>>> {
        let (Some(file), Some(directory)) = (file, &directory) else {
            return Ok(None);
        };
        let rows = file.row_count().unwrap_or_default();
        Ok(Some(Arc::new(KeptRows::new(
            directory.path(),
            side.role,
            rows,
            budget,
        )?)))
    };
    let source_kept = kept(&plan.source, source_file)?;
    let target_kept = kept(&plan.target, target_file)?;
    let source_db = Arc::new(source_db);
    let target_db = Arc::new(target_db);
    let key_len = plan.key_len;
    let digest_side = |side: SidePlan, opened: Arc<Opened>, kept: Option<Arc<KeptRows>>| {
        let shared = shared.clone();
        let rows_read = rows_read.clone();
        tokio::spawn(async move {
            if let Some(file) = crate::columnar::columnar_file(&shared, &opened) {
                return crate::columnar::digests(
                    &shared, &side, file, layout, partition, &rows_read, kept,
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
        joined(digest_side(
            plan.source.clone(),
            source_db.clone(),
            source_kept.clone()
        )),
        joined(digest_side(
            plan.target.clone(),
            target_db.clone(),
            target_kept.clone()
        ))
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
    let keep: crate::columnar::KeyFilter = {
        let bits = Bits::from(&mismatched);
        Arc::new(move |key_hash| bits.get(layout.bucket_of(key_hash) as usize))
    };
    if let (Some(source_kept), Some(target_kept)) = (
        source_kept.clone().filter(|kept| kept.complete()),
        target_kept.clone().filter(|kept| kept.complete()),
    ) {
        let more_matched = Arc::new(AtomicU64::new(0));
        let compared = spill_and_compare(shared, partition, |source, target| {
            let (more_matched, keep) = (more_matched.clone(), keep.clone());
            async move {
                let matched = tokio::task::spawn_blocking(move || {
                    crate::kept::second_pass(
                        [&source_kept, &target_kept],
                        layout,
                        keep.as_ref(),
                        [&source, &target],
                    )
                })
                .await
                .map_err(|error| Error::Internal(format!("kept rows: {error}")))??;
                more_matched.store(matched, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
        })
        .await?;
        stats.matched += compared.matched + more_matched.load(std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(partition, elapsed = ?started.elapsed(), "mismatching buckets compared");
        return Ok(stats);
    }
    let spill_side = |side: SidePlan,
                      opened: Arc<Opened>,
                      kept: Option<Arc<KeptRows>>,
                      sender: SpillSender| {
        let (shared, keep) = (shared.clone(), keep.clone());
        tokio::spawn(async move {
            if let Some(kept) = kept.filter(|kept| kept.complete()) {
                return tokio::task::spawn_blocking(move || {
                    let offsets = kept
                        .candidates(keep.as_ref())?
                        .into_iter()
                        .map(|row| row.2)
                        .collect();
                    kept.send(layout, offsets, &sender)
                })
                .await
                .map_err(|error| Error::Internal(format!("kept rows: {error}")))?;
            }
            if let Some(file) = crate::columnar::columnar_file(&shared, &opened) {
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
                if !keep(key_hash) {
                    continue;
                }
                let bucket = layout.bucket_of(key_hash);
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
            joined(spill_side(
                plan.source.clone(),
                source_db,
                source_kept,
                source
            )),
            joined(spill_side(
                plan.target.clone(),
                target_db,
                target_kept,
                target
            ))
        )?;
        Ok(())
    })
    .await?;
    stats.matched += compared.matched;
    tracing::debug!(partition, elapsed = ?started.elapsed(), "mismatching buckets compared");
    Ok(stats)
}

/// Which buckets mismatched, a bit each (small enough to stay in cache
/// while every row's bucket is looked up).
struct Bits(Vec<u64>);

impl Bits {
    fn from(flags: &[bool]) -> Bits {
        let mut words = vec![0u64; flags.len().div_ceil(64)];
        for (index, flag) in flags.iter().enumerate() {
            if *flag {
                words[index / 64] |= 1 << (index % 64);
            }
        }
        Bits(words)
    }

    fn get(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }
}
