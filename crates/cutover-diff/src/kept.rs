//! A side's rows kept on disk by the first pass over a file read by
//! columns: each row's canonical encoding, written as the rows are hashed,
//! so that the second pass reads the rows of mismatching buckets back from
//! this file (sequentially, from the page cache as a rule) instead of
//! decoding the file's column chunks again.
//!
//! Only where it pays: the rows are kept while their projected size (the
//! bytes per row so far times the side's rows) stays within a share of the
//! memory the system has available, so that the file stays in the page
//! cache; beyond it the side gives up keeping (early, from the first
//! batches' projection) and its second pass reads the file again.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::engine::Layout;
use crate::error::{Error, Result};
use crate::spill::SpillSender;

/// Bytes of a record before the row's encoding: key hash, row hash, length.
const HEADER: usize = 20;
/// Rows seen before the projection decides.
const PROJECT_AFTER: u64 = 32_768;
/// Rows sent to the spill at a time.
const SEND_BATCH: usize = 1_024;

/// One side's kept rows.
#[derive(Debug)]
pub(crate) struct KeptRows {
    file: Mutex<BufWriter<File>>,
    path: PathBuf,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// The side's rows (from the files' footers).
    expected_rows: u64,
    /// Most bytes to keep.
    cap: u64,
    given_up: AtomicBool,
}

/// The bytes a run may keep for both sides: a quarter of the memory the
/// system reports available (Linux), else 1 GiB.
pub(crate) fn keep_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemAvailable:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kb| kb * 1024);
    available.map_or(1 << 30, |bytes| bytes / 4)
}

impl KeptRows {
    /// Keeps a side's rows in `directory`, at most `cap` bytes.
    pub(crate) fn new(directory: &Path, side: &str, expected_rows: u64, cap: u64) -> Result<Self> {
        let path = directory.join(format!("{side}.rows"));
        let file = File::create(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(KeptRows {
            file: Mutex::new(BufWriter::with_capacity(256 << 10, file)),
            path,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            expected_rows,
            cap,
            given_up: AtomicBool::new(false),
        })
    }

    /// Whether the side still keeps its rows.
    pub(crate) fn keeping(&self) -> bool {
        !self.given_up.load(Ordering::Relaxed)
    }

    /// Appends a batch's records (see [`record`]); gives up keeping when
    /// the projection or the writing fails.
    pub(crate) fn keep(&self, rows: u64, records: &[u8]) {
        if !self.keeping() {
            return;
        }
        let seen = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let bytes = self
            .bytes
            .fetch_add(records.len() as u64, Ordering::Relaxed)
            + records.len() as u64;
        let projected = if seen >= PROJECT_AFTER {
            bytes / seen.max(1) * self.expected_rows.max(seen)
        } else {
            bytes
        };
        if projected > self.cap || bytes > self.cap {
            self.give_up("more rows than the page cache holds comfortably");
            return;
        }
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = file.write_all(records) {
            drop(file);
            self.give_up(&error.to_string());
        }
    }

    fn give_up(&self, why: &str) {
        if !self.given_up.swap(true, Ordering::Relaxed) {
            tracing::debug!(path = %self.path.display(), why, "rows no longer kept");
        }
    }

    /// After the first pass: whether every row was kept (the file flushed).
    pub(crate) fn complete(&self) -> bool {
        if !self.keeping() {
            return false;
        }
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        match file.flush() {
            Ok(()) => true,
            Err(error) => {
                drop(file);
                self.give_up(&error.to_string());
                false
            }
        }
    }

    fn io(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The second pass's first step: the kept rows whose key hash `keep`
    /// accepts, as (key hash, row hash, where the record is), sorted.
    pub(crate) fn candidates(
        &self,
        keep: &(dyn Fn(u64) -> bool + Send + Sync),
    ) -> Result<Vec<(u64, u64, u64)>> {
        let io = self.io();
        let file = File::open(&self.path).map_err(&io)?;
        let length = file.metadata().map_err(&io)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER];
        let mut candidates = Vec::new();
        let mut offset = 0u64;
        while offset < length {
            reader.read_exact(&mut header).map_err(&io)?;
            let (key_hash, row_hash, len) = parse_header(&header);
            if keep(key_hash) {
                candidates.push((key_hash, row_hash, offset));
            }
            reader.seek_relative(len as i64).map_err(&io)?;
            offset += (HEADER + len) as u64;
        }
        candidates.sort_unstable();
        Ok(candidates)
    }

    /// The second pass's last step: the rows at `offsets` (from
    /// [`KeptRows::candidates`]) sent to the spill with their bucket.
    pub(crate) fn send(
        &self,
        layout: Layout,
        mut offsets: Vec<u64>,
        sender: &SpillSender,
    ) -> Result<()> {
        offsets.sort_unstable();
        let io = self.io();
        let mut reader = BufReader::with_capacity(64 << 10, File::open(&self.path).map_err(&io)?);
        let mut position = 0u64;
        let mut header = [0u8; HEADER];
        let mut batch = Vec::with_capacity(SEND_BATCH);
        for offset in offsets {
            reader
                .seek_relative(offset as i64 - position as i64)
                .map_err(&io)?;
            reader.read_exact(&mut header).map_err(&io)?;
            let (key_hash, _, len) = parse_header(&header);
            let mut row = vec![0u8; len];
            reader.read_exact(&mut row).map_err(&io)?;
            position = offset + (HEADER + len) as u64;
            batch.push((layout.bucket_of(key_hash), row));
            if batch.len() == SEND_BATCH
                && sender.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
        Ok(())
    }
}

/// The second pass when both sides' rows were kept: the rows of mismatching
/// buckets (as `keep` says) compared by their hashes first, so that only the
/// rows of keys that differ reach the spill; returns how many more matched.
pub(crate) fn second_pass(
    sides: [&KeptRows; 2],
    layout: Layout,
    keep: &(dyn Fn(u64) -> bool + Send + Sync),
    senders: [&SpillSender; 2],
) -> Result<u64> {
    let [source, target] = std::thread::scope(|scope| {
        let scans = sides.map(|side| scope.spawn(move || side.candidates(keep)));
        scans.map(|scan| {
            scan.join()
                .unwrap_or_else(|_| Err(Error::Internal("kept rows: a scan panicked".into())))
        })
    });
    let (source, target) = (source?, target?);
    let mut differing = rustc_hash::FxHashSet::default();
    let matched = crate::pairs::merge(&source, &target, |row| (row.0, row.1), &mut differing);
    for ((side, rows), sender) in sides.iter().zip([source, target]).zip(senders) {
        let offsets = rows
            .iter()
            .filter(|row| differing.contains(&row.0))
            .map(|row| row.2)
            .collect();
        side.send(layout, offsets, sender)?;
    }
    Ok(matched)
}

fn parse_header(header: &[u8; HEADER]) -> (u64, u64, usize) {
    let word = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes[..range.len()].copy_from_slice(&header[range]);
        u64::from_le_bytes(bytes)
    };
    (word(0..8), word(8..16), word(16..20) as usize)
}

thread_local! {
    /// A reading thread's records buffer, used batch after batch (a fresh
    /// megabyte per batch would cost page faults each time).
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The calling thread's empty records buffer.
pub(crate) fn buffer() -> Vec<u8> {
    BUFFER.with(|buffer| std::mem::take(&mut *buffer.borrow_mut()))
}

/// Gives a records buffer back to the calling thread, emptied.
pub(crate) fn give_back(mut records: Vec<u8>) {
    records.clear();
    BUFFER.with(|buffer| *buffer.borrow_mut() = records);
}

/// Appends a kept row's record to a batch's records: key hash, row hash,
/// length, encoding.
pub(crate) fn record(records: &mut Vec<u8>, key_hash: u64, row_hash: u64, row: &[u8]) {
    records.extend_from_slice(&key_hash.to_le_bytes());
    records.extend_from_slice(&row_hash.to_le_bytes());
    records.extend_from_slice(&(row.len() as u32).to_le_bytes());
    records.extend_from_slice(row);
}
