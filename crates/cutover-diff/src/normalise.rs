//! Normalisation options and the equality they define, applied the same way
//! to hashes (on either strategy) and to the final column-by-column comparison.
//!
//! Hashes may only ever be *finer* than the comparison: two values the
//! comparison calls equal may hash differently (the bucket is then re-checked
//! exactly), but two values it calls different never hash alike after
//! normalisation, or a difference would be missed.

use cutover_db::{Column, LogicalType, Value, canonical};
use serde::Serialize;

/// Characters `--trim` removes from both ends of text.
const TRIM: &[char] = &[' ', '\t', '\n', '\r'];

/// How far timestamps are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampPrecision {
    /// Milliseconds: differences under 1 ms are ignored.
    Ms,
    /// Seconds.
    S,
}

impl TimestampPrecision {
    fn micros(self) -> i64 {
        match self {
            TimestampPrecision::Ms => 1_000,
            TimestampPrecision::S => 1_000_000,
        }
    }

    /// PostgreSQL's `date_trunc` field name.
    pub(crate) fn postgres_field(self) -> &'static str {
        match self {
            TimestampPrecision::Ms => "milliseconds",
            TimestampPrecision::S => "second",
        }
    }
}

/// The normalisation options; all off by default, so every difference counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Normalise {
    /// Floats within this distance are equal.
    pub float_tolerance: Option<f64>,
    /// Timestamps are compared truncated to this precision.
    pub timestamp_precision: Option<TimestampPrecision>,
    /// Leading and trailing spaces, tabs and line breaks in text are ignored.
    pub trim: bool,
    /// Text is compared in lower case.
    pub case_insensitive: bool,
    /// NULL and empty text are equal.
    pub null_equals_empty: bool,
}

impl Normalise {
    /// The value as it is hashed: text trimmed and lowered, empty text as
    /// NULL, timestamps truncated, floats snapped to the tolerance grid.
    pub(crate) fn for_hash(&self, value: &Value) -> Value {
        match value {
            Value::Float(number) => match self.float_tolerance {
                Some(tolerance) if number.is_finite() => Value::Float((number / tolerance).floor()),
                _ => value.clone(),
            },
            other => self.for_compare(other),
        }
    }

    /// The value as it is compared (floats keep their value; tolerance applies in [`Self::equal`]).
    pub(crate) fn for_compare(&self, value: &Value) -> Value {
        match value {
            Value::Text(text) => {
                let mut text: &str = text;
                if self.trim {
                    text = text.trim_matches(TRIM);
                }
                if self.null_equals_empty && text.is_empty() {
                    return Value::Null;
                }
                if self.case_insensitive {
                    Value::Text(text.to_lowercase())
                } else {
                    Value::Text(text.to_owned())
                }
            }
            Value::Timestamp(micros) => Value::Timestamp(self.truncate(*micros)),
            Value::TimestampTz(micros) => Value::TimestampTz(self.truncate(*micros)),
            other => other.clone(),
        }
    }

    fn truncate(&self, micros: i64) -> i64 {
        match self.timestamp_precision {
            Some(precision) => micros.div_euclid(precision.micros()) * precision.micros(),
            None => micros,
        }
    }

    /// Whether two values are the same under these options.
    pub(crate) fn equal(&self, left: &Value, right: &Value) -> bool {
        if let (Value::Float(a), Value::Float(b), Some(tolerance)) =
            (left, right, self.float_tolerance)
        {
            if a.is_finite() && b.is_finite() {
                return (a - b).abs() <= tolerance;
            }
        }
        let left = self.for_compare(left);
        let right = self.for_compare(right);
        canonical::encode(&left) == canonical::encode(&right)
    }

    /// The SQL expression PostgreSQL hashes for a column: its canonical text
    /// form under these options (see the module docs for why it is never coarser
    /// than [`Self::equal`]).
    pub(crate) fn postgres_expression(&self, column: &Column, quoted: &str) -> String {
        let logical = column.logical_type.unwrap_or(LogicalType::Text);
        match logical {
            LogicalType::Integer | LogicalType::Bool | LogicalType::Bytes | LogicalType::Date => {
                quoted.to_owned()
            }
            LogicalType::Time | LogicalType::Interval | LogicalType::Uuid => quoted.to_owned(),
            LogicalType::Numeric => format!("trim_scale({quoted})"),
            LogicalType::Float => match self.float_tolerance {
                Some(tolerance) => format!("floor({quoted}::float8 / {tolerance:e}::float8)"),
                None => format!("({quoted}::float8 + 0::float8)"),
            },
            LogicalType::Timestamp | LogicalType::TimestampTz => match self.timestamp_precision {
                Some(precision) => {
                    format!("date_trunc('{}', {quoted})", precision.postgres_field())
                }
                None => quoted.to_owned(),
            },
            LogicalType::Json => format!("{quoted}::jsonb"),
            LogicalType::Array => format!("{quoted}::text"),
            LogicalType::Text => {
                let type_name = column.type_name.to_ascii_lowercase();
                let mut expression = if type_name == "bpchar"
                    || type_name == "character"
                    || type_name.starts_with("character(")
                {
                    // Keep char(n)'s padding, as the binary wire form (and so the client) does.
                    format!("textin(bpcharout({quoted}))")
                } else {
                    format!("{quoted}::text")
                };
                if self.trim {
                    expression = format!("btrim({expression}, E' \\t\\n\\r')");
                }
                if self.case_insensitive {
                    expression = format!("lower({expression})");
                }
                if self.null_equals_empty {
                    expression = format!("NULLIF({expression}, '')");
                }
                expression
            }
        }
    }
}

/// Marks NULL in a column's hash (plus the column's seed): no value hashes to
/// it except by a 2^-64 accident.
const NULL_HASH: i64 = 0x5bd1_e995_2a9c_6f53;

impl Normalise {
    /// The SQL expression PostgreSQL evaluates to hash one column: a typed
    /// 64-bit hash with its own `seed`, without going through text where the
    /// type allows (integers, numerics, floats, timestamps, times, UUIDs,
    /// text), and through its canonical text form otherwise. The form is
    /// chosen from both sides' columns so that both servers hash alike, and it
    /// is never coarser than [`Normalise::equal`].
    pub(crate) fn postgres_hash(
        &self,
        source: &Column,
        target: &Column,
        this: &Column,
        seed: usize,
    ) -> String {
        let quoted = cutover_db::schema::quote_identifier(&this.name);
        let both = (source.logical_type, target.logical_type);
        let hash = match both {
            (Some(LogicalType::Integer), Some(LogicalType::Integer)) => {
                format!("hashint8extended({quoted}::int8, {seed})")
            }
            (
                Some(LogicalType::Integer | LogicalType::Numeric),
                Some(LogicalType::Integer | LogicalType::Numeric),
            ) => {
                // Numeric hashing ignores scale, as the canonical form does.
                format!("hash_numeric_extended({quoted}::numeric, {seed})")
            }
            (Some(LogicalType::Float), Some(LogicalType::Float)) => match self.float_tolerance {
                Some(tolerance) => format!(
                    "hashfloat8extended(floor({quoted}::float8 / {tolerance:e}::float8), {seed})"
                ),
                None => format!("hashfloat8extended({quoted}::float8, {seed})"),
            },
            (Some(LogicalType::Timestamp), Some(LogicalType::Timestamp)) => {
                format!(
                    "timestamp_hash_extended({}, {seed})",
                    self.postgres_expression(this, &quoted)
                )
            }
            (Some(LogicalType::TimestampTz), Some(LogicalType::TimestampTz)) => format!(
                "timestamp_hash_extended(({}) AT TIME ZONE 'UTC', {seed})",
                self.postgres_expression(this, &quoted)
            ),
            (Some(LogicalType::Time), Some(LogicalType::Time)) => {
                format!("time_hash_extended({quoted}, {seed})")
            }
            (Some(LogicalType::Uuid), Some(LogicalType::Uuid)) => {
                format!("uuid_hash_extended({quoted}, {seed})")
            }
            (Some(LogicalType::Bool), Some(LogicalType::Bool)) => {
                format!("hashint4extended({quoted}::int4, {seed})")
            }
            (Some(LogicalType::Text), Some(LogicalType::Text))
                if !self.trim
                    && !self.case_insensitive
                    && !self.null_equals_empty
                    && fixed_length_char(source)
                    && source.type_name == target.type_name =>
            {
                // Same char(n) on both sides: equal values are equally padded.
                format!("hashbpcharextended({quoted}, {seed})")
            }
            (Some(LogicalType::Text), Some(LogicalType::Text)) if !is_char(this) => format!(
                "hashtextextended(({}) COLLATE \"C\", {seed})",
                self.postgres_expression(this, &quoted)
            ),
            _ => format!(
                "hashtextextended(({})::text COLLATE \"C\", {seed})",
                self.postgres_expression(this, &quoted)
            ),
        };
        format!("coalesce({hash}, {})", NULL_HASH.wrapping_add(seed as i64))
    }
}

fn is_char(column: &Column) -> bool {
    let type_name = column.type_name.to_ascii_lowercase();
    type_name == "bpchar" || type_name == "character" || type_name.starts_with("character(")
}

fn fixed_length_char(column: &Column) -> bool {
    column
        .type_name
        .to_ascii_lowercase()
        .starts_with("character(")
}

/// Whether values of these two logical types can ever be equal canonically.
pub(crate) fn comparable(left: LogicalType, right: LogicalType) -> bool {
    let family = |logical: LogicalType| match logical {
        LogicalType::Integer | LogicalType::Numeric => LogicalType::Numeric,
        other => other,
    };
    family(left) == family(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_normalised_by_default() {
        let options = Normalise::default();
        assert!(!options.equal(&Value::Null, &Value::Text(String::new())));
        assert!(!options.equal(&Value::Timestamp(1_000), &Value::Timestamp(1_001)));
        assert!(!options.equal(&Value::Text("a".into()), &Value::Text("A".into())));
        assert!(!options.equal(&Value::Float(1.0), &Value::Float(1.000_000_1)));
    }

    #[test]
    fn options_apply_to_comparison_and_hash_alike() {
        let options = Normalise {
            float_tolerance: Some(0.01),
            timestamp_precision: Some(TimestampPrecision::Ms),
            trim: true,
            case_insensitive: true,
            null_equals_empty: true,
        };
        assert!(options.equal(&Value::Null, &Value::Text("  ".into())));
        assert!(options.equal(&Value::Text(" Ab\t".into()), &Value::Text("aB".into())));
        assert!(options.equal(&Value::Timestamp(1_000), &Value::Timestamp(1_999)));
        assert!(!options.equal(&Value::Timestamp(1_999), &Value::Timestamp(2_000)));
        assert!(options.equal(&Value::Float(1.0), &Value::Float(1.005)));
        assert!(!options.equal(&Value::Float(1.0), &Value::Float(1.02)));
        // Before 1970 truncation goes down, as PostgreSQL's date_trunc does.
        assert!(options.equal(&Value::Timestamp(-1), &Value::Timestamp(-1_000)));
    }

    #[test]
    fn hash_form_is_never_coarser_than_comparison() {
        let options = Normalise {
            float_tolerance: Some(0.5),
            ..Normalise::default()
        };
        // Different cells for equal values is allowed (re-checked exactly) ...
        let a = Value::Float(0.9);
        let b = Value::Float(1.1);
        assert!(options.equal(&a, &b));
        assert_ne!(options.for_hash(&a), options.for_hash(&b));
        // ... but one cell for different values is not.
        for (x, y) in [(0.0, 0.49), (1.0, 1.4), (-0.1, -0.4)] {
            if options.for_hash(&Value::Float(x)) == options.for_hash(&Value::Float(y)) {
                assert!(options.equal(&Value::Float(x), &Value::Float(y)), "{x} {y}");
            }
        }
    }
}
