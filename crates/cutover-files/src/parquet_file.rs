//! Parquet: columns and types from the file's schema, read a record batch at
//! a time with only the wanted columns decoded; and a small writer for delta files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use cutover_db::{Column, LogicalType, Numeric, Row, Value};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::{BATCH_ROWS, Reader, Sender, column_indices};

fn parquet_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| parquet_error(path, error))
}

/// The logical type of an Arrow type; `None` if cutover cannot read it.
fn logical_type(data_type: &DataType) -> Option<LogicalType> {
    Some(match data_type {
        DataType::Boolean => LogicalType::Bool,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            LogicalType::Integer
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => LogicalType::Integer,
        DataType::UInt64 | DataType::Decimal128(_, _) => LogicalType::Numeric,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => LogicalType::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => LogicalType::Text,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => LogicalType::Bytes,
        DataType::Date32 | DataType::Date64 => LogicalType::Date,
        DataType::Timestamp(_, None) => LogicalType::Timestamp,
        DataType::Timestamp(_, Some(_)) => LogicalType::TimestampTz,
        DataType::Time32(_) | DataType::Time64(_) => LogicalType::Time,
        _ => return None,
    })
}

/// The Arrow type a column is cast to before its values are read.
fn read_as(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, zone) => DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        DataType::Time32(_) => DataType::Time64(TimeUnit::Microsecond),
        other => other.clone(),
    }
}

pub(crate) fn columns(path: &Path) -> Result<Vec<Column>> {
    let builder = builder(path)?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|field| Column {
            name: field.name().clone(),
            type_name: field.data_type().to_string(),
            logical_type: logical_type(field.data_type()),
            nullable: field.is_nullable(),
            default: None,
        })
        .collect())
}

pub(crate) fn reader(path: &Path, columns: &[Column]) -> Result<Reader> {
    let names: Vec<String> = builder(path)?
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let indices = column_indices(path, &names, columns)?;
    let columns = columns.to_vec();
    let path = path.to_path_buf();
    Ok(Box::new(move |sink: &Sender| {
        let builder = builder(&path)?;
        let mut projection: Vec<usize> = indices.clone();
        projection.sort_unstable();
        projection.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
        let batches = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|error| parquet_error(&path, error))?;
        // Positions of the wanted columns within the projected batch.
        let positions: Vec<usize> = indices
            .iter()
            .map(|index| {
                projection
                    .iter()
                    .position(|kept| kept == index)
                    .unwrap_or(0)
            })
            .collect();
        let mut row_number = 0u64;
        for batch in batches {
            let batch = batch.map_err(|error| parquet_error(&path, error))?;
            let arrays = positions
                .iter()
                .map(|position| {
                    let array = batch.column(*position);
                    arrow_cast::cast(array, &read_as(array.data_type()))
                        .map_err(|error| parquet_error(&path, error))
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            let mut rows: Vec<Row> = Vec::with_capacity(batch.num_rows());
            for index in 0..batch.num_rows() {
                row_number += 1;
                let mut row = Vec::with_capacity(columns.len());
                for (column, array) in columns.iter().zip(&arrays) {
                    let value =
                        cell(array, index, column.logical_type).ok_or_else(|| Error::Field {
                            path: path.display().to_string(),
                            line: row_number,
                            column: column.name.clone(),
                            expected: column
                                .logical_type
                                .map_or("supported value", LogicalType::name)
                                .to_owned(),
                        })?;
                    row.push(value);
                }
                rows.push(row);
            }
            if !sink.send(rows) {
                return Ok(());
            }
        }
        Ok(())
    }))
}

/// One cell as a value of `wanted` type; text cells are parsed into it.
fn cell(array: &ArrayRef, index: usize, wanted: Option<LogicalType>) -> Option<Value> {
    if array.is_null(index) {
        return Some(Value::Null);
    }
    Some(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(index)),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(index)),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(index)),
        DataType::Decimal128(_, scale) => {
            let digits = array.as_primitive::<Decimal128Type>().value(index);
            Value::Numeric(decimal(digits, *scale)?)
        }
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(index);
            match wanted {
                Some(logical) if logical != LogicalType::Text => Value::from_text(logical, text)?,
                _ => Value::Text(text.to_owned()),
            }
        }
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(index).to_vec()),
        DataType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(index)),
        DataType::Timestamp(_, None) => Value::Timestamp(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .value(index),
        ),
        DataType::Timestamp(_, Some(_)) => Value::TimestampTz(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .value(index),
        ),
        DataType::Time64(_) => {
            Value::Time(array.as_primitive::<Time64MicrosecondType>().value(index))
        }
        _ => return None,
    })
}

/// An unscaled decimal as exact numeric text.
fn decimal(digits: i128, scale: i8) -> Option<Numeric> {
    let negative = digits < 0;
    let magnitude = digits.unsigned_abs().to_string();
    let text = if scale <= 0 {
        format!(
            "{magnitude}{}",
            "0".repeat(usize::from(scale.unsigned_abs()))
        )
    } else {
        let scale = scale as usize;
        let padded = format!("{magnitude:0>width$}", width = scale + 1);
        let (integer, fraction) = padded.split_at(padded.len() - scale);
        format!("{integer}.{fraction}")
    };
    Numeric::parse(&if negative { format!("-{text}") } else { text })
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
