//! Parquet helpers for the scan, and a small writer for delta files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cutover_db::{LogicalType, Row, Value};
use parquet::arrow::ArrowWriter;

use crate::BATCH_ROWS;
use crate::error::{Error, Result};

pub(crate) fn parquet_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// The file columns to decode for the wanted columns at file `indices`
/// (sorted, each once), and each wanted column's position among them.
pub(crate) fn projected(indices: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut projection = indices.to_vec();
    projection.sort_unstable();
    projection.dedup();
    let positions = indices
        .iter()
        .map(|index| {
            projection
                .iter()
                .position(|kept| kept == index)
                .unwrap_or(0)
        })
        .collect();
    (projection, positions)
}

/// Writes rows to a Parquet file a batch at a time: integers and booleans as
/// themselves, floats as doubles, everything else as text.
pub struct ParquetWriter {
    path: PathBuf,
    schema: Arc<Schema>,
    logical: Vec<LogicalType>,
    pending: Vec<Row>,
    writer: ArrowWriter<std::fs::File>,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ParquetWriter")
            .field("path", &self.path)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl ParquetWriter {
    /// Creates (or truncates) `path` for rows of these columns.
    pub fn create(path: &Path, columns: &[(String, LogicalType)]) -> Result<ParquetWriter> {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, logical)| {
                let data_type = match logical {
                    LogicalType::Integer => DataType::Int64,
                    LogicalType::Bool => DataType::Boolean,
                    LogicalType::Float => DataType::Float64,
                    _ => DataType::Utf8,
                };
                Field::new(name, data_type, true)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let file = std::fs::File::create(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let writer = ArrowWriter::try_new(file, schema.clone(), None)
            .map_err(|error| parquet_error(path, error))?;
        Ok(ParquetWriter {
            path: path.to_path_buf(),
            schema,
            logical: columns.iter().map(|(_, logical)| *logical).collect(),
            pending: Vec::with_capacity(BATCH_ROWS),
            writer,
        })
    }

    /// Adds a row (written when a batch is full).
    pub fn write(&mut self, row: Row) -> Result<()> {
        if row.len() != self.logical.len() {
            return Err(Error::Internal(format!(
                "a row of {} values for {} columns",
                row.len(),
                self.logical.len()
            )));
        }
        self.pending.push(row);
        if self.pending.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let arrays: Vec<ArrayRef> = self
            .logical
            .iter()
            .enumerate()
            .map(|(index, logical)| -> ArrayRef {
                let values = rows.iter().map(|row| &row[index]);
                match logical {
                    LogicalType::Integer => Arc::new(Int64Array::from(
                        values
                            .map(|value| match value {
                                Value::Int(number) => Some(*number),
                                _ => None,
                            })
                            .collect::<Vec<_>>(),
                    )),
                    LogicalType::Bool => Arc::new(BooleanArray::from(
                        values
                            .map(|value| match value {
                                Value::Bool(flag) => Some(*flag),
                                _ => None,
                            })
                            .collect::<Vec<_>>(),
                    )),
                    LogicalType::Float => Arc::new(Float64Array::from(
                        values
                            .map(|value| match value {
                                Value::Float(number) => Some(*number),
                                _ => None,
                            })
                            .collect::<Vec<_>>(),
                    )),
                    _ => Arc::new(StringArray::from(
                        values.map(Value::to_text).collect::<Vec<_>>(),
                    )),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|error| parquet_error(&self.path, error))?;
        self.writer
            .write(&batch)
            .map_err(|error| parquet_error(&self.path, error))
    }

    /// Writes what is pending and the file footer, and syncs the file.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        let file = self
            .writer
            .into_inner()
            .map_err(|error| parquet_error(&self.path, error))?;
        file.sync_all().map_err(|source| Error::Io {
            path: self.path.display().to_string(),
            source,
        })
    }
}
