//! The one value model shared by every engine.
//!
//! Each engine decodes its own storage into [`Value`] according to the
//! column's [`LogicalType`], so that the same fact reads the same way from
//! PostgreSQL, SQLite or a file. Equality of facts is decided on the canonical
//! encoding (see [`crate::canonical`]), not on the engines' text forms.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The kinds of column cutover understands, whatever the engine calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    /// true / false.
    Bool,
    /// 16-, 32- or 64-bit integers.
    Integer,
    /// Exact decimal of any size; compared by value (1.0 = 1.00).
    Numeric,
    /// IEEE 754 floating point (float4 is widened to float8).
    Float,
    /// Character data of any length.
    Text,
    /// Binary data (bytea, BLOB).
    Bytes,
    /// Calendar date.
    Date,
    /// Time of day without zone.
    Time,
    /// Date and time without zone.
    Timestamp,
    /// An instant, kept in UTC.
    TimestampTz,
    /// Months, days and microseconds, as PostgreSQL keeps them.
    Interval,
    /// A UUID.
    Uuid,
    /// JSON document (json or jsonb).
    Json,
    /// An array, carried opaquely as PostgreSQL's text form.
    Array,
}

impl LogicalType {
    /// The name used in messages and schema summaries.
    pub fn name(self) -> &'static str {
        match self {
            LogicalType::Bool => "bool",
            LogicalType::Integer => "integer",
            LogicalType::Numeric => "numeric",
            LogicalType::Float => "float",
            LogicalType::Text => "text",
            LogicalType::Bytes => "bytes",
            LogicalType::Date => "date",
            LogicalType::Time => "time",
            LogicalType::Timestamp => "timestamp",
            LogicalType::TimestampTz => "timestamptz",
            LogicalType::Interval => "interval",
            LogicalType::Uuid => "uuid",
            LogicalType::Json => "json",
            LogicalType::Array => "array",
        }
    }
}

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A PostgreSQL-style interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months.
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// An exact decimal number, held in its canonical text form: no leading `+`,
/// no leading zeros, no trailing fractional zeros, `0` for every zero, and
/// `NaN`, `Infinity` or `-Infinity` for the special values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Numeric(String);

impl Numeric {
    /// Parses decimal text such as `-001.2300`, `5`, `1e3` or `NaN`.
    /// Returns `None` when the text is not a number.
    pub fn parse(text: &str) -> Option<Numeric> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "nan" => return Some(Numeric("NaN".to_owned())),
            "infinity" | "+infinity" | "inf" | "+inf" => {
                return Some(Numeric("Infinity".to_owned()));
            }
            "-infinity" | "-inf" => return Some(Numeric("-Infinity".to_owned())),
            _ => {}
        }
        let (negative, unsigned) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(position) => (
                &unsigned[..position],
                unsigned[position + 1..].parse::<i32>().ok()?,
            ),
            None => (unsigned, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        if !integer
            .bytes()
            .chain(fraction.bytes())
            .all(|byte| byte.is_ascii_digit())
        {
            return None;
        }
        // Shift the decimal point by the exponent.
        let mut digits = String::with_capacity(integer.len() + fraction.len());
        digits.push_str(integer);
        digits.push_str(fraction);
        let point = integer.len() as i64 + i64::from(exponent);
        if !(-100_000..=100_000).contains(&point) {
            return None;
        }
        let (integer, fraction) = if point <= 0 {
            (
                String::new(),
                format!("{}{}", "0".repeat((-point) as usize), digits),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{}{}", digits, "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            let (head, tail) = digits.split_at(point as usize);
            (head.to_owned(), tail.to_owned())
        };
        let integer = integer.trim_start_matches('0');
        let fraction = fraction.trim_end_matches('0');
        let mut canonical = String::with_capacity(integer.len() + fraction.len() + 3);
        if integer.is_empty() && fraction.is_empty() {
            return Some(Numeric("0".to_owned()));
        }
        if negative {
            canonical.push('-');
        }
        canonical.push_str(if integer.is_empty() { "0" } else { integer });
        if !fraction.is_empty() {
            canonical.push('.');
            canonical.push_str(fraction);
        }
        Some(Numeric(canonical))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The integer this number equals, if it is one and fits in 64 bits.
    pub fn to_i64(&self) -> Option<i64> {
        if self.0.contains('.') {
            return None;
        }
        self.0.parse().ok()
    }

    /// The nearest floating-point value.
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }
}

impl From<i64> for Numeric {
    fn from(value: i64) -> Self {
        Numeric(value.to_string())
    }
}

/// One value of one column of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL: distinct from every other value, the empty string included.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An exact decimal.
    Numeric(Numeric),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01; `i32::MAX`/`i32::MIN` are ±infinity.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 (no zone); `i64::MAX`/`i64::MIN` are ±infinity.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC; `i64::MAX`/`i64::MIN` are ±infinity.
    TimestampTz(i64),
    /// An interval.
    Interval(Interval),
    /// A UUID.
    Uuid([u8; 16]),
    /// A JSON document in canonical form (keys sorted, no insignificant space).
    Json(String),
    /// An array in PostgreSQL's text form, compared as text.
    Array(String),
}

impl Value {
    /// The name of this value's kind, for messages (never the value itself).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Numeric(_) => "numeric",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Interval(_) => "interval",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
            Value::Array(_) => "array",
        }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Builds a JSON value from text, putting it in canonical form.
    /// Returns `None` when the text is not JSON.
    pub fn json(text: &str) -> Option<Value> {
        let parsed: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Value::Json(parsed.to_string()))
    }

    /// Builds a UUID from its hyphenated or plain hex text.
    pub fn uuid_from_text(text: &str) -> Option<Value> {
        let hex: Vec<u8> = text
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .bytes()
            .filter(|byte| *byte != b'-')
            .collect();
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (index, pair) in hex.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            bytes[index] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Value::Uuid(bytes))
    }

    /// Reads a value of `logical` type from its text form (SQLite text
    /// storage, CSV fields): the canonical forms [`Value::to_text`] writes, and
    /// the usual variants (`t`/`yes` for booleans, `NaN`/`Infinity` for floats,
    /// offsets and a `T` separator in timestamps, `\x…` hex for bytes).
    /// `None` if the text is not such a value.
    pub fn from_text(logical: LogicalType, text: &str) -> Option<Value> {
        Some(match logical {
            LogicalType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" => Value::Bool(true),
                "false" | "f" | "0" | "no" => Value::Bool(false),
                _ => return None,
            },
            LogicalType::Integer => Value::Int(text.trim().parse().ok()?),
            LogicalType::Numeric => Value::Numeric(Numeric::parse(text)?),
            LogicalType::Float => Value::Float(match text.trim() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().ok()?,
            }),
            LogicalType::Text => Value::Text(text.to_owned()),
            LogicalType::Bytes => match text.strip_prefix("\\x") {
                Some(hex) if hex.len() % 2 == 0 => Value::Bytes(
                    (0..hex.len())
                        .step_by(2)
                        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()?,
                ),
                _ => Value::Bytes(text.as_bytes().to_vec()),
            },
            LogicalType::Date => Value::Date(parse_date(text)?),
            LogicalType::Time => Value::Time(parse_time(text)?),
            LogicalType::Timestamp => Value::Timestamp(parse_timestamp(text)?),
            LogicalType::TimestampTz => Value::TimestampTz(parse_timestamptz(text)?),
            LogicalType::Interval => Value::Interval(parse_interval(text)?),
            LogicalType::Uuid => Value::uuid_from_text(text)?,
            LogicalType::Json => Value::json(text)?,
            LogicalType::Array => Value::Array(text.to_owned()),
        })
    }

    /// The canonical text form, as written into text storage (SQLite, CSV)
    /// and shown with `--show-values`. `None` for NULL.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(value) => if *value { "true" } else { "false" }.to_owned(),
            Value::Int(value) => value.to_string(),
            Value::Numeric(value) => value.as_str().to_owned(),
            Value::Float(value) => format_float(*value),
            Value::Text(value) | Value::Json(value) | Value::Array(value) => value.clone(),
            Value::Bytes(value) => {
                let mut text = String::with_capacity(2 + value.len() * 2);
                text.push_str("\\x");
                for byte in value {
                    let _ = write!(text, "{byte:02x}");
                }
                text
            }
            Value::Date(days) => format_date(*days),
            Value::Time(micros) => format_time(*micros),
            Value::Timestamp(micros) => format_timestamp(*micros, false),
            Value::TimestampTz(micros) => format_timestamp(*micros, true),
            Value::Interval(interval) => format_interval(*interval),
            Value::Uuid(bytes) => format_uuid(bytes),
        })
    }
}

/// Shortest text that reads back as the same float; `NaN`, `Infinity`, `-Infinity`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        format!("{value:?}")
    }
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A date from days since 1970-01-01.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Days since 1970-01-01 of a date.
pub fn days_from_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

fn format_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        _ => match date_from_days(days) {
            Some(date) => date.format("%Y-%m-%d").to_string(),
            None => format!("{days} days"),
        },
    }
}

fn format_time(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let text = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    );
    with_fraction(text, fraction)
}

fn with_fraction(mut text: String, fraction: i64) -> String {
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

fn format_timestamp(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".to_owned(),
        i64::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    match DateTime::from_timestamp_micros(micros) {
        Some(instant) => {
            let naive = instant.naive_utc();
            let text = naive.format("%Y-%m-%d %H:%M:%S").to_string();
            let mut text = with_fraction(text, i64::from(naive.nanosecond() / 1000));
            if utc {
                text.push_str("+00");
            }
            text
        }
        None => format!("{micros} microseconds since 1970"),
    }
}

fn format_interval(interval: Interval) -> String {
    let sign = if interval.micros < 0 { "-" } else { "" };
    let magnitude = interval.micros.unsigned_abs();
    let text = format!(
        "P{}M{}DT{sign}{}",
        interval.months,
        interval.days,
        magnitude / 1_000_000
    );
    let mut text = with_fraction(text, (magnitude % 1_000_000) as i64);
    text.push('S');
    text
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Parses `YYYY-MM-DD`, also `infinity`/`-infinity`.
pub fn parse_date(text: &str) -> Option<i32> {
    match text.trim() {
        "infinity" => Some(i32::MAX),
        "-infinity" => Some(i32::MIN),
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(days_from_date),
    }
}

/// Parses `HH:MM[:SS[.ffffff]]`.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text == "24:00:00" {
        return Some(MICROS_PER_DAY);
    }
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()?;
    Some(
        i64::from(time.num_seconds_from_midnight()) * 1_000_000
            + i64::from(time.nanosecond() / 1000),
    )
}

/// Parses a timestamp without zone: `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`),
/// a bare date (midnight), or `infinity`/`-infinity`.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let naive = parse_naive_datetime(text)?;
    Some(naive.and_utc().timestamp_micros())
}

fn parse_naive_datetime(text: &str) -> Option<NaiveDateTime> {
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(value) = NaiveDateTime::parse_from_str(text, format) {
            return Some(value);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
}

/// Parses an instant: a timestamp followed by `Z`, `+HH`, `+HH:MM` or `+HHMM`
/// (text without an offset is taken as UTC), or `infinity`/`-infinity`.
/// The result is microseconds since the epoch in UTC.
pub fn parse_timestamptz(text: &str) -> Option<i64> {
    let text = text.trim();
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (local, offset_seconds) = split_offset(text)?;
    let naive = parse_naive_datetime(local)?;
    Some(naive.and_utc().timestamp_micros() - offset_seconds * 1_000_000)
}

fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((local.trim_end(), 0));
    }
    // The offset sign comes after the time part, which starts after position 10.
    let time_start = text.len().min(11);
    let sign_position = text[time_start..]
        .rfind(['+', '-'])
        .map(|position| time_start + position);
    let Some(position) = sign_position else {
        return Some((text, 0));
    };
    let sign = if text.as_bytes()[position] == b'-' {
        -1
    } else {
        1
    };
    let digits: String = text[position + 1..].chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some((
        text[..position].trim_end(),
        sign * (hours * 3600 + minutes * 60),
    ))
}

/// Parses the ISO 8601 form written by [`Value::to_text`] (`P{months}M{days}DT{seconds}S`),
/// and general ISO 8601 durations with years, months, weeks, days, hours, minutes and seconds.
pub fn parse_interval(text: &str) -> Option<Interval> {
    let text = text.trim();
    let body = text.strip_prefix('P')?;
    let (date_part, time_part) = body.split_once('T').unwrap_or((body, ""));
    let mut interval = Interval::default();
    let mut number = String::new();
    for character in date_part.chars() {
        match character {
            '0'..='9' | '-' | '+' => number.push(character),
            'Y' => {
                interval.months = interval
                    .months
                    .checked_add(number.parse::<i32>().ok()?.checked_mul(12)?)?
            }
            'M' => interval.months = interval.months.checked_add(number.parse::<i32>().ok()?)?,
            'W' => {
                interval.days = interval
                    .days
                    .checked_add(number.parse::<i32>().ok()?.checked_mul(7)?)?
            }
            'D' => interval.days = interval.days.checked_add(number.parse::<i32>().ok()?)?,
            _ => return None,
        }
        if character.is_ascii_alphabetic() {
            number.clear();
        }
    }
    if !number.is_empty() {
        return None;
    }
    for character in time_part.chars() {
        let unit: i64 = match character {
            '0'..='9' | '-' | '+' | '.' => {
                number.push(character);
                continue;
            }
            'H' => 3_600_000_000,
            'M' => 60_000_000,
            'S' => 1_000_000,
            _ => return None,
        };
        let micros = exact_micros(&number, unit)?;
        interval.micros = interval.micros.checked_add(micros)?;
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    Some(interval)
}

/// `text` (a decimal such as `-3.25`) times `unit` microseconds, exactly.
fn exact_micros(text: &str, unit: i64) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut fraction_digits: String = fraction.chars().take(12).collect();
    if !fraction_digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let scale = 10i64.pow(fraction_digits.len() as u32);
    if fraction_digits.is_empty() {
        fraction_digits.push('0');
    }
    let fraction: i64 = fraction_digits.parse().ok()?;
    let micros = whole.checked_mul(unit)?.checked_add(
        i64::try_from(i128::from(fraction) * i128::from(unit) / i128::from(scale)).ok()?,
    )?;
    Some(if negative { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_is_normalised_by_value() {
        let cases = [
            ("1.0", "1"),
            ("1.00", "1"),
            ("001.2300", "1.23"),
            ("-0.000", "0"),
            ("+5", "5"),
            (".5", "0.5"),
            ("-12.", "-12"),
            ("1e3", "1000"),
            ("1.5E-2", "0.015"),
            ("nan", "NaN"),
            ("-Infinity", "-Infinity"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Numeric::parse(input).map(|n| n.0),
                Some(expected.to_owned()),
                "{input}"
            );
        }
        for bad in ["", "-", ".", "1.2.3", "12a", "1e", "--1"] {
            assert_eq!(Numeric::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let micros = parse_timestamp("2024-03-01 12:34:56.000789").expect("valid");
        assert_eq!(
            Value::Timestamp(micros).to_text().as_deref(),
            Some("2024-03-01 12:34:56.000789")
        );
        let utc = parse_timestamptz("2024-03-01 14:34:56.5+02:00").expect("valid");
        assert_eq!(
            Value::TimestampTz(utc).to_text().as_deref(),
            Some("2024-03-01 12:34:56.5+00")
        );
        assert_eq!(parse_timestamptz("2024-03-01 12:34:56.5+00"), Some(utc));
        assert_eq!(parse_timestamptz("2024-03-01T12:34:56.5Z"), Some(utc));
        assert_eq!(parse_timestamptz("2024-03-01 07:34:56.5-0500"), Some(utc));
        assert_eq!(parse_timestamptz("2024-03-01 12:34:56.5"), Some(utc));
        assert_eq!(parse_timestamptz("infinity"), Some(i64::MAX));
    }

    #[test]
    fn dates_before_the_epoch_round_trip() {
        let days = parse_date("1969-12-31").expect("valid");
        assert_eq!(days, -1);
        assert_eq!(Value::Date(days).to_text().as_deref(), Some("1969-12-31"));
        let micros = parse_timestamp("1950-06-01 00:00:00.25").expect("valid");
        assert_eq!(
            Value::Timestamp(micros).to_text().as_deref(),
            Some("1950-06-01 00:00:00.25")
        );
    }

    #[test]
    fn intervals_round_trip_through_text() {
        let interval = Interval {
            months: 14,
            days: -3,
            micros: 3_723_500_000,
        };
        let text = Value::Interval(interval).to_text().expect("not null");
        assert_eq!(text, "P14M-3DT3723.5S");
        assert_eq!(parse_interval(&text), Some(interval));
        let tiny = Interval {
            months: 0,
            days: 0,
            micros: -1,
        };
        let text = Value::Interval(tiny).to_text().expect("not null");
        assert_eq!(text, "P0M0DT-0.000001S");
        assert_eq!(parse_interval(&text), Some(tiny));
        assert_eq!(
            parse_interval("P1Y2W1DT1H1M"),
            Some(Interval {
                months: 12,
                days: 15,
                micros: 3_660_000_000
            })
        );
    }

    #[test]
    fn uuid_text_round_trips() {
        let value = Value::uuid_from_text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").expect("valid");
        assert_eq!(
            value.to_text().as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
    }

    #[test]
    fn json_is_canonical() {
        assert_eq!(
            Value::json(r#"{ "b": 1, "a": [true, null] }"#),
            Some(Value::Json(r#"{"a":[true,null],"b":1}"#.into()))
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Trailing zeros, leading zeros and a leading `+` never change a numeric.
        #[test]
        fn numeric_ignores_scale_and_padding(integer in 0u64..1_000_000_000_000, fraction in 0u32..1_000_000, zeros in 0usize..6, negative: bool) {
            let sign = if negative { "-" } else { "" };
            let plain = format!("{sign}{integer}.{fraction:06}");
            let padded = format!("{sign}000{integer}.{fraction:06}{}", "0".repeat(zeros));
            prop_assert_eq!(Numeric::parse(&plain), Numeric::parse(&padded));
        }

        /// Every timestamp survives its own text form, in both flavours.
        #[test]
        fn timestamps_round_trip_through_text(micros in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let text = Value::Timestamp(micros).to_text().expect("not null");
            prop_assert_eq!(parse_timestamp(&text), Some(micros));
            let text = Value::TimestampTz(micros).to_text().expect("not null");
            prop_assert_eq!(parse_timestamptz(&text), Some(micros));
        }

        /// Every interval survives its own text form.
        #[test]
        fn intervals_round_trip_through_text(months: i32, days: i32, micros in -1_000_000_000_000_000i64..1_000_000_000_000_000) {
            let interval = Interval { months, days, micros };
            let text = Value::Interval(interval).to_text().expect("not null");
            prop_assert_eq!(parse_interval(&text), Some(interval));
        }

        /// Every float survives its own text form.
        #[test]
        fn floats_round_trip_through_text(value: f64) {
            let text = format_float(value);
            let back: f64 = match text.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().expect("a float"),
            };
            prop_assert!(back.to_bits() == value.to_bits() || (back.is_nan() && value.is_nan()));
        }
    }
}
