//! CSV: a header line naming the columns, then one record per line (quoted
//! fields may span lines). Empty fields are NULL.

use std::io::Read;
use std::path::Path;

use cutover_db::{Column, LogicalType, Value};

use crate::dataset::{DataFile, Place};
use crate::error::{Error, Result};
use crate::store::ObjectRead;
use crate::{BATCH_ROWS, Reader, Sender, column_index};

/// A reader of the file's records, from disk or streamed from its store
/// (on a thread that may block: never from async code).
fn open(file: &DataFile) -> Result<csv::Reader<Box<dyn Read + Send>>> {
    let input: Box<dyn Read + Send> = match &file.place {
        Place::Local(path) => Box::new(std::fs::File::open(path).map_err(|source| Error::Io {
            path: file.name.clone(),
            source,
        })?),
        Place::Remote { store, path, .. } => Box::new(ObjectRead::open(store, path, &file.name)?),
    };
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input))
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

/// Where a wanted column's fields come from.
enum Field {
    /// The record's field at this index.
    Index(usize),
    /// A partition column: the same text (or NULL) on every line.
    Constant(Option<String>),
}

/// Reads `columns` of every line of a file whose header is `names`; a
/// column among `partitions` takes the file's partition value instead of
/// a field. Nothing is read until the reader runs.
pub(crate) fn reader(
    file: &DataFile,
    names: &[String],
    columns: &[Column],
    partitions: &[String],
) -> Result<Reader> {
    let path = Path::new(&file.name);
    let values = &file.partition;
    let fields = columns
        .iter()
        .map(
            |column| match partitions.iter().position(|name| name == &column.name) {
                Some(at) => Ok(Field::Constant(values.get(at).cloned().flatten())),
                None => column_index(path, names, column).map(Field::Index),
            },
        )
        .collect::<Result<Vec<Field>>>()?;
    let columns = columns.to_vec();
    let file = file.clone();
    let path = path.to_path_buf();
    Ok(Box::new(move |sink: &Sender| {
        let mut reader = open(&file)?;
        let mut record = csv::StringRecord::new();
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while reader
            .read_record(&mut record)
            .map_err(|error| csv_error(&path, error))?
        {
            let line = record.position().map(csv::Position::line).unwrap_or(0);
            let mut row = Vec::with_capacity(columns.len());
            for (column, field) in columns.iter().zip(&fields) {
                let field = match field {
                    Field::Index(index) => record.get(*index).unwrap_or(""),
                    Field::Constant(value) => value.as_deref().unwrap_or(""),
                };
                let value = if field.is_empty() {
                    Value::Null
                } else {
                    let logical = column.logical_type.unwrap_or(LogicalType::Text);
                    Value::from_text(logical, field).ok_or_else(|| Error::Field {
                        path: path.display().to_string(),
                        line,
                        column: column.name.clone(),
                        expected: logical.name().to_owned(),
                    })?
                };
                row.push(value);
            }
            batch.push(row);
            if batch.len() == BATCH_ROWS
                && !sink.send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_ROWS),
                ))
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            sink.send(batch);
        }
        Ok(())
    }))
}
