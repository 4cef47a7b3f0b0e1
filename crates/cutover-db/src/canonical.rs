//! The canonical byte encoding of values: the one definition of "the same
//! value" across engines, and what row hashes are computed over.
//!
//! Each value is one tag byte followed by a payload (big-endian integers,
//! lengths as u32 big-endian). The full table is in ARCHITECTURE.md; in short:
//!
//! | tag | kind | payload |
//! |-----|------|---------|
//! | 0x00 | NULL | none |
//! | 0x01 | bool | 1 byte, 0 or 1 |
//! | 0x02 | integer and numeric | length + canonical decimal text (`1.0` and `1.00` both `1`) |
//! | 0x03 | float | 8 bytes of IEEE 754 bits; `-0.0` as `0.0`, every NaN as one NaN |
//! | 0x04 | text | length + UTF-8 |
//! | 0x05 | bytes | length + bytes |
//! | 0x06 | date | i32 days since 1970-01-01 |
//! | 0x07 | time | i64 microseconds since midnight |
//! | 0x08 | timestamp | i64 microseconds since 1970-01-01 |
//! | 0x09 | timestamptz | i64 microseconds since 1970-01-01 UTC |
//! | 0x0A | interval | i32 months, i32 days, i64 microseconds |
//! | 0x0B | uuid | 16 bytes |
//! | 0x0C | json | length + canonical JSON text (sorted keys, no spaces) |
//! | 0x0D | array | length + PostgreSQL text form |
//!
//! Because NULL has its own tag and text carries its length, NULL, `''` and
//! `'NULL'` all encode differently, and no two rows of values can produce the
//! same bytes by shifting a boundary.
//!
//! ```
//! use cutover_db::{canonical, Value};
//! let a = canonical::row_hash(&[Value::Int(1), Value::Text("x".into())]);
//! let b = canonical::row_hash(&[Value::Numeric(cutover_db::Numeric::parse("1.00").unwrap()), Value::Text("x".into())]);
//! assert_eq!(a, b);
//! ```

use crate::value::Value;

/// Tag bytes of the canonical encoding.
pub mod tag {
    /// SQL NULL.
    pub const NULL: u8 = 0x00;
    /// Boolean.
    pub const BOOL: u8 = 0x01;
    /// Integer or numeric.
    pub const NUMBER: u8 = 0x02;
    /// Float.
    pub const FLOAT: u8 = 0x03;
    /// Text.
    pub const TEXT: u8 = 0x04;
    /// Bytes.
    pub const BYTES: u8 = 0x05;
    /// Date.
    pub const DATE: u8 = 0x06;
    /// Time.
    pub const TIME: u8 = 0x07;
    /// Timestamp without zone.
    pub const TIMESTAMP: u8 = 0x08;
    /// Timestamp with zone (UTC).
    pub const TIMESTAMPTZ: u8 = 0x09;
    /// Interval.
    pub const INTERVAL: u8 = 0x0A;
    /// UUID.
    pub const UUID: u8 = 0x0B;
    /// JSON.
    pub const JSON: u8 = 0x0C;
    /// Array (opaque text).
    pub const ARRAY: u8 = 0x0D;
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Bool(value) => {
            out.push(tag::BOOL);
            out.push(u8::from(*value));
        }
        Value::Int(value) => {
            let mut buffer = itoa_buffer();
            let text = format_i64(*value, &mut buffer);
            with_length(out, tag::NUMBER, text.as_bytes());
        }
        Value::Numeric(value) => with_length(out, tag::NUMBER, value.as_str().as_bytes()),
        Value::Float(value) => {
            out.push(tag::FLOAT);
            let normalised = if value.is_nan() {
                f64::NAN
            } else if *value == 0.0 {
                0.0
            } else {
                *value
            };
            out.extend_from_slice(&normalised.to_bits().to_be_bytes());
        }
        Value::Text(value) => with_length(out, tag::TEXT, value.as_bytes()),
        Value::Bytes(value) => with_length(out, tag::BYTES, value),
        Value::Date(days) => {
            out.push(tag::DATE);
            out.extend_from_slice(&days.to_be_bytes());
        }
        Value::Time(micros) => {
            out.push(tag::TIME);
            out.extend_from_slice(&micros.to_be_bytes());
        }
        Value::Timestamp(micros) => {
            out.push(tag::TIMESTAMP);
            out.extend_from_slice(&micros.to_be_bytes());
        }
        Value::TimestampTz(micros) => {
            out.push(tag::TIMESTAMPTZ);
            out.extend_from_slice(&micros.to_be_bytes());
        }
        Value::Interval(interval) => {
            out.push(tag::INTERVAL);
            out.extend_from_slice(&interval.months.to_be_bytes());
            out.extend_from_slice(&interval.days.to_be_bytes());
            out.extend_from_slice(&interval.micros.to_be_bytes());
        }
        Value::Uuid(bytes) => {
            out.push(tag::UUID);
            out.extend_from_slice(bytes);
        }
        Value::Json(text) => with_length(out, tag::JSON, text.as_bytes()),
        Value::Array(text) => with_length(out, tag::ARRAY, text.as_bytes()),
    }
}

fn with_length(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    // Payloads over 4 GiB cannot come from either engine (PostgreSQL caps a
    // field at 1 GiB, SQLite at 2 GiB); saturate rather than wrap.
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
}

fn itoa_buffer() -> [u8; 20] {
    [0; 20]
}

/// Formats an integer in decimal without allocating.
fn format_i64(value: i64, buffer: &mut [u8; 20]) -> &str {
    let negative = value < 0;
    let mut magnitude = value.unsigned_abs();
    let mut position = buffer.len();
    loop {
        position -= 1;
        buffer[position] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        // 19 digits at most plus the sign: the buffer holds 20.
        position -= 1;
        buffer[position] = b'-';
    }
    std::str::from_utf8(&buffer[position..]).unwrap_or_default()
}

/// The canonical encoding of one value.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// The canonical encoding of a row: the values' encodings one after another.
pub fn encode_row_into(values: &[Value], out: &mut Vec<u8>) {
    for value in values {
        encode_into(value, out);
    }
}

/// The 64-bit xxh3 hash of a row's canonical encoding.
pub fn row_hash(values: &[Value]) -> u64 {
    let mut buffer = Vec::with_capacity(64 * values.len());
    encode_row_into(values, &mut buffer);
    xxhash_rust::xxh3::xxh3_64(&buffer)
}

/// A reusable hasher that keeps its buffer between rows.
#[derive(Debug, Default)]
pub struct RowHasher {
    buffer: Vec<u8>,
}

impl RowHasher {
    /// A hasher with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 64-bit xxh3 hash of the canonical encoding of `values`.
    pub fn hash(&mut self, values: &[Value]) -> u64 {
        self.buffer.clear();
        encode_row_into(values, &mut self.buffer);
        xxhash_rust::xxh3::xxh3_64(&self.buffer)
    }

    /// The 64-bit xxh3 hash of the canonical encoding of the values at `indices`.
    pub fn hash_columns(&mut self, values: &[Value], indices: &[usize]) -> u64 {
        self.buffer.clear();
        for index in indices {
            encode_into(&values[*index], &mut self.buffer);
        }
        xxhash_rust::xxh3::xxh3_64(&self.buffer)
    }
}

/// Reads one value back from its canonical encoding at the start of `bytes`,
/// returning it and the number of bytes it took; `None` if the bytes are not a
/// canonical encoding. Integers and numerics both come back as [`Value::Int`]
/// when they fit in 64 bits, as [`Value::Numeric`] otherwise (they encode alike).
pub fn decode(bytes: &[u8]) -> Option<(Value, usize)> {
    let (&tag, payload) = bytes.split_first()?;
    let fixed = |length: usize| payload.get(..length);
    let with_length = || -> Option<(&[u8], usize)> {
        let length = u32::from_be_bytes(fixed(4)?.try_into().ok()?) as usize;
        Some((payload.get(4..4 + length)?, 1 + 4 + length))
    };
    let i64_at = |at: usize| -> Option<i64> {
        Some(i64::from_be_bytes(
            payload.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let i32_at = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(
            payload.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let text = |raw: &[u8]| String::from_utf8(raw.to_vec()).ok();
    Some(match tag {
        tag::NULL => (Value::Null, 1),
        tag::BOOL => (Value::Bool(*fixed(1)?.first()? == 1), 2),
        tag::NUMBER => {
            let (raw, used) = with_length()?;
            let digits = std::str::from_utf8(raw).ok()?;
            let value = match digits.parse::<i64>() {
                Ok(integer) => Value::Int(integer),
                Err(_) => Value::Numeric(crate::value::Numeric::parse(digits)?),
            };
            (value, used)
        }
        tag::FLOAT => (Value::Float(f64::from_bits(i64_at(0)? as u64)), 9),
        tag::TEXT => {
            let (raw, used) = with_length()?;
            (Value::Text(text(raw)?), used)
        }
        tag::BYTES => {
            let (raw, used) = with_length()?;
            (Value::Bytes(raw.to_vec()), used)
        }
        tag::DATE => (Value::Date(i32_at(0)?), 5),
        tag::TIME => (Value::Time(i64_at(0)?), 9),
        tag::TIMESTAMP => (Value::Timestamp(i64_at(0)?), 9),
        tag::TIMESTAMPTZ => (Value::TimestampTz(i64_at(0)?), 9),
        tag::INTERVAL => (
            Value::Interval(crate::value::Interval {
                months: i32_at(0)?,
                days: i32_at(4)?,
                micros: i64_at(8)?,
            }),
            17,
        ),
        tag::UUID => (Value::Uuid(fixed(16)?.try_into().ok()?), 17),
        tag::JSON => {
            let (raw, used) = with_length()?;
            (Value::Json(text(raw)?), used)
        }
        tag::ARRAY => {
            let (raw, used) = with_length()?;
            (Value::Array(text(raw)?), used)
        }
        _ => return None,
    })
}

/// Reads a whole row back from [`encode_row_into`]'s bytes; `None` if they are
/// not a sequence of canonical encodings.
pub fn decode_row(mut bytes: &[u8]) -> Option<Vec<Value>> {
    let mut row = Vec::new();
    while !bytes.is_empty() {
        let (value, used) = decode(bytes)?;
        row.push(value);
        bytes = &bytes[used..];
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Interval, Numeric};

    #[test]
    fn every_kind_decodes_back_to_the_same_encoding() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Numeric(Numeric::parse("123456789012345678901234567890.5").expect("number")),
            Value::Float(-1.5),
            Value::Text("x\u{e9}".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date(-3),
            Value::Time(1),
            Value::Timestamp(-1),
            Value::TimestampTz(i64::MAX),
            Value::Interval(Interval {
                months: 1,
                days: -2,
                micros: 3,
            }),
            Value::Uuid([7; 16]),
            Value::Json("{}".into()),
            Value::Array("{1,2}".into()),
        ];
        let mut bytes = Vec::new();
        encode_row_into(&row, &mut bytes);
        let decoded = decode_row(&bytes).expect("decodes");
        assert_eq!(decoded.len(), row.len());
        let mut again = Vec::new();
        encode_row_into(&decoded, &mut again);
        assert_eq!(bytes, again);
        assert!(decode_row(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn null_empty_and_the_word_null_differ() {
        let null = encode(&Value::Null);
        let empty = encode(&Value::Text(String::new()));
        let word = encode(&Value::Text("NULL".into()));
        assert_ne!(null, empty);
        assert_ne!(empty, word);
        assert_ne!(null, word);
    }

    #[test]
    fn numeric_scale_does_not_matter_but_value_does() {
        let one = |text: &str| encode(&Value::Numeric(Numeric::parse(text).expect("number")));
        assert_eq!(one("1.0"), one("1.00"));
        assert_eq!(one("1"), encode(&Value::Int(1)));
        assert_ne!(one("1.0"), one("1.01"));
    }

    #[test]
    fn integers_encode_as_their_decimal_text() {
        for value in [0, 7, -7, 1234567890123, i64::MAX, i64::MIN] {
            let encoded = encode(&Value::Int(value));
            assert_eq!(&encoded[5..], value.to_string().as_bytes(), "{value}");
        }
    }

    #[test]
    fn floats_normalise_zero_and_nan() {
        assert_eq!(encode(&Value::Float(0.0)), encode(&Value::Float(-0.0)));
        assert_eq!(
            encode(&Value::Float(f64::NAN)),
            encode(&Value::Float(-f64::NAN))
        );
        assert_ne!(encode(&Value::Float(1.0)), encode(&Value::Int(1)));
    }

    #[test]
    fn a_microsecond_is_a_difference() {
        assert_ne!(
            encode(&Value::TimestampTz(1)),
            encode(&Value::TimestampTz(2))
        );
        assert_ne!(encode(&Value::Timestamp(1)), encode(&Value::TimestampTz(1)));
    }

    #[test]
    fn boundaries_cannot_shift() {
        let a = row_hash(&[Value::Text("ab".into()), Value::Text("c".into())]);
        let b = row_hash(&[Value::Text("a".into()), Value::Text("bc".into())]);
        assert_ne!(a, b);
    }

    #[test]
    fn interval_fields_are_all_encoded() {
        let a = encode(&Value::Interval(Interval {
            months: 1,
            days: 0,
            micros: 0,
        }));
        let b = encode(&Value::Interval(Interval {
            months: 0,
            days: 1,
            micros: 0,
        }));
        assert_ne!(a, b);
        assert_eq!(a.len(), 17);
    }
}
