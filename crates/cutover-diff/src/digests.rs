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
        .counts
        .iter()
        .zip(&target.counts)
        .zip(source.digests.iter().zip(&target.digests))
        .map(
            |((source_count, target_count), (source_digest, target_digest))| {
                let equal = source_count == target_count && source_digest == target_digest;
                if equal {
                    stats.matched += u64::from(*source_count);
                }
                !equal
            },
        )
        .collect();
    (stats, mismatched)
}

/// One side's bucket digests for a partition: rows per bucket, and the XOR of
/// each row's [`mix`] of key hash and row hash.
pub(crate) struct BucketDigests {
    pub counts: Vec<u32>,
    pub digests: Vec<u64>,
    pub rows: u64,
    /// Rows skipped for a NULL in the key (files; databases filter them in SQL).
    pub null_keys: u64,
}

impl BucketDigests {
    pub(crate) fn new(layout: Layout) -> BucketDigests {
        let buckets = layout.buckets() as usize;
        BucketDigests {
            counts: vec![0; buckets],
            digests: vec![0; buckets],
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
        let bucket = layout.bucket_of(key_hash) as usize;
        self.counts[bucket] = self.counts[bucket].wrapping_add(1);
        self.digests[bucket] ^= mix(key_hash, row_hash);
        self.rows += 1;
        if self.rows % PROGRESS_EVERY == 0 {
            rows_read.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
        }
    }

    pub(crate) fn flush_progress(&self, rows_read: &AtomicU64) {
        rows_read.fetch_add(self.rows % PROGRESS_EVERY, Ordering::Relaxed);
    }
}
