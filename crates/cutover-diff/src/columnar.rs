//! File sides read by columns (Parquet): the client strategy's two passes
//! over Arrow arrays instead of rows of values. Row groups are read on
//! `--jobs` threads; each cell's canonical encoding comes straight from its
//! array ([`cutover_db::columnar::CellEncoder`]), so the hashes are those
//! of the row-wise path without a value built per cell, and pass two
//! encodes only the rows of mismatching buckets.

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
use crate::engine::Layout;
use crate::error::{Error, Result};
use crate::normalise::Normalise;
use crate::plan::{Opened, SidePlan};

/// The side's file when it is read by columns: a Parquet file, and no
/// leniency to apply to values before hashing (leniencies work on values).
pub(crate) fn columnar_file<'a>(shared: &Shared, opened: &'a Opened) -> Option<&'a FileSource> {
    match opened {
        Opened::File(file)
            if file.scannable() && shared.options.normalise == Normalise::default() =>
        {
            Some(file)
        }
        _ => None,
    }
}

fn threads(shared: &Shared) -> usize {
    shared.options.read_threads.max(1)
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
) -> Result<BucketDigests> {
    let plan = &shared.plan;
    let (key_len, hashed) = (plan.key_len, plan.key_len + plan.compared);
    let columns = side.columns.clone();
    let map: BatchFn<(Vec<(u64, u64)>, u64)> = Arc::new(move |arrays, _| {
        let encoders: Vec<CellEncoder> = arrays
            .iter()
            .zip(&columns)
            .map(|(array, column)| CellEncoder::new(array, column.logical_type))
            .collect();
        let rows = arrays.first().map_or(0, |array| array.len());
        let mut pairs = Vec::with_capacity(rows);
        let mut null_keys = 0;
        let mut buffer = Vec::with_capacity(256);
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
            if layout.partition_of(key_hash) == partition {
                pairs.push((key_hash, xxhash_rust::xxh3::xxh3_64(&buffer)));
            }
        }
        Ok((pairs, null_keys))
    });
    let mut batches = file
        .scan(&side.columns, threads(shared), map)
        .map_err(Error::File)?;
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
    mismatched: Arc<Vec<bool>>,
    sender: &mpsc::Sender<Vec<(i64, Vec<u8>)>>,
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
                Ok(layout.partition_of(key_hash) == partition
                    && mismatched[layout.bucket_of(key_hash) as usize])
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
