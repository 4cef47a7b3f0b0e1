//! File sides read by columns (Parquet, CSV): the client strategy's two passes
//! over Arrow arrays instead of rows of values. Row groups are read on
//! `--jobs` threads; each cell's canonical encoding comes straight from its
//! array ([`cutover_db::columnar::CellEncoder`]), so the hashes are those
//! of the row-wise path without a value built per cell, and pass two
//! encodes only the rows of mismatching buckets.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_array::ArrayRef;
use cutover_db::Column;
use cutover_db::columnar::CellEncoder;
use cutover_files::{BatchFn, FileSource, KeptFn, SelectFn, Unreadable};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::compare::Shared;
use crate::digests::BucketDigests;
use crate::engine::{Layout, PartitionStats};
use crate::error::{Error, Result};
use crate::kept::KeptRows;
use crate::normalise::Normalise;
use crate::plan::{Opened, SidePlan};
use crate::spill::{SpillSender, spill_and_compare, spill_directory};

/// The side's file when it is read by columns: a Parquet or CSV file or
/// dataset, with no leniency to apply to values before hashing (leniencies
/// work on values).
pub(crate) fn columnar_file<'a>(shared: &Shared, opened: &'a Opened) -> Option<&'a FileSource> {
    match opened {
        Opened::File(file) if shared.options.normalise == Normalise::default() => Some(file),
        _ => None,
    }
}

fn threads(shared: &Shared) -> usize {
    shared.options.read_threads.max(1)
}

/// Pass one's reading: each row's (key hash, row hash) in the partition, a
/// batch at a time, with the batch's rows that have a NULL in the key.
type Hashed =
    futures_util::stream::BoxStream<'static, cutover_files::Result<(Vec<(u64, u64)>, u64)>>;

fn hashed_rows(
    shared: &Arc<Shared>,
    side: &SidePlan,
    file: &FileSource,
    layout: Layout,
    partition: i64,
    kept: Option<Arc<KeptRows>>,
) -> Result<Hashed> {
    let plan = &shared.plan;
    let (key_len, hashed) = (plan.key_len, plan.key_len + plan.compared);
    let columns = side.columns.clone();
    let map: BatchFn<(Vec<(u64, u64)>, u64)> = Arc::new(move |arrays, _| {
        let encoders = encoders(arrays, &columns);
        let rows = arrays.first().map_or(0, |array| array.len());
        let mut pairs = Vec::with_capacity(rows);
        let mut null_keys = 0;
        let mut buffer = Vec::with_capacity(256);
        let kept = kept.as_ref().filter(|kept| kept.keeping());
        let mut records = if kept.is_some() {
            crate::kept::buffer()
        } else {
            Vec::new()
        };
        for row in 0..rows {
            if encoders[..key_len]
                .iter()
                .any(|encoder| encoder.is_null(row))
            {
                null_keys += 1;
                continue;
            }
            buffer.clear();
            let mut key_hash = 0;
            for (column, encoder) in encoders[..hashed].iter().enumerate() {
                if !encoder.encode(row, &mut buffer) {
                    return Err(Unreadable { row, column });
                }
                if column + 1 == key_len {
                    key_hash = xxhash_rust::xxh3::xxh3_64(&buffer);
                }
            }
            if layout.partition_of(key_hash) != partition {
                continue;
            }
            let row_hash = xxhash_rust::xxh3::xxh3_64(&buffer);
            pairs.push((key_hash, row_hash));
            if kept.is_some() {
                for (column, encoder) in encoders.iter().enumerate().skip(hashed) {
                    if !encoder.encode(row, &mut buffer) {
                        return Err(Unreadable { row, column });
                    }
                }
                crate::kept::record(&mut records, key_hash, row_hash, &buffer);
            }
        }
        if let Some(kept) = kept {
            kept.keep(pairs.len() as u64, &records);
            crate::kept::give_back(records);
        }
        Ok((pairs, null_keys))
    });
    file.scan(&side.columns, threads(shared), map)
        .map_err(Error::File)
}

/// Pass one: the side's bucket digests for the partition, and its rows
/// with a NULL in the key.
pub(crate) async fn digests(
    shared: &Arc<Shared>,
    side: &SidePlan,
    file: &FileSource,
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
    kept: Option<Arc<KeptRows>>,
) -> Result<BucketDigests> {
    let mut batches = hashed_rows(shared, side, file, layout, partition, kept)?;
    let mut digests = BucketDigests::new(layout);
    while let Some(batch) = batches.next().await {
        let (pairs, null_keys) = batch.map_err(Error::File)?;
        digests.null_keys += null_keys;
        for (key_hash, row_hash) in pairs {
            digests.add(layout, key_hash, row_hash, rows_read);
        }
    }
    digests.flush_progress(rows_read);
    Ok(digests)
}

/// Pass one when both sides are files read by columns: every row's hashes
/// written to part files by key hash ([`crate::pairs`]); returns the rows
/// read and the rows with a NULL in the key.
async fn spill_pairs(
    shared: &Arc<Shared>,
    side: &SidePlan,
    file: &FileSource,
    layout: Layout,
    partition: i64,
    directory: PathBuf,
    rows_read: &AtomicU64,
) -> Result<(u64, u64)> {
    let mut batches = hashed_rows(shared, side, file, layout, partition, None)?;
    let (sender, receiver) = mpsc::channel::<Vec<(u64, u64)>>(4);
    let name = side.role;
    let writer =
        tokio::task::spawn_blocking(move || crate::pairs::write(&directory, name, receiver));
    let mut null_keys = 0;
    while let Some(batch) = batches.next().await {
        let (pairs, nulls) = batch.map_err(Error::File)?;
        null_keys += nulls;
        rows_read.fetch_add(
            pairs.len() as u64 + nulls,
            std::sync::atomic::Ordering::Relaxed,
        );
        if sender.send(pairs).await.is_err() {
            break;
        }
    }
    drop(sender);
    let rows = writer
        .await
        .map_err(|error| Error::Internal(format!("pair writer: {error}")))??;
    Ok((rows, null_keys))
}

/// One partition of the client strategy when both sides are files read by
/// columns: row hashes compared through disk, then exactly the differing
/// rows read, spilled and compared.
pub(crate) async fn both_files(
    shared: &Arc<Shared>,
    (source, target): (&FileSource, &FileSource),
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let started = std::time::Instant::now();
    let directory = spill_directory()?;
    let path = directory.path().to_path_buf();
    let ((source_rows, source_null_keys), (target_rows, target_null_keys)) = tokio::try_join!(
        spill_pairs(
            shared,
            &plan.source,
            source,
            layout,
            partition,
            path.clone(),
            rows_read
        ),
        spill_pairs(
            shared,
            &plan.target,
            target,
            layout,
            partition,
            path.clone(),
            rows_read
        )
    )?;
    tracing::debug!(partition, elapsed = ?started.elapsed(), "row hashes written");
    let (differing, matched) = {
        let (path, threads) = (path.clone(), threads(shared));
        tokio::task::spawn_blocking(move || crate::pairs::differing(&path, threads))
            .await
            .map_err(|error| Error::Internal(format!("pair merge: {error}")))??
    };
    tracing::debug!(partition, differing = differing.len(), elapsed = ?started.elapsed(), "row hashes compared");
    let mut stats = PartitionStats {
        source_rows,
        target_rows,
        matched,
        source_null_keys,
        target_null_keys,
    };
    if differing.is_empty() {
        return Ok(stats);
    }
    let differing = Arc::new(differing);
    let keep: KeyFilter = Arc::new(move |key_hash| differing.contains(&key_hash));
    let spill_side = |side: &SidePlan, file: &FileSource, sender: SpillSender| {
        let (shared, side, file, keep) = (shared.clone(), side.clone(), file.clone(), keep.clone());
        async move { candidates(&shared, &side, &file, layout, partition, keep, &sender).await }
    };
    let compared = spill_and_compare(
        shared,
        partition,
        |source_sender, target_sender| async move {
            tokio::try_join!(
                spill_side(&plan.source, source, source_sender),
                spill_side(&plan.target, target, target_sender)
            )?;
            Ok(())
        },
    )
    .await?;
    stats.matched += compared.matched;
    tracing::debug!(partition, elapsed = ?started.elapsed(), "differing rows compared");
    Ok(stats)
}

/// Which key hashes pass two keeps.
pub(crate) type KeyFilter = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// The key hash of a row whose key columns are `encoders`; `Err` names
/// the column that cannot be read.
fn key_hash(encoders: &[CellEncoder], row: usize, buffer: &mut Vec<u8>) -> Result<u64, Unreadable> {
    buffer.clear();
    for (column, encoder) in encoders.iter().enumerate() {
        if !encoder.encode(row, buffer) {
            return Err(Unreadable { row, column });
        }
    }
    Ok(xxhash_rust::xxh3::xxh3_64(buffer))
}

fn encoders<'a>(arrays: &'a [ArrayRef], columns: &[Column]) -> Vec<CellEncoder<'a>> {
    arrays
        .iter()
        .zip(columns)
        .map(|(array, column)| CellEncoder::new(array, column.logical_type))
        .collect()
}

/// Pass two: the canonical encodings of the rows of mismatching buckets,
/// sent to the spill writer with their bucket. The key columns are read
/// first to choose the rows; the other columns of the chosen rows only.
pub(crate) async fn candidates(
    shared: &Arc<Shared>,
    side: &SidePlan,
    file: &FileSource,
    layout: Layout,
    partition: i64,
    keep: KeyFilter,
    sender: &SpillSender,
) -> Result<()> {
    let key_len = shared.plan.key_len;
    let key_columns = side.columns[..key_len].to_vec();
    let select: SelectFn = Arc::new(move |arrays| {
        let encoders = encoders(arrays, &key_columns);
        let rows = arrays.first().map_or(0, |array| array.len());
        let mut buffer = Vec::with_capacity(64);
        (0..rows)
            .map(|row| {
                if encoders.iter().any(|encoder| encoder.is_null(row)) {
                    return Ok(false);
                }
                let key_hash = key_hash(&encoders, row, &mut buffer)?;
                Ok(layout.partition_of(key_hash) == partition && keep(key_hash))
            })
            .collect()
    });
    let columns = side.columns.clone();
    let map: KeptFn<Vec<(i64, Vec<u8>)>> = Arc::new(move |arrays, _| {
        let encoders = encoders(arrays, &columns);
        let rows = arrays.first().map_or(0, |array| array.len());
        let mut kept = Vec::with_capacity(rows);
        let mut buffer = Vec::with_capacity(256);
        for row in 0..rows {
            let bucket = layout.bucket_of(key_hash(&encoders[..key_len], row, &mut buffer)?);
            for (column, encoder) in encoders.iter().enumerate().skip(key_len) {
                if !encoder.encode(row, &mut buffer) {
                    return Err(Unreadable { row, column });
                }
            }
            kept.push((bucket, buffer.clone()));
        }
        Ok(kept)
    });
    let mut batches = file
        .scan_selected(&side.columns, key_len, threads(shared), select, map)
        .map_err(Error::File)?;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(Error::File)?;
        if !batch.is_empty() && sender.send(batch).await.is_err() {
            break;
        }
    }
    Ok(())
}
