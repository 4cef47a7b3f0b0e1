//! Row hashes compared row by row through disk, for two sides that can be
//! read again by key hash (files read by columns): the first pass writes each
//! row's (key hash, row hash) to one of [`PARTS`] files per side by its key
//! hash; then each pair of part files is sorted and merged (on `--jobs`
//! threads), and only the key hashes that are not on both sides once with
//! the same row hash are kept.
//! The second pass reads exactly those rows (whatever the rate of
//! differences, never a bucket's worth of equal neighbours), and memory
//! holds one pair of parts per thread.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashSet;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Part files per side (by bits 32+ of the key hash).
const PARTS: usize = 64;

fn part_of(key_hash: u64) -> usize {
    ((key_hash >> 32) as usize) & (PARTS - 1)
}

fn part_path(directory: &Path, side: &str, part: usize) -> PathBuf {
    directory.join(format!("{side}-{part}.pairs"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes the pairs it receives into the side's part files; returns how many.
pub(crate) fn write(
    directory: &Path,
    side: &str,
    mut receiver: mpsc::Receiver<Vec<(u64, u64)>>,
) -> Result<u64> {
    let mut writers = (0..PARTS)
        .map(|part| {
            let path = part_path(directory, side, part);
            std::fs::File::create(&path)
                .map(|file| BufWriter::with_capacity(64 << 10, file))
                .map_err(io(&path))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut written = 0u64;
    while let Some(batch) = receiver.blocking_recv() {
        for (key_hash, row_hash) in batch {
            let part = part_of(key_hash);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&key_hash.to_le_bytes());
            bytes[8..].copy_from_slice(&row_hash.to_le_bytes());
            writers[part]
                .write_all(&bytes)
                .map_err(io(&part_path(directory, side, part)))?;
            written += 1;
        }
    }
    for (part, writer) in writers.iter_mut().enumerate() {
        writer
            .flush()
            .map_err(io(&part_path(directory, side, part)))?;
    }
    Ok(written)
}

fn read_part(directory: &Path, side: &str, part: usize) -> Result<Vec<(u64, u64)>> {
    let path = part_path(directory, side, part);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    std::fs::remove_file(&path).map_err(io(&path))?;
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        u64::from_le_bytes(word)
    };
    Ok(bytes
        .chunks_exact(16)
        .map(|pair| (word(&pair[..8]), word(&pair[8..])))
        .collect())
}

/// The key hashes whose rows differ (on one side only, more than once on a
/// side, or with another row hash), and how many source rows matched. Each
/// pair of parts is sorted and merged, one pair per thread at a time, on
/// `threads` threads.
pub(crate) fn differing(directory: &Path, threads: usize) -> Result<(FxHashSet<u64>, u64)> {
    let next = AtomicUsize::new(0);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, PARTS))
            .map(|_| {
                scope.spawn(|| -> Result<(FxHashSet<u64>, u64)> {
                    let mut differing = FxHashSet::default();
                    let mut matched = 0;
                    loop {
                        let part = next.fetch_add(1, Ordering::Relaxed);
                        if part >= PARTS {
                            return Ok((differing, matched));
                        }
                        let mut source = read_part(directory, "source", part)?;
                        let mut target = read_part(directory, "target", part)?;
                        source.sort_unstable();
                        target.sort_unstable();
                        matched += merge(&source, &target, |pair| *pair, &mut differing);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker.join().unwrap_or_else(|_| {
                    Err(Error::Internal("pair merge: a thread panicked".into()))
                })
            })
            .collect::<Vec<_>>()
    });
    let mut differing = FxHashSet::default();
    let mut matched = 0;
    for result in results {
        let (part, part_matched) = result?;
        differing.extend(part);
        matched += part_matched;
    }
    Ok((differing, matched))
}

/// Merges two sides' rows sorted by (key hash, row hash), as `hashes`
/// reads them: the key hashes that are not on both sides once with the
/// same row hash go into `differing`; returns how many matched.
pub(crate) fn merge<T>(
    source: &[T],
    target: &[T],
    hashes: impl Fn(&T) -> (u64, u64),
    differing: &mut FxHashSet<u64>,
) -> u64 {
    let mut matched = 0;
    let (mut left, mut right) = (0, 0);
    loop {
        let key = match (source.get(left), target.get(right)) {
            (Some(a), Some(b)) => hashes(a).0.min(hashes(b).0),
            (Some(a), None) => hashes(a).0,
            (None, Some(b)) => hashes(b).0,
            (None, None) => break,
        };
        let left_end = left
            + source[left..]
                .iter()
                .take_while(|row| hashes(row).0 == key)
                .count();
        let right_end = right
            + target[right..]
                .iter()
                .take_while(|row| hashes(row).0 == key)
                .count();
        if left_end - left == 1
            && right_end - right == 1
            && hashes(&source[left]).1 == hashes(&target[right]).1
        {
            matched += 1;
        } else {
            differing.insert(key);
        }
        (left, right) = (left_end, right_end);
    }
    matched
}
