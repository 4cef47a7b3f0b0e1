//! Row hashes compared row by row through disk, for two sides that can be
//! read again by key hash (files read by columns): the first pass writes each
//! row's (key hash, row hash) to one of [`PARTS`] files per side by its key
//! hash; then each pair of part files is sorted and merged, and only the key
//! hashes that are not on both sides once with the same row hash are kept.
//! The second pass reads exactly those rows (whatever the rate of
//! differences, never a bucket's worth of equal neighbours), and memory
//! holds one part at a time.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

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
    let file = std::fs::File::open(&path).map_err(io(&path))?;
    let length = file.metadata().map_err(io(&path))?.len() as usize;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut pairs = Vec::with_capacity(length / 16);
    let mut bytes = [0u8; 16];
    for _ in 0..length / 16 {
        reader.read_exact(&mut bytes).map_err(io(&path))?;
        let mut key = [0u8; 8];
        let mut row = [0u8; 8];
        key.copy_from_slice(&bytes[..8]);
        row.copy_from_slice(&bytes[8..]);
        pairs.push((u64::from_le_bytes(key), u64::from_le_bytes(row)));
    }
    std::fs::remove_file(&path).map_err(io(&path))?;
    pairs.sort_unstable();
    Ok(pairs)
}

/// The key hashes whose rows differ (on one side only, more than once on a
/// side, or with another row hash), and how many source rows matched.
pub(crate) fn differing(directory: &Path) -> Result<(FxHashSet<u64>, u64)> {
    let mut differing = FxHashSet::default();
    let mut matched = 0u64;
    for part in 0..PARTS {
        let source = read_part(directory, "source", part)?;
        let target = read_part(directory, "target", part)?;
        matched += merge(&source, &target, |pair| *pair, &mut differing);
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
