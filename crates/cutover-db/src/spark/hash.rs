//! Row hashes that Spark SQL computes and cutover computes the same, bit for
//! bit, so that a Spark side can be compared with a side of another engine
//! by hashes: Spark hashes its rows where they live, cutover hashes the
//! other side's rows as they are read, and only the rows of buckets whose
//! digests differ cross the wire.
//!
//! The hash is Spark's `xxhash64(a1, a2, …)`: XXH64 with seed 42, each
//! argument hashed with the previous argument's hash as its seed, NULL
//! arguments skipped. Each column contributes two arguments: `isnull(c)` (a
//! boolean, hashed as a 4-byte integer) and its value in a [`HashForm`]
//! both sides agree on, so that NULLs in different columns never collide
//! and 1.5 as DECIMAL(10,2) hashes like 1.500 as PostgreSQL's numeric.
//!
//! The forms are never coarser than the canonical encoding: equal hashes
//! of unequal rows can only come from a 64-bit collision. They may be finer
//! (no `--trim` or other leniency is applied): a row that only a leniency
//! makes equal lands in a mismatching bucket and is compared exactly.

use crate::value::{LogicalType, Value};

/// Spark's seed for `xxhash64`.
const SEED: u64 = 42;

/// How a pair of columns is hashed on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashForm {
    /// Integers, as 8-byte little-endian `bigint`.
    Long,
    /// Exact numbers, as their canonical decimal text (`1.50` → `1.5`).
    Decimal,
    /// Floats, as the 8 bytes of an IEEE 754 double (−0.0 as 0.0, one NaN).
    Double,
    /// Text, as UTF-8.
    Text,
    /// Bytes, as they are.
    Binary,
    /// Booleans, as a 4-byte 0 or 1.
    Bool,
    /// Dates, as 4-byte days since 1970-01-01.
    Date,
    /// Timestamps (with or without time zone, the same on both sides), as
    /// 8-byte microseconds since 1970-01-01.
    Micros,
}

impl HashForm {
    /// The form two columns of these logical types are hashed in; `None`
    /// when there is none (types Spark does not have, or pairs whose
    /// equality is not a byte equality in one form).
    pub fn for_pair(source: Option<LogicalType>, target: Option<LogicalType>) -> Option<HashForm> {
        use LogicalType as T;
        Some(match (source?, target?) {
            (T::Integer, T::Integer) => HashForm::Long,
            (T::Integer | T::Numeric, T::Integer | T::Numeric) => HashForm::Decimal,
            (T::Float, T::Float) => HashForm::Double,
            (T::Text, T::Text) => HashForm::Text,
            (T::Bytes, T::Bytes) => HashForm::Binary,
            (T::Bool, T::Bool) => HashForm::Bool,
            (T::Date, T::Date) => HashForm::Date,
            (T::Timestamp, T::Timestamp) | (T::TimestampTz, T::TimestampTz) => HashForm::Micros,
            _ => return None,
        })
    }

    /// The Spark SQL argument that hashes `expression` (a column read as
    /// [`crate::Engine::select_expression`] reads it) in this form.
    pub fn spark_argument(self, expression: &str) -> String {
        match self {
            HashForm::Long => format!("CAST({expression} AS BIGINT)"),
            HashForm::Decimal => {
                let text = format!("CAST({expression} AS STRING)");
                // Spark writes decimals plainly, with their scale's zeros ("-0.50", "0.00").
                format!(
                    "CASE WHEN instr({text}, '.') > 0 \
                     THEN TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text})) ELSE {text} END"
                )
            }
            HashForm::Double => format!("CAST({expression} AS DOUBLE)"),
            HashForm::Text
            | HashForm::Binary
            | HashForm::Bool
            | HashForm::Date
            | HashForm::Micros => expression.to_owned(),
        }
    }
}

/// Spark SQL for the hash of the columns `(form, expression)`.
pub fn spark_sql(columns: &[(HashForm, String)]) -> String {
    if columns.is_empty() {
        return "CAST(42 AS BIGINT)".to_owned();
    }
    let arguments = columns
        .iter()
        .map(|(form, expression)| {
            format!("isnull({expression}), {}", form.spark_argument(expression))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("xxhash64({arguments})")
}

/// The hash [`spark_sql`] computes in Spark, of `values` read by cutover.
/// A value that does not fit its form (a text in an integer column of a
/// SQLite table) is hashed in a way Spark never produces, so its bucket
/// mismatches and the row is compared exactly.
pub fn hash(forms: &[HashForm], values: &[Value]) -> u64 {
    let mut seed = SEED;
    let mut text = String::new();
    for (form, value) in forms.iter().zip(values) {
        seed = int(i32::from(value.is_null()), seed);
        seed = match (form, value) {
            (_, Value::Null) => seed,
            (HashForm::Long, Value::Int(number)) => long(*number, seed),
            (HashForm::Decimal, Value::Int(number)) => {
                text.clear();
                text.push_str(&number.to_string());
                bytes(text.as_bytes(), seed)
            }
            (HashForm::Decimal, Value::Numeric(number)) => bytes(number.as_str().as_bytes(), seed),
            (HashForm::Double, Value::Float(number)) => {
                let normalised = if number.is_nan() {
                    f64::NAN
                } else if *number == 0.0 {
                    0.0
                } else {
                    *number
                };
                long(normalised.to_bits() as i64, seed)
            }
            (HashForm::Text, Value::Text(value)) => bytes(value.as_bytes(), seed),
            (HashForm::Binary, Value::Bytes(value)) => bytes(value, seed),
            (HashForm::Bool, Value::Bool(flag)) => int(i32::from(*flag), seed),
            (HashForm::Date, Value::Date(days)) => int(*days, seed),
            (HashForm::Micros, Value::Timestamp(micros) | Value::TimestampTz(micros)) => {
                long(*micros, seed)
            }
            (_, other) => {
                // isnull() is 0 or 1; a 2 never comes from Spark.
                let mut encoded = Vec::new();
                crate::canonical::encode_into(other, &mut encoded);
                bytes(&encoded, int(2, seed))
            }
        };
    }
    seed
}

fn int(value: i32, seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(&value.to_le_bytes(), seed)
}

fn long(value: i64, seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(&value.to_le_bytes(), seed)
}

fn bytes(value: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(value, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spark's own answers (SPARK.md), for single arguments without the null flag.
    #[test]
    fn the_hashes_match_sparks_test_vectors() {
        assert_eq!(bytes(b"Spark", SEED) as i64, -4294468057691064905);
        assert_eq!(int(1, SEED) as i64, -6698625589789238999);
        assert_eq!(long(1, SEED) as i64, -7001672635703045582);
        assert_eq!(bytes(b"c", bytes(b"ab", SEED)) as i64, -1301481789560085859);
        // 1.50 as DECIMAL(18,2): its unscaled 150 as a long.
        assert_eq!(long(150, SEED) as i64, -6873856301616164681);
        // DATE'2024-01-01' is day 19723.
        assert_eq!(int(19_723, SEED) as i64, 3242891694566951137);
        assert_eq!(
            long(1_704_067_200_000_000, SEED) as i64,
            3859582417520161651
        );
    }

    #[test]
    fn nulls_in_different_columns_and_decimal_scales() {
        let forms = [HashForm::Text, HashForm::Text];
        let a = hash(&forms, &[Value::Null, Value::Text("a".into())]);
        let b = hash(&forms, &[Value::Text("a".into()), Value::Null]);
        assert_ne!(a, b);
        let decimal = [HashForm::Decimal];
        assert_eq!(
            hash(&decimal, &[Value::Int(10)]),
            hash(
                &decimal,
                &[Value::Numeric(
                    crate::Numeric::parse("10.000").expect("numeric")
                )]
            )
        );
        let double = [HashForm::Double];
        assert_eq!(
            hash(&double, &[Value::Float(-0.0)]),
            hash(&double, &[Value::Float(0.0)])
        );
    }
}
