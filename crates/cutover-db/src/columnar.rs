//! Canonical encodings straight from Arrow arrays: for each cell, the bytes
//! [`canonical::encode_into`] gives for the value [`arrow::cell`] reads,
//! without building a [`Value`] (no allocation per cell). Hashing a file's
//! rows goes through here; the property tests hold it to the row-wise path.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int32Array, Int64Array, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_schema::DataType;

use crate::arrow::cell;
use crate::canonical::{self, tag};
use crate::value::{LogicalType, Value};

/// One [`crate::arrow::prepare`]d array, ready to encode its cells.
pub struct CellEncoder<'a> {
    array: &'a ArrayRef,
    nulls: Option<&'a arrow_buffer::NullBuffer>,
    wanted: Option<LogicalType>,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Float(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Text(&'a StringArray),
    /// Dictionary-encoded text (as Parquet stores repetitive text): each
    /// row's key into the values.
    TextDictionary(&'a Int32Array, &'a StringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    Timestamp(&'a TimestampMicrosecondArray, u8),
    Time(&'a Time64MicrosecondArray),
    /// Text parsed into another type, and anything rare: through a value.
    Value,
}

impl std::fmt::Debug for CellEncoder<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CellEncoder")
            .field("type", self.array.data_type())
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl<'a> CellEncoder<'a> {
    /// An encoder for `array` (prepared) read as `wanted`.
    pub fn new(array: &'a ArrayRef, wanted: Option<LogicalType>) -> CellEncoder<'a> {
        let kind = match array.data_type() {
            DataType::Boolean => Kind::Bool(array.as_boolean()),
            DataType::Int64 => Kind::Int(array.as_primitive::<Int64Type>()),
            DataType::Float64 => Kind::Float(array.as_primitive::<Float64Type>()),
            DataType::Decimal128(_, scale) => {
                Kind::Decimal(array.as_primitive::<Decimal128Type>(), *scale)
            }
            DataType::Utf8 if matches!(wanted, None | Some(LogicalType::Text)) => {
                Kind::Text(array.as_string::<i32>())
            }
            DataType::Dictionary(key, value)
                if **key == DataType::Int32
                    && **value == DataType::Utf8
                    && matches!(wanted, None | Some(LogicalType::Text))
                    && array.as_dictionary::<Int32Type>().values().null_count() == 0 =>
            {
                let dictionary = array.as_dictionary::<Int32Type>();
                Kind::TextDictionary(dictionary.keys(), dictionary.values().as_string::<i32>())
            }
            DataType::Binary => Kind::Binary(array.as_binary::<i32>()),
            DataType::Date32 => Kind::Date(array.as_primitive::<Date32Type>()),
            DataType::Timestamp(_, zone) => Kind::Timestamp(
                array.as_primitive::<TimestampMicrosecondType>(),
                if zone.is_some() {
                    tag::TIMESTAMPTZ
                } else {
                    tag::TIMESTAMP
                },
            ),
            DataType::Time64(_) => Kind::Time(array.as_primitive::<Time64MicrosecondType>()),
            _ => Kind::Value,
        };
        CellEncoder {
            array,
            nulls: array.nulls(),
            wanted,
            kind,
        }
    }

    /// Whether the cell is NULL.
    #[inline]
    pub fn is_null(&self, index: usize) -> bool {
        self.nulls.is_some_and(|nulls| nulls.is_null(index))
    }

    /// Appends the cell's canonical encoding to `out`; false when the cell
    /// cannot be read as the wanted type (nothing appended then).
    pub fn encode(&self, index: usize, out: &mut Vec<u8>) -> bool {
        if self.is_null(index) {
            out.push(tag::NULL);
            return true;
        }
        match &self.kind {
            Kind::Bool(array) => {
                out.push(tag::BOOL);
                out.push(u8::from(array.value(index)));
            }
            Kind::Int(array) => canonical::encode_into(&Value::Int(array.value(index)), out),
            Kind::Float(array) => canonical::encode_into(&Value::Float(array.value(index)), out),
            Kind::Decimal(array, scale) => decimal_into(array.value(index), *scale, out),
            Kind::Text(array) => with_length(out, tag::TEXT, array.value(index).as_bytes()),
            Kind::TextDictionary(keys, values) => {
                let key = keys.value(index) as usize;
                if key >= values.len() {
                    return false;
                }
                with_length(out, tag::TEXT, values.value(key).as_bytes());
            }
            Kind::Binary(array) => with_length(out, tag::BYTES, array.value(index)),
            Kind::Date(array) => {
                out.push(tag::DATE);
                out.extend_from_slice(&array.value(index).to_be_bytes());
            }
            Kind::Timestamp(array, tag) => {
                out.push(*tag);
                out.extend_from_slice(&array.value(index).to_be_bytes());
            }
            Kind::Time(array) => {
                out.push(tag::TIME);
                out.extend_from_slice(&array.value(index).to_be_bytes());
            }
            Kind::Value => match cell(self.array, index, self.wanted) {
                Some(value) => canonical::encode_into(&value, out),
                None => return false,
            },
        }
        true
    }
}

fn with_length(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An unscaled decimal's canonical number (as [`crate::Numeric::parse`]
/// writes it: no trailing zeros after the point, no point without a
/// fraction, `0` for zero), encoded.
fn decimal_into(digits: i128, scale: i8, out: &mut Vec<u8>) {
    let (magnitude, mut scale) = (digits.unsigned_abs(), i32::from(scale));
    if magnitude == 0 {
        with_length(out, tag::NUMBER, b"0");
        return;
    }
    // Up to 39 digits, least significant first; u64 arithmetic where it fits.
    let mut reversed = [0u8; 40];
    let mut length = 0;
    match u64::try_from(magnitude) {
        Ok(mut small) => {
            while small > 0 {
                reversed[length] = b'0' + (small % 10) as u8;
                small /= 10;
                length += 1;
            }
        }
        Err(_) => {
            let mut large = magnitude;
            while large > 0 {
                reversed[length] = b'0' + (large % 10) as u8;
                large /= 10;
                length += 1;
            }
        }
    }
    // Trailing zeros of the fraction go.
    let zeros = reversed[..length]
        .iter()
        .take(scale.max(0) as usize)
        .take_while(|digit| **digit == b'0')
        .count();
    reversed.copy_within(zeros..length, 0);
    length -= zeros;
    scale -= zeros as i32;
    // The text is written in place after its tag and a length filled in last.
    out.push(tag::NUMBER);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    if digits < 0 {
        out.push(b'-');
    }
    let fraction = scale.max(0) as usize;
    if fraction >= length {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', fraction - length));
        out.extend(reversed[..length].iter().rev());
    } else {
        out.extend(reversed[fraction..length].iter().rev());
        if fraction > 0 {
            out.push(b'.');
            out.extend(reversed[..fraction].iter().rev());
        }
        out.extend(std::iter::repeat_n(b'0', (-scale).max(0) as usize));
    }
    let written = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&written.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{
        BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
        Int64Builder, StringBuilder, StringDictionaryBuilder, Time64MicrosecondBuilder,
        TimestampMicrosecondBuilder,
    };
    use arrow_array::types::Int8Type;
    use proptest::prelude::*;

    use super::*;

    /// Every cell encodes as the row-wise path (cell, then encode_into) does.
    fn agrees(array: ArrayRef, wanted: Option<LogicalType>) {
        let array = crate::arrow::prepare(&array).expect("prepare");
        let encoder = CellEncoder::new(&array, wanted);
        for index in 0..array.len() {
            let mut columnar = Vec::new();
            let read = encoder.encode(index, &mut columnar);
            match cell(&array, index, wanted) {
                Some(value) => {
                    assert!(read, "cell {index} of {:?}", array.data_type());
                    assert_eq!(columnar, canonical::encode(&value), "{value:?}");
                }
                None => assert!(!read),
            }
        }
    }

    /// Each cell's columnar encoding (None when unreadable).
    fn encoded(array: &ArrayRef, wanted: Option<LogicalType>) -> Vec<Option<Vec<u8>>> {
        let array = crate::arrow::prepare(array).expect("prepare");
        let encoder = CellEncoder::new(&array, wanted);
        (0..array.len())
            .map(|index| {
                let mut bytes = Vec::new();
                encoder.encode(index, &mut bytes).then_some(bytes)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn integers_floats_and_booleans(values in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..40),
                                         floats in proptest::collection::vec(proptest::option::of(any::<f64>()), 0..40),
                                         flags in proptest::collection::vec(proptest::option::of(any::<bool>()), 0..40)) {
            let mut ints = Int64Builder::new();
            ints.extend(values.iter().copied());
            agrees(Arc::new(ints.finish()), Some(LogicalType::Integer));
            let mut builder = Float64Builder::new();
            builder.extend(floats.iter().copied().chain([Some(-0.0), Some(f64::NAN), Some(f64::INFINITY)].map(|value| value)));
            agrees(Arc::new(builder.finish()), Some(LogicalType::Float));
            let mut booleans = BooleanBuilder::new();
            booleans.extend(flags.iter().copied());
            agrees(Arc::new(booleans.finish()), Some(LogicalType::Bool));
        }

        #[test]
        fn decimals_of_every_scale(values in proptest::collection::vec(proptest::option::of(-10i128.pow(30)..10i128.pow(30)), 0..40),
                                   scale in -5i8..=30) {
            let mut builder = Decimal128Builder::new();
            builder.extend(values.iter().copied().chain([Some(0), Some(10), Some(-1000), Some(7)]));
            let array = builder.finish().with_precision_and_scale(38, scale).expect("decimal type");
            agrees(Arc::new(array), Some(LogicalType::Numeric));
        }

        #[test]
        fn text_bytes_and_times(texts in proptest::collection::vec(proptest::option::of(".{0,12}"), 0..30),
                                numbers in proptest::collection::vec(proptest::option::of(any::<i32>()), 0..30)) {
            let mut builder = StringBuilder::new();
            builder.extend(texts.iter().cloned());
            let strings: ArrayRef = Arc::new(builder.finish());
            agrees(strings.clone(), Some(LogicalType::Text));
            // Text parsed into another type: through the value path, unreadable cells refused.
            agrees(strings.clone(), Some(LogicalType::Integer));
            // Dictionary-encoded text (as Parquet scans read it, with keys of
            // any width): the very bytes of the plain text.
            let mut narrow = StringDictionaryBuilder::<Int8Type>::new();
            let mut wide = StringDictionaryBuilder::<Int32Type>::new();
            for text in &texts {
                narrow.append_option(text.as_deref());
                wide.append_option(text.as_deref());
            }
            let plain = encoded(&strings, Some(LogicalType::Text));
            for dictionary in [Arc::new(narrow.finish()) as ArrayRef, Arc::new(wide.finish())] {
                agrees(dictionary.clone(), Some(LogicalType::Text));
                agrees(dictionary.clone(), Some(LogicalType::Integer));
                prop_assert_eq!(&encoded(&dictionary, Some(LogicalType::Text)), &plain);
            }
            let mut binary = BinaryBuilder::new();
            for text in &texts {
                binary.append_option(text.as_ref().map(String::as_bytes));
            }
            agrees(Arc::new(binary.finish()), Some(LogicalType::Bytes));
            let mut dates = Date32Builder::new();
            dates.extend(numbers.iter().copied());
            agrees(Arc::new(dates.finish()), Some(LogicalType::Date));
            let micros: Vec<Option<i64>> = numbers.iter().map(|number| number.map(|n| i64::from(n) * 1_000_003)).collect();
            let mut local = TimestampMicrosecondBuilder::new();
            local.extend(micros.iter().copied());
            agrees(Arc::new(local.finish()), Some(LogicalType::Timestamp));
            let mut zoned = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            zoned.extend(micros.iter().copied());
            agrees(Arc::new(zoned.finish()), Some(LogicalType::TimestampTz));
            let mut times = Time64MicrosecondBuilder::new();
            times.extend(micros.iter().map(|micros| micros.map(|m| m.rem_euclid(86_400_000_000))));
            agrees(Arc::new(times.finish()), Some(LogicalType::Time));
        }
    }
}
