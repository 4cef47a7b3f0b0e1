//! Arrow data as cutover values: one mapping of Arrow types to logical
//! types, and of Arrow cells to [`Value`]s, for every engine that hands
//! over Arrow batches (Parquet files, Spark Connect).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use crate::schema::Column;
use crate::stream::Row;
use crate::value::{LogicalType, Numeric, Value};

/// The logical type of an Arrow type; `None` if cutover cannot read it.
pub fn logical_type(data_type: &DataType) -> Option<LogicalType> {
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
        DataType::Dictionary(_, value) => return logical_type(value),
        _ => return None,
    })
}

/// An Arrow field as a column: its name, Arrow's name for its type, and
/// its logical type.
pub fn column(field: &arrow_schema::Field) -> Column {
    Column {
        name: field.name().clone(),
        type_name: field.data_type().to_string(),
        logical_type: logical_type(field.data_type()),
        nullable: field.is_nullable(),
        default: None,
    }
}

/// The type an Arrow column is cast to before its cells are read: the
/// widest of its family (so that [`cell`] handles few types).
pub fn read_as(data_type: &DataType) -> DataType {
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
        DataType::Dictionary(_, value) => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(read_as(value)))
        }
        other => other.clone(),
    }
}

/// `array` cast to [`read_as`] its type.
pub fn prepare(array: &ArrayRef) -> Result<ArrayRef, arrow_schema::ArrowError> {
    arrow_cast::cast(array, &read_as(array.data_type()))
}

/// One cell of an array [`prepare`]d, as a value of `wanted` type; text
/// cells are parsed into it. `None` when the cell cannot be read as that.
pub fn cell(array: &ArrayRef, index: usize, wanted: Option<LogicalType>) -> Option<Value> {
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
        // Dictionary-encoded text, as the scan of a Parquet file reads it.
        DataType::Dictionary(key, _) if **key == DataType::Int32 => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let key = usize::try_from(dictionary.keys().value(index)).ok()?;
            if key >= dictionary.values().len() {
                return None;
            }
            return cell(dictionary.values(), key, wanted);
        }
        _ => return None,
    })
}

/// An unscaled decimal as exact numeric text.
pub fn decimal(digits: i128, scale: i8) -> Option<Numeric> {
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

/// Why a batch's cell could not be read: its row (1-based, counted by the
/// caller across batches) and column, and the type expected. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The row, 1-based.
    pub row: u64,
    /// The column.
    pub column: String,
    /// The logical type wanted.
    pub expected: &'static str,
}

/// The rows of `batch` as `columns` (one per batch column, in order);
/// `rows_before` is how many rows came before, for errors.
pub fn batch_rows(
    batch: &RecordBatch,
    columns: &[Column],
    rows_before: u64,
) -> Result<Vec<Row>, CellError> {
    let arrays: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(columns)
        .map(|(array, column)| {
            prepare(array).map_err(|_| CellError {
                row: rows_before + 1,
                column: column.name.clone(),
                expected: column
                    .logical_type
                    .map_or("supported value", LogicalType::name),
            })
        })
        .collect::<Result<_, _>>()?;
    arrays_rows(&arrays, columns).map_err(|(index, column)| {
        let column = &columns[column];
        CellError {
            row: rows_before + index as u64 + 1,
            column: column.name.clone(),
            expected: column
                .logical_type
                .map_or("supported value", LogicalType::name),
        }
    })
}

/// The rows of [`prepare`]d `arrays` (one per column of `columns`, in
/// order); on failure, the row and column index of a cell that cannot be
/// read as its column's type.
pub fn arrays_rows(arrays: &[ArrayRef], columns: &[Column]) -> Result<Vec<Row>, (usize, usize)> {
    let count = arrays.first().map_or(0, |array| array.len());
    let mut rows = Vec::with_capacity(count);
    for index in 0..count {
        let mut row = Vec::with_capacity(columns.len());
        for (position, (column, array)) in columns.iter().zip(arrays).enumerate() {
            row.push(cell(array, index, column.logical_type).ok_or((index, position))?);
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_exact_digits() {
        assert_eq!(
            decimal(150, 2).map(|n| n.as_str().to_owned()),
            Some("1.5".into())
        );
        assert_eq!(
            decimal(-5, 3).map(|n| n.as_str().to_owned()),
            Some("-0.005".into())
        );
        assert_eq!(
            decimal(7, -2).map(|n| n.as_str().to_owned()),
            Some("700".into())
        );
    }
}
