//! PostgreSQL's binary wire format to and from [`Value`].
//!
//! Decoding is driven by the column's logical type and the wire type the
//! server reports; it never goes through text, so nothing depends on the
//! server's `DateStyle`, `extra_float_digits` or locale.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use postgres_types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::value::{Interval, LogicalType, Numeric, Value};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;

/// A field's raw bytes, whatever its type; `None` for NULL.
#[derive(Debug)]
pub(crate) struct RawField<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawField<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawField(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawField(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The logical type of a PostgreSQL type, from its catalog entry; `None` if unsupported.
pub(crate) fn logical_type(
    type_name: &str,
    type_type: &str,
    category: &str,
) -> Option<LogicalType> {
    if category == "A" {
        return Some(LogicalType::Array);
    }
    if type_type == "e" {
        return Some(LogicalType::Text);
    }
    Some(match type_name {
        "bool" => LogicalType::Bool,
        "int2" | "int4" | "int8" => LogicalType::Integer,
        "numeric" => LogicalType::Numeric,
        "float4" | "float8" => LogicalType::Float,
        "text" | "varchar" | "bpchar" | "name" | "citext" | "char" | "xml" => LogicalType::Text,
        "bytea" => LogicalType::Bytes,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time,
        "timestamp" => LogicalType::Timestamp,
        "timestamptz" => LogicalType::TimestampTz,
        "interval" => LogicalType::Interval,
        "uuid" => LogicalType::Uuid,
        "json" | "jsonb" => LogicalType::Json,
        _ => return None,
    })
}

pub(crate) fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

fn be_i16(raw: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(raw.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(raw: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(raw: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(raw.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes one non-NULL field. `None` means the bytes are not a valid value of that type.
pub(crate) fn decode(logical: LogicalType, ty: &Type, raw: &[u8]) -> Option<Value> {
    let ty = base_type(ty);
    Some(match logical {
        LogicalType::Bool => Value::Bool(*raw.first()? != 0),
        LogicalType::Integer => Value::Int(match raw.len() {
            2 => i64::from(be_i16(raw, 0)?),
            4 if *ty == Type::OID => i64::from(u32::from_be_bytes(raw.try_into().ok()?)),
            4 => i64::from(be_i32(raw, 0)?),
            8 => be_i64(raw, 0)?,
            _ => return None,
        }),
        LogicalType::Numeric => Value::Numeric(decode_numeric(raw)?),
        LogicalType::Float => Value::Float(match raw.len() {
            4 => f64::from(f32::from_be_bytes(raw.try_into().ok()?)),
            8 => f64::from_be_bytes(raw.try_into().ok()?),
            _ => return None,
        }),
        LogicalType::Text => {
            if *ty == Type::CHAR {
                // The one-byte "char" type.
                Value::Text(String::from_utf8(raw.to_vec()).ok()?)
            } else {
                Value::Text(std::str::from_utf8(raw).ok()?.to_owned())
            }
        }
        LogicalType::Bytes => Value::Bytes(raw.to_vec()),
        LogicalType::Date => Value::Date(match be_i32(raw, 0)? {
            days @ (i32::MAX | i32::MIN) => days,
            days => days.checked_add(POSTGRES_EPOCH_DAYS)?,
        }),
        LogicalType::Time => Value::Time(be_i64(raw, 0)?),
        LogicalType::Timestamp => Value::Timestamp(shift_timestamp(be_i64(raw, 0)?)?),
        LogicalType::TimestampTz => Value::TimestampTz(shift_timestamp(be_i64(raw, 0)?)?),
        LogicalType::Interval => Value::Interval(Interval {
            micros: be_i64(raw, 0)?,
            days: be_i32(raw, 8)?,
            months: be_i32(raw, 12)?,
        }),
        LogicalType::Uuid => Value::Uuid(raw.try_into().ok()?),
        LogicalType::Json => {
            let text = if *ty == Type::JSONB {
                let (version, rest) = raw.split_first()?;
                if *version != 1 {
                    return None;
                }
                rest
            } else {
                raw
            };
            Value::json(std::str::from_utf8(text).ok()?)?
        }
        // Arrays are selected as `::text`, so they arrive as text.
        LogicalType::Array => Value::Array(std::str::from_utf8(raw).ok()?.to_owned()),
    })
}

fn shift_timestamp(micros: i64) -> Option<i64> {
    match micros {
        i64::MAX | i64::MIN => Some(micros),
        _ => micros.checked_add(POSTGRES_EPOCH_MICROS),
    }
}

fn unshift_timestamp(micros: i64) -> Option<i64> {
    match micros {
        i64::MAX | i64::MIN => Some(micros),
        _ => micros.checked_sub(POSTGRES_EPOCH_MICROS),
    }
}

const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_POSITIVE_INFINITY: u16 = 0xD000;
const NUMERIC_NEGATIVE_INFINITY: u16 = 0xF000;

/// Decodes PostgreSQL's binary numeric: base-10000 digits with a weight.
fn decode_numeric(raw: &[u8]) -> Option<Numeric> {
    let digit_count = usize::try_from(be_i16(raw, 0)?).ok()?;
    let weight = i32::from(be_i16(raw, 2)?);
    let sign = u16::from_be_bytes(raw.get(4..6)?.try_into().ok()?);
    match sign {
        NUMERIC_NAN => return Numeric::parse("NaN"),
        NUMERIC_POSITIVE_INFINITY => return Numeric::parse("Infinity"),
        NUMERIC_NEGATIVE_INFINITY => return Numeric::parse("-Infinity"),
        _ => {}
    }
    let digits = (0..digit_count)
        .map(|index| be_i16(raw, 8 + 2 * index))
        .collect::<Option<Vec<i16>>>()?;
    let digit_at = |index: i32| -> i16 {
        usize::try_from(index)
            .ok()
            .and_then(|index| digits.get(index).copied())
            .unwrap_or(0)
    };
    let mut text = String::with_capacity(digit_count * 4 + 8);
    if sign == NUMERIC_NEGATIVE {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for index in 0..=weight {
            let digit = digit_at(index);
            if index == 0 {
                text.push_str(&digit.to_string());
            } else {
                text.push_str(&format!("{digit:04}"));
            }
        }
    }
    let fraction_groups = digit_count as i32 - weight - 1;
    if fraction_groups > 0 {
        text.push('.');
        for group in 0..fraction_groups {
            text.push_str(&format!("{:04}", digit_at(weight + 1 + group)));
        }
    }
    Numeric::parse(&text)
}

/// Encodes a canonical decimal as PostgreSQL's binary numeric.
fn encode_numeric(number: &Numeric, out: &mut BytesMut) {
    let text = number.as_str();
    let special = match text {
        "NaN" => Some(NUMERIC_NAN),
        "Infinity" => Some(NUMERIC_POSITIVE_INFINITY),
        "-Infinity" => Some(NUMERIC_NEGATIVE_INFINITY),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return;
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let integer = integer.trim_start_matches('0');
    let integer_padding = (4 - integer.len() % 4) % 4;
    let fraction_padding = (4 - fraction.len() % 4) % 4;
    let padded = format!(
        "{}{}{}{}",
        "0".repeat(integer_padding),
        integer,
        fraction,
        "0".repeat(fraction_padding)
    );
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            chunk.iter().fold(0i16, |accumulator, byte| {
                accumulator * 10 + i16::from(byte - b'0')
            })
        })
        .collect();
    let mut weight = ((integer.len() + integer_padding) / 4) as i32 - 1;
    // Drop leading zero groups (moving the weight) and trailing zero groups.
    let leading = groups.iter().take_while(|group| **group == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if negative { NUMERIC_NEGATIVE } else { 0 });
    out.put_u16(fraction.len() as u16);
    for group in groups {
        out.put_i16(group);
    }
}

/// A value bound for one parameter or COPY field, encoded as the target column's type.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub &'a Value);

#[derive(Debug)]
struct EncodeError {
    value_kind: &'static str,
    type_name: String,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "cannot write a {} value into type {}",
            self.value_kind, self.type_name
        )
    }
}

impl StdError for EncodeError {}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let original = ty;
        let ty = base_type(ty);
        let mismatch = || -> Box<dyn StdError + Sync + Send> {
            Box::new(EncodeError {
                value_kind: self.0.kind_name(),
                type_name: original.name().to_owned(),
            })
        };
        let integer = |value: &Value| -> Option<i64> {
            match value {
                Value::Int(value) => Some(*value),
                Value::Numeric(number) => number.to_i64(),
                _ => None,
            }
        };
        match (self.0, ty) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (Value::Bool(value), &Type::BOOL) => out.put_u8(u8::from(*value)),
            (value, &Type::INT2) => out.put_i16(
                integer(value)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(mismatch)?,
            ),
            (value, &Type::INT4) => out.put_i32(
                integer(value)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(mismatch)?,
            ),
            (value, &Type::INT8) => out.put_i64(integer(value).ok_or_else(mismatch)?),
            (Value::Numeric(number), &Type::NUMERIC) => encode_numeric(number, out),
            (Value::Int(value), &Type::NUMERIC) => encode_numeric(&Numeric::from(*value), out),
            (Value::Float(value), &Type::NUMERIC) => {
                let number =
                    Numeric::parse(&crate::value::format_float(*value)).ok_or_else(mismatch)?;
                encode_numeric(&number, out)
            }
            (Value::Float(value), &Type::FLOAT8) => out.put_f64(*value),
            (Value::Float(value), &Type::FLOAT4) => out.put_f32(*value as f32),
            (Value::Int(value), &Type::FLOAT8) => out.put_f64(*value as f64),
            (Value::Numeric(number), &Type::FLOAT8) => out.put_f64(number.to_f64()),
            (Value::Text(text), _) if is_text_like(ty) => out.put_slice(text.as_bytes()),
            (Value::Bytes(bytes), &Type::BYTEA) => out.put_slice(bytes),
            (Value::Date(days), &Type::DATE) => out.put_i32(match *days {
                i32::MAX | i32::MIN => *days,
                days => days.checked_sub(POSTGRES_EPOCH_DAYS).ok_or_else(mismatch)?,
            }),
            (Value::Time(micros), &Type::TIME) => out.put_i64(*micros),
            (Value::Timestamp(micros), &Type::TIMESTAMP)
            | (Value::TimestampTz(micros), &Type::TIMESTAMPTZ) => {
                out.put_i64(unshift_timestamp(*micros).ok_or_else(mismatch)?)
            }
            (Value::Interval(interval), &Type::INTERVAL) => {
                out.put_i64(interval.micros);
                out.put_i32(interval.days);
                out.put_i32(interval.months);
            }
            (Value::Uuid(bytes), &Type::UUID) => out.put_slice(bytes),
            (Value::Json(text), &Type::JSON) => out.put_slice(text.as_bytes()),
            (Value::Json(text), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(text.as_bytes());
            }
            _ => return Err(mismatch()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::XML
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
        || *ty == Type::CHAR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let number = Numeric::parse(text).expect("number");
        let mut buffer = BytesMut::new();
        encode_numeric(&number, &mut buffer);
        decode_numeric(&buffer)
            .expect("decodes")
            .as_str()
            .to_owned()
    }

    #[test]
    fn numeric_binary_round_trips() {
        for (input, expected) in [
            ("0", "0"),
            ("1", "1"),
            ("-1.5", "-1.5"),
            ("10000", "10000"),
            ("12345.6789", "12345.6789"),
            ("0.0001", "0.0001"),
            ("0.00001234", "0.00001234"),
            (
                "123456789012345678901234567890.000000000000000000001",
                "123456789012345678901234567890.000000000000000000001",
            ),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ] {
            assert_eq!(round_trip(input), expected, "{input}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any decimal survives PostgreSQL's binary numeric format.
        #[test]
        fn numeric_binary_round_trips_any_decimal(integer in "[0-9]{0,40}", fraction in "[0-9]{0,40}", negative: bool) {
            let text = format!("{}{}.{}", if negative { "-" } else { "" }, if integer.is_empty() { "0" } else { &integer }, fraction);
            let number = Numeric::parse(&text).expect("a number");
            let mut buffer = BytesMut::new();
            encode_numeric(&number, &mut buffer);
            prop_assert_eq!(decode_numeric(&buffer), Some(number));
        }
    }
}
