//! The journal: an append-only file of held calls, each record framed as
//! `[length u32][crc32 u32][payload]`, synced before its call is answered.
//! A torn record at the end (a crash mid-write) was never answered and is cut
//! off when the journal is opened. Replay outcomes go to a second file of
//! fixed 16-byte records (`[id u64][status u16][0 u16][crc32 u32]`, little
//! endian), written in place into space that was zero-filled and synced
//! ahead, so syncing an outcome flushes its data block and no metadata.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{Error, Result};

/// The hold journal's format (`cutover_format`): 1 since formats have versions.
pub const HOLD_FORMAT: i64 = 1;

const CALLS: &str = "calls.log";
const OUTCOMES: &str = "outcomes.bin";
/// The outcomes file of earlier versions: one `id status` line per call.
const OUTCOMES_TEXT: &str = "replayed.log";
/// Bytes of one outcome record.
const OUTCOME_RECORD: u64 = 16;
/// Outcome records zero-filled (and synced) ahead at a time.
const OUTCOME_BLOCK: u64 = 4096;
/// Calls written together under one fdatasync at the most.
const GROUP: usize = 512;

/// One held call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The hold id (1, 2, 3, … in arrival order).
    pub id: u64,
    /// When it arrived, µs since the epoch.
    pub received_at: i64,
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers kept (hop-by-hop and secret ones removed).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Call {
    fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(64 + self.body.len());
        payload.extend_from_slice(&self.id.to_be_bytes());
        payload.extend_from_slice(&self.received_at.to_be_bytes());
        put(&mut payload, self.method.as_bytes());
        put(&mut payload, self.path.as_bytes());
        payload.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for (name, value) in &self.headers {
            put(&mut payload, name.as_bytes());
            put(&mut payload, value);
        }
        put(&mut payload, &self.body);
        let mut record = Vec::with_capacity(8 + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        record.extend_from_slice(&payload);
        record
    }

    fn decode(payload: &[u8]) -> Option<Call> {
        let mut cursor = Cursor { payload, at: 0 };
        let id = u64::from_be_bytes(cursor.take(8)?.try_into().ok()?);
        let received_at = i64::from_be_bytes(cursor.take(8)?.try_into().ok()?);
        let method = String::from_utf8(cursor.field()?).ok()?;
        let path = String::from_utf8(cursor.field()?).ok()?;
        let count = u32::from_be_bytes(cursor.take(4)?.try_into().ok()?);
        let mut headers = Vec::new();
        for _ in 0..count {
            let name = String::from_utf8(cursor.field()?).ok()?;
            headers.push((name, cursor.field()?));
        }
        let body = cursor.field()?;
        Some(Call {
            id,
            received_at,
            method,
            path,
            headers,
            body,
        })
    }
}

struct Cursor<'a> {
    payload: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, length: usize) -> Option<&[u8]> {
        let slice = self.payload.get(self.at..self.at.checked_add(length)?)?;
        self.at += length;
        Some(slice)
    }

    fn field(&mut self) -> Option<Vec<u8>> {
        let length = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(length).map(<[u8]>::to_vec)
    }
}

/// Refuses a journal of a newer format than this cutover writes.
fn check_format(directory: &Path) -> Result<()> {
    cutover_format::check_directory(directory, "hold journal", HOLD_FORMAT)
        .map_err(|message| journal_error(directory, message))
}

fn journal_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Journal {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// Reads the calls of a journal in order.
#[derive(Debug)]
pub struct JournalReader {
    path: PathBuf,
    reader: BufReader<File>,
    index: u64,
    /// Bytes of whole records read so far.
    pub valid_length: u64,
}

impl JournalReader {
    /// Opens the calls of the journal in `directory`.
    pub fn open(directory: &Path) -> Result<JournalReader> {
        check_format(directory)?;
        let path = directory.join(CALLS);
        let file = File::open(&path).map_err(|error| journal_error(&path, error))?;
        Ok(JournalReader {
            path,
            reader: BufReader::new(file),
            index: 0,
            valid_length: 0,
        })
    }

    /// The next call; `None` at the end, or at a torn last record.
    pub fn next_call(&mut self) -> Result<Option<Call>> {
        let mut header = [0u8; 8];
        match read_full(&mut self.reader, &mut header) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => return Err(journal_error(&self.path, error)),
        }
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let mut payload = vec![0u8; length];
        match read_full(&mut self.reader, &mut payload) {
            Ok(true) => {}
            // A torn tail: the call was never answered.
            Ok(false) => return Ok(None),
            Err(error) => return Err(journal_error(&self.path, error)),
        }
        self.index += 1;
        let damaged = |message: &str| Error::Damaged {
            path: self.path.display().to_string(),
            index: self.index,
            message: message.to_owned(),
        };
        if crc32fast::hash(&payload) != crc {
            // Only the last record can be torn; a bad one with more after it is damage.
            let mut rest = [0u8; 1];
            return match self.reader.read(&mut rest) {
                Ok(0) => Ok(None),
                _ => Err(damaged("checksum mismatch")),
            };
        }
        let call = Call::decode(&payload).ok_or_else(|| damaged("unreadable"))?;
        self.valid_length += 8 + length as u64;
        Ok(Some(call))
    }
}

/// Fills `buffer`; `false` when the input ends first (nothing or part read).
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => return Ok(false),
            read => filled += read,
        }
    }
    Ok(true)
}

type Request = (
    Call,
    tokio::sync::oneshot::Sender<std::result::Result<u64, String>>,
);

/// The journal being written: calls go to a writer thread that appends and
/// syncs them in groups and answers each once it is durable.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::Sender<Request>,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    directory: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal in `directory`: refuses a directory it
    /// cannot write and sync, and cuts off a torn last record.
    pub fn open(directory: &Path) -> Result<Journal> {
        std::fs::create_dir_all(directory).map_err(|error| journal_error(directory, error))?;
        check_format(directory)?;
        cutover_format::stamp_directory(directory, HOLD_FORMAT)
            .map_err(|message| journal_error(directory, message))?;
        let path = directory.join(CALLS);
        if !path.exists() {
            File::create(&path).map_err(|error| journal_error(&path, error))?;
            sync_directory(directory)?;
        }
        let mut reader = JournalReader::open(directory)?;
        let mut last = 0;
        while let Some(call) = reader.next_call()? {
            last = call.id;
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        file.set_len(reader.valid_length)
            .and_then(|()| file.sync_all())
            .map_err(|error| journal_error(&path, error))?;
        drop(file);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        // Refuse to start rather than accept calls it cannot keep.
        file.write_all(&[])
            .and_then(|()| file.sync_data())
            .map_err(|error| journal_error(&path, error))?;
        let (sender, receiver) = mpsc::channel::<Request>();
        let next_id = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(last + 1));
        let writer_ids = next_id.clone();
        std::thread::Builder::new()
            .name("cutover-hold-journal".into())
            .spawn(move || write_loop(file, receiver, &writer_ids))
            .map_err(|error| journal_error(&path, error))?;
        Ok(Journal {
            sender,
            next_id,
            directory: directory.to_owned(),
        })
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Calls held so far (the last id handed out).
    pub fn held(&self) -> u64 {
        self.next_id.load(std::sync::atomic::Ordering::SeqCst) - 1
    }

    /// Appends a call and returns its id once it is on disk. Ids are given
    /// in the order calls reach the writer, which is the order they are written.
    pub async fn append(&self, call: Call) -> Result<u64> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.sender
            .send((call, answer))
            .map_err(|_| journal_error(&self.directory, "the journal writer stopped"))?;
        answered
            .await
            .map_err(|_| journal_error(&self.directory, "the journal writer stopped"))?
            .map_err(|message| journal_error(&self.directory, message))
    }
}

fn write_loop(
    mut file: File,
    receiver: mpsc::Receiver<Request>,
    next_id: &std::sync::atomic::AtomicU64,
) {
    let mut next = next_id.load(std::sync::atomic::Ordering::SeqCst);
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match receiver.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let mut buffer = Vec::new();
        for (call, _) in &mut group {
            call.id = next;
            next += 1;
            buffer.extend_from_slice(&call.encode());
        }
        let result = file
            .write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(|error| error.to_string());
        if result.is_ok() {
            next_id.store(next, std::sync::atomic::Ordering::SeqCst);
        }
        for (call, answer) in group {
            let _ = answer.send(result.clone().map(|()| call.id));
        }
        if result.is_err() {
            // Nothing after a failed write can be trusted: stop accepting.
            return;
        }
    }
}

fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| journal_error(directory, error))
}

/// The replay outcomes recorded so far: the status each call got.
#[derive(Debug)]
pub struct Outcomes {
    path: PathBuf,
    file: File,
    /// The next record's slot.
    next: u64,
    /// Slots zero-filled and synced so far.
    allocated: u64,
    /// Per call id, the last status recorded (0: no answer).
    pub statuses: std::collections::HashMap<u64, u16>,
}

fn outcome_record(id: u64, status: u16) -> [u8; OUTCOME_RECORD as usize] {
    let mut record = [0u8; OUTCOME_RECORD as usize];
    record[..8].copy_from_slice(&id.to_le_bytes());
    record[8..10].copy_from_slice(&status.to_le_bytes());
    let crc = crc32fast::hash(&record[..12]);
    record[12..].copy_from_slice(&crc.to_le_bytes());
    record
}

impl Outcomes {
    /// Opens (or creates) the outcomes of the journal in `directory`.
    pub fn open(directory: &Path) -> Result<Outcomes> {
        check_format(directory)?;
        let path = directory.join(OUTCOMES);
        let mut statuses = std::collections::HashMap::new();
        let legacy = directory.join(OUTCOMES_TEXT);
        if legacy.exists() {
            let reader =
                BufReader::new(File::open(&legacy).map_err(|error| journal_error(&legacy, error))?);
            for line in reader.lines() {
                let line = line.map_err(|error| journal_error(&legacy, error))?;
                let mut parts = line.split(' ');
                if let (Some(Ok(id)), Some(Ok(status))) = (
                    parts.next().map(str::parse::<u64>),
                    parts.next().map(str::parse::<u16>),
                ) {
                    statuses.insert(id, status);
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|error| journal_error(&path, error))?;
        // Records up to the first that does not check out (zeros ahead, or a torn write).
        let mut next = 0u64;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|error| journal_error(&path, error))?;
        for record in bytes.chunks_exact(OUTCOME_RECORD as usize) {
            let mut id = [0u8; 8];
            id.copy_from_slice(&record[..8]);
            let mut status = [0u8; 2];
            status.copy_from_slice(&record[8..10]);
            let mut crc = [0u8; 4];
            crc.copy_from_slice(&record[12..]);
            let (id, status) = (u64::from_le_bytes(id), u16::from_le_bytes(status));
            if record.iter().all(|byte| *byte == 0)
                || crc32fast::hash(&record[..12]) != u32::from_le_bytes(crc)
            {
                break;
            }
            statuses.insert(id, status);
            next += 1;
        }
        let allocated = bytes.len() as u64 / OUTCOME_RECORD;
        let mut outcomes = Outcomes {
            path,
            file,
            next,
            allocated,
            statuses,
        };
        outcomes.allocate()?;
        Ok(outcomes)
    }

    /// Zero-fills and syncs the next block when the next slot is past the end.
    fn allocate(&mut self) -> Result<()> {
        use std::os::unix::fs::FileExt as _;
        if self.next < self.allocated {
            return Ok(());
        }
        let zeros = vec![0u8; (OUTCOME_BLOCK * OUTCOME_RECORD) as usize];
        self.file
            .write_all_at(&zeros, self.allocated * OUTCOME_RECORD)
            .and_then(|()| self.file.sync_all())
            .map_err(|error| journal_error(&self.path, error))?;
        self.allocated += OUTCOME_BLOCK;
        if let Some(directory) = self.path.parent() {
            sync_directory(directory)?;
        }
        Ok(())
    }

    /// Records a call's outcome durably (0 for no answer).
    pub fn record(&mut self, id: u64, status: u16) -> Result<()> {
        use std::os::unix::fs::FileExt as _;
        self.allocate()?;
        self.file
            .write_all_at(&outcome_record(id, status), self.next * OUTCOME_RECORD)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| journal_error(&self.path, error))?;
        self.next += 1;
        self.statuses.insert(id, status);
        Ok(())
    }

    /// Whether the call was answered 2xx.
    pub fn delivered(&self, id: u64) -> bool {
        self.statuses
            .get(&id)
            .is_some_and(|status| (200..300).contains(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_reopening_a_torn_record_and_an_earlier_text_log() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join(OUTCOMES_TEXT), "1 200\n2 503\n").expect("legacy");
        let mut outcomes = Outcomes::open(directory.path()).expect("open");
        assert!(outcomes.delivered(1) && !outcomes.delivered(2));
        for id in 2..5000u64 {
            outcomes.record(id, 200).expect("record");
        }
        drop(outcomes);
        let outcomes = Outcomes::open(directory.path()).expect("reopen");
        assert!((1..5000).all(|id| outcomes.delivered(id)));
        assert_eq!(outcomes.next, 4998);
        drop(outcomes);

        // A record torn by a crash: it and everything after it are not outcomes.
        let path = directory.path().join(OUTCOMES);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[(4997 * OUTCOME_RECORD + 3) as usize] ^= 0xff;
        std::fs::write(&path, bytes).expect("tear");
        let mut outcomes = Outcomes::open(directory.path()).expect("reopen");
        assert!(!outcomes.delivered(4999));
        assert!(outcomes.delivered(4998));
        outcomes.record(4999, 201).expect("record again");
        drop(outcomes);
        assert!(
            Outcomes::open(directory.path())
                .expect("reopen")
                .delivered(4999)
        );
    }
}
