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
mod dataset;
mod delta;
mod error;
mod parquet_file;
mod prune;
mod scan;
mod store;

use std::path::Path;
use std::sync::Arc;

use cutover_db::{Column, LogicalType, Row, RowStream};
use dataset::{DataFile, Listing};
use futures_util::StreamExt;

pub use error::{Error, Result};
pub use parquet_file::ParquetWriter;
pub use scan::{BatchFn, KeptFn, SelectFn, Unreadable};

pub use store::redact;

/// Rows per batch a Parquet writer holds.
const BATCH_ROWS: usize = 1_024;

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

/// A CSV or Parquet file to read rows from, or a dataset of them read as
/// one table: a directory (any depth) or a glob, on local disk or in an
/// object store (`s3://`, `az://`, `abfss://`), its hive partition
/// directories (`NAME=VALUE`) read as columns.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// The location as given, without query or credentials.
    label: String,
    format: FileFormat,
    /// The files read, in name order.
    files: Arc<Vec<DataFile>>,
    /// The partition columns, after the files' own.
    partitions: Vec<String>,
    /// The files' own columns and then the partition columns.
    columns: Vec<Column>,
    /// The snapshot read, for a Delta table (a file may lack a column the
    /// table gained: NULL there).
    delta_version: Option<u64>,
}

impl FileSource {
    /// A local file whose extension names its format, a directory holding
    /// Parquet or CSV files (at any depth), or a glob (`exports/*.parquet`,
    /// `lake/**/part-*.parquet`); they must exist.
    pub fn open(path: &Path) -> Result<FileSource> {
        let text = path.to_string_lossy();
        FileSource::assemble(&text, dataset::list_local(&text, None)?)
    }

    /// Like [`FileSource::open`], for a local path or glob or an
    /// object-store URL (`s3://bucket/prefix`, `az://container/prefix`,
    /// `abfss://container@account.dfs.core.windows.net/prefix`),
    /// configured by the stores' standard environment variables. With a
    /// `condition` on the partition columns (see [`FileSource::prune`]),
    /// the files it rules out are never opened.
    pub async fn open_location(text: &str, condition: Option<&str>) -> Result<FileSource> {
        let listing = dataset::list(text, condition).await?;
        // CSV headers are read with blocking reads (streamed from a store).
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || FileSource::assemble(&text, listing))
            .await
            .map_err(|error| Error::Internal(error.to_string()))?
    }

    /// The files whose partition values meet `condition`, SQL on the
    /// partition columns only (`month >= '2024-01' AND site IN ('a', 'b')`):
    /// comparisons, `IN`, `IS NULL`, `AND`, `OR`, `NOT`. Anything else, such
    /// as a column of the files, is refused: files cannot be filtered by SQL.
    pub fn prune(&self, condition: &str) -> Result<FileSource> {
        let listing = Listing {
            format: self.format,
            files: self.files.to_vec(),
            partitions: self.partitions.clone(),
            delta_version: self.delta_version,
        };
        let files = dataset::prune(&self.label, &listing, condition)?;
        Ok(FileSource {
            files: Arc::new(files),
            ..self.clone()
        })
    }

    /// Whether `text` names files rather than a database: an object-store
    /// URL, a path with a `.csv`/`.parquet` extension, a directory, or a glob.
    pub fn names_files(text: &str) -> bool {
        if store::is_remote(text) {
            return true;
        }
        let is_url =
            text.contains("://") || text.starts_with("sqlite:") || text.starts_with("postgres");
        // A Delta table's snapshot: PATH@vN or PATH@TIMESTAMP.
        let (location, version) = delta::split_version(text);
        !is_url
            && (FileFormat::from_path(text.as_ref()).is_some()
                || Path::new(text).is_dir()
                || version.is_some() && Path::new(location).is_dir()
                || text.contains(['*', '?', '[']))
    }

    fn assemble(text: &str, listing: Listing) -> Result<FileSource> {
        let label = store::redact(text);
        let Some(first) = listing.files.first() else {
            return Err(Error::Dataset {
                location: label,
                reason: "no data file to read: the table is empty, or --where rules out every file\nhint: check the partition values (cutover inspect lists the files)".to_owned(),
            });
        };
        let mut columns = match listing.format {
            FileFormat::Csv => {
                let columns = csv_file::columns(first)?;
                for file in &listing.files[1..] {
                    let other = csv_file::columns(file)?;
                    let names = |columns: &[Column]| {
                        columns
                            .iter()
                            .map(|column| column.name.clone())
                            .collect::<Vec<_>>()
                    };
                    if names(&other) != names(&columns) {
                        return Err(Error::Dataset {
                            location: label,
                            reason: format!(
                                "{}'s header differs from {}'s: every CSV file of a dataset must have the same columns",
                                file.name, first.name
                            ),
                        });
                    }
                }
                columns
            }
            FileFormat::Parquet if listing.delta_version.is_some() => {
                evolved_columns(&listing.files)?
            }
            FileFormat::Parquet => parquet_columns(&listing.files)?,
        };
        for name in &listing.partitions {
            if columns
                .iter()
                .any(|column| column.name.eq_ignore_ascii_case(name))
            {
                return Err(Error::Dataset {
                    location: label,
                    reason: format!(
                        "{name} is both a column of the files and a partition directory ({name}=…)\nhint: a dataset's partition columns must not be in its files"
                    ),
                });
            }
            columns.push(Column {
                name: name.clone(),
                type_name: "partition text".to_owned(),
                logical_type: Some(LogicalType::Text),
                nullable: true,
                default: None,
            });
        }
        Ok(FileSource {
            label,
            format: listing.format,
            files: Arc::new(listing.files),
            partitions: listing.partitions,
            delta_version: listing.delta_version,
            columns,
        })
    }

    /// The files read, in order, by name (local paths, or URLs without credentials).
    pub fn files(&self) -> Vec<String> {
        self.files.iter().map(|file| file.name.clone()).collect()
    }

    /// The location as given, without query or credentials.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The version of the snapshot read, when this is a Delta table.
    pub fn delta_version(&self) -> Option<u64> {
        self.delta_version
    }

    /// The files' format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The partition columns (hive `NAME=VALUE` directories), last among [`FileSource::columns`].
    pub fn partitions(&self) -> &[String] {
        &self.partitions
    }

    /// The columns: CSV header names (typed as text), or the Parquet
    /// schema's columns with their logical types (`None` where
    /// unsupported); then the partition columns (text).
    pub fn columns(&self) -> Result<Vec<Column>> {
        Ok(self.columns.clone())
    }

    /// Streams the named columns of every row, in file order. A column's
    /// `logical_type` says how to read it: CSV text is parsed into it, Parquet
    /// values are converted when the file holds them as text.
    pub fn read(&self, columns: &[Column]) -> Result<RowStream> {
        let wanted = columns.to_vec();
        let map: BatchFn<Vec<Row>> = Arc::new(move |arrays, _| {
            cutover_db::arrow::arrays_rows(arrays, &wanted)
                .map_err(|(row, column)| Unreadable { row, column })
        });
        let batches = self.scan(columns, 1, map)?;
        let rows = batches
            .map(|batch| match batch {
                Ok(rows) => futures_util::stream::iter(rows.into_iter().map(Ok)).left_stream(),
                Err(error) => {
                    futures_util::stream::iter([Err(cutover_db::Error::Source(error.to_string()))])
                        .right_stream()
                }
            })
            .flatten();
        Ok(RowStream::new(columns.to_vec(), rows))
    }

    /// What the scans of this source's files need to know of them.
    fn shape(&self) -> (Vec<String>, bool) {
        // A CSV file's own columns: every file's header (checked at open).
        let header = self
            .columns
            .iter()
            .filter(|column| !self.partitions.contains(&column.name))
            .map(|column| column.name.clone())
            .collect();
        (header, self.format == FileFormat::Csv)
    }

    /// The row count when the format records it (Parquet's footers).
    pub fn row_count(&self) -> Option<u64> {
        match self.format {
            FileFormat::Parquet => self
                .files
                .iter()
                .map(|file| {
                    file.metadata.as_ref().and_then(|metadata| {
                        u64::try_from(metadata.metadata().file_metadata().num_rows()).ok()
                    })
                })
                .sum(),
            FileFormat::Csv => None,
        }
    }

    /// Reads the named columns of every row as Arrow arrays, `jobs` row
    /// groups at a time on threads of their own, and streams what `map`
    /// makes of each batch (in no particular order; in file order when
    /// `jobs` is 1); memory holds
    /// a few batches per thread.
    pub fn scan<T: Send + 'static>(
        &self,
        columns: &[Column],
        jobs: usize,
        map: BatchFn<T>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<T>>> {
        let (header, csv) = self.shape();
        let shape = scan::Shape {
            partitions: &self.partitions,
            evolving: self.delta_version.is_some(),
            csv_header: csv.then_some(&header[..]),
        };
        scan::scan(&self.files, shape, columns, jobs, map)
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
        let (header, csv) = self.shape();
        let shape = scan::Shape {
            partitions: &self.partitions,
            evolving: self.delta_version.is_some(),
            csv_header: csv.then_some(&header[..]),
        };
        scan::scan_selected(&self.files, shape, columns, key_len, jobs, select, map)
    }
}

/// The columns of a table whose schema grew: every column of any file, in
/// the order they first appear, each of one type in every file that has it.
fn evolved_columns(files: &[DataFile]) -> Result<Vec<Column>> {
    let mut columns: Vec<Column> = Vec::new();
    for file in files {
        let Some(metadata) = &file.metadata else {
            return Err(Error::Internal(format!("{}: footer not read", file.name)));
        };
        for column in dataset::footer_columns(metadata) {
            match columns.iter().find(|known| known.name == column.name) {
                Some(known) if known.logical_type != column.logical_type => {
                    return Err(Error::Parquet {
                        path: file.name.clone(),
                        reason: format!(
                            "column {} is of another type here than in the table's other files\nhint: a column whose type changed needs the table's own reader (Spark, sc://…)",
                            column.name
                        ),
                    });
                }
                Some(_) => {}
                None => columns.push(column),
            }
        }
    }
    Ok(columns)
}

/// The columns every Parquet file shares (the first file's), or an error
/// naming the file and column that differ.
fn parquet_columns(files: &[DataFile]) -> Result<Vec<Column>> {
    let footer = |file: &DataFile| {
        file.metadata
            .as_ref()
            .map(dataset::footer_columns)
            .ok_or_else(|| Error::Internal(format!("{}: footer not read", file.name)))
    };
    let first = footer(&files[0])?;
    for file in &files[1..] {
        let columns = footer(file)?;
        let differs = |column: &Column| {
            !columns
                .iter()
                .any(|other| other.name == column.name && other.logical_type == column.logical_type)
        };
        let extra = columns
            .iter()
            .find(|column| !first.iter().any(|other| other.name == column.name));
        if let Some(column) = first.iter().find(|column| differs(column)).or(extra) {
            return Err(Error::Parquet {
                path: file.name.clone(),
                reason: format!(
                    "its schema differs from {}'s: column {} is missing, extra or of another type\nhint: a dataset's files must share one schema",
                    files[0].name, column.name
                ),
            });
        }
    }
    Ok(first)
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
