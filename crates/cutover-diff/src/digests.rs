//! Bucket digests: per bucket of the key-hash space, the rows and the XOR
//! of each row's mix of key hash and row hash, summed by cutover from
//! (key hash, row hash) pairs (the client strategy, and the server strategy
//! when servers stream pairs), and compared bucket by bucket.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{Layout, PartitionStats};

/// Rows between progress reports.
const PROGRESS_EVERY: u64 = 16_384;

/// A bucket's share of a row: the row hash mixed with its key hash, so that
/// two keys swapping their rows changes the bucket's digest.
pub(crate) fn mix(key_hash: u64, row_hash: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&key_hash.to_le_bytes());
    bytes[8..].copy_from_slice(&row_hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Compares two sides' bucket digests: counts, and which buckets differ.
pub(crate) fn compare_digests(
    source: &BucketDigests,
    target: &BucketDigests,
) -> (PartitionStats, Vec<bool>) {
    let mut stats = PartitionStats {
        source_rows: source.rows,
        target_rows: target.rows,
        ..PartitionStats::default()
    };
    let mismatched = source
        .cells
        .iter()
        .zip(&target.cells)
        .map(|(source, target)| {
            let equal = source == target;
            if equal {
                stats.matched += u64::from(source.count);
            }
            !equal
        })
        .collect();
    (stats, mismatched)
}

/// A bucket's rows and the XOR of their [`mix`]es, side by side so that
/// adding a row touches one cache line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    pub digest: u64,
    pub count: u32,
}

/// One side's bucket digests for a partition: rows per bucket, and the XOR of
/// each row's [`mix`] of key hash and row hash.
pub(crate) struct BucketDigests {
    pub cells: Vec<Cell>,
    pub rows: u64,
    /// Rows skipped for a NULL in the key (files; databases filter them in SQL).
    pub null_keys: u64,
}

impl BucketDigests {
    pub(crate) fn new(layout: Layout) -> BucketDigests {
        BucketDigests {
            cells: vec![Cell::default(); layout.buckets() as usize],
            rows: 0,
            null_keys: 0,
        }
    }

    pub(crate) fn add(
        &mut self,
        layout: Layout,
        key_hash: u64,
        row_hash: u64,
        rows_read: &AtomicU64,
    ) {
        let cell = &mut self.cells[layout.bucket_of(key_hash) as usize];
        cell.count = cell.count.wrapping_add(1);
        cell.digest ^= mix(key_hash, row_hash);
        self.rows += 1;
        if self.rows % PROGRESS_EVERY == 0 {
            rows_read.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
        }
    }

    pub(crate) fn flush_progress(&self, rows_read: &AtomicU64) {
        rows_read.fetch_add(self.rows % PROGRESS_EVERY, Ordering::Relaxed);
    }
}
