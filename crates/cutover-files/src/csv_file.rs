//! CSV: a header line naming the columns, then one record per line (quoted
//! fields may span lines). Empty fields are NULL. Read by columns with
//! arrow-csv, as a scan's part ([`CsvPart`]).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::ArrowError;
use cutover_db::{Column, LogicalType};
use tokio::sync::mpsc;

use crate::dataset::{DataFile, Place};
use crate::error::{Error, Result};
use crate::scan::{self, BatchFn, KeptFn, Placed, SelectFn, Shape, Unreadable, deliver};
use crate::store::ObjectRead;

/// The file's bytes, from disk or streamed from its store (on a thread
/// that may block: never from async code).
fn input(file: &DataFile) -> Result<Box<dyn Read + Send>> {
    Ok(match &file.place {
        Place::Local(path) => Box::new(std::fs::File::open(path).map_err(|source| Error::Io {
            path: file.name.clone(),
            source,
        })?),
        Place::Remote { store, path, .. } => Box::new(ObjectRead::open(store, path, &file.name)?),
    })
}

/// A reader of the file's records with the csv crate.
fn open(file: &DataFile) -> Result<csv::Reader<Box<dyn Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input(file)?))
}

fn csv_error(path: &Path, error: csv::Error) -> Error {
    let line = error.position().map(csv::Position::line).unwrap_or(0);
    match error.into_kind() {
        csv::ErrorKind::Io(source) => Error::Io {
            path: path.display().to_string(),
            source,
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Error::Csv {
            path: path.display().to_string(),
            line,
            reason: format!("expected {expected_len} fields, found {len}"),
        },
        csv::ErrorKind::Utf8 { .. } => Error::Csv {
            path: path.display().to_string(),
            line,
            reason: "not valid UTF-8".into(),
        },
        _ => Error::Csv {
            path: path.display().to_string(),
            line,
            reason: "malformed record".into(),
        },
    }
}

fn header(file: &DataFile) -> Result<Vec<String>> {
    let mut reader = open(file)?;
    let names = reader
        .headers()
        .map_err(|error| csv_error(Path::new(&file.name), error))?;
    Ok(names.iter().map(|name| name.trim().to_owned()).collect())
}

/// The file's columns, from its header (a blocking read).
pub(crate) fn columns(file: &DataFile) -> Result<Vec<Column>> {
    Ok(header(file)?
        .into_iter()
        .map(|name| Column {
            name,
            type_name: "csv text".into(),
            logical_type: Some(LogicalType::Text),
            nullable: true,
            default: None,
        })
        .collect())
}

/// One CSV file of a scan: read whole by one thread with arrow-csv, a
/// batch at a time, every field as text (NULL when empty). A field is typed
/// as it is encoded ([`cutover_db::columnar::CellEncoder`] parses text into
/// the wanted type), as the rows of the other side are; a field that cannot
/// be read is named by line, found again with the csv crate (error path only).
pub(crate) struct CsvPart {
    file: DataFile,
    columns: Vec<Column>,
    /// The header's names (every file of a source has the same).
    names: Vec<String>,
    projection: Vec<usize>,
    placed: Vec<Placed>,
}

impl CsvPart {
    pub(crate) fn open(
        file: &DataFile,
        names: &[String],
        shape: Shape<'_>,
        columns: &[Column],
    ) -> Result<CsvPart> {
        let slots = scan::slots(file, names, shape, columns)?;
        let (projection, placed) = scan::placed(&slots);
        Ok(CsvPart {
            file: file.clone(),
            columns: columns.to_vec(),
            names: names.to_vec(),
            projection,
            placed,
        })
    }

    fn batches(&self) -> Result<arrow_csv::Reader<Box<dyn Read + Send>>> {
        let fields: Vec<arrow_schema::Field> = self
            .names
            .iter()
            .map(|name| arrow_schema::Field::new(name, arrow_schema::DataType::Utf8, true))
            .collect();
        arrow_csv::ReaderBuilder::new(Arc::new(arrow_schema::Schema::new(fields)))
            .with_header(true)
            .with_batch_size(scan::SCAN_BATCH_ROWS)
            .with_projection(self.projection.clone())
            .build(input(&self.file)?)
            .map_err(|_| self.malformed())
    }

    /// A batch's wanted arrays; an unreadable record found and named.
    fn arrays(
        &self,
        batch: std::result::Result<RecordBatch, ArrowError>,
    ) -> Result<(Vec<ArrayRef>, usize)> {
        let batch = batch.map_err(|_| self.malformed())?;
        let arrays = scan::arrays(&batch, &self.placed).map_err(|_| self.malformed())?;
        Ok((arrays, batch.num_rows()))
    }

    /// Every record; false when the consumer has gone or failed.
    pub(crate) fn all<T>(
        &self,
        map: &BatchFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        let mut before = 0u64;
        for batch in self.batches()? {
            let (arrays, rows) = self.arrays(batch)?;
            let made = map(&arrays, before)
                .map_err(|unreadable| self.unreadable(unreadable, before + unreadable.row as u64));
            if !deliver(sender, made) {
                return Ok(false);
            }
            before += rows as u64;
        }
        Ok(true)
    }

    /// The records `select` keeps (asked with the key columns), every wanted
    /// column of them.
    pub(crate) fn selected<T>(
        &self,
        key_len: usize,
        select: &SelectFn,
        map: &KeptFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        let mut before = 0u64;
        for batch in self.batches()? {
            let (arrays, rows) = self.arrays(batch)?;
            let keep = match select(&arrays[..key_len.min(arrays.len())]) {
                Ok(keep) => BooleanArray::from(keep),
                Err(unreadable) => {
                    let error = self.unreadable(unreadable, before + unreadable.row as u64);
                    let _ = sender.blocking_send(Err(error));
                    return Ok(false);
                }
            };
            let kept_rows: Vec<u64> = keep
                .values()
                .set_indices()
                .map(|row| before + row as u64)
                .collect();
            before += rows as u64;
            if kept_rows.is_empty() {
                continue;
            }
            let kept = arrays
                .iter()
                .map(|array| arrow_select::filter::filter(array, &keep))
                .collect::<std::result::Result<Vec<ArrayRef>, ArrowError>>()
                .map_err(|_| self.malformed())?;
            let made = map(&kept, &kept_rows).map_err(|unreadable| {
                self.unreadable(
                    unreadable,
                    kept_rows.get(unreadable.row).copied().unwrap_or_default(),
                )
            });
            if !deliver(sender, made) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The file's first malformed record, named by line (read again with
    /// the csv crate, whose messages say what is wrong without the line's
    /// content).
    fn malformed(&self) -> Error {
        let path = Path::new(&self.file.name);
        let mut reader = match open(&self.file) {
            Ok(reader) => reader,
            Err(error) => return error,
        };
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => return csv_error(path, error),
            }
        }
        Error::Csv {
            path: self.file.name.clone(),
            line: 0,
            reason: "malformed record".into(),
        }
    }

    /// A field of the 0-based `record` that cannot be read as its type,
    /// named by the record's line.
    fn unreadable(&self, unreadable: Unreadable, record: u64) -> Error {
        let line = line_of(&self.file, record).unwrap_or(record + 2);
        scan::field_error(&self.file, &self.columns[unreadable.column], line)
    }
}

/// The 1-based line the 0-based `record` starts on (quoted fields may span
/// lines).
fn line_of(file: &DataFile, record: u64) -> Option<u64> {
    let mut reader = open(file).ok()?;
    let mut row = csv::StringRecord::new();
    for _ in 0..=record {
        if !reader.read_record(&mut row).ok()? {
            return None;
        }
    }
    row.position().map(csv::Position::line)
}
