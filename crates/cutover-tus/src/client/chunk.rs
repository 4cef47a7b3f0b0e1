//! What goes into each request of an upload: a chunk read from the file,
//! its checksum, and the whole file's SHA-256 taken in as the chunks are
//! read.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use super::Discovery;

/// The checksum a chunk carries in `Upload-Checksum`.
///
/// CRC32 where the server offers it (as cutover receive and tusd do): it
/// catches corruption in transit at a fraction of SHA-256's cost, and the
/// whole file's SHA-256 is checked end to end by verification anyway.
/// Otherwise SHA-256, or SHA-1 where that is all the server lists; none
/// where the server lists its extensions without checksum (the
/// data-exchange service ignores the header: computing it is wasted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkChecksum {
    /// No `Upload-Checksum`.
    None,
    /// `crc32`: IEEE CRC-32, 4 bytes big-endian.
    Crc32,
    /// `sha256`.
    Sha256,
    /// `sha1`.
    Sha1,
}

impl ChunkChecksum {
    pub(super) fn header(self, chunk: &[u8]) -> String {
        match self {
            ChunkChecksum::None => String::new(),
            ChunkChecksum::Crc32 => {
                format!("crc32 {}", base64(&crc32fast::hash(chunk).to_be_bytes()))
            }
            ChunkChecksum::Sha256 => format!("sha256 {}", base64(&sha2::Sha256::digest(chunk))),
            ChunkChecksum::Sha1 => {
                format!(
                    "sha1 {}",
                    base64(&<sha1::Sha1 as sha2::Digest>::digest(chunk))
                )
            }
        }
    }

    /// The best checksum among the server's `Tus-Checksum-Algorithm` list.
    pub(super) fn choose(discovery: &Discovery) -> ChunkChecksum {
        let (extensions, algorithms) = (&discovery.extensions, &discovery.algorithms);
        if !extensions.is_empty() && !extensions.iter().any(|name| name == "checksum") {
            return ChunkChecksum::None;
        }
        let offered = |name: &str| {
            algorithms
                .iter()
                .any(|offered| offered.eq_ignore_ascii_case(name))
        };
        if offered("crc32") {
            ChunkChecksum::Crc32
        } else if offered("sha256") || !offered("sha1") {
            ChunkChecksum::Sha256
        } else {
            ChunkChecksum::Sha1
        }
    }
}

/// The whole file's SHA-256, computed from the chunks as they are read to
/// be sent, in order, so a file is read once. Bytes a send skips (the
/// server already had them) are read and hashed when needed.
#[derive(Clone, Default)]
pub struct FileDigest {
    hasher: sha2::Sha256,
    upto: u64,
    /// Takes nothing in (a part of a file sent in parallel parts, whose
    /// chunks do not come in file order).
    off: bool,
}

impl std::fmt::Debug for FileDigest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FileDigest")
            .field("upto", &self.upto)
            .finish()
    }
}

impl FileDigest {
    /// A digest that takes nothing in.
    pub(super) fn off() -> FileDigest {
        FileDigest {
            off: true,
            ..FileDigest::default()
        }
    }

    /// Hashes the file's bytes from where the digest stands to `offset`.
    fn catch_up(&mut self, file: &mut std::fs::File, offset: u64) -> std::io::Result<()> {
        if offset <= self.upto {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.upto))?;
        let mut buffer = vec![0u8; 1 << 20];
        while self.upto < offset {
            let wanted = usize::try_from((offset - self.upto).min(buffer.len() as u64))
                .unwrap_or(buffer.len());
            file.read_exact(&mut buffer[..wanted])?;
            self.hasher.update(&buffer[..wanted]);
            self.upto += wanted as u64;
        }
        Ok(())
    }

    /// Takes in the chunk at `offset` (only its bytes not yet hashed).
    fn absorb(
        &mut self,
        file: &mut std::fs::File,
        offset: u64,
        chunk: &[u8],
    ) -> std::io::Result<()> {
        if self.off {
            return Ok(());
        }
        self.catch_up(file, offset)?;
        let end = offset + chunk.len() as u64;
        if end > self.upto {
            let skip = usize::try_from(self.upto - offset).unwrap_or(chunk.len());
            self.hasher.update(&chunk[skip..]);
            self.upto = end;
        }
        Ok(())
    }

    /// The file's SHA-256 (hex) over `length` bytes, reading what the send
    /// did not.
    pub fn finish(mut self, path: &Path, length: u64) -> std::io::Result<String> {
        if self.upto < length {
            let mut file = std::fs::File::open(path)?;
            self.catch_up(&mut file, length)?;
        }
        Ok(self
            .hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect())
    }
}

pub(super) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A chunk ready to send: its offset, bytes and `Upload-Checksum` value.
pub(super) type Chunk = (u64, Vec<u8>, String);

/// Where an upload's bytes are in the file: from `base`, `length` bytes (a
/// whole file: from 0, all of it; a part: its range).
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    pub(super) base: u64,
    pub(super) length: u64,
}

/// Reads the chunk of at most `chunk_size` bytes at the upload's `offset`
/// (the file's `range.base + offset`), takes it into the file's digest, and
/// computes its checksum.
pub(super) fn read_chunk(
    path: &Path,
    range: Range,
    offset: u64,
    chunk_size: usize,
    checksum: ChunkChecksum,
    mut digest: FileDigest,
) -> std::io::Result<(Chunk, FileDigest)> {
    let length = range.length;
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(range.base + offset))?;
    let wanted = usize::try_from((length - offset).min(chunk_size as u64)).unwrap_or(chunk_size);
    let mut chunk = vec![0u8; wanted];
    file.read_exact(&mut chunk)?;
    digest.absorb(&mut file, offset, &chunk)?;
    let header = checksum.header(&chunk);
    Ok(((offset, chunk, header), digest))
}
