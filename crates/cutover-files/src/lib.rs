//! CSV and Parquet files as row streams, read in bounded memory on a blocking
//! thread, with the same value model as the databases ([`cutover_db::Value`]);
//! and Parquet writing for delta files.
//!
//! A CSV file's columns are its header's names. Its fields are text until the
//! caller gives a column a type, and are then parsed into that type
//! ([`cutover_db::Value::from_text`]); an empty field is NULL. A Parquet
//! file's columns and types come from its schema.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use cutover_files::FileSource;
//! let file = FileSource::open("results.csv".as_ref())?;
//! let columns = file.columns()?;
//! let mut rows = file.read(&columns)?;
//! while let Some(row) = rows.next().await {
//!     let _values = row?;
//! }
//! # Ok(()) }
//! ```

mod csv_file;
mod error;
mod parquet_file;
mod scan;

use std::path::{Path, PathBuf};

use cutover_db::{Column, Row, RowStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

pub use error::{Error, Result};
pub use parquet_file::ParquetWriter;
pub use scan::{BatchFn, KeptFn, SelectFn, Unreadable};

/// Rows per batch passed from the reading thread.
const BATCH_ROWS: usize = 1_024;
/// Batches in flight between the reading thread and the consumer.
const BATCHES_IN_FLIGHT: usize = 4;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The format a path's extension names (`.csv`, `.parquet`/`.pq`), if any.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// A CSV or Parquet file to read rows from, or a directory of Parquet
/// files read as one table.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    format: FileFormat,
    /// The files read: the file itself, or a directory's Parquet files in name order.
    files: Vec<PathBuf>,
}

impl FileSource {
    /// A file whose extension names its format, or a directory holding
    /// Parquet files (`*.parquet`, `*.pq`, in any subdirectory); it must exist.
    pub fn open(path: &Path) -> Result<FileSource> {
        let metadata = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        if metadata.is_dir() {
            if path.join("_delta_log").is_dir() {
                // Its directory holds the files of every version, removed ones included.
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(
                        "this is a Delta table, which cutover does not read yet: its directory holds the files of every version\nhint: export the version to compare as Parquet, or read it through Spark (sc://…)",
                    ),
                });
            }
            let mut files = Vec::new();
            parquet_files(path, &mut files)?;
            if files.is_empty() {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(
                        "the directory holds no .parquet file (a dataset is a directory of Parquet files)",
                    ),
                });
            }
            files.sort();
            return Ok(FileSource {
                path: path.to_path_buf(),
                format: FileFormat::Parquet,
                files,
            });
        }
        let format = FileFormat::from_path(path).ok_or_else(|| Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("unknown file type: name it .csv or .parquet"),
        })?;
        Ok(FileSource {
            path: path.to_path_buf(),
            format,
            files: vec![path.to_path_buf()],
        })
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The file's columns: CSV header names (typed as text), or the Parquet
    /// schema's columns with their logical types (`None` where unsupported).
    pub fn columns(&self) -> Result<Vec<Column>> {
        match self.format {
            FileFormat::Csv => csv_file::columns(&self.path),
            FileFormat::Parquet => {
                let first = parquet_file::columns(&self.files[0])?;
                for file in &self.files[1..] {
                    let columns = parquet_file::columns(file)?;
                    let differs = |column: &Column| {
                        !columns.iter().any(|other| {
                            other.name == column.name && other.logical_type == column.logical_type
                        })
                    };
                    if let Some(column) = first.iter().find(|column| differs(column)) {
                        return Err(Error::Parquet {
                            path: file.display().to_string(),
                            reason: format!(
                                "its schema differs from {}'s: column {} is missing or of another type",
                                self.files[0].display(),
                                column.name
                            ),
                        });
                    }
                }
                Ok(first)
            }
        }
    }

    /// Streams the named columns of every row, in file order. A column's
    /// `logical_type` says how to read it: CSV text is parsed into it, Parquet
    /// values are converted when the file holds them as text.
    pub fn read(&self, columns: &[Column]) -> Result<RowStream> {
        let (sender, receiver) = mpsc::channel::<Result<Vec<Row>>>(BATCHES_IN_FLIGHT);
        let reader: Reader = match self.format {
            FileFormat::Csv => csv_file::reader(&self.path, columns)?,
            FileFormat::Parquet => {
                let readers = self
                    .files
                    .iter()
                    .map(|file| parquet_file::reader(file, columns))
                    .collect::<Result<Vec<Reader>>>()?;
                Box::new(move |sink: &Sender| {
                    for reader in readers {
                        reader(sink)?;
                    }
                    Ok(())
                })
            }
        };
        tokio::task::spawn_blocking(move || {
            let sink = Sender { sender };
            if let Err(error) = reader(&sink) {
                let _ = sink.sender.blocking_send(Err(error));
            }
        });
        let rows = cutover_db::from_batches(receiver)
            .map(|row| row.map_err(|error| cutover_db::Error::Source(error.to_string())));
        Ok(RowStream::new(columns.to_vec(), rows))
    }
}

impl FileSource {
    /// The file's row count when its format records it (Parquet's footer).
    pub fn row_count(&self) -> Option<u64> {
        match self.format {
            FileFormat::Parquet => self
                .files
                .iter()
                .map(|file| parquet_file::row_count(file))
                .sum(),
            FileFormat::Csv => None,
        }
    }

    fn require_scannable(&self) -> Result<()> {
        if self.scannable() {
            return Ok(());
        }
        Err(Error::Parquet {
            path: self.path.display().to_string(),
            reason: "only Parquet files are read by columns".to_owned(),
        })
    }

    /// Whether [`FileSource::scan`] can read this file (Parquet).
    pub fn scannable(&self) -> bool {
        self.format == FileFormat::Parquet
    }

    /// Reads the named columns of every row as Arrow arrays, `jobs` row
    /// groups at a time on threads of their own, and streams what `map`
    /// makes of each batch (in no particular order). Parquet only
    /// ([`FileSource::scannable`]); memory holds a few batches per thread.
    pub fn scan<T: Send + 'static>(
        &self,
        columns: &[Column],
        jobs: usize,
        map: BatchFn<T>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<T>>> {
        self.require_scannable()?;
        scan::scan(&self.files, columns, jobs, map)
    }

    /// Like [`FileSource::scan`], for a few rows: reads the first `key_len`
    /// columns of every row and asks `select` which rows to keep, then reads
    /// every column of the kept rows only and streams what `map` makes of
    /// them (with each kept row's 0-based number in the file).
    pub fn scan_selected<T: Send + 'static>(
        &self,
        columns: &[Column],
        key_len: usize,
        jobs: usize,
        select: SelectFn,
        map: KeptFn<T>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<T>>> {
        self.require_scannable()?;
        scan::scan_selected(&self.files, columns, key_len, jobs, select, map)
    }
}

/// The Parquet files under `directory`, at any depth (hidden and `_`-prefixed
/// entries, such as `_delta_log` and `_SUCCESS`, left out).
fn parquet_files(directory: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(directory).map_err(|source| Error::Io {
        path: directory.display().to_string(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: directory.display().to_string(),
                source,
            })?
            .path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            parquet_files(&path, files)?;
        } else if FileFormat::from_path(&path) == Some(FileFormat::Parquet) {
            files.push(path);
        }
    }
    Ok(())
}

/// The work of a reading thread: reads the file and sends its rows.
pub(crate) type Reader = Box<dyn FnOnce(&Sender) -> Result<()> + Send>;

/// Where a reading thread sends its batches.
pub(crate) struct Sender {
    sender: mpsc::Sender<Result<Vec<Row>>>,
}

impl Sender {
    /// Sends a full batch; false when the consumer has gone (stop reading).
    pub(crate) fn send(&self, batch: Vec<Row>) -> bool {
        self.sender.blocking_send(Ok(batch)).is_ok()
    }
}

/// The position in `names` of each wanted column.
fn column_indices(path: &Path, names: &[String], wanted: &[Column]) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|column| column_index(path, names, column))
        .collect()
}

fn column_index(path: &Path, names: &[String], wanted: &Column) -> Result<usize> {
    names
        .iter()
        .position(|name| name == &wanted.name)
        .or_else(|| {
            let mut folded = names
                .iter()
                .enumerate()
                .filter(|(_, name)| name.eq_ignore_ascii_case(&wanted.name));
            match (folded.next(), folded.next()) {
                (Some((index, _)), None) => Some(index),
                _ => None,
            }
        })
        .ok_or_else(|| Error::UnknownColumn {
            path: path.display().to_string(),
            column: wanted.name.clone(),
            available: names.join(", "),
        })
}
