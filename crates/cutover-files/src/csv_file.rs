//! CSV: a header line naming the columns, then one record per line (quoted
//! fields may span lines). Empty fields are NULL.

use std::path::Path;

use cutover_db::{Column, LogicalType, Value};

use crate::error::{Error, Result};
use crate::{BATCH_ROWS, Reader, Sender, column_indices};

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)
        .map_err(|error| csv_error(path, error))
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

fn header(path: &Path) -> Result<Vec<String>> {
    let mut reader = open(path)?;
    let names = reader.headers().map_err(|error| csv_error(path, error))?;
    Ok(names.iter().map(|name| name.trim().to_owned()).collect())
}

pub(crate) fn columns(path: &Path) -> Result<Vec<Column>> {
    Ok(header(path)?
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

pub(crate) fn reader(path: &Path, columns: &[Column]) -> Result<Reader> {
    let names = header(path)?;
    let indices = column_indices(path, &names, columns)?;
    let columns = columns.to_vec();
    let path = path.to_path_buf();
    Ok(Box::new(move |sink: &Sender| {
        let mut reader = open(&path)?;
        let mut record = csv::StringRecord::new();
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while reader
            .read_record(&mut record)
            .map_err(|error| csv_error(&path, error))?
        {
            let line = record.position().map(csv::Position::line).unwrap_or(0);
            let mut row = Vec::with_capacity(columns.len());
            for (column, index) in columns.iter().zip(&indices) {
                let field = record.get(*index).unwrap_or("");
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
